"""Email addresses as recipients: checked and normalised with ``email-validator`` before a message
is queued, and kept at rest like phone numbers -- the contact key of a customer known only by their
address is its keyed hash; the address itself stays on the message only until it is settled."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from .phones import contact_key


MAX_LENGTH = 160
"""The longest address kept (the outbox's recipient column)."""


def normalized(address: str) -> str:
    """``address`` in its normal form (the domain lower-cased, Unicode normalised); a ValueError
    saying what is wrong when it is no email address. Syntax only: no DNS lookup."""
    try:
        found = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    if len(found) > MAX_LENGTH:
        raise ValueError(f"email addresses of more than {MAX_LENGTH} characters are not supported")
    return found


def email_key(address: str, secret: bytes) -> str:
    """The contact key of a customer known only by ``address`` (normalised): a keyed hash in its own
    namespace, so it never equals a number's."""
    return contact_key("email:" + address.casefold(), secret)


def mask(address: str) -> str:
    """An address safe for logs and pages: its first character and its domain."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}" if local else "?"


def masked_recipient(recipient: str, medium: str) -> str:
    """A message's recipient safe for logs and pages: an address masked as one, else as a number."""
    from .media import EMAIL
    from .phones import mask as mask_number
    return mask(recipient) if medium == EMAIL else mask_number(recipient)
