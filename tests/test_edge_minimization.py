"""Edge minimisation: a status event is journaled without its recipient's number.

Webhook statuses (and any status a channel ingests) keep the wamid, the status, errors, pricing
and conversation; the number becomes the keyed ``contact_key``. A failure saying the recipient
opted out keeps the number until it is dispatched, because recording and mirroring the opt-out
needs it; afterwards the payload is erased like any other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connectzap import (Category, ConsentChange, Event, EventKind, MessageStatus, Outgoing, TemplateContent)
from connectzap.connectors.whatsapp.signatures import sign_meta
from connectzap.core import ingress, minimize
from connectzap.core.connector import WebhookRequest
from connectzap.core.phones import contact_key
from connectzap.core.store.schema import events as events_table
from connectzap.testing import HookRecorder, recording, run, seed_template

SECRET = "edge-app-secret"
KEY_SECRET = b"k" * 32
PNID = "106540352242922"
USER = "+4915112345678"
USER_FORMS = ["+4915112345678", "4915112345678", "015112345678", "15112345678"]


def forms_of(e164: str) -> list[str]:
    """The ways a number may be written at rest: E.164, digits only, national, national digits."""
    parsed = phonenumbers.parse(e164)
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return [e164, e164[1:], national, "".join(c for c in national if c.isdigit()), str(parsed.national_number)]


def status_body(wa_id: str, status: str = "delivered", wamid: str = "wamid.edge.1", code: int | None = None,
                callback: str | None = None) -> bytes:
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": "1750000000", "recipient_id": wa_id,
                            "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility"}}
    if code is not None:
        item["errors"] = [{"code": code, "title": "stopped", "error_data": {"details": "marketing stopped"}}]
    if callback:
        item["biz_opaque_callback_data"] = callback
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": PNID},
             "contacts": [{"wa_id": wa_id, "profile": {"name": "Edgar Edgecase"}}], "statuses": [item]}
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}]}).encode()


def preference_body(wa_id: str, choice: str = "stop") -> bytes:
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": PNID},
             "user_preferences": [{"wa_id": wa_id, "value": choice, "category": "marketing_messages",
                                   "timestamp": 1750000000, "detail": "user tapped stop"}]}
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "WABA", "changes": [{"field": "user_preferences", "value": value}]}]}).encode()


def deliver(app: Any, body: bytes) -> Any:
    request = WebhookRequest(method="POST", url="https://hooks.example/webhooks/whatsapp", path="/webhooks/whatsapp",
                             headers={"x-hub-signature-256": sign_meta(body, SECRET),
                                      "content-type": "application/json"}, body=body)
    return ingress.handle(app.connectors["whatsapp"], request, app.ingest)


def stored_rows(app: Any) -> list[Any]:
    with app.db.read() as conn:
        return conn.execute(select(events_table.c.dedupe_key, events_table.c.payload)).all()


def stored_text(app: Any) -> str:
    return "\n".join(f"{row.dedupe_key} {row.payload or ''}" for row in stored_rows(app))


@pytest.fixture
def recorder() -> Iterator[HookRecorder]:
    with recording("on_message_status") as seen:
        yield seen


@pytest.fixture
def wa(make: Any) -> Any:
    return make(connectors={"whatsapp": {"app_secrets": [SECRET], "verify_token": "verify-me"}},
                sandbox={"quiet": True, "simulate_statuses": False})


def test_a_status_webhook_is_journaled_without_the_number(wa: Any, recorder: HookRecorder) -> None:
    answer = deliver(wa, status_body(USER[1:]))
    assert answer.status == 200 and answer.body["received"] == 1
    waiting = stored_text(wa)  # the backlog, before any worker ran
    assert "wamid.edge.1" in waiting and '"delivered"' in waiting and "PMP" in waiting  # what the work needs
    assert [form for form in USER_FORMS if form in waiting] == []
    assert "Edgar Edgecase" not in waiting
    run(wa)
    [status] = recorder["on_message_status"]
    assert status.recipient is None and status.contact_key == wa.contact_key(USER)  # hooks can still match
    assert status.wamid == "wamid.edge.1" and status.pricing == {"billable": True, "pricing_model": "PMP",
                                                                  "category": "utility"}


def sent_marketing_message(app: Any) -> str:
    """A marketing template to USER, sent through the sandbox: its wamid."""
    seed_template(app, "promo", "Sale starts {{1}}", category="MARKETING")
    app.set_consent(ConsentChange(phone=USER, category=Category.MARKETING, granted=True, source="test"))
    decision = app.send(Outgoing(to=USER, content=TemplateContent(name="promo", language="en", body=["Monday"])))
    assert decision.status == "queued", decision
    run(app)
    wamid = app.message(decision.id)["wamid"]
    assert wamid
    return str(wamid)


def test_an_opt_out_failure_keeps_the_number_until_dispatched_and_records_the_opt_out(
        wa: Any, recorder: HookRecorder) -> None:
    wamid = sent_marketing_message(wa)
    recorder["on_message_status"].clear()
    deliver(wa, status_body(USER[1:], status="failed", code=131050, wamid=wamid))
    assert USER in stored_text(wa)  # the exception: the opt-out is recorded (and mirrored) by number
    run(wa)
    assert wa.consent(USER)[Category.MARKETING].granted is False
    assert [(s.status, s.recipient) for s in recorder["on_message_status"]] == [("failed", USER)]
    assert [form for form in USER_FORMS if form in stored_text(wa)] == []  # erased once dispatched


def test_another_failure_drops_the_number(wa: Any) -> None:
    deliver(wa, status_body(USER[1:], status="failed", code=130472))
    assert [form for form in USER_FORMS if form in stored_text(wa)] == []


def test_a_preference_dedupe_key_names_the_contact_by_its_keyed_hash(wa: Any) -> None:
    """Dedupe keys are never erased: they must not hold the number."""
    deliver(wa, preference_body(USER[1:]))
    [row] = stored_rows(wa)
    assert [form for form in USER_FORMS if form in row.dedupe_key] == []
    assert wa.contact_key(USER) in row.dedupe_key
    assert deliver(wa, preference_body(USER[1:])).body["duplicates"] == 1  # still deduplicated


# --- the rule itself, over many numbers and statuses ------------------------------------------

REGIONS = ["DE", "US", "GB", "FR", "BR", "IN", "NG", "JP"]


@st.composite
def numbers(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(REGIONS))
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    digits = str(example.national_number)
    tail = draw(st.text("0123456789", min_size=3, max_size=3))
    candidate = phonenumbers.parse(f"+{example.country_code}{digits[:-3]}{tail}")
    if not phonenumbers.is_valid_number(candidate):
        candidate = example
    return phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164)


STATUSES = ["sent", "delivered", "read", "played", "failed"]
OUTCOMES = [None, "window_closed", "opted_out", "unreachable"]


@settings(max_examples=200, deadline=None)
@given(phone=numbers(), status=st.sampled_from(STATUSES), outcome=st.sampled_from(OUTCOMES),
       wamid=st.text("abcdefXYZ0123456789.", min_size=5, max_size=30))
def test_minimised_statuses_keep_the_work_and_lose_the_number(phone: str, status: str, outcome: str | None,
                                                               wamid: str) -> None:
    model = MessageStatus(wamid=wamid, status=status, timestamp="2026-01-01T00:00:00Z", recipient=phone,
                          recipient_wa_id=phone[1:], outbox_id="ob1", errors=[{"code": 1, "title": "t"}],
                          pricing={"category": "utility"}, outcome=outcome)
    event = Event.of(EventKind.MESSAGE_STATUS, model, source="whatsapp", dedupe_key=f"{wamid}:{status}")
    [kept] = minimize.for_journal([event], KEY_SECRET)
    stored = kept.model_dump_json()
    again = MessageStatus.model_validate(kept.data)
    assert again.contact_key == contact_key(phone, KEY_SECRET)
    assert (again.wamid, again.status, again.outbox_id, again.pricing, again.outcome) == \
        (wamid, status, "ob1", {"category": "utility"}, outcome)
    assert again.errors == model.errors
    if outcome == "opted_out":  # the one kind that needs the number for its work
        assert again.recipient == phone and "recipient_wa_id" not in kept.data
    else:
        assert again.recipient is None
        assert [form for form in forms_of(phone) if form in stored] == []
    assert minimize.for_journal([kept], KEY_SECRET) == [kept]  # applying it twice changes nothing


@given(kind=st.sampled_from([k for k in EventKind if k != EventKind.MESSAGE_STATUS]))
def test_other_kinds_pass_unchanged(kind: EventKind) -> None:
    event = Event(kind=kind, source="s", dedupe_key="d", data={"recipient": USER, "text": "kept for its work"})
    assert minimize.for_journal([event], KEY_SECRET) == [event]
