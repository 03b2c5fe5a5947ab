"""End to end through the engine: webhook edge -> journal -> resolve -> on_lead -> gate -> sandbox,
and WhatsApp messages -> exactly one timeline entry on the right HubSpot contact (a local fake)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from connectzap import Category, ConsentChange, Contact, Event, InboundMessage, Outgoing, TemplateContent
from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.core import ingress
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

from hubspot_support import PHONE, TOKEN, deliveries_of, hubspot_config, make_due, payload, request, v3

WELCOME = {"template": "welcome_lead", "language": "en",
           "params": ["{{ firstname | default('there') }}", "{{ company or 'us' }}"]}


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as server:
        yield server


def engine(make, fake: FakeHubSpot, **config):
    app = make(connectors={"hubspot": hubspot_config(fake.url, **config)}, plugins={"lead_welcome": WELCOME})
    seed_template(app, "welcome_lead", "Hi {{1}}, welcome to {{2}}!", category="MARKETING")
    return app


def inbound(wamid: str, text: str = "Hola, ¿tenéis stock?", phone: str = PHONE) -> InboundMessage:
    return InboundMessage(wamid=wamid, type="text", timestamp=datetime.now(UTC).replace(microsecond=0),
                          contact=Contact(phone=phone, name="Ana García"), text=text)


async def test_signed_contact_creation_sends_the_welcome_template_once(make, fake):
    fake.add_contact({"firstname": "Ana", "company": "Acme", "mobilephone": "+34 612 34 56 78",
                      "whatsapp_marketing_optin": "granted",
                      "whatsapp_marketing_legal_basis": "CONSENT_WITH_NOTICE"}, contact_id="51234567890")
    app = engine(make, fake)
    body = payload("app_batch.json")  # creation + lifecyclestage=lead + the opt-in property, same contact
    answer = ingress.handle(app.connectors["hubspot"], request(body, v3(body)), app.ingest)
    assert answer.status == 200 and answer.body == {"received": 3, "duplicates": 0}
    assert fake.requests == []  # nothing fetched inline in the webhook edge

    await Worker(app).run_until_idle()

    sent = app.channel.sent()
    assert [s["template"]["name"] for s in sent] == ["welcome_lead"]
    assert sent[0]["to"] == PHONE.lstrip("+")
    params = [p["text"] for p in sent[0]["template"]["components"][0]["parameters"]]
    assert params == ["Ana", "Acme"]
    record = app.consent(PHONE)[Category.MARKETING]
    assert record.granted and "51234567890" in record.proof and "CONSENT_WITH_NOTICE" in record.proof
    assert all(r.authorization == f"Bearer {TOKEN}" for r in fake.requests)
    # The same delivery again (HubSpot retries) and a re-send: still one welcome.
    again = ingress.handle(app.connectors["hubspot"], request(body, v3(body)), app.ingest)
    assert again.body == {"received": 0, "duplicates": 3}
    await Worker(app).run_until_idle()
    assert len(app.channel.sent()) == 1


async def test_lead_without_opt_in_is_skipped_visibly_and_welcomed_after_opting_in(make, fake):
    contact_id = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = engine(make, fake)
    first = [{"portalId": 62515, "objectId": int(contact_id), "occurredAt": 1, "subscriptionType": "contact.creation"}]
    body = json.dumps(first).encode()
    ingress.handle(app.connectors["hubspot"], request(body, v3(body)), app.ingest)
    await Worker(app).run_until_idle()
    assert app.channel.sent() == []
    skipped = [d for d in deliveries_of(app, "lead_welcome") if d["status"] == "done"]
    assert len(skipped) == 1 and "no_consent" in skipped[0]["result"]

    fake.records["contacts"][contact_id]["properties"].update(
        {"whatsapp_marketing_optin": "granted", "whatsapp_marketing_legal_basis": "CONSENT_WITH_NOTICE"})
    later = [{"portalId": 62515, "objectId": int(contact_id), "occurredAt": 2, "subscriptionType":
              "contact.propertyChange", "propertyName": "lifecyclestage", "propertyValue": "lead"}]
    body = json.dumps(later).encode()
    ingress.handle(app.connectors["hubspot"], request(body, v3(body)), app.ingest)
    await Worker(app).run_until_idle()
    assert [s["template"]["name"] for s in app.channel.sent()] == ["welcome_lead"]


async def test_inbound_message_makes_exactly_one_communication_even_after_a_duplicate(make, fake):
    other = fake.add_contact({"firstname": "Bob", "phone": "+34699999999"})
    ana = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE, "hubspot_owner_id": "777"})
    app = engine(make, fake)
    message = inbound("wamid.HBgLMzQ2MTIzNDU2NzgVAgASGBQzQUI=")
    app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key=message.wamid)])
    await Worker(app).run_until_idle()
    # The journal stops a repeated webhook; a copy that slips past it (another source) must not log twice.
    app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key=message.wamid)])
    app.ingest([Event.of("inbound_message", message, source="whatsapp-replay", dedupe_key=message.wamid)])
    await Worker(app).run_until_idle()

    communications = fake.objects("communications")
    assert len(communications) == 1
    props = communications[0]["properties"]
    assert props["hs_communication_channel_type"] == "WHATS_APP"
    assert props["hs_communication_logged_from"] == "CRM"
    assert message.wamid in props["hs_communication_body"] and "received" in props["hs_communication_body"]
    assert "¿tenéis stock?" in props["hs_communication_body"]
    assert props["hubspot_owner_id"] == "777"
    assert props["hs_timestamp"] == str(int(message.timestamp.timestamp() * 1000))
    assert fake.associations == [("communications", communications[0]["id"], ana, 81)]
    assert other not in {a[2] for a in fake.associations}
    assert len(fake.calls("POST", "/crm/v3/objects/contacts/search")) == 1  # the id is kept, not searched again


async def test_outbound_accepted_message_is_logged_with_its_text(make, fake):
    ana = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = engine(make, fake)
    app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="test", proof="form"))
    await Worker(app).run_until_idle()
    fake.requests.clear()
    decision = app.send(Outgoing(to=PHONE, content=TemplateContent(name="welcome_lead", language="en",
                                                                   body=["Ana", "Acme"])))
    assert decision.status == "queued"
    await Worker(app).run_until_idle()
    communications = fake.objects("communications")
    assert len(communications) == 1
    body = communications[0]["properties"]["hs_communication_body"]
    wamid = app.message(decision.id)["wamid"]
    assert "sent" in body and "welcome_lead" in body and "Ana, Acme" in body and wamid and wamid in body
    assert fake.associations[0][2] == ana


async def test_hubspot_429_then_200_logs_once_and_loses_nothing(make, fake):
    fake.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = engine(make, fake, max_inline_retries=0)
    fake.fail_next("POST", "/crm/v3/objects/communications", 429,
                   {"status": "error", "message": "You have reached your ten secondly limit.",
                    "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}, {"Retry-After": "0"})
    message = inbound("wamid.rate-limited")
    app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key=message.wamid)])
    await Worker(app).run_until_idle()
    [delivery] = deliveries_of(app, "connector:hubspot")
    assert delivery["status"] == "pending" and "429" in delivery["last_error"]  # rescheduled, not lost
    assert fake.objects("communications") == []

    make_due(app)
    await Worker(app).run_until_idle()
    assert len(fake.objects("communications")) == 1
    [delivery] = deliveries_of(app, "connector:hubspot")
    assert delivery["status"] == "done"


async def test_429_is_retried_inside_the_delivery_when_the_wait_is_short(make, fake):
    fake.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = engine(make, fake)
    fake.fail_next("POST", "/crm/v3/objects/contacts/search", 429,
                   {"status": "error", "policyName": "TEN_SECONDLY_ROLLING"}, {"Retry-After": "0"})
    message = inbound("wamid.inline-retry")
    app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key=message.wamid)])
    await Worker(app).run_until_idle()
    assert len(fake.objects("communications")) == 1
    assert len(fake.calls("POST", "/crm/v3/objects/contacts/search")) == 2


async def test_a_create_interrupted_after_hubspot_acted_is_found_not_repeated(make, fake):
    """The crash window: HubSpot created the communication, but the answer never arrived."""
    fake.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = engine(make, fake)
    real_handle = fake.handle
    dropped = []

    def lose_the_first_answer(method, path, query, body):
        status, answer, headers = real_handle(method, path, query, body)
        if path == "/crm/v3/objects/communications" and not dropped:
            dropped.append(answer)
            return 502, {"status": "error", "message": "gateway timeout"}, {}
        return status, answer, headers

    fake.handle = lose_the_first_answer  # type: ignore[method-assign]
    message = inbound("wamid.crash-window")
    app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key=message.wamid)])
    await Worker(app).run_until_idle()
    assert len(fake.objects("communications")) == 1 and dropped
    make_due(app)
    await Worker(app).run_until_idle()
    assert len(fake.objects("communications")) == 1
    assert len(fake.calls("POST", "/crm/v3/objects/communications/search")) == 1
    [delivery] = deliveries_of(app, "connector:hubspot")
    assert delivery["status"] == "done"


async def test_portal_without_communications_gets_notes(make, fake):
    ana = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = engine(make, fake)
    fake.fail_next("POST", "/crm/v3/objects/communications", 403,
                   {"status": "error", "message": "This portal does not have access", "category": "MISSING_SCOPES"})
    message = inbound("wamid.note-fallback")
    app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key=message.wamid)])
    await Worker(app).run_until_idle()
    assert fake.objects("communications") == []
    [note] = fake.objects("notes")
    assert message.wamid in note["properties"]["hs_note_body"]
    assert fake.associations == [("notes", note["id"], ana, 202)]


async def test_unknown_number_creates_a_contact_when_configured_and_keeps_its_id(make):
    with FakeHubSpot(search_lag=True) as fake:
        app = engine(make, fake, create_contacts=True)
        for n in range(2):
            message = inbound(f"wamid.new-{n}")
            app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key=message.wamid)])
        await Worker(app).run_until_idle()
        [contact] = fake.objects("contacts")
        assert contact["properties"]["mobilephone"] == PHONE and contact["properties"]["firstname"] == "Ana"
        assert {a[2] for a in fake.associations} == {contact["id"]} and len(fake.associations) == 2


async def test_unknown_number_without_create_contacts_is_skipped(make, fake):
    app = engine(make, fake)
    message = inbound("wamid.stranger")
    app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key=message.wamid)])
    await Worker(app).run_until_idle()
    [delivery] = deliveries_of(app, "connector:hubspot")
    assert delivery["status"] == "done" and "no_contact" in delivery["result"]
    assert fake.objects("communications") == [] and fake.objects("contacts") == []


async def test_opt_out_keyword_is_mirrored_to_the_contact_property(make, fake):
    ana = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE, "whatsapp_marketing_optin": "granted",
                            "whatsapp_marketing_legal_basis": "CONSENT_WITH_NOTICE"})
    app = engine(make, fake)
    app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="api", proof="x",
                                  at=datetime.now(UTC) - timedelta(minutes=5)))
    message = inbound("wamid.stop", text="STOP")
    app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key=message.wamid)])
    await Worker(app).run_until_idle()
    props = fake.records["contacts"][ana]["properties"]
    assert props["whatsapp_marketing_optin"] == "revoked"
    assert props["whatsapp_marketing_consent_source"] == "whatsapp:keyword"
    patches = fake.calls("PATCH", f"/crm/v3/objects/contacts/{ana}")
    assert patches and patches[-1].body["properties"]["whatsapp_marketing_optin"] == "revoked"


async def test_a_change_naming_only_the_contact_key_is_mirrored_onto_the_contact_known_by_it(make, fake):
    """A change about the recipient of one of our messages names only the keyed hash, which HubSpot
    cannot be searched by: it lands on the contact the connector already knows under that key, and
    a key it knows no contact for is skipped with the reason, not silently."""
    ana = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE, "whatsapp_marketing_optin": "granted",
                            "whatsapp_marketing_legal_basis": "CONSENT_WITH_NOTICE"})
    app = engine(make, fake)
    message = inbound("wamid.hello")  # the timeline entry finds Ana and remembers her under the key
    app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key=message.wamid)])
    await Worker(app).run_until_idle()
    app.set_consent(ConsentChange(contact_key=app.contact_key(PHONE), category=Category.MARKETING, granted=False,
                                  source="unsubscribe-link", proof="one click"))
    app.set_consent(ConsentChange(contact_key="f" * 32, category=Category.MARKETING, granted=False,
                                  source="unsubscribe-link", proof="one click"))
    await Worker(app).run_until_idle()
    props = fake.records["contacts"][ana]["properties"]
    assert props["whatsapp_marketing_optin"] == "revoked"
    assert props["whatsapp_marketing_consent_source"] == "unsubscribe-link"
    results = sorted(str(d["result"]) for d in deliveries_of(app, "connector:hubspot") if d["status"] == "done")
    assert sum("no_contact" in r and "only by its key" in r for r in results) == 1
