"""Ordering keys: which events must be applied one at a time, in journal order.

An event's ordering key names what it is about (an order, a lead, a contact). The dispatcher
never runs two events with the same key at once, on any worker, and runs them in journal order;
events with different keys (or none) run in parallel. The key is chosen by whoever journals the
event (:attr:`Event.ordering_key`); when it is not set, an event about a customer (an inbound
message, a consent change, a send) is ordered by the customer (:func:`subject_of`, :func:`contact`).

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

_CONTACT_KINDS = {EventKind.INBOUND_MESSAGE, EventKind.CONSENT_CHANGED, EventKind.SEND, EventKind.REPLY,
                  EventKind.HANDOFF}


def contact(key: str) -> str:
    """The ordering key of everything about one customer, named by their contact key (the keyed
    hash the store keys them by, :func:`connectzap.core.identities.resolve`): a customer known by a
    number and a linked BSUID has one key, whichever identifier an event names."""
    return f"contact:{key}"


def subject_of(event: Event) -> tuple[str | None, str | None] | None:
    """``(E.164 number, BSUID)`` of the customer a contact-shaped event without its own key is about
    (the number when it has one, else the BSUID), or None: the journal resolves it to the
    customer's contact key and orders the event by :func:`contact`."""
    if event.ordering_key or event.kind not in _CONTACT_KINDS:
        return None
    data: dict[str, Any] = event.data
    who = data if event.kind == EventKind.CONSENT_CHANGED else \
        (data.get("contact") if event.kind in (EventKind.INBOUND_MESSAGE, EventKind.HANDOFF) else data.get("to")) or {}
    if isinstance(who, str):
        who = {"user_id": who} if is_bsuid(who) else {"phone": who}
    if not isinstance(who, dict):
        return None
    phone, user_id = who.get("phone"), who.get("user_id")
    if phone:
        try:
            return to_e164(str(phone)), None
        except InvalidPhoneError:
            return None  # the event fails where it is read; ordering it is moot
    return (None, user_id) if is_bsuid(user_id) else None


def hashed(key: str, secret: bytes) -> str:
    """The stored form of an ordering key (HMAC-SHA256, hex, 32 chars)."""
    return hmac.new(secret, b"ordering:" + key.encode(), hashlib.sha256).hexdigest()[:32]


def lock_id(stored: str) -> int:
    """A signed 64-bit number for PostgreSQL's advisory locks, taken from the stored hash."""
    value = int(stored[:16], 16)
    return value - (1 << 64) if value >= 1 << 63 else value
