"""Postmark's webhooks to the email connector: authentication (HTTP Basic, fail closed) and what
each record becomes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectzap.connectors.email.signatures import sign_basic_auth, verify_basic_auth
from connectzap.connectors.email.webhooks import parse_postmark
from connectzap.core.errors import PayloadError, SignatureError
from connectzap.core.models import DeliveryOutcome, MessageStatus

PAYLOADS = Path(__file__).parent / "payloads" / "postmark"


def test_a_hard_bounce_fails_the_message_and_says_unreachable() -> None:
    [event] = parse_postmark((PAYLOADS / "bounce_hard.json").read_bytes(), "shop.example")
    status = event.payload()
    assert isinstance(status, MessageStatus)
    assert status.wamid == "<m0001.cz@shop.example>" and status.outbox_id == "m0001"
    assert status.status == "failed" and status.outcome is DeliveryOutcome.UNREACHABLE
    assert status.reason == "hard_bounce" and status.errors[0].code == 1
    assert event.dedupe_key == "postmark:bounce:4323372036854775807"
    assert "ana@example.org" not in json.dumps(event.data)  # the address is not kept
    assert status.timestamp.microsecond == 907025


def test_a_spam_complaint_delivers_the_message_then_opts_its_contact_out() -> None:
    delivered, complaint = (event.payload() for event in
                            parse_postmark((PAYLOADS / "spam_complaint.json").read_bytes(), "shop.example"))
    assert isinstance(delivered, MessageStatus) and isinstance(complaint, MessageStatus)
    assert delivered.status == "delivered" and delivered.wamid == complaint.wamid == "<m0003.cz@shop.example>"
    assert complaint.status == "failed" and complaint.outcome is DeliveryOutcome.OPTED_OUT
    assert complaint.reason == "spam_complaint" and complaint.outbox_id == "m0003"
    assert complaint.recipient is None  # the address is not kept: the core finds the contact by the message
    events = parse_postmark((PAYLOADS / "spam_complaint.json").read_bytes(), "shop.example")
    assert [e.dedupe_key for e in events] == ["<m0003.cz@shop.example>:delivered", "postmark:complaint:42"]
    assert "udo@example.org" not in json.dumps([e.data for e in events])


def test_a_delivery_marks_the_message_delivered() -> None:
    [event] = parse_postmark((PAYLOADS / "delivery.json").read_bytes(), "shop.example")
    status = event.payload()
    assert isinstance(status, MessageStatus) and status.status == "delivered"
    assert status.wamid == "<m0001.cz@shop.example>" and "ana@example.org" not in json.dumps(event.data)


@pytest.mark.parametrize("change", [{"Type": "SoftBounce"}, {"Type": "Transient"}, {"Metadata": {}},
                                    {"Metadata": None}, {"RecordType": "Open"},
                                    {"RecordType": "SpamComplaint", "Metadata": {}}])
def test_what_says_nothing_about_our_message_journals_nothing(change: dict[str, object]) -> None:
    record = {**json.loads((PAYLOADS / "bounce_hard.json").read_bytes()), **change}
    assert parse_postmark(json.dumps(record).encode(), "shop.example") == []


@given(st.binary(max_size=200))
def test_any_body_parses_or_is_a_payload_error(body: bytes) -> None:
    try:
        parse_postmark(body, "shop.example")
    except PayloadError:
        pass


def test_basic_auth_accepts_the_configured_user_and_any_listed_password() -> None:
    verify_basic_auth(sign_basic_auth("hooks", "new"), "hooks", ["new", "old"])
    verify_basic_auth(sign_basic_auth("hooks", "old"), "hooks", ["new", "old"])


@pytest.mark.parametrize(("header", "passwords", "reason"), [
    (None, ["pw"], "missing"),
    ("", ["pw"], "missing"),
    ("Bearer abc", ["pw"], "Basic"),
    ("Basic !!!", ["pw"], "base64"),
    (sign_basic_auth("hooks", "pw"), [], "no secret"),
    (sign_basic_auth("hooks", "pw"), [""], "no secret"),
    (sign_basic_auth("other", "pw"), ["pw"], "does not match"),
    (sign_basic_auth("hooks", "pw2"), ["pw"], "does not match"),
    ("Basic " + base64.b64encode(b"hooks:").decode(), ["pw"], "does not match"),
])
def test_basic_auth_fails_closed(header: str | None, passwords: list[str], reason: str) -> None:
    with pytest.raises(SignatureError) as caught:
        verify_basic_auth(header, "hooks", passwords)
    assert reason in caught.value.message and "pw" not in caught.value.message.replace("password", "")


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30), st.text(max_size=30))
def test_only_the_exact_credentials_pass(user: str, password: str, other: str) -> None:
    verify_basic_auth(sign_basic_auth(user, password), user, [password])
    if other != password:
        with pytest.raises(SignatureError):
            verify_basic_auth(sign_basic_auth(user, other), user, [password])
