"""Ordering keys: which events must be applied one at a time, in journal order.

An event's ordering key names what it is about (an order, a lead, a contact). The dispatcher
never runs two events with the same key at once, on any worker, and runs them in journal order;
events with different keys (or none) run in parallel. The key is chosen by whoever journals the
event (:attr:`Event.ordering_key`); :func:`key_of` supplies the contact when it is not set.

Keys are stored as a keyed hash (like contacts): a key built from a phone number must not keep
the number at rest.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from .bsuids import is_bsuid
from .models import Event, EventKind
from .errors import InvalidPhoneError
from .phones import to_e164

_CONTACT_KINDS = {EventKind.INBOUND_MESSAGE, EventKind.CONSENT_CHANGED, EventKind.SEND, EventKind.HANDOFF}


def contact(phone: str) -> str:
    """The ordering key of everything about one contact (inbound messages, consent changes, sends)."""
    return contact_e164(to_e164(phone))


def contact_e164(e164: str) -> str:
    """:func:`contact` for a number already in E.164 (a bulk import has parsed each number once)."""
    return f"contact:{e164}"


def key_of(event: Event) -> str | None:
    """The event's ordering key: its own, else the contact for contact-shaped kinds, else none."""
    if event.ordering_key:
        return event.ordering_key
    if event.kind not in _CONTACT_KINDS:
        return None
    data: dict[str, Any] = event.data
    who = data if event.kind == EventKind.CONSENT_CHANGED else \
        (data.get("contact") if event.kind in (EventKind.INBOUND_MESSAGE, EventKind.HANDOFF) else data.get("to")) or {}
    if isinstance(who, str):
        who = {"user_id": who} if is_bsuid(who) else {"phone": who}
    phone = who.get("phone") if isinstance(who, dict) else None
    if not phone:
        # Known by BSUID only: the BSUID orders (the same customer's number, once known, is another key).
        user_id = who.get("user_id") if isinstance(who, dict) else None
        return f"contact:{user_id}" if is_bsuid(user_id) else None
    try:
        return contact(str(phone))
    except InvalidPhoneError:
        return None  # the event fails where it is read; ordering it is moot


def hashed(key: str, secret: bytes) -> str:
    """The stored form of an ordering key (HMAC-SHA256, hex, 32 chars)."""
    return hmac.new(secret, b"ordering:" + key.encode(), hashlib.sha256).hexdigest()[:32]


def lock_id(stored: str) -> int:
    """A signed 64-bit number for PostgreSQL's advisory locks, taken from the stored hash."""
    value = int(stored[:16], 16)
    return value - (1 << 64) if value >= 1 << 63 else value
