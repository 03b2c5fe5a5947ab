"""Business-scoped user ids (BSUIDs): how WhatsApp names a customer to one business portfolio.

``US.13491208655302741918``: the customer's ISO 3166 alpha-2 country, a dot, then up to 128
letters or digits (Meta, "Business-scoped user IDs", 2026). A customer with a username may come
with a BSUID and no phone number; a new phone number gives a new BSUID. At rest a BSUID is only
ever kept as its keyed hash, like a phone number (:func:`bsuid_key`).
"""

from __future__ import annotations

import re

from .errors import InvalidRecipientError
from .phones import contact_key

BSUID = re.compile(r"[A-Z]{2}\.[A-Za-z0-9]{1,128}")
"""A BSUID. A parent BSUID (``US.ENT.…``, shared across portfolios) does not match: it is no recipient."""

_MEANT_AS_BSUID = re.compile(r"\s*[A-Za-z]{2}\.")  # no phone number starts with two letters and a dot


def is_bsuid(text: object) -> bool:
    return isinstance(text, str) and BSUID.fullmatch(text) is not None


def checked_bsuid(text: str) -> str:
    """``text`` (stripped) when it is a BSUID, else :class:`InvalidRecipientError`."""
    value = str(text).strip()
    if not is_bsuid(value):
        raise InvalidRecipientError("not a business-scoped user id (two capital letters, a dot, then up to 128 "
                                    "letters or digits, e.g. US.13491208655302741918)", field="user_id")
    return value


def bsuid_key(user_id: str, secret: bytes) -> str:
    """The keyed hash of a BSUID. The prefix keeps it apart from every phone number's hash."""
    return contact_key("bsuid:" + user_id, secret)


def mask(user_id: str | None) -> str:
    """A BSUID safe for logs: its country and last two characters only."""
    if not user_id:
        return "?"
    return user_id[:3] + "*" * max(len(user_id) - 5, 0) + user_id[-2:]


def split(recipient: str | None) -> tuple[str | None, str | None]:
    """An outbox recipient (E.164 or a BSUID) as ``(phone, user_id)``."""
    if not recipient:
        return None, None
    return (None, recipient) if is_bsuid(recipient) else (recipient, None)


def identify(text: str, country: str | None = None) -> dict[str, str | None]:
    """A recipient written as one string (REST, CLI): ``{"user_id": ...}`` for a BSUID, checked
    (:class:`InvalidRecipientError` when it starts like one but is malformed), else
    ``{"phone": ..., "country": ...}`` for the phone-number rules to read."""
    if _MEANT_AS_BSUID.match(text):
        return {"user_id": checked_bsuid(text)}
    return {"phone": text, "country": country}
