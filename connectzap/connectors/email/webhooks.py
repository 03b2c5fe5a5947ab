"""The email providers' delivery, bounce, complaint and unsubscribe webhooks as events: Postmark,
SendGrid's Event Webhook and Mailgun's webhooks each map to the same statuses and consent effects.

A Postmark webhook carries one record (``RecordType``). What it becomes:

* ``Bounce`` of a permanent type (``HardBounce``, ``BadEmailAddress``): a ``failed`` status of the
  message with outcome ``unreachable`` -- the core marks the contact unreachable, as for a WhatsApp
  number that cannot receive. The message is found by the ``X-PM-Metadata-connectzap_outbox``
  header the channel adds, which Postmark hands back in ``Metadata``.
* ``Delivery``: a ``delivered`` status.
* Other bounce types (soft, transient, auto-responder...) change nothing: acknowledged, no event.
* ``SpamComplaint``: the contact opts out of marketing email (:func:`complaint_events`).

SendGrid (a JSON array of events, :func:`parse_sendgrid`) and Mailgun (one ``event-data`` object,
:func:`parse_mailgun`) map the same way: a delivery is ``delivered``; a permanent bounce fails the
message as ``hard_bounce`` with outcome ``unreachable``; a temporary one changes nothing; a spam
complaint -- and, there, an unsubscribe through the provider's own link -- is ``delivered`` then a
failure with outcome ``opted_out`` (the core opts the message's contact out of marketing on its
medium). The message is found by the ``connectzap_outbox`` variable the channel sets on each email
(SendGrid's ``X-SMTPAPI`` unique argument, Mailgun's ``X-Mailgun-Variables``).

The customer's address in the payload is read by nobody and stored nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...core.errors import PayloadError
from ...core.models import ApiErrorInfo, DeliveryOutcome, Event, EventKind, MessageStatus, StatusValue, utcnow
from .composing import OUTBOX_VARIABLE, message_id_for

SOURCE = "email"
PERMANENT_BOUNCES = frozenset({"HardBounce", "BadEmailAddress"})
OUTBOX_METADATA = OUTBOX_VARIABLE


def _record(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PayloadError("the body is not JSON", field="body") from None
    if not isinstance(data, dict) or not isinstance(data.get("RecordType"), str):
        raise PayloadError("a Postmark webhook is an object with a RecordType", field="RecordType")
    return data


def _time(value: Any, field: str) -> datetime:
    if isinstance(value, str):
        try:  # Postmark writes up to 7 fraction digits; Python reads 6
            head, dot, rest = value.partition(".")
            if dot:
                digits = "".join(c for c in rest if c.isdigit())
                value = f"{head}.{digits[:6]}{rest[len(digits):]}"
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError(f"{value!r} is not a time", field=field) from None
    return utcnow()


def _outbox_id(data: Mapping[str, Any]) -> str | None:
    metadata = data.get("Metadata")
    value = metadata.get(OUTBOX_METADATA) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) and value else None


def parse_postmark(body: bytes, sender_domain: str) -> list[Event]:
    data = _record(body)
    kind = data["RecordType"]
    if kind == "Delivery":
        return delivery_events(data, sender_domain)
    if kind not in ("Bounce", "SpamComplaint"):
        return []  # opens, clicks, subscription changes: nothing connectzap acts on
    record_id = data.get("ID")
    if not isinstance(record_id, (int, str)) or isinstance(record_id, bool):
        raise PayloadError("a Postmark bounce record has an ID", field="ID")
    if kind == "Bounce":
        return bounce_events(data, record_id, sender_domain)
    return complaint_events(data, record_id, sender_domain)


def delivery_events(data: Mapping[str, Any], sender_domain: str) -> list[Event]:
    """The receiving server took the email: the message is ``delivered``."""
    outbox_id = _outbox_id(data)
    if outbox_id is None:
        return []
    return [_delivered(outbox_id, sender_domain, _time(data.get("DeliveredAt"), "DeliveredAt"))]


def _delivered(outbox_id: str, sender_domain: str, at: datetime) -> Event:
    wamid = message_id_for(outbox_id, sender_domain)
    status = MessageStatus(wamid=wamid, status=StatusValue.DELIVERED.value, timestamp=at, outbox_id=outbox_id)
    return Event.of(EventKind.MESSAGE_STATUS, status, source=SOURCE, dedupe_key=f"{wamid}:delivered", occurred_at=at)


def _failure(outbox_id: str, sender_domain: str, at: datetime, code: int | str | None, title: str,
             outcome: DeliveryOutcome, reason: str, dedupe_key: str) -> Event:
    """A ``failed`` status of message ``outbox_id`` with ``outcome``, the provider's code as its error."""
    error = ApiErrorInfo(code=code, title=title, details=None)
    status = MessageStatus(wamid=message_id_for(outbox_id, sender_domain), status=StatusValue.FAILED.value,
                           timestamp=at, outbox_id=outbox_id, errors=[error], outcome=outcome, reason=reason)
    return Event.of(EventKind.MESSAGE_STATUS, status, source=SOURCE, dedupe_key=dedupe_key, occurred_at=at)


def bounce_events(data: Mapping[str, Any], record_id: int | str, sender_domain: str) -> list[Event]:
    bounce_type = data.get("Type")
    if bounce_type not in PERMANENT_BOUNCES:
        return []
    outbox_id = _outbox_id(data)
    if outbox_id is None:
        return []  # not sent by connectzap (or sent before the metadata header): nothing of ours to mark
    at = _time(data.get("BouncedAt"), "BouncedAt")
    return [_failure(outbox_id, sender_domain, at, _type_code(data), str(data.get("Name") or bounce_type),
                     DeliveryOutcome.UNREACHABLE, "hard_bounce", f"postmark:bounce:{record_id}")]


def complaint_events(data: Mapping[str, Any], record_id: int | str, sender_domain: str) -> list[Event]:
    """A reader marked the email as spam: the message was delivered, and its contact opts out of
    marketing on email. The complaint names only the message, so it becomes a ``failed`` status
    with outcome ``opted_out`` after a ``delivered`` one (a failure after delivery keeps the
    message delivered, with the complaint as its error); the core records the opt-out for the
    message's contact on the message's medium."""
    outbox_id = _outbox_id(data)
    if outbox_id is None:
        return []
    at = _time(data.get("BouncedAt"), "BouncedAt")
    return _opted_out(outbox_id, sender_domain, at, _type_code(data), "spam complaint", "spam_complaint",
                      f"postmark:complaint:{record_id}")


def _type_code(data: Mapping[str, Any]) -> int | None:
    code = data.get("TypeCode")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _bounced(outbox_id: str, sender_domain: str, at: datetime, code: int | str | None, title: str,
             dedupe_key: str) -> list[Event]:
    return [_failure(outbox_id, sender_domain, at, code, title, DeliveryOutcome.UNREACHABLE, "hard_bounce",
                     dedupe_key)]


def _opted_out(outbox_id: str, sender_domain: str, at: datetime, code: int | str | None, title: str, reason: str,
               dedupe_key: str) -> list[Event]:
    """Delivered (a complaint or an unsubscribe proves the email arrived), then failed with outcome
    ``opted_out``: the core opts the message's contact out of marketing on email."""
    return [_delivered(outbox_id, sender_domain, at),
            _failure(outbox_id, sender_domain, at, code, title, DeliveryOutcome.OPTED_OUT, reason, dedupe_key)]


def _epoch(value: Any, field: str) -> datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    raise PayloadError(f"{field} is not a time in seconds since 1970", field=field)


# --- SendGrid's Event Webhook -------------------------------------------------------------------

SENDGRID_HARD_DROPS = frozenset({"Bounced Address", "Invalid"})
"""``dropped`` reasons that say the address does not work (SendGrid suppressed it after a bounce,
or it is not an address): the same as a hard bounce."""


def parse_sendgrid(body: bytes, sender_domain: str) -> list[Event]:
    """A SendGrid Event Webhook body: a JSON array of events, each with ``event``, ``timestamp``,
    ``sg_event_id`` and the unique arguments the email carried as top-level keys."""
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PayloadError("the body is not JSON", field="body") from None
    if not isinstance(items, list):
        raise PayloadError("a SendGrid Event Webhook body is an array of events", field="body")
    events: list[Event] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("event"), str):
            raise PayloadError("each SendGrid event is an object with an event", field=f"{index}.event")
        events.extend(sendgrid_events(item, index, sender_domain))
    return events


def sendgrid_events(item: Mapping[str, Any], index: int, sender_domain: str) -> list[Event]:
    kind = item["event"]
    if kind not in ("delivered", "bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe"):
        return []  # processed, deferred, open, click...: nothing connectzap acts on
    outbox_id = item.get(OUTBOX_METADATA)
    if not isinstance(outbox_id, str) or not outbox_id:
        return []  # not sent by connectzap
    at = _epoch(item.get("timestamp"), f"{index}.timestamp")
    if kind == "delivered":
        return [_delivered(outbox_id, sender_domain, at)]
    event_id = item.get("sg_event_id")
    if not isinstance(event_id, str) or not event_id:
        raise PayloadError("a SendGrid event has an sg_event_id", field=f"{index}.sg_event_id")
    key = f"sendgrid:{event_id}"
    if kind == "bounce":
        if item.get("type", "bounce") != "bounce":
            return []  # "blocked": a temporary refusal, SendGrid tries again itself
        return _bounced(outbox_id, sender_domain, at, _smtp_status(item.get("status")), "bounce", key)
    if kind == "dropped":
        if item.get("reason") not in SENDGRID_HARD_DROPS:
            return []
        return _bounced(outbox_id, sender_domain, at, None, f"dropped: {item.get('reason')}", key)
    if kind == "spamreport":
        return _opted_out(outbox_id, sender_domain, at, "sendgrid:spamreport", "spam complaint", "spam_complaint", key)
    return _opted_out(outbox_id, sender_domain, at, f"sendgrid:{kind}", "unsubscribed", "unsubscribed", key)


def _smtp_status(value: Any) -> str | None:
    return value[:16] if isinstance(value, str) and value else None


# --- Mailgun's webhooks ---------------------------------------------------------------------------

MAILGUN_NOT_BOUNCES = frozenset({"suppress-unsubscribe", "suppress-complaint"})
"""Permanent failures that are no bounce: Mailgun would not send to an address that unsubscribed or
complained before."""


def parse_mailgun(body: bytes, sender_domain: str) -> list[Event]:
    """A Mailgun webhook body: ``{"signature": {...}, "event-data": {...}}``, one event."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PayloadError("the body is not JSON", field="body") from None
    item = data.get("event-data") if isinstance(data, dict) else None
    if not isinstance(item, dict) or not isinstance(item.get("event"), str):
        raise PayloadError("a Mailgun webhook has event-data with an event", field="event-data.event")
    kind = item["event"]
    if kind not in ("delivered", "failed", "complained", "unsubscribed"):
        return []  # accepted, opened, clicked...: nothing connectzap acts on
    variables = item.get("user-variables")
    outbox_id = variables.get(OUTBOX_METADATA) if isinstance(variables, dict) else None
    if not isinstance(outbox_id, str) or not outbox_id:
        return []
    at = _epoch(item.get("timestamp"), "event-data.timestamp")
    if kind == "delivered":
        return [_delivered(outbox_id, sender_domain, at)]
    event_id = item.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise PayloadError("a Mailgun event has an id", field="event-data.id")
    key = f"mailgun:{kind}:{event_id}"
    if kind == "failed":
        if item.get("severity") != "permanent" or item.get("reason") in MAILGUN_NOT_BOUNCES:
            return []  # temporary: Mailgun tries again itself
        status = item.get("delivery-status")
        code = status.get("code") if isinstance(status, dict) else None
        return _bounced(outbox_id, sender_domain, at, code if isinstance(code, int) else None,
                        f"failed: {item.get('reason') or 'permanent'}", key)
    if kind == "complained":
        return _opted_out(outbox_id, sender_domain, at, "mailgun:complained", "spam complaint", "spam_complaint", key)
    return _opted_out(outbox_id, sender_domain, at, "mailgun:unsubscribed", "unsubscribed", "unsubscribed", key)
