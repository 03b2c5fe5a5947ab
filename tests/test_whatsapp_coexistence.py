"""Coexistence: a number used in the WhatsApp Business app and through connectzap at once.

Fixtures in tests/payloads/whatsapp/coexistence/ are built from Meta's webhook reference (see the
README there). ``smb_message_echoes`` -- what the business typed in the app -- becomes an outbound
message that is recorded, never sent; its statuses apply and the CRM connectors log it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectzap import Connector, Outgoing, TextContent
from connectzap.connectors.hubspot.fake import FakeHubSpot
import test_whatsapp_pacer as pacing
from connectzap.connectors.whatsapp.pacer import Pacer
from connectzap.connectors.whatsapp.settings import WhatsAppSettings
from connectzap.connectors.whatsapp.signatures import sign_meta
from connectzap.connectors.whatsapp.webhooks import parse_body
from connectzap.core import ingress
from connectzap.core.connector import WebhookRequest, WebhookResponse
from connectzap.core.phones import contact_key
from connectzap.core.worker import Worker
from connectzap.testing import ConnectorRegistration, HookRecorder, recording, registered_plugin
from connectzap.testing.fake_graph import FakeGraph
from generic_support import receiver
from hubspot_support import hubspot_config, make_due
from test_privacy import found_at

FIXTURES = Path(__file__).parent / "payloads" / "whatsapp" / "coexistence"
SECRET = "test-app-secret"
PNID = "106540352242922"
CUSTOMER = "+16505551234"
ECHO_WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJECHOTEXT1"
ECHO_TEXT = "Your table for four is booked for 8 pm."


def body_of(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def signed(body: bytes) -> WebhookRequest:
    return WebhookRequest(method="POST", url="https://hooks.example/webhooks/whatsapp", path="/webhooks/whatsapp",
                          headers={"x-hub-signature-256": sign_meta(body, SECRET),
                                   "content-type": "application/json"}, body=body)


def deliver(app: Any, body: bytes) -> WebhookResponse:
    return ingress.handle(app.connectors["whatsapp"], signed(body), app.ingest)


def status_of(wamid: str, value: str) -> bytes:
    """A ``messages`` status webhook for ``wamid`` (the shape of Meta's status reference)."""
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
            "statuses": [{"id": wamid, "status": value, "timestamp": "1739321090",
                          "recipient_id": CUSTOMER.lstrip("+")}]}}]}]}).encode()


async def settle(app: Any, worker: Worker | None = None) -> None:
    """Dispatch everything, including a retry a slow moment caused (a CRM call timing out on a loaded
    machine is retried by the product later; here it is made due at once), as the product would."""
    worker = worker or Worker(app)
    for _ in range(3):
        await worker.run_until_idle()
        make_due(app)
    await worker.run_until_idle()


@pytest.fixture
def recorder() -> Iterator[HookRecorder]:
    with recording("on_message_status") as seen:
        yield seen


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph(token="test-token") as server:
        yield server


def live(graph: FakeGraph) -> dict[str, Any]:
    """A live Cloud API configuration against the local Graph stand-in."""
    return {"access_token": "test-token", "phone_number_id": PNID, "app_secrets": [SECRET], "verify_token": "v",
            "api_base_url": graph.url, "messages_per_second": 1000, "pair_spacing_seconds": 0, "timeout_seconds": 2}


# --- parsing --------------------------------------------------------------------------------------

def test_an_echo_is_the_accepted_status_of_a_message_sent_from_the_business_app():
    [event] = parse_body(body_of("echo_text"))
    status = event.payload()
    assert (event.kind, event.source, event.dedupe_key) == ("message_status", "whatsapp", f"echo:{ECHO_WAMID}")
    assert (status.wamid, status.status, status.sent_from) == (ECHO_WAMID, "accepted", "business_app")
    assert (status.recipient, status.business_phone_number_id) == (CUSTOMER, PNID)
    assert status.content == {"type": "text", "body": ECHO_TEXT}
    assert int(status.timestamp.timestamp()) == 1739321024


def test_media_echo_keeps_its_caption_and_edits_and_revokes_are_not_new_messages():
    events = parse_body(body_of("echo_batch"))
    assert [(e.payload().status, e.payload().content) for e in events][0] == (
        "accepted", {"type": "image", "caption": "The menu for tonight"})
    assert [e.payload().status for e in events][1:] == ["revoked", "edited"]  # test_coexistence_changes


def test_an_echo_without_a_recipient_is_dropped_not_guessed():
    doc = json.loads(body_of("echo_text"))
    del doc["entry"][0]["changes"][0]["value"]["message_echoes"][0]["to"]
    assert parse_body(json.dumps(doc).encode()) == []


# --- end to end -----------------------------------------------------------------------------------

async def test_an_echo_is_recorded_never_sent_and_its_statuses_apply(make, graph, recorder):
    app = make(connectors={"whatsapp": live(graph)})
    first, again = deliver(app, body_of("echo_text")), deliver(app, body_of("echo_text"))
    assert (first.body, again.body) == ({"received": 1, "duplicates": 0}, {"received": 0, "duplicates": 1})
    await Worker(app).run_until_idle()
    [row] = app.messages()
    assert (row["wamid"], row["status"], row["content_type"]) == (ECHO_WAMID, "accepted", "text")
    assert graph.requests == []  # not one Graph call: the business already sent it from the app
    deliver(app, status_of(ECHO_WAMID, "delivered"))
    deliver(app, status_of(ECHO_WAMID, "read"))
    await Worker(app).run_until_idle()
    await app.aclose()
    assert app.message(row["id"])["status"] == "read"
    assert graph.requests == []
    statuses = recorder["on_message_status"]
    assert [(s.status, s.sent_from) for s in statuses] == [("accepted", "business_app"), ("delivered", None),
                                                            ("read", None)]
    assert statuses[0].recipient == CUSTOMER and statuses[0].content["body"] == ECHO_TEXT


async def test_nothing_of_an_echo_remains_once_it_is_dispatched(make):
    app = make(connectors={"whatsapp": {"app_secrets": [SECRET], "verify_token": "v"}},
               sandbox={"quiet": True, "simulate_statuses": False})
    deliver(app, body_of("echo_text"))
    secrets = [ECHO_TEXT, CUSTOMER, CUSTOMER.lstrip("+")]
    assert found_at(app.db.url, secrets) != []  # journaled with what its work needs (the scan can see it)
    worker = Worker(app)
    await worker.run_until_idle()
    worker.housekeeping()
    assert found_at(app.db.url, secrets) == []
    assert app.messages()[0]["wamid"] == ECHO_WAMID


async def test_hubspot_logs_an_echo_on_the_timeline_like_any_outbound_message(make):
    with FakeHubSpot() as crm:
        ana = crm.add_contact({"firstname": "Ana", "mobilephone": CUSTOMER})
        app = make(connectors={"whatsapp": {"app_secrets": [SECRET], "verify_token": "v"},
                               "hubspot": hubspot_config(crm.url)},
                   sandbox={"quiet": True, "simulate_statuses": False})
        deliver(app, body_of("echo_text"))
        await settle(app)
        [logged] = crm.objects("communications")
        body = logged["properties"]["hs_communication_body"]
        assert ECHO_TEXT in body and ECHO_WAMID in body
        assert crm.associations[0][2] == ana
        assert app.channel.sent() == []


# --- smb_app_state_sync: the Business app's contacts -> contact_changed ------------------------------

def test_state_sync_saves_and_removes_contacts_and_drops_an_item_without_a_number():
    events = parse_body(body_of("state_sync"), key_of=lambda text: contact_key(text, b"test-secret"))
    changes = [e.payload() for e in events]
    assert [(c.phone, c.action, c.full_name, c.first_name) for c in changes] == [
        (CUSTOMER, "saved", "Pablo Morales", "Pablo"), ("+16505559876", "removed", None, None)]
    assert {e.kind for e in events} == {"contact_changed"}
    assert all(c.business_phone_number_id == PNID and int(c.at.timestamp()) == 1739321024 for c in changes)
    assert all("Pablo" not in e.dedupe_key and "1650555" not in e.dedupe_key for e in events)
    assert events[0].ordering_key != events[1].ordering_key  # one key per contact: its changes stay in order


def test_the_same_contact_saved_twice_with_new_names_is_two_changes():
    doc = json.loads(body_of("state_sync"))
    items = doc["entry"][0]["changes"][0]["value"]["state_sync"]
    renamed = json.loads(json.dumps(items[0]))
    renamed["contact"]["full_name"] = "Pablo Morales Ruiz"
    doc["entry"][0]["changes"][0]["value"]["state_sync"] = [items[0], renamed]
    first, second = parse_body(json.dumps(doc).encode(), key_of=lambda text: contact_key(text, b"test-secret"))
    assert first.dedupe_key != second.dedupe_key and first.ordering_key == second.ordering_key


class AddressBookCrm(Connector):
    """A CRM connector that receives contact changes (what HubSpot or a shop would get)."""

    name = "test_address_book_crm"
    received: list[Any] = []

    async def sync_contact_changed(self, change: Any, ctx: Any) -> None:
        type(self).received.append((change.phone, change.action))


async def test_contact_changes_reach_hooks_and_crm_connectors_once_and_nothing_is_kept(make):
    AddressBookCrm.received = []
    with recording("on_contact_changed") as hook, registered_plugin(ConnectorRegistration(AddressBookCrm)):
        app = make(connectors={"whatsapp": {"app_secrets": [SECRET], "verify_token": "v"},
                               AddressBookCrm.name: {}},
                   sandbox={"quiet": True, "simulate_statuses": False})
        first, again = deliver(app, body_of("state_sync")), deliver(app, body_of("state_sync"))
        assert (first.body, again.body) == ({"received": 2, "duplicates": 0}, {"received": 0, "duplicates": 2})
        worker = Worker(app)
        await worker.run_until_idle()
        worker.housekeeping()
    expected = [(CUSTOMER, "saved"), ("+16505559876", "removed")]
    assert [(c.phone, c.action) for c in hook["on_contact_changed"]] == expected
    assert AddressBookCrm.received == expected
    assert app.messages() == [] and app.channel.sent() == []
    assert found_at(app.db.url, ["Pablo", "16505551234", "16505559876"]) == []


@pytest.mark.parametrize("create", [True, False])
async def test_hubspot_adds_a_saved_app_contact_only_with_create_contacts_and_deletes_nothing(make, create):
    with FakeHubSpot() as crm:
        gone = crm.add_contact({"firstname": "Old", "mobilephone": "+16505559876"})  # removed in the app
        app = make(connectors={"whatsapp": {"app_secrets": [SECRET], "verify_token": "v"},
                               "hubspot": hubspot_config(crm.url, create_contacts=create)},
                   sandbox={"quiet": True, "simulate_statuses": False})
        deliver(app, body_of("state_sync"))
        await settle(app)
        contacts = {c["id"]: c["properties"] for c in crm.objects("contacts")}
    assert gone in contacts  # a removal in the app deletes nothing in HubSpot
    added = [p for i, p in contacts.items() if i != gone]
    if create:
        [pablo] = added
        assert (pablo.get("firstname"), pablo.get("lastname")) == ("Pablo", "Morales")
        assert CUSTOMER in pablo.values()
    else:
        assert added == []


# --- history: the chat history shared at onboarding, opt-in ------------------------------------------

HISTORY_TEXTS = ["Do you have a table for four on Friday?", "Yes, at 8 pm. Shall I book it?"]


def test_history_is_dropped_unread_unless_it_is_turned_on():
    assert parse_body(body_of("history")) == []
    events = parse_body(body_of("history"), history=True)
    past = [e.payload() for e in events]
    assert [(m.direction, m.type, m.text, m.status) for m in past] == [
        ("inbound", "text", HISTORY_TEXTS[0], "READ"), ("outbound", "text", HISTORY_TEXTS[1], "DELIVERED"),
        ("inbound", "media_placeholder", None, "READ")]
    assert {m.contact.phone for m in past} == {CUSTOMER} and {e.kind for e in events} == {"past_message"}
    assert len({e.ordering_key for e in events}) == 1 and "1650555" not in (events[0].ordering_key or "")


def test_declined_history_yields_nothing():
    assert parse_body(body_of("history_declined"), history=True) == []


def history_app(make: Any, crm: FakeHubSpot, *, on: bool) -> Any:
    return make(connectors={"whatsapp": {"app_secrets": [SECRET], "verify_token": "v", "coexistence_history": on},
                            "hubspot": hubspot_config(crm.url)},
                sandbox={"quiet": True, "simulate_statuses": False})


async def test_history_on_goes_to_the_crm_timeline_opens_no_window_and_is_not_kept(make):
    with FakeHubSpot() as crm:
        ana = crm.add_contact({"firstname": "Ana", "mobilephone": CUSTOMER})
        app = history_app(make, crm, on=True)
        assert deliver(app, body_of("history")).body == {"received": 3, "duplicates": 0}
        worker = Worker(app)
        await settle(app, worker)
        bodies = [c["properties"]["hs_communication_body"] for c in crm.objects("communications")]
        assert len(bodies) == 3 and all(a[2] == ana for a in crm.associations)
        assert "received" in bodies[0] and HISTORY_TEXTS[0] in bodies[0]
        assert "sent" in bodies[1] and HISTORY_TEXTS[1] in bodies[1]
        refused = app.send(Outgoing(to=CUSTOMER, content=TextContent(body="Hello again")))
        assert refused.reason == "window_closed"  # a message from the past opens no window
        worker.housekeeping()
        assert found_at(app.db.url, [*HISTORY_TEXTS, CUSTOMER, CUSTOMER.lstrip("+")]) == []
        assert app.channel.sent() == []


async def test_history_off_is_acknowledged_and_nothing_is_journaled(make):
    with FakeHubSpot() as crm:
        crm.add_contact({"firstname": "Ana", "mobilephone": CUSTOMER})
        app = history_app(make, crm, on=False)
        assert deliver(app, body_of("history")).status == 200
        await Worker(app).run_until_idle()
        assert crm.objects("communications") == []
        assert found_at(app.db.url, [*HISTORY_TEXTS, CUSTOMER.lstrip("+")]) == []


async def test_a_generic_crm_subscription_receives_echoes_contacts_and_history(make):
    async with receiver() as crm:
        app = make(connectors={
            "whatsapp": {"app_secrets": [SECRET], "verify_token": "v", "coexistence_history": True},
            "generic": {"subscriptions": {"crm": {
                "url": crm.url, "secret": "whsec_" + "c2VjcmV0LWZvci10ZXN0cw==",
                "events": ["message_status", "contact_changed", "past_message"]}}}},
            sandbox={"quiet": True, "simulate_statuses": False})
        for name in ("echo_text", "state_sync", "history"):
            deliver(app, body_of(name))
        await settle(app)
    posted = [json.loads(r["body"]) for r in crm.received]
    assert sorted({p["type"] for p in posted}) == ["contact_changed", "message_status", "past_message"]
    [echo] = [p["data"] for p in posted if p["type"] == "message_status"]
    assert echo["sent_from"] == "business_app" and echo["content"]["body"] == ECHO_TEXT
    assert len([p for p in posted if p["type"] == "past_message"]) == 3


# --- throughput: a coexistence number is paced at Meta's fixed 20 messages per second ----------------

def gaps(slots: list[float]) -> list[float]:
    ordered = sorted(slots)
    return [b - a for a, b in zip(ordered, ordered[1:], strict=False)]


def test_a_configured_coexistence_number_is_paced_at_20_per_second_whatever_the_setting(app):
    assert PNID == pacing.NUMBER  # the number the pacing helpers ask for
    paced = pacing.pacer(app.db, messages_per_second=1000.0, coexistence_numbers=frozenset({PNID}))
    assert min(gaps(pacing.decide(paced, [pacing.ask(n) for n in range(10)]))) == pytest.approx(1 / 20, abs=1e-6)
    other = pacing.pacer(app.db, messages_per_second=1000.0, coexistence_numbers=frozenset({"another-number"}))
    slots = pacing.decide(other, [pacing.ask(n) for n in range(10, 20)])
    assert min(gaps(slots)) == pytest.approx(1 / 1000, abs=1e-6)  # every other number keeps its own rate
    slower = pacing.pacer(app.db, messages_per_second=5.0, coexistence_numbers=frozenset({"another-number"}))
    assert slower.interval_for("another-number") == pytest.approx(1 / 5)  # a lower configured rate stays


async def test_a_number_seen_in_a_coexistence_webhook_is_paced_at_20_per_second(make):
    app = make(connectors={"whatsapp": {"app_secrets": [SECRET], "verify_token": "v"}},
               sandbox={"quiet": True, "simulate_statuses": False})
    before = pacing.pacer(app.db, messages_per_second=1000.0)
    assert min(gaps(pacing.decide(before, [pacing.ask(n) for n in range(5)]))) == pytest.approx(1 / 1000, abs=1e-6)
    deliver(app, body_of("echo_text"))
    after = pacing.pacer(app.db, messages_per_second=1000.0)  # any process, reading the database
    assert min(gaps(pacing.decide(after, [pacing.ask(n) for n in range(5, 15)]))) == pytest.approx(1 / 20, abs=1e-6)
    assert after.interval_for("106540352242999") == pytest.approx(1 / 1000)


def test_the_coexistence_numbers_setting_reaches_the_pacer(app):
    settings = WhatsAppSettings(coexistence_numbers=[PNID], phone_number_id=PNID, messages_per_second=80)
    assert Pacer.from_settings(app.db, settings).interval_for(PNID) == pytest.approx(1 / 20)
    assert Pacer.from_settings(app.db, settings).interval_for("another") == pytest.approx(1 / 80)


# --- property: any echo list parses to valid events or to nothing, never to a crash ----------------

_scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.sampled_from(
    ["text", "image", "edit", "revoke", "16505551234", "US.13491208655302741918", "1739321024"])
_echo = st.dictionaries(st.sampled_from(["from", "to", "to_user_id", "id", "timestamp", "type", "text", "image",
                                         "edit", "revoke"]),
                        _scalar | st.dictionaries(st.sampled_from(["body", "caption", "id"]), _scalar, max_size=2),
                        max_size=7)


@settings(max_examples=200, deadline=None)
@given(echoes=st.lists(_echo, max_size=4) | _scalar)
def test_arbitrary_echoes_parse_to_valid_statuses_or_nothing(echoes):
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "smb_message_echoes", "value": {"metadata": {"phone_number_id": PNID},
                                                  "message_echoes": echoes}}]}]}).encode()
    for event in parse_body(body):
        status = event.payload()  # what the dispatcher does with it
        assert status.sent_from == "business_app" and (status.recipient or status.recipient_user_id)
        json.dumps(event.data)  # what the journal stores


_item = st.dictionaries(st.sampled_from(["type", "contact", "action", "metadata", "threads", "errors", "id",
                                         "messages", "from", "to", "timestamp", "text", "history_context"]),
                        _scalar | st.sampled_from(["contact", "add", "remove"])
                        | st.dictionaries(st.sampled_from(["phone_number", "full_name", "timestamp", "body", "status"]),
                                          _scalar, max_size=3)
                        | st.lists(st.dictionaries(st.sampled_from(["id", "messages", "from", "to", "type", "text"]),
                                                   _scalar | st.lists(_echo, max_size=2), max_size=4), max_size=2),
                        max_size=6)


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(["smb_app_state_sync", "history"]), items=st.lists(_item, max_size=3) | _scalar)
def test_arbitrary_contacts_and_history_parse_to_valid_events_or_nothing(field, items):
    key = "state_sync" if field == "smb_app_state_sync" else "history"
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": field, "value": {"metadata": {"phone_number_id": PNID, "display_phone_number": "15550783881"},
                                   key: items}}]}]}).encode()
    for event in parse_body(body, history=True):
        event.payload()  # what the dispatcher does with it
        json.dumps(event.data)  # what the journal stores
