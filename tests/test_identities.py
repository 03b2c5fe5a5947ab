"""Customers known by a business-scoped user id (BSUID), a phone number, or both, end to end.

Fixtures built from Meta's webhook reference (marked here, since JSON takes no comments):
``bsuid_only`` (a username customer: ``user_id``/``from_user_id`` and no ``wa_id``/``from``),
``bsuid_with_phone`` (both), ``system_user_changed_user_id`` and ``system_user_changed_number_bsuid``
(Meta's system messages webhook reference, updated Aug 11 2026: no contacts array; ``system.type``,
``system.user_id``/``parent_user_id`` and ``system.previous_user_id``/``previous_parent_user_id``)
and ``user_preferences_stop_bsuid`` (the user_preferences shape with ``user_id`` for ``wa_id``).
Meta publishes placeholders, not values: the ids and numbers are ours.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectzap import (Category, ConsentChange, Outgoing, PhoneRequiredError, RequestContactInfoContent,
                        TemplateContent, TextContent)
from connectzap.connectors.whatsapp.payloads import message_body, validate_body
from connectzap.connectors.whatsapp.webhooks import parse_body
from connectzap.core.channel import OutboundSend
from connectzap.core.errors import PayloadError
from connectzap.core.models import Contact
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

FIXTURES = Path(__file__).parent / "payloads" / "whatsapp"
BSUID = "US.13491208655302741918"
NEW_BSUID = "US.20583746102938475610"
PHONE = "+16505551234"
NEW_PHONE = "+16505559876"


def a_minute_ago() -> datetime:
    """Before any webhook built now (whose times are whole seconds): a later opt-out outranks it."""
    return datetime.now(UTC) - timedelta(minutes=1)


def webhook(name: str, *, text: str | None = None, wamid: str | None = None, **replace: Any) -> bytes:
    """Fixture ``name`` as delivered now (a window counts from the message's own time)."""
    doc = json.loads((FIXTURES / f"{name}.json").read_text())
    value = doc["entry"][0]["changes"][0]["value"]
    for message in value.get("messages", []):
        message["timestamp"] = str(int(time.time()))
        if text is not None:
            message["text"] = {"body": text}
        if wamid is not None:
            message["id"] = wamid
        message.update(replace)
    for preference in value.get("user_preferences", []):
        preference["timestamp"] = int(time.time())
    for contact in value.get("contacts", []):
        if "user_id" in replace:
            contact["user_id"] = replace["from_user_id"] if "from_user_id" in replace else replace["user_id"]
    return json.dumps(doc).encode()


async def deliver(app: Any, body: bytes) -> None:
    app.ingest(parse_body(body))
    await Worker(app).run_until_idle()


def granted(app: Any, who: str, category: Category = Category.MARKETING) -> bool | None:
    record = app.consent(who).get(category)
    return None if record is None else record.granted


def promo() -> TemplateContent:
    return TemplateContent(name="summer_sale", language="en", body=["Sam"])


async def test_a_bsuid_only_customer_has_a_conversation(app):
    """Before they write, a free-form message waits for the window; after, the reply goes to their
    BSUID in Meta's ``recipient`` field (there is no number to put in ``to``) and is delivered."""
    assert app.send(Outgoing(to=BSUID, content=TextContent(body="hello"))).reason == "window_closed"
    await deliver(app, webhook("bsuid_only"))
    reply = app.send(Outgoing(to=BSUID, content=TextContent(body="Hi Sam, how can we help?")))
    assert reply.status == "queued", reply
    await Worker(app).run_until_idle()
    sent = app.channel.sent()[-1]
    assert sent["recipient"] == BSUID and "to" not in sent and sent["text"]["body"] == "Hi Sam, how can we help?"
    assert app.message(reply.id)["status"] == "delivered"


async def test_a_bsuid_only_customer_opts_out_by_keyword(app):
    seed_template(app, "summer_sale", "Hi {{1}}, 20% off today", category="MARKETING")
    app.set_consent(ConsentChange(user_id=BSUID, category=Category.MARKETING, granted=True, source="t",
                                  proof="signed up in the shop", at=a_minute_ago()))
    assert app.send(Outgoing(to=BSUID, content=promo()), idempotency_key="before").status == "queued"
    await deliver(app, webhook("bsuid_only", text="STOP", wamid="wamid.bsuid-stop"))
    assert granted(app, BSUID) is False
    refused = app.send(Outgoing(to=BSUID, content=promo()), idempotency_key="after")
    assert (refused.status, refused.reason) == ("refused", "opted_out")
    confirmations = [b for b in app.channel.sent() if b.get("context") == {"message_id": "wamid.bsuid-stop"}]
    assert len(confirmations) == 1 and confirmations[0]["recipient"] == BSUID


async def test_user_preferences_stop_for_a_bsuid(app):
    app.set_consent(ConsentChange(user_id=BSUID, category=Category.MARKETING, granted=True, source="t",
                                  at=a_minute_ago()))
    await deliver(app, webhook("user_preferences_stop_bsuid"))
    assert granted(app, BSUID) is False


async def test_phone_and_bsuid_seen_together_are_one_customer(app):
    """What was known under the BSUID alone (consent, the window) belongs to the number once a
    webhook shows both; by either identifier it is the same customer afterwards."""
    await deliver(app, webhook("bsuid_only"))
    app.set_consent(ConsentChange(user_id=BSUID, category=Category.MARKETING, granted=True, source="t"))
    assert granted(app, PHONE) is None
    await deliver(app, webhook("bsuid_with_phone"))
    assert granted(app, PHONE) is True and granted(app, BSUID) is True
    assert app.contact_key(PHONE) == app.contact_key(BSUID)
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=False, source="t"))
    assert granted(app, BSUID, Category.UTILITY) is False
    assert app.send(Outgoing(to=PHONE, content=TextContent(body="hi"))).status == "queued"


async def test_a_number_change_moves_consent_to_the_new_bsuid(app):
    """``user_changed_user_id``: opt-in and opt-out follow the customer to their new BSUID; the old
    BSUID and the old number (someone else's, some day) keep nothing of theirs."""
    seed_template(app, "summer_sale", "Hi {{1}}, 20% off today", category="MARKETING")
    await deliver(app, webhook("bsuid_with_phone"))
    app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="t"))
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=False, source="t"))
    await deliver(app, webhook("system_user_changed_user_id"))
    assert granted(app, NEW_BSUID) is True and granted(app, NEW_BSUID, Category.UTILITY) is False
    assert granted(app, BSUID) is None and granted(app, PHONE) is None
    assert app.send(Outgoing(to=NEW_BSUID, content=promo())).status == "queued"
    assert app.send(Outgoing(to=PHONE, content=promo())).reason == "no_consent"


async def test_user_changed_number_links_the_new_number_and_bsuid(app):
    await deliver(app, webhook("bsuid_with_phone"))
    app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="t"))
    await deliver(app, webhook("system_user_changed_number_bsuid"))
    assert granted(app, NEW_PHONE) is True and granted(app, NEW_BSUID) is True
    assert app.contact_key(NEW_PHONE) == app.contact_key(NEW_BSUID)
    assert granted(app, PHONE) is None and granted(app, BSUID) is None


async def test_a_recycled_number_is_a_new_customer(app):
    """The number comes back with another BSUID: the earlier customer's consent stays theirs."""
    await deliver(app, webhook("bsuid_with_phone"))
    app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="t"))
    await deliver(app, webhook("bsuid_with_phone", wamid="wamid.recycled", from_user_id="BR.555", user_id="BR.555"))
    assert granted(app, PHONE) is None and granted(app, "BR.555") is None
    assert granted(app, BSUID) is True


def test_authentication_templates_need_a_phone_number(app):
    seed_template(app, "login_code", "{{1}} is your code", category="AUTHENTICATION")
    for who in (BSUID, PHONE):
        app.set_consent(ConsentChange(user_id=BSUID if who == BSUID else None, phone=PHONE if who == PHONE else None,
                                      category=Category.AUTHENTICATION, granted=True, source="t"))
    code = TemplateContent(name="login_code", language="en", body=["123456"])
    refused = app.send(Outgoing(to=BSUID, content=code))
    assert (refused.status, refused.reason) == ("refused", "phone_required")
    assert "request_contact_info" in (refused.detail or "")
    assert app.send(Outgoing(to=PHONE, content=code)).status == "queued"


def test_the_channel_refuses_an_authentication_template_to_a_bsuid():
    """Behind the gate, the request builder refuses too (a clear error, never a request Meta rejects)."""
    message = OutboundSend(outbox_id="m1", recipient=BSUID, category="authentication",
                           content=TemplateContent(name="login_code", language="en", body=["1"]))
    with pytest.raises(PhoneRequiredError):
        message_body(message)


def test_request_contact_info_asks_for_the_number():
    body = message_body(OutboundSend(outbox_id="m1", recipient=BSUID, category="service",
                                     content=RequestContactInfoContent(body="Share your number to finish the order")))
    validate_body(body)
    assert body["recipient"] == BSUID and "to" not in body
    assert body["interactive"] == {"type": "request_contact_info",
                                   "body": {"text": "Share your number to finish the order"},
                                   "action": {"name": "request_contact_info"}}


@pytest.mark.parametrize("fields, problem", [
    ({"to": "16505551234", "recipient": BSUID}, "exactly one"),
    ({}, "exactly one"),
    ({"recipient": "US.ENT.11815799212886844830"}, "business-scoped"),
    ({"recipient": "us.134912"}, "business-scoped"),
])
def test_a_request_names_one_valid_recipient(fields, problem):
    body = {"messaging_product": "whatsapp", "type": "text", "text": {"body": "hi"}, **fields}
    with pytest.raises(PayloadError, match=problem):
        validate_body(body)


async def test_the_shared_contact_card_links_the_number(app):
    """The customer tapped "share contact info": the card (origin ``contact_request``) is their own
    number, linked to their BSUID. A forwarded card (any other origin) links nothing."""
    app.set_consent(ConsentChange(user_id=BSUID, category=Category.MARKETING, granted=True, source="t"))
    card = {"name": {"formatted_name": "Sam"}, "phones": [{"phone": PHONE, "wa_id": "16505551234", "type": "CELL"}]}
    await deliver(app, webhook("bsuid_only", wamid="wamid.forwarded", type="contacts", contacts=[
        {**card, "origin": "other"}]))
    assert granted(app, PHONE) is None
    await deliver(app, webhook("bsuid_only", wamid="wamid.shared", type="contacts", contacts=[
        {**card, "origin": "contact_request"}]))
    assert granted(app, PHONE) is True


@pytest.mark.parametrize("text, user_id", [("US.13491208655302741918", BSUID), (" BR.1502576394655843 ",
                                                                                 "BR.1502576394655843")])
def test_a_recipient_string_may_be_a_bsuid(text, user_id):
    assert Outgoing(to=text, content=TextContent(body="x")).to == Contact(user_id=user_id)
    assert Contact.model_validate(text).user_id == user_id


async def test_a_message_queued_for_the_old_number_is_not_sent_after_the_change(app):
    seed_template(app, "summer_sale", "Hi {{1}}, 20% off today", category="MARKETING")
    await deliver(app, webhook("bsuid_with_phone"))
    app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="t"))
    due = datetime.now(UTC) + timedelta(seconds=1)
    queued = app.send(Outgoing(to=PHONE, content=promo(), not_before=due))
    assert queued.status == "queued"
    await deliver(app, webhook("system_user_changed_user_id"))
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.1)
    await Worker(app).run_until_idle()
    assert (app.message(queued.id)["status"], app.message(queued.id)["reason"]) == ("refused", "no_consent")
    assert app.channel.sent() == []


def failed_status(wamid: str, outbox_id: str, code: int, title: str) -> bytes:
    """A failed status for a message sent to a BSUID, in the shape of Meta's status webhook reference:
    the recipient named by ``recipient_user_id`` only (no ``recipient_id``, no number)."""
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "419561257915477", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"user_id": BSUID}],
            "statuses": [{"id": wamid, "status": "failed", "timestamp": str(int(time.time())),
                          "recipient_user_id": BSUID, "biz_opaque_callback_data": outbox_id,
                          "errors": [{"code": code, "title": title, "message": title,
                                      "error_data": {"details": title}}]}]}}]}]}).encode()


async def sent_promo(app: Any, key: str) -> tuple[str, str]:
    decision = app.send(Outgoing(to=BSUID, content=promo()), idempotency_key=key)
    assert decision.status == "queued", decision
    await Worker(app).run_until_idle()
    return decision.id, app.message(decision.id)["wamid"]


async def test_an_unreachable_bsuid_waits_until_the_customer_writes(make):
    app = make(sandbox={"simulate_statuses": False})
    seed_template(app, "summer_sale", "Hi {{1}}, 20% off today", category="MARKETING")
    app.set_consent(ConsentChange(user_id=BSUID, category=Category.MARKETING, granted=True, source="t"))
    outbox_id, wamid = await sent_promo(app, "first")
    await deliver(app, failed_status(wamid, outbox_id, 131026, "Message undeliverable"))
    refused = app.send(Outgoing(to=BSUID, content=promo()), idempotency_key="second")
    assert (refused.status, refused.reason) == ("refused", "unreachable")
    await deliver(app, webhook("bsuid_only"))
    assert app.send(Outgoing(to=BSUID, content=promo()), idempotency_key="third").status == "queued"


async def test_a_marketing_opt_out_reported_for_a_bsuid_is_recorded(make):
    app = make(sandbox={"simulate_statuses": False})
    seed_template(app, "summer_sale", "Hi {{1}}, 20% off today", category="MARKETING")
    app.set_consent(ConsentChange(user_id=BSUID, category=Category.MARKETING, granted=True, source="t",
                                  at=a_minute_ago()))
    outbox_id, wamid = await sent_promo(app, "first")
    await deliver(app, failed_status(wamid, outbox_id, 131050, "Unable to deliver the message"))
    assert granted(app, BSUID) is False
    assert app.consent(BSUID)[Category.MARKETING].source == "whatsapp:131050"


async def test_the_longest_bsuid_is_stored_while_its_message_waits(app):
    """A BSUID may be 131 characters: the outbox keeps it until the message is sent (migration 0005)."""
    longest = "BR." + "7" * 128
    app.set_consent(ConsentChange(user_id=longest, category=Category.UTILITY, granted=True, source="t"))
    seed_template(app, "order_update", "Order {{1}} shipped")
    queued = app.send(Outgoing(to=longest, content=TemplateContent(name="order_update", language="en", body=["7"])))
    assert queued.status == "queued"
    await Worker(app).run_until_idle()
    assert app.channel.sent()[-1]["recipient"] == longest


async def test_a_number_change_without_bsuids_moves_consent_to_the_new_number(app):
    """The older ``user_changed_number`` (``from`` and ``system.wa_id`` only, tests/payloads/whatsapp/system.json):
    the customer's consent follows them to the new number too."""
    app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="t"))
    await deliver(app, webhook("system"))
    assert granted(app, NEW_PHONE) is True and granted(app, PHONE) is None


def test_consent_import_takes_bsuids(app):
    """`consent import`: the phone column may hold a BSUID. A linked BSUID's rows land on the number
    it is linked to, an unlinked one on its own; a malformed one is a bad line like a bad number."""
    from connectzap.core import identities
    with app.db.begin() as conn:
        identities.observe(app.db, conn, app.secret, PHONE, BSUID)
    rows = [(2, {"phone": BSUID, "category": "marketing", "granted": "true", "source": "shop", "proof": "box"}),
            (3, {"phone": NEW_BSUID, "category": "utility", "granted": "false", "source": "shop", "proof": ""}),
            (4, {"phone": "US.1349-12", "category": "utility", "granted": "false", "source": "shop", "proof": ""})]
    checked = app.check_consent_rows(rows)
    assert [(bad.line, "business-scoped" in bad.reason) for bad in checked.bad] == [(4, True)]
    assert app.import_consent(checked.rows).added == 2
    assert granted(app, PHONE) is True and granted(app, BSUID) is True
    assert granted(app, NEW_BSUID, Category.UTILITY) is False and granted(app, PHONE, Category.UTILITY) is None
    assert app.import_consent(app.check_consent_rows(rows).rows).added == 0  # a second import adds nothing


def test_metas_refusal_of_a_bsuid_recipient_says_what_to_do():
    """Error 131062 (a message type Meta does not deliver to a BSUID): this recipient only, never
    retried, and the reason names the way out when Meta gives no details."""
    from connectzap.connectors.whatsapp.errors import classify
    from connectzap.core.errors import SkippableDeliveryError
    error = classify(400, {"error": {"code": 131062, "message": "BSUID recipients not supported for this message",
                                     "type": "OAuthException", "fbtrace_id": "A1"}})
    assert isinstance(error, SkippableDeliveryError) and error.code == "bsuid_not_supported"
    assert "request_contact_info" in (error.details or "")


@pytest.mark.parametrize("under_bsuid, under_number, kept", [(100.0, 50.0, 100.0), (50.0, 100.0, 100.0),
                                                             (100.0, None, 100.0)])
def test_a_declared_contact_time_moves_to_the_linked_number_keeping_the_later(app, under_bsuid, under_number, kept):
    """connectzap.ContactTime: a plugin's per-customer time under the BSUID's key joins the number's
    key when they are linked; an undeclared state key and another plugin's keys stay where they are."""
    from connectzap import ContactTime
    from connectzap.core import identities
    from connectzap.core.bsuids import bsuid_key
    seen = ContactTime("seen_in_identities_test")
    own, number = bsuid_key(BSUID, app.secret), app.contact_key(PHONE)
    bsuid_state, number_state = app.plugin_state("p"), app.plugin_state("p")
    bsuid_state.set(seen.key(own), under_bsuid)
    bsuid_state.set(f"undeclared:{own}", 1)
    if under_number is not None:
        number_state.set(seen.key(number), under_number)
    with app.db.begin() as conn:
        identities.observe(app.db, conn, app.secret, PHONE, BSUID)
    state = app.plugin_state("p")
    assert state.get(seen.key(number)) == kept
    assert state.get(seen.key(own)) is None
    assert state.get(f"undeclared:{own}") == 1
