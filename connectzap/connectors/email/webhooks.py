"""Postmark's bounce and spam-complaint webhooks as events.

A Postmark webhook carries one record (``RecordType``). What it becomes:

* ``Bounce`` of a permanent type (``HardBounce``, ``BadEmailAddress``): a ``failed`` status of the
  message with outcome ``unreachable`` -- the core marks the contact unreachable, as for a WhatsApp
  number that cannot receive. The message is found by the ``X-PM-Metadata-connectzap_outbox``
  header the channel adds, which Postmark hands back in ``Metadata``.
* ``Delivery``: a ``delivered`` status.
* Other bounce types (soft, transient, auto-responder...) change nothing: acknowledged, no event.
* ``SpamComplaint``: the contact opts out of marketing email (:func:`complaint_events`).

The customer's address in the payload is read by nobody and stored nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ...core.errors import PayloadError
from ...core.models import ApiErrorInfo, DeliveryOutcome, Event, EventKind, MessageStatus, StatusValue, utcnow
from .composing import message_id_for

SOURCE = "email"
PERMANENT_BOUNCES = frozenset({"HardBounce", "BadEmailAddress"})
OUTBOX_METADATA = "connectzap_outbox"


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


def _failure(outbox_id: str, sender_domain: str, at: datetime, data: Mapping[str, Any], title: str,
             outcome: DeliveryOutcome, reason: str, dedupe_key: str) -> Event:
    """A ``failed`` status of message ``outbox_id`` with ``outcome``, Postmark's type code as its error."""
    error = ApiErrorInfo(code=data.get("TypeCode") if isinstance(data.get("TypeCode"), int) else None,
                         title=title, details=None)
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
    return [_failure(outbox_id, sender_domain, at, data, str(data.get("Name") or bounce_type),
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
    return [_delivered(outbox_id, sender_domain, at),
            _failure(outbox_id, sender_domain, at, data, "spam complaint", DeliveryOutcome.OPTED_OUT,
                     "spam_complaint", f"postmark:complaint:{record_id}")]
