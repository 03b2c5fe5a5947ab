"""Bounces, deliveries, complaints and unsubscribes from SendGrid's Event Webhook (ECDSA P-256) and
Mailgun's webhooks (HMAC-SHA256 over timestamp + token): the signatures fail closed, each event maps
to the statuses and consent effects Postmark's get, and the whole path works through a real SMTP
server (aiosmtpd) with the header that hands the message's id back."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from connectzap import Category, ConsentChange, Connectzap
from connectzap.connectors.email.settings import EmailSettings
from connectzap.connectors.email.signatures import (SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP, sign_mailgun,
                                                    sign_sendgrid, verify_mailgun, verify_sendgrid)
from connectzap.connectors.email.webhooks import parse_mailgun, parse_sendgrid
from connectzap.core.channel import EMAIL
from connectzap.core.errors import PayloadError, SignatureError
from connectzap.core.models import DeliveryOutcome, MessageStatus
from connectzap.core.worker import Worker
from connectzap.testing import deliver, webhook_request
from email_support import email_config, smtp_relay
from test_email_path import ADDRESS, PHONE, email, templates

PAYLOADS = Path(__file__).parent / "payloads"
PRIVATE = ec.generate_private_key(ec.SECP256R1())
PUBLIC = base64.b64encode(PRIVATE.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()  # as SendGrid shows it
MAILGUN_KEY = "mailgun-signing-key-5c2e"
NOW = 1_796_288_500


def sendgrid_events() -> list[dict[str, Any]]:
    return list(json.loads((PAYLOADS / "sendgrid" / "events.json").read_bytes()))


def mailgun_body(name: str, outbox_id: str | None = None, at: int = NOW, key: str = MAILGUN_KEY) -> bytes:
    data = json.loads((PAYLOADS / "mailgun" / name).read_bytes())
    if outbox_id is not None:
        data["event-data"]["user-variables"]["connectzap_outbox"] = outbox_id
    data["signature"] = sign_mailgun(at, f"token-{name}-{at}-0123456789abcdef0123456789", key)
    return json.dumps(data).encode()


# --- signatures -----------------------------------------------------------------------------------

def test_a_sendgrid_signature_verifies_with_the_public_key() -> None:
    body = json.dumps(sendgrid_events()).encode()
    headers = sign_sendgrid(body, NOW, PRIVATE)
    verify_sendgrid(body, headers[SENDGRID_SIGNATURE], headers[SENDGRID_TIMESTAMP], PUBLIC, now=NOW)
    pem = PRIVATE.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    verify_sendgrid(body, headers[SENDGRID_SIGNATURE], headers[SENDGRID_TIMESTAMP], pem, now=NOW)


def _sendgrid_cases() -> list[tuple[dict[str, Any], str]]:
    body = b'[{"event":"delivered"}]'
    good = sign_sendgrid(body, NOW, PRIVATE)
    other = sign_sendgrid(body, NOW, ec.generate_private_key(ec.SECP256R1()))
    return [
        ({"signature": None}, "required"),
        ({"timestamp": None}, "required"),
        ({"public_key": None}, "no public key"),
        ({"public_key": "bm90IGEga2V5"}, "public key"),
        ({"signature": other[SENDGRID_SIGNATURE]}, "does not match"),
        ({"body": body + b" "}, "does not match"),
        ({"timestamp": str(NOW + 1)}, "does not match"),
        ({"signature": "!!!"}, "base64"),
        ({"timestamp": "soon"}, "not a number"),
        ({"now": NOW + 301}, "tolerance"),
        ({"signature": good[SENDGRID_SIGNATURE][:-8] + "AAAAAAA="}, "does not match"),
    ]


@pytest.mark.parametrize(("change", "reason"), _sendgrid_cases())
def test_sendgrid_fails_closed(change: dict[str, Any], reason: str) -> None:
    body = b'[{"event":"delivered"}]'
    good = sign_sendgrid(body, NOW, PRIVATE)
    args: dict[str, Any] = {"body": body, "signature": good[SENDGRID_SIGNATURE], "timestamp": good[SENDGRID_TIMESTAMP],
                            "public_key": PUBLIC, "now": NOW, **change}
    with pytest.raises(SignatureError, match=reason):
        verify_sendgrid(args["body"], args["signature"], args["timestamp"], args["public_key"], now=args["now"])


@given(st.binary(max_size=64), st.binary(min_size=1, max_size=64))
def test_sendgrid_accepts_exactly_the_signed_body(body: bytes, other: bytes) -> None:
    headers = sign_sendgrid(body, NOW, PRIVATE)
    verify_sendgrid(body, headers[SENDGRID_SIGNATURE], headers[SENDGRID_TIMESTAMP], PUBLIC, now=NOW)
    if other != body:
        with pytest.raises(SignatureError):
            verify_sendgrid(other, headers[SENDGRID_SIGNATURE], headers[SENDGRID_TIMESTAMP], PUBLIC, now=NOW)


def test_a_mailgun_signature_verifies_with_any_listed_key() -> None:
    body = mailgun_body("delivered.json")
    verify_mailgun(body, ["new-key", MAILGUN_KEY], now=NOW)


@pytest.mark.parametrize(("body", "keys", "now", "reason"), [
    (mailgun_body("delivered.json"), [], NOW, "no secret"),
    (mailgun_body("delivered.json"), [""], NOW, "no secret"),
    (mailgun_body("delivered.json"), ["another-key"], NOW, "does not match"),
    (mailgun_body("delivered.json"), [MAILGUN_KEY], NOW + 301, "tolerance"),
    (mailgun_body("delivered.json", at=NOW - 3600), [MAILGUN_KEY], NOW, "tolerance"),
    (b"not json", [MAILGUN_KEY], NOW, "not a Mailgun webhook"),
    (b"[]", [MAILGUN_KEY], NOW, "not a Mailgun webhook"),
    (b'{"event-data": {}}', [MAILGUN_KEY], NOW, "no signature"),
    (json.dumps({"signature": {"timestamp": NOW, "token": "", "signature": "00"}}).encode(), [MAILGUN_KEY], NOW,
     "needs timestamp"),
    (json.dumps({"signature": {"timestamp": "x", "token": "t", "signature": "00"}}).encode(), [MAILGUN_KEY], NOW,
     "not a number"),
])
def test_mailgun_fails_closed(body: bytes, keys: list[str], now: int, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason) as caught:
        verify_mailgun(body, keys, now=now)
    assert MAILGUN_KEY not in caught.value.message


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_mailgun_accepts_exactly_the_signing_key(token: str, key: str, other: str) -> None:
    body = json.dumps({"signature": sign_mailgun(NOW, token, key)}).encode()
    verify_mailgun(body, [key], now=NOW)
    if other != key:
        with pytest.raises(SignatureError):
            verify_mailgun(body, [other], now=NOW)


def test_the_public_key_is_checked_when_the_settings_load() -> None:
    section = {"host": "smtp.sendgrid.net", "from_address": "shop@shop.example", "webhook_provider": "sendgrid"}
    assert EmailSettings.model_validate({**section, "webhook_public_key": PUBLIC}).webhook_public_key == PUBLIC
    rsa_like = base64.b64encode(ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    for bad in ("not base64!", "bm90IGEga2V5", rsa_like):
        with pytest.raises(ValueError, match="public key"):
            EmailSettings.model_validate({**section, "webhook_public_key": bad})


# --- what each event becomes ----------------------------------------------------------------------

def statuses(events: list[Any]) -> list[MessageStatus]:
    out = [e.payload() for e in events]
    assert all(isinstance(s, MessageStatus) for s in out)
    return out


def test_sendgrid_events_map_like_postmarks() -> None:
    body = json.dumps(sendgrid_events()).encode()
    events = parse_sendgrid(body, "shop.example")
    got = [(s.outbox_id, s.status, s.outcome, s.reason) for s in statuses(events)]
    assert got == [
        ("m0001", "delivered", None, None),
        ("m0002", "failed", DeliveryOutcome.UNREACHABLE, "hard_bounce"),
        # "blocked" (m0003) is temporary, processed and open change nothing, m-less events are not ours
        ("m0004", "delivered", None, None), ("m0004", "failed", DeliveryOutcome.OPTED_OUT, "spam_complaint"),
        ("m0005", "delivered", None, None), ("m0005", "failed", DeliveryOutcome.OPTED_OUT, "unsubscribed"),
    ]
    assert events[1].dedupe_key == "sendgrid:Ym91bmNlLTAwMDI" and statuses(events)[1].errors[0].code == "5.1.1"
    assert statuses(events)[3].errors[0].code == "sendgrid:spamreport"
    text = json.dumps([e.data for e in events])
    assert "@example.org" not in text  # no address is kept


def test_a_sendgrid_drop_for_a_bounced_address_is_a_hard_bounce_other_drops_nothing() -> None:
    dropped = {"email": "x@example.org", "timestamp": NOW, "event": "dropped", "sg_event_id": "ZHJvcA",
               "reason": "Bounced Address", "connectzap_outbox": "m0009"}
    [event] = parse_sendgrid(json.dumps([dropped]).encode(), "shop.example")
    assert statuses([event])[0].reason == "hard_bounce"
    assert parse_sendgrid(json.dumps([{**dropped, "reason": "Unsubscribed Address"}]).encode(), "shop.example") == []


@pytest.mark.parametrize(("body", "field"), [
    (b"{}", "body"), (b"nope", "body"), (b"[1]", "0.event"),
    (json.dumps([{"event": "delivered", "connectzap_outbox": "m1", "timestamp": "today"}]).encode(), "0.timestamp"),
    (json.dumps([{"event": "bounce", "connectzap_outbox": "m1", "timestamp": NOW}]).encode(), "0.sg_event_id"),
])
def test_a_sendgrid_body_that_does_not_parse_names_its_field(body: bytes, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_sendgrid(body, "shop.example")
    assert caught.value.field == field


@pytest.mark.parametrize(("name", "expected"), [
    ("delivered.json", [("delivered", None, None)]),
    ("failed_permanent.json", [("failed", DeliveryOutcome.UNREACHABLE, "hard_bounce")]),
    ("failed_temporary.json", []),
    ("complained.json", [("delivered", None, None), ("failed", DeliveryOutcome.OPTED_OUT, "spam_complaint")]),
    ("unsubscribed.json", [("delivered", None, None), ("failed", DeliveryOutcome.OPTED_OUT, "unsubscribed")]),
])
def test_mailgun_events_map_like_postmarks(name: str, expected: list[tuple[Any, ...]]) -> None:
    events = parse_mailgun(mailgun_body(name), "shop.example")
    assert [(s.status, s.outcome, s.reason) for s in statuses(events)] == expected
    assert all(s.wamid == "<m0001.cz@shop.example>" for s in statuses(events))
    assert "@example.org" not in json.dumps([e.data for e in events])


def test_mailgun_refusals_for_earlier_unsubscribes_are_no_bounce() -> None:
    data = json.loads(mailgun_body("failed_permanent.json"))
    data["event-data"]["reason"] = "suppress-unsubscribe"
    assert parse_mailgun(json.dumps(data).encode(), "shop.example") == []
    data["event-data"].pop("user-variables")
    data["event-data"]["reason"] = "bounce"
    assert parse_mailgun(json.dumps(data).encode(), "shop.example") == []  # not sent by connectzap


@given(st.binary(max_size=200))
def test_any_body_parses_or_is_a_payload_error(body: bytes) -> None:
    for parse in (parse_sendgrid, parse_mailgun):
        try:
            parse(body, "shop.example")
        except PayloadError:
            pass


# --- the whole path ---------------------------------------------------------------------------------

async def sent(make: Any, tmp_path: Path, provider: str, **extra: Any) -> tuple[Connectzap, list[str], Any]:
    """An engine whose webhook is ``provider``'s, and two emails (utility, marketing) it sent."""
    with smtp_relay(tmp_path) as relay:
        section = email_config(relay, templates_dir=str(templates(tmp_path / "tpl")), webhook_provider=provider,
                               list_unsubscribe_url="https://shop.example/u/{outbox_id}", **extra)
        app = make(connectors={"email": section})
        for category in (Category.UTILITY, Category.MARKETING):
            app.set_consent(ConsentChange(phone=PHONE, category=category, granted=True, source="test", proof="form",
                                          medium=EMAIL))
        ids = [app.send(email("order_confirmation", Category.UTILITY)).id,
               app.send(email("news", Category.MARKETING)).id]
        await Worker(app).run_until_idle()
    assert len(relay.received) == 2
    return app, ids, relay


async def test_sendgrid_path(make: Any, tmp_path: Path) -> None:
    app, (utility, marketing), relay = await sent(make, tmp_path, "sendgrid", webhook_public_key=PUBLIC)
    header = relay.received[0].message["X-SMTPAPI"]
    assert json.loads(str(header)) == {"unique_args": {"connectzap_outbox": utility}}
    assert relay.received[0].message["X-PM-Metadata-connectzap_outbox"] is None
    now = int(time.time())
    events = [{"email": ADDRESS, "timestamp": now, "event": "bounce", "type": "bounce", "status": "5.1.1",
               "sg_event_id": "Ym91bmNl", "connectzap_outbox": utility},
              # the complaint proves an earlier delivery: a delivery after the bounce would clear it
              {"email": ADDRESS, "timestamp": now - 60, "event": "spamreport", "sg_event_id": "c3BhbQ",
               "connectzap_outbox": marketing}]
    body = json.dumps(events).encode()
    forged = sign_sendgrid(body, now, ec.generate_private_key(ec.SECP256R1()))
    assert deliver(app, "email", webhook_request("/webhooks/email", body, headers=forged)).status == 401
    for _ in range(2):  # SendGrid retries: nothing more changes
        answer = deliver(app, "email", webhook_request("/webhooks/email", body, headers=sign_sendgrid(body, now,
                                                                                                       PRIVATE)))
        assert answer.status == 200
        await Worker(app).run_until_idle()
    assert (app.message(utility) or {})["reason"] == "hard_bounce"
    assert (app.message(marketing) or {})["status"] == "delivered"
    revoked = app.consent(PHONE, medium=EMAIL)[Category.MARKETING]
    assert not revoked.granted and revoked.source == "email:sendgrid:spamreport"
    assert app.send(email("order_confirmation", Category.UTILITY)).reason == "unreachable"


async def test_mailgun_path(make: Any, tmp_path: Path) -> None:
    app, (utility, marketing), relay = await sent(make, tmp_path, "mailgun", webhook_signing_keys=[MAILGUN_KEY])
    assert json.loads(str(relay.received[1].message["X-Mailgun-Variables"])) == {"connectzap_outbox": marketing}
    now = int(time.time())
    old = mailgun_body("unsubscribed.json", marketing, at=now - 3600)
    assert deliver(app, "email", webhook_request("/webhooks/email", old)).status == 401  # a replay: too old
    wrong = mailgun_body("unsubscribed.json", marketing, at=now, key="guessed")
    assert deliver(app, "email", webhook_request("/webhooks/email", wrong)).status == 401
    await Worker(app).run_until_idle()
    assert app.consent(PHONE, medium=EMAIL)[Category.MARKETING].granted  # refused calls changed nothing
    for name, outbox_id in (("unsubscribed.json", marketing), ("delivered.json", utility)):
        body = mailgun_body(name, outbox_id, at=now)
        assert deliver(app, "email", webhook_request("/webhooks/email", body)).status == 200
    await Worker(app).run_until_idle()
    revoked = app.consent(PHONE, medium=EMAIL)[Category.MARKETING]
    assert not revoked.granted and revoked.source == "email:mailgun:unsubscribed"
    assert app.consent(PHONE, medium=EMAIL)[Category.UTILITY].granted
    assert (app.message(utility) or {})["status"] == "delivered"
