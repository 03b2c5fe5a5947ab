"""An agent's reply written in HubSpot reaches the customer (issue #20, item 2b): a note on the
contact starting with "WhatsApp:" goes as written inside the 24-hour window, as the [replies]
template outside it, is refused with its reason on the timeline when it may not go, is sent once
however often HubSpot delivers the note's creation, and hands the conversation to people. Against
the local HubSpot stand-in; the webhook is tests/payloads/hubspot/note_created.json (shaped from
HubSpot's webhook reference), signed v3 with the app's client secret."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hubspot_support import CLIENT_SECRET, PHONE, deliveries_of, hubspot_config, payload, request, v3
from hypothesis import given
from hypothesis import strategies as st
from test_hubspot_client import hubspot, replay  # noqa: F401 - HubSpot's reference answers, replayed

from connectzap.connectors.hubspot import agent_replies
from connectzap.connectors.hubspot.client import HubSpotClient
from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.connectors.hubspot.settings import HubSpotSettings
from connectzap.core import ingress, windows
from connectzap.core.app import Connectzap
from connectzap.core.context import EventContext
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

NOTICE = "new_message_notice"
UTILITY = {"utility": {"property": "whatsapp_utility_optin"}}
ANSWER = "Your quote is ready: 2 units, 140 EUR."
# How HubSpot's note editor stores what the agent typed (hs_note_body is HTML).
NOTE = f'<div style="" dir="auto" data-top-level="true"><p style="margin:0;">WhatsApp: {html.escape(ANSWER)}</p></div>'


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as server:
        yield server


def engine(make: Any, fake: FakeHubSpot, sub: str = "app", **hubspot: Any) -> Connectzap:
    config = hubspot_config(fake.url, **{"lead_on_creation": False, "agent_replies": True,
                                         "agent_reply_params": ["firstname"], **hubspot})
    config["consent"] = {**config["consent"], **UTILITY}
    app = make(sub, connectors={"hubspot": config}, replies={"fallback_template": NOTICE, "handoff_minutes": 30})
    seed_template(app, NOTICE, "Hi {{1}}, you have a new message from us. Reply to read it.")
    return app


def created(app: Connectzap, note_id: str, *, attempt: int = 0, occurred: int = 1772450100000,
            secret: str = CLIENT_SECRET) -> int:
    """HubSpot delivering the note's creation (attempt > 0: a retry of the same event)."""
    [event] = json.loads(payload("note_created.json"))
    event.update(objectId=int(note_id), attemptNumber=attempt, occurredAt=occurred)
    body = json.dumps([event]).encode()
    return ingress.handle(app.connectors["hubspot"], request(body, v3(body, secret=secret)), app.ingest).status


def wrote(app: Connectzap, hours_ago: float) -> None:
    with app.db.begin() as conn:
        windows.open_window(app.db, conn, app.contact_key(PHONE), time.time() - hours_ago * 3600, None)


def timeline(fake: FakeHubSpot) -> list[str]:
    return [c["properties"]["hs_communication_body"] for c in fake.objects("communications")]


def outcome_entries(fake: FakeHubSpot) -> list[str]:
    return [t for t in timeline(fake) if "WhatsApp reply" in t]


async def test_inside_the_window_the_note_goes_as_written_once_and_the_timeline_says_so(make, fake):
    contact = fake.add_contact({"firstname": "Ana", "mobilephone": "+34 612 34 56 78"})
    app = engine(make, fake)
    wrote(app, hours_ago=2)
    note = fake.add_note(NOTE, [contact])
    assert created(app, note) == 200
    assert created(app, note, attempt=1) == 200  # HubSpot retrying the delivery
    await Worker(app).run_until_idle()
    assert created(app, note, occurred=1772450160000) == 200  # the same note delivered as a new event
    await Worker(app).run_until_idle()
    assert [(b["type"], b["text"]["body"]) for b in app.channel.sent()] == [("text", ANSWER)]
    [message] = app.messages(phone=PHONE)
    assert json.loads(message["origin"]) == {"source": "hubspot", "portal": "62515", "contact": contact, "note": note}
    [entry] = outcome_entries(fake)
    assert "WhatsApp reply sent" in entry and "window is open" in entry
    assert any(ANSWER in t for t in timeline(fake))  # the message itself, once WhatsApp accepted it
    assert {a[2] for a in fake.associations if a[0] == "communications"} == {contact}
    person = app.conversation(PHONE)
    assert (person.handled_by, person.reason) == ("human", "agent reply")


async def test_outside_the_window_the_template_goes_with_the_contacts_name(make, fake):
    contact = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE, "whatsapp_utility_optin": "granted"})
    app = engine(make, fake)
    wrote(app, hours_ago=30)
    assert created(app, fake.add_note(NOTE, [contact])) == 200
    await Worker(app).run_until_idle()
    [sent] = app.channel.sent()
    assert sent["template"]["name"] == NOTICE
    assert [p["text"] for p in sent["template"]["components"][0]["parameters"]] == ["Ana"]
    [entry] = outcome_entries(fake)
    assert "sent as a template" in entry and NOTICE in entry and ANSWER not in entry
    assert app.conversation(PHONE).handled_by == "human"


async def test_a_template_of_its_own_replaces_the_replies_one_for_hubspot_notes(make, fake):
    contact = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE, "whatsapp_utility_optin": "granted"})
    app = engine(make, fake, agent_reply_template="sales_followup", agent_reply_language="es")
    seed_template(app, "sales_followup", "Hola {{1}}, tu comercial te ha escrito. Responde para leerlo.", language="es")
    assert created(app, fake.add_note(NOTE, [contact])) == 200  # never wrote: no window
    await Worker(app).run_until_idle()
    [sent] = app.channel.sent()
    assert (sent["template"]["name"], sent["template"]["language"]["code"]) == ("sales_followup", "es")
    assert [p["text"] for p in sent["template"]["components"][0]["parameters"]] == ["Ana"]


async def test_without_consent_for_the_template_nothing_goes_and_the_timeline_says_why(make, fake):
    contact = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = engine(make, fake)
    assert created(app, fake.add_note(NOTE, [contact])) == 200  # never wrote: no window
    await Worker(app).run_until_idle()
    assert app.channel.sent() == []
    [message] = app.messages(phone=PHONE)
    assert (message["status"], message["reason"]) == ("refused", "no_consent")
    [entry] = outcome_entries(fake)
    assert "not sent" in entry and "no_consent" in entry
    assert app.conversation(PHONE).handled_by == "bot"


async def test_no_number_two_contacts_or_a_text_too_long_is_refused_on_the_timeline(make, fake):
    nameless = fake.add_contact({"firstname": "Bo"})
    ana = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = engine(make, fake)
    created(app, fake.add_note(NOTE, [nameless]))
    created(app, fake.add_note(NOTE, [nameless, ana]))
    created(app, fake.add_note(f"<p>WhatsApp: {'x' * 4097}</p>", [ana]))
    await Worker(app).run_until_idle()
    assert app.channel.sent() == [] and app.messages(phone=PHONE) == []
    entries = outcome_entries(fake)
    assert sum("4,097 characters" in e for e in entries) == 1
    assert sum("no valid WhatsApp number (or BSUID) in hs_whatsapp_phone_number, mobilephone, phone, "
               "whatsapp_bsuid" in e for e in entries) == 1
    assert sum("this note is on 2" in e for e in entries) == 2  # on each contact it is on
    skipped = {json.loads(d["result"]).get("skipped") for d in deliveries_of(app, "connector:hubspot")
               if d["result"]}
    assert {"no_phone", "not_one_contact", "too_long"} <= skipped


async def test_a_customer_who_hides_their_number_is_answered_by_the_bsuid_the_contact_holds(make, fake):
    bsuid = "US.13491208655302741918"
    contact = fake.add_contact({"firstname": "Ana", "whatsapp_bsuid": bsuid})
    app = engine(make, fake)
    with app.db.begin() as conn:  # Ana wrote an hour ago, with her username only
        windows.open_window(app.db, conn, app.contact_key(bsuid), time.time() - 3600, None)
    assert created(app, fake.add_note(NOTE, [contact])) == 200
    await Worker(app).run_until_idle()
    [sent] = app.channel.sent()
    assert (sent["type"], sent["text"]["body"], sent.get("recipient", sent.get("to"))) == ("text", ANSWER, bsuid)
    [entry] = outcome_entries(fake)
    assert "WhatsApp reply sent" in entry
    assert app.conversation(bsuid).handled_by == "human"


async def test_an_ordinary_note_sends_nothing_and_with_agent_replies_off_notes_are_not_fetched(make, fake):
    contact = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = engine(make, fake)
    wrote(app, hours_ago=1)
    created(app, fake.add_note("<p>Called her, she wants WhatsApp: later</p>", [contact]))
    await Worker(app).run_until_idle()
    assert app.channel.sent() == [] and timeline(fake) == []
    assert len(fake.calls("GET", "/crm/v3/objects/notes")) == 1
    off = engine(make, fake, "off", agent_replies=False)
    assert created(off, fake.add_note(NOTE, [contact])) == 200
    await Worker(off).run_until_idle()
    assert off.events() == [] and len(fake.calls("GET", "/crm/v3/objects/notes")) == 1


async def test_a_bad_signature_is_refused_and_journals_nothing(make, fake):
    contact = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = engine(make, fake)
    assert created(app, fake.add_note(NOTE, [contact]), secret="not-the-client-secret") == 401
    await Worker(app).run_until_idle()
    assert app.events() == [] and app.channel.sent() == [] and fake.calls("GET", "/crm/v3/objects/notes") == []


@given(st.text(st.characters(categories=("L", "N", "P", "S")) | st.just(" "), max_size=60))
def test_the_reply_is_the_text_after_the_prefix_whatever_html_holds_it(text: str) -> None:
    settings = HubSpotSettings(enabled=False, agent_replies=True)
    body = f"<p>{html.escape('whatsapp:' + text)}</p>"
    assert agent_replies.reply_text(settings, body) == (text.strip() or None)
    assert agent_replies.reply_text(settings, f"<p>{html.escape('x' + text)}</p>") is None


async def test_the_note_is_read_with_its_contacts_as_hubspots_reference_answers(replay):  # noqa: F811
    client = HubSpotClient(hubspot())
    with replay.use_cassette("note_get_with_contacts.yaml") as cassette:
        note = await agent_replies.fetch_note(client, "81234567001")
        gone = await agent_replies.fetch_note(client, "81234567002")
    asked = replay.sent[0].query
    assert ("associations", "contacts") in asked and ("properties", "hs_note_body") in asked
    assert note is not None and note.contact_ids == ["51234567890"] and gone is None
    settings = HubSpotSettings(enabled=False, agent_replies=True)
    assert agent_replies.reply_text(settings, note.body) == "Your quote is ready & valid until Friday.\nAna"
    assert cassette.all_played


async def test_a_simulation_shows_the_note_it_would_read_and_reads_nothing(make, fake):
    contact = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = engine(make, fake)
    note = fake.add_note(NOTE, [contact])
    assert created(app, note) == 200
    [event] = app.events(source="hubspot")
    ctx = EventContext(app, event_id=event.id, source="hubspot", dedupe_key="simulate", received_at=datetime.now(UTC),
                       plugin="connector:hubspot")
    [call] = await app.connectors["hubspot"].rehearse("connector:hubspot", "resolve", None, ctx)
    assert (call.method, call.url.split("/crm/v3/objects/")[1]) == (
        "GET", f"notes/{note}?properties=hs_note_body&associations=contacts")
    assert fake.calls("GET", "/crm/v3/objects/notes") == []
