"""WhatsApp webhooks: every fixture parses to the right events, and the engine acts on them.

Fixtures live in tests/payloads/whatsapp/. text, interactive_button_reply, button, status_failed
and template_rejected are Meta's / pywa's published examples verbatim (research notes 5.9);
signed_vector.json is the exact body of the known-good signature test vector; the rest are
built from the documented shapes.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectzap import (Category, ConsentChange, EventKind, Outgoing, TemplateContent, TextContent)
from connectzap.core.connector import WebhookRequest, WebhookResponse
from connectzap.connectors.whatsapp.webhooks import parse_body
from connectzap.core import ingress, templates
from connectzap.core.errors import PayloadError
from connectzap.connectors.whatsapp.signatures import sign_meta
from connectzap.core.store.schema import events as events_table
from connectzap.core.worker import Worker
from connectzap.testing import make_app, recording, run, seed_template

FIXTURES = Path(__file__).parent / "payloads" / "whatsapp"
SECRET = "test-app-secret"
USER = "+16505551234"
PNID = "106540352242922"


def body_of(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def doc_of(name: str) -> dict[str, Any]:
    return json.loads(body_of(name))


def parsed(name: str, **kwargs: Any) -> list[Any]:
    return parse_body(body_of(name), **kwargs)


def only(name: str) -> Any:
    """The single event a fixture yields, as its typed payload."""
    events = parsed(name)
    assert len(events) == 1, [e.dedupe_key for e in events]
    return events[0].payload()


def signed(body: bytes, secret: str = SECRET) -> WebhookRequest:
    return WebhookRequest(method="POST", url="https://hooks.example/webhooks/whatsapp", path="/webhooks/whatsapp",
                          headers={"x-hub-signature-256": sign_meta(body, secret),
                                   "content-type": "application/json"}, body=body)


# --- every fixture -> the right events ---------------------------------------------------

def test_text_keeps_sender_business_number_and_own_timestamp():
    event = parsed("text")[0]
    message = event.payload()
    assert event.kind == EventKind.INBOUND_MESSAGE and event.source == "whatsapp"
    assert event.dedupe_key == message.wamid == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert message.text == "Does it come in another color?"
    assert (message.contact.phone, message.contact.wa_id, message.contact.name) == (USER, "16505551234",
                                                                                     "Sheena Nelson")
    assert message.business_phone_number_id == PNID
    assert int(message.timestamp.timestamp()) == 1749416383 == int(event.occurred_at.timestamp())
    assert message.raw["text"] == {"body": "Does it come in another color?"}


@pytest.mark.parametrize("name, kind, media_id, caption, flags", [
    ("image", "image", "1479537139650973", "Is this the right size?", {}),
    ("video", "video", "1020406813278390", None, {}),
    ("audio", "audio", "2089410671504932", None, {"voice": False}),
    ("voice", "audio", "1122007726238457", None, {"voice": True}),
    ("document", "document", "1230948871299022", "Invoice attached", {"filename": "invoice-1042.pdf"}),
    ("sticker", "sticker", "1006183004756329", None, {"animated": True}),
])
def test_media_messages(name, kind, media_id, caption, flags):
    message = only(name)
    assert message.type == kind and message.media.id == media_id
    assert message.text == message.media.caption == caption
    assert message.media.mime_type and message.media.sha256
    for key, value in flags.items():
        assert getattr(message.media, key) == value


def test_forwarded_context_is_kept():
    assert only("video").context.forwarded is True


def test_location():
    location = only("location").location
    assert (location.latitude, location.longitude) == (52.520008, 13.404954)
    assert location.name == "Shop Berlin Mitte" and location.address.startswith("Alexanderplatz")


def test_contacts_cards_are_kept_whole():
    message = only("contacts")
    assert [c["name"]["formatted_name"] for c in message.contacts] == ["Ana Lopez", "Ben"]
    assert message.contacts[0]["phones"][0]["wa_id"] == "4915112345678"
    assert message.contact.phone == USER  # the sender, not a shared card


def test_reaction_and_removed_reaction():
    added, removed = only("reaction"), only("reaction_removed")
    assert added.reaction.emoji == "\U0001F44D" and added.reaction.message_id.startswith("wamid.")
    assert removed.reaction.emoji is None and removed.reaction.message_id == added.reaction.message_id


def test_template_quick_reply_with_and_without_context():
    with_context, without = only("button"), only("button_without_context")
    assert (with_context.reply.payload, with_context.reply.title, with_context.text) == ("Unsubscribe",) * 3
    assert with_context.context.id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJFNjk2OTMwNEZCQjhGMzUyQUYA"
    assert (without.reply.payload, without.text, without.context) == ("STOP_PROMOTIONS", "Stop promotions", None)


def test_interactive_replies():
    button, row, flow = only("interactive_button_reply"), only("interactive_list_reply"), only("interactive_nfm_reply")
    assert (button.reply.id, button.reply.title, button.text) == ("cancel-button", "Cancel", "Cancel")
    assert button.reply.model_extra["type"] == "button_reply"
    assert (row.reply.id, row.reply.title, row.reply.description) == ("slot-2025-07-01-10", "Tue 10:00",
                                                                      "Store Mitte, 30 min")
    extra = flow.reply.model_extra
    assert extra["type"] == "nfm_reply" and extra["name"] == "flow"
    assert extra["response"] == {"flow_token": "fb-4711", "size": "M", "newsletter": True}


def test_interactive_without_its_object_keeps_the_errors():
    message = only("interactive_missing")
    assert message.type == "interactive" and message.reply is None and message.text is None
    assert [(e.code, e.details) for e in message.errors] == [(131000, "Unsupported webhook payload")]
    assert message.context.id.startswith("wamid.")


def test_order():
    message = only("order")
    assert message.order["catalog_id"] == "194836987003835"
    assert [i["product_retailer_id"] for i in message.order["product_items"]] == ["TSHIRT-M-BLUE", "MUG-WHITE"]
    assert message.text == "Please deliver before Friday"


def test_system_number_change_names_old_and_new_number():
    message = only("system")
    assert message.type == "system" and message.text is None
    assert message.contact.phone == USER and message.contact.name is None  # no contacts block
    assert message.system["type"] == "user_changed_number" and message.system["new_phone"] == "+16505559876"


def test_unsupported_type_keeps_error_and_raw():
    message = only("unsupported")
    assert message.type == "unsupported" and message.errors[0].code == 131051
    assert message.errors[0].details == "Message type is currently not supported."
    assert message.raw["unsupported"] == {"type": "poll"}


def test_referral_from_click_to_whatsapp_ad():
    message = only("referral")
    assert message.text == "Hi, is the summer offer still on?"
    assert message.referral.source_type == "ad" and message.referral.ctwa_clid.startswith("ARAk")
    assert message.referral.summary() == ("Click-to-WhatsApp ad 120226305854810726 · Summer sale · "
                                          "https://fb.me/3cr4Wqqkk · ctwa_clid " + message.referral.ctwa_clid)


def test_bsuid_only_contact_without_wa_id():
    message = only("bsuid_only")
    contact = message.contact
    assert contact.phone is None and contact.wa_id is None
    assert contact.user_id == "US.13491208655302741918" and contact.name == "Sam"
    assert contact.attributes == {"parent_user_id": "US.ENT.11815799212886844830", "username": "@sam.shops"}
    assert message.text == "Hello from a username account"


def test_contact_with_both_phone_and_bsuid():
    contact = only("bsuid_with_phone").contact
    assert (contact.phone, contact.user_id) == (USER, "US.13491208655302741918")


@pytest.mark.parametrize("name, kind, new_phone", [("system_user_changed_user_id", "user_changed_user_id", None),
                                                   ("system_user_changed_number_bsuid", "user_changed_number",
                                                    "+16505559876")])
def test_bsuid_change_system_messages(name, kind, new_phone):
    """Meta's system messages (Aug 2026): the new BSUID and the previous one, no contacts array."""
    message = only(name)
    assert message.type == "system" and message.text is None
    assert message.system["type"] == kind and message.system.get("new_phone") == new_phone
    assert message.system["user_id"] == "US.20583746102938475610"
    assert message.system["previous_user_id"] == "US.13491208655302741918"


def test_user_preferences_for_a_bsuid_only_customer():
    event = parsed("user_preferences_stop_bsuid")[0]
    change = event.payload()
    assert (change.phone, change.user_id, change.granted) == (None, "US.13491208655302741918", False)
    assert "US.1349" not in event.dedupe_key  # keyed by its hash, like a number


def test_unknown_type_and_fields_are_kept_raw():
    doc = doc_of("text")
    msg = doc["entry"][0]["changes"][0]["value"]["messages"][0]
    msg.update(type="hologram", hologram={"frames": 3}, brand_new_field={"x": 1})
    message = parse_body(json.dumps(doc).encode())[0].payload()
    assert message.type == "hologram" and message.text is None
    assert message.raw["hologram"] == {"frames": 3} and message.raw["brand_new_field"] == {"x": 1}


def test_sent_status_with_conversation_pricing_and_outbox_id():
    event = parsed("status_sent")[0]
    status = event.payload()
    assert event.kind == EventKind.MESSAGE_STATUS
    assert event.dedupe_key == "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJPVVRCT1VORDAwMDEA:sent"
    assert status.outbox_id == "msg_01JZ0000000000000000000001" and status.recipient == USER
    assert status.recipient_user_id == "US.13491208655302741918"
    assert status.conversation["origin"] == {"type": "utility"}
    assert status.pricing == {"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"}
    assert status.business_phone_number_id == PNID


@pytest.mark.parametrize("name, value", [("status_delivered", "delivered"), ("status_read", "read"),
                                         ("status_played", "played")])
def test_other_statuses(name, value):
    status = only(name)
    assert status.status == value and status.wamid == "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJPVVRCT1VORDAwMDEA"


def test_failed_status_with_bsuid_contact():
    status = only("status_failed")
    assert status.status == "failed" and status.wamid == "wamid.xyzxyz"
    assert status.recipient is None  # not a valid phone number in the published example; wa_id is kept
    assert status.model_extra["recipient_wa_id"] == "972987654321"
    assert status.recipient_user_id == "US.13491208655302741918"
    error = status.errors[0]
    assert (error.code, error.title) == (130472, "User's number is part of an experiment")
    assert error.details.startswith("Failed to send message") and error.model_extra["href"].startswith("https://")


def test_failed_131026_with_contact_holding_only_wa_id():
    status = only("status_failed_131026")
    assert status.recipient == "+4915112345678" and status.recipient_user_id is None
    assert status.errors[0].code == 131026


def test_batched_delivery_yields_every_message_and_status():
    events = parsed("batched")
    inbound = [e for e in events if e.kind == EventKind.INBOUND_MESSAGE]
    statuses = [e for e in events if e.kind == EventKind.MESSAGE_STATUS]
    assert len(inbound) == 12 and len(statuses) == 8
    assert len({e.dedupe_key for e in events}) == 20
    numbers = {e.payload().business_phone_number_id for e in events}
    assert numbers == {"106540352242922", "106540352242923"}
    assert {m.payload().text for m in inbound} >= {"message A1-0", "message B2-2"}


@pytest.mark.parametrize("name, granted", [("user_preferences_stop", False), ("user_preferences_resume", True)])
def test_user_preferences_become_marketing_consent(name, granted):
    event = parsed(name)[0]
    change = event.payload()
    assert event.kind == EventKind.CONSENT_CHANGED
    assert (change.phone, change.category, change.granted) == (USER, Category.MARKETING, granted)
    assert change.source == "whatsapp:user_preferences" and "user_preferences" in change.proof
    assert "stop" in change.proof if not granted else "resume" in change.proof


def test_template_status_updates_route_by_waba_id():
    approved, rejected = only("template_approved"), only("template_rejected")
    assert (approved.name, approved.language, approved.status, approved.waba_id) == (
        "order_shipped", "en", "APPROVED", "419561257915477")
    assert approved.category is None  # only a completed category update moves the category
    assert (rejected.status, rejected.reason, rejected.id) == ("REJECTED", "INVALID_FORMAT", "1689556908129835")
    assert rejected.model_extra["rejection_info"]["recommendation"].startswith("Separate parameters")


def test_template_category_update_impending_vs_completed():
    impending, completed = only("template_category_impending"), only("template_category_completed")
    assert impending.category is None and impending.correct_category == "MARKETING"
    assert impending.category_update_timestamp == 1750759200
    assert impending.model_extra["change"] == "impending"
    assert completed.category == "MARKETING" and completed.model_extra["previous_category"] == "UTILITY"


def test_template_quality_update():
    update = only("template_quality")
    assert (update.quality, update.model_extra["previous_quality"], update.name) == ("YELLOW", "GREEN",
                                                                                     "order_shipped")


@pytest.mark.parametrize("name, field", [("malformed", "body"), ("truncated", "body"), ("not_an_object", "body"),
                                         ("wrong_object", "object")])
def test_broken_bodies_are_payload_errors(name, field):
    with pytest.raises(PayloadError) as caught:
        parsed(name)
    assert caught.value.field == field


def test_signature_vector_body_parses():
    message = only("signed_vector")
    assert message.text == "Hey there! I am using PyWa." and message.contact.phone == "+972544401243"


def test_foreign_phone_number_refused_only_when_numbers_are_configured():
    assert len(parsed("batched")) == 20
    assert len(parsed("batched", own_numbers=frozenset({"106540352242922", "106540352242923"}))) == 20
    with pytest.raises(PayloadError) as caught:
        parsed("batched", own_numbers=frozenset({"106540352242922"}))
    assert caught.value.field.endswith("phone_number_id")
    assert len(parsed("template_approved", own_numbers=frozenset({"999"}))) == 1  # no number on template events


@pytest.mark.parametrize(("name", "status"), [("template_paused", "PAUSED"), ("template_unpaused", "APPROVED"),
                                            ("template_disabled", "DISABLED")])
def test_template_pause_lifecycle_updates(name, status):
    update = only(name)
    assert (update.name, update.language, update.status, update.waba_id) == ("order_shipped", "en", status,
                                                                              "419561257915477")
    if status == "DISABLED":
        assert update.model_extra["disable_info"] == {"disable_date": 1750700000}


def test_failed_132015_says_the_paused_template_dropped_it():
    status = only("status_failed_132015")
    assert (status.status, status.reason, status.errors[0].code) == ("failed", "template_paused", 132015)
    assert "paused" in status.errors[0].details and status.outcome is None


def test_volume_pricing_tier_update_is_journaled_as_an_account_notice():
    [event] = parsed("account_update_pricing_tier")
    assert (event.kind, event.source) == (EventKind.RESOLVE, "whatsapp")
    notice = event.data
    assert (notice["notice"], notice["waba_id"], notice["tier"]) == ("pricing_tier", "419561257915477",
                                                                      "25000001:50000000")
    assert parse_body(body_of("account_update_pricing_tier"))[0].dedupe_key == event.dedupe_key  # a retry: same key
    other = json.loads(body_of("account_update_pricing_tier"))
    other["entry"][0]["changes"][0]["value"] = {"event": "PARTNER_ADDED"}
    assert parse_body(json.dumps(other).encode()) == []  # other account updates: acknowledged, nothing journaled


def test_calls_become_call_activity_without_session_data():
    connect, terminate = only("call_connect"), only("call_terminate")
    assert (connect.event, connect.direction, connect.contact.phone, connect.contact.name) == (
        "connect", "USER_INITIATED", "+4915112345678", "Ana García")
    assert "session" not in connect.model_dump() and connect.business_phone_number_id == PNID
    assert (terminate.event, terminate.status, terminate.duration_seconds) == ("terminate", "COMPLETED", 120)
    assert terminate.end_time.timestamp() - terminate.start_time.timestamp() == 120
    assert terminate.call_id == connect.call_id
    [ringing] = parsed("call_status")
    call = ringing.payload()
    assert (ringing.kind, call.event, call.status, call.direction, call.outbox_id, call.contact.phone) == (
        "call", "status", "RINGING", "BUSINESS_INITIATED", "callback-42", "+4915112345678")
    keys = {e.dedupe_key for name in ("call_connect", "call_terminate", "call_status") for e in parsed(name)}
    assert len(keys) == 3


def test_business_capability_update_is_a_messaging_limit_notice():
    [event] = parsed("business_capability_update")
    assert event.kind == "resolve"
    assert (event.data["waba_id"], event.data["limit"], event.data["reported"]) == ("102290129340398", 2000, "2000")


def test_a_shared_contact_card_names_its_sender():
    """The answer to a share-contact button: the customer's own card (``contact_request``) gives the
    number of a sender known by BSUID alone (tests/test_contact_info_templates.py goes end to end)."""
    message = only("contact_request_answer")
    assert (message.type, message.contact.user_id, message.contact.phone) == (
        "contacts", "US.13491208655302741918", "+16505551234")
    assert message.context is not None


def test_every_fixture_is_exercised_here():
    source = Path(__file__).read_text()
    unused = [p.stem for p in FIXTURES.glob("*.json") if f'"{p.stem}"' not in source]
    assert unused == []


# --- property: nothing but PayloadError, and every event survives the dispatcher's re-validation

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12)
_known_keys = st.sampled_from(["from", "id", "timestamp", "type", "text", "image", "audio", "location", "reaction",
                               "button", "interactive", "order", "system", "context", "referral", "errors",
                               "contacts", "from_user_id", "status", "recipient_id", "biz_opaque_callback_data",
                               "pricing", "conversation", "wa_id", "value", "category", "user_id", "profile",
                               "message_template_name", "event", "new_category", "correct_category",
                               "new_quality_score", "message_template_id"])
_values = st.sampled_from(["text", "image", "interactive", "button", "system", "stop", "resume", "failed",
                          "16505551234", "1700000000"])
_item = st.dictionaries(_known_keys, _json | _values, max_size=8)
_value = st.fixed_dictionaries({}, optional={
    "metadata": st.fixed_dictionaries({}, optional={"phone_number_id": _json | st.just(PNID)}) | _json,
    "contacts": st.lists(_item, max_size=2) | _json, "messages": st.lists(_item, max_size=3) | _json,
    "statuses": st.lists(_item, max_size=3) | _json, "user_preferences": st.lists(_item, max_size=2) | _json,
    "errors": _json, "event": _json, "message_template_name": _json | st.just("t"),
    "new_category": _json, "correct_category": _json})
_change = st.fixed_dictionaries({"field": st.sampled_from(["messages", "user_preferences", "template_category_update",
                                                           "message_template_status_update",
                                                           "message_template_quality_update", "calls"]) | _json,
                                 "value": _value | _json})
_envelope = st.fixed_dictionaries({"object": st.just("whatsapp_business_account"),
                                   "entry": st.lists(st.fixed_dictionaries({"id": _json, "time": _json,
                                                                            "changes": st.lists(_change, max_size=3)})
                                                     | _json, max_size=3)})


@settings(max_examples=300, deadline=None)
@given(document=_envelope | _json)
def test_arbitrary_payloads_raise_nothing_but_payload_error(document):
    body = json.dumps(document).encode()
    try:
        events = parse_body(body)
    except PayloadError:
        return
    for event in events:
        event.payload()  # what the dispatcher does with it
        json.dumps(event.data)  # what the journal stores


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=64))
def test_arbitrary_bytes_raise_nothing_but_payload_error(body):
    try:
        parse_body(body)
    except PayloadError:
        pass


# --- end to end through ingress, the journal and the workers -----------------------------

@pytest.fixture
def recorder():
    with recording("on_inbound_message", "on_message_status", "on_consent_changed") as seen:
        yield seen


def wa_settings(**extra: Any) -> dict[str, Any]:
    return {"connectors": {"whatsapp": {"app_secrets": [SECRET], "verify_token": "verify-me", **extra}},
            "sandbox": {"quiet": True, "simulate_statuses": False}}


@pytest.fixture
def wa(make):
    return make(**wa_settings())


def deliver(app, body: bytes) -> WebhookResponse:
    return ingress.handle(app.connectors["whatsapp"], signed(body), app.ingest)


def journal_size(app) -> int:
    from sqlalchemy import func, select
    with app.db.read() as conn:
        return conn.execute(select(func.count()).select_from(events_table)).scalar_one()


def fresh_text(wamid: str = "wamid.fresh.1", at: float | None = None) -> bytes:
    doc = doc_of("text")
    msg = doc["entry"][0]["changes"][0]["value"]["messages"][0]
    msg.update(id=wamid, timestamp=str(int(at if at is not None else time.time())))
    return json.dumps(doc).encode()


async def test_inbound_opens_window_and_reaches_hook_once_despite_redelivery(wa, recorder):
    body = fresh_text()
    first, again = deliver(wa, body), deliver(wa, body)
    assert (first.status, first.body) == (200, {"received": 1, "duplicates": 0})
    assert (again.status, again.body) == (200, {"received": 0, "duplicates": 1})
    await Worker(wa).run_until_idle()
    assert [m.wamid for m in recorder["on_inbound_message"]] == ["wamid.fresh.1"]
    assert recorder["on_inbound_message"][0].text == "Does it come in another color?"
    reply = wa.send(Outgoing(to=USER, content=TextContent(body="Yes, in blue."), reply_to="wamid.fresh.1"))
    assert reply.status == "queued", reply.reason
    await Worker(wa).run_until_idle()
    assert [b["text"]["body"] for b in wa.channel.sent()] == ["Yes, in blue."]


async def test_window_follows_the_message_timestamp_not_arrival(wa):
    deliver(wa, fresh_text("wamid.old", at=time.time() - 25 * 3600))  # a retry arriving a day late
    await Worker(wa).run_until_idle()
    refused = wa.send(Outgoing(to=USER, content=TextContent(body="Too late?")))
    assert refused.reason == "window_closed"


async def test_system_message_reaches_hooks_but_opens_no_window(wa, recorder):
    doc = doc_of("system")
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(time.time()))
    deliver(wa, json.dumps(doc).encode())
    await Worker(wa).run_until_idle()
    assert [m.system["new_phone"] for m in recorder["on_inbound_message"]] == ["+16505559876"]
    assert wa.send(Outgoing(to=USER, content=TextContent(body="hi"))).reason == "window_closed"


async def test_rejected_deliveries_store_nothing(make):
    app = make(**wa_settings(phone_number_ids=["106540352242922"]))
    connector = app.connectors["whatsapp"]
    bad_signature = ingress.handle(connector, signed(body_of("text"), "wrong-secret"), app.ingest)
    truncated = deliver(app, body_of("truncated"))
    malformed = deliver(app, body_of("malformed"))
    foreign = deliver(app, body_of("batched"))  # holds changes for 106540352242923 too
    assert bad_signature.status == 401
    assert [(r.status, r.body["field"]) for r in (truncated, malformed, foreign)] == [
        (422, "body"), (422, "body"), (422, "entry.changes.value.metadata.phone_number_id")]
    assert journal_size(app) == 0
    assert deliver(app, body_of("text")).status == 200 and journal_size(app) == 1


def status_body(value: str, wamid: str, outbox_id: str | None = None, code: int | None = None) -> bytes:
    doc = doc_of("status_read")
    item = doc["entry"][0]["changes"][0]["value"]["statuses"][0]
    item.update(id=wamid, status=value, biz_opaque_callback_data=outbox_id)
    if code is not None:
        item["errors"] = [{"code": code, "title": "Something went wrong", "message": "Something went wrong",
                           "error_data": {"details": f"details for {code}"}}]
    return json.dumps(doc).encode()


def sent_template(app, key: str) -> dict[str, Any]:
    """Send a consented utility template through the sandbox; the outbox row afterwards."""
    seed_template(app, "order_shipped", "Your order {{1}} is on its way.")
    app.set_consent(ConsentChange(phone=USER, category=Category.UTILITY, granted=True, source="test", proof="box"))
    decision = app.send(Outgoing(to=USER, content=TemplateContent(name="order_shipped", language="en", body=["42"])),
                        idempotency_key=key)
    return decision.id


async def test_statuses_are_monotonic_and_reach_the_hook_once_each(wa, recorder):
    message_id = sent_template(wa, "mono")
    await Worker(wa).run_until_idle()
    wamid = wa.message(message_id)["wamid"]
    for value in ("read", "sent", "delivered", "read"):  # late sent, duplicated read
        deliver(wa, status_body(value, wamid, message_id))
    await Worker(wa).run_until_idle()
    assert wa.message(message_id)["status"] == "read"
    seen = [s.status for s in recorder["on_message_status"] if s.wamid == wamid]
    assert sorted(seen) == ["accepted", "delivered", "read", "sent"]


async def test_failed_after_delivered_keeps_delivered_and_records_the_error(wa):
    message_id = sent_template(wa, "fail")
    await Worker(wa).run_until_idle()
    wamid = wa.message(message_id)["wamid"]
    deliver(wa, status_body("delivered", wamid, message_id))
    deliver(wa, status_body("failed", wamid, message_id, code=131000))
    await Worker(wa).run_until_idle()
    row = wa.message(message_id)
    assert (row["status"], row["error_code"], row["error_details"]) == ("delivered", "131000", "details for 131000")


@pytest.mark.parametrize(("value", "code", "outcome"), [
    ("failed", 131050, "opted_out"), ("failed", 131026, "unreachable"), ("failed", 131047, "window_closed"),
    ("failed", 131000, None), ("failed", None, None), ("delivered", 131050, None),
])
def test_a_failed_status_carries_the_neutral_outcome_of_metas_code(value, code, outcome):
    [event] = parse_body(status_body(value, "wamid.x", "m1", code=code))
    assert event.payload().outcome == outcome


async def test_metas_opt_out_and_unreachable_codes_reach_the_ledger_and_the_gate(wa):
    first, second = sent_template(wa, "outcome1"), sent_template(wa, "outcome2")
    await Worker(wa).run_until_idle()
    deliver(wa, status_body("failed", wa.message(first)["wamid"], first, code=131050))
    await Worker(wa).run_until_idle()
    record = wa.consent(USER)[Category.MARKETING]
    assert (record.granted, record.source) == (False, "whatsapp:131050")
    assert "131050" in (record.proof or "")
    deliver(wa, status_body("failed", wa.message(second)["wamid"], second, code=131026))
    await Worker(wa).run_until_idle()
    again = wa.send(Outgoing(to=USER, content=TemplateContent(name="order_shipped", language="en", body=["43"])))
    assert (again.status, again.reason) == ("refused", "unreachable")


async def test_user_preferences_stop_then_resume_marketing(wa, recorder):
    deliver(wa, body_of("user_preferences_stop"))
    await Worker(wa).run_until_idle()
    record = wa.consent(USER)[Category.MARKETING]
    assert (record.granted, record.source) == (False, "whatsapp:user_preferences")
    deliver(wa, body_of("user_preferences_resume"))
    await Worker(wa).run_until_idle()
    assert wa.consent(USER)[Category.MARKETING].granted is True
    assert [c.granted for c in recorder["on_consent_changed"]] == [False, True]


async def test_template_events_update_the_cache(wa):
    seed_template(wa, "order_shipped", "Your order {{1}} is on its way.", status="PENDING")
    seed_template(wa, "abandoned_cart", "You left {{1}} in your cart.", category="MARKETING", status="PENDING")

    def cached(name: str) -> tuple[str, str]:
        with wa.db.read() as conn:
            info = templates.get(conn, name, "en")
        return info.status, info.category

    for name in ("template_approved", "template_rejected", "template_category_impending", "template_quality"):
        deliver(wa, body_of(name))
    await Worker(wa).run_until_idle()
    assert cached("order_shipped") == ("APPROVED", "UTILITY")  # impending: not moved yet
    assert cached("abandoned_cart") == ("REJECTED", "MARKETING")
    with wa.db.read() as conn:  # the quality update rated order_shipped only
        assert [templates.get(conn, n, "en").quality for n in ("order_shipped", "abandoned_cart")] == ["YELLOW", None]
    deliver(wa, body_of("template_category_completed"))
    await Worker(wa).run_until_idle()
    assert cached("order_shipped") == ("APPROVED", "MARKETING")


# --- property: any order and duplication of statuses ends in the monotonic maximum -------

_RANK = {"sent": 1, "delivered": 2, "read": 3, "played": 4}


def expected_final(sequence: list[str]) -> str:
    reached = [s for s in sequence if s != "failed"]
    top = max(reached, key=_RANK.__getitem__) if reached else None
    if "failed" in sequence and (top is None or _RANK[top] < _RANK["delivered"]):
        return "failed"
    assert top is not None
    return top


@pytest.fixture(scope="module")
def status_app():
    with tempfile.TemporaryDirectory() as directory:
        app = make_app(Path(directory), database_url=f"sqlite:///{directory}/cz.db", **wa_settings())
        yield app
        app.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(st.sampled_from(["sent", "delivered", "read", "played", "failed"]), min_size=1,
                         max_size=7))
def test_any_status_order_ends_in_the_monotonic_maximum(status_app, sequence):
    app = status_app
    message_id = sent_template(app, "prop:" + "-".join(sequence) + f":{time.monotonic_ns()}")
    run(app)
    wamid = app.message(message_id)["wamid"]
    for value in sequence:
        deliver(app, status_body(value, wamid, message_id, code=131000 if value == "failed" else None))
    run(app)
    row = app.message(message_id)
    assert row["status"] == expected_final(sequence)
    assert (row["error_code"] == "131000") == ("failed" in sequence)
