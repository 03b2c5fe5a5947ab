"""The email providers' webhook authentication, and connectzap's own signed unsubscribe links,
as pure functions over what the request carries.

Postmark signs nothing: it calls the webhook URL with HTTP Basic credentials the business puts in
it (``https://user:password@host/webhooks/email``), over https. :func:`verify_basic_auth` fails
closed -- no header, another scheme, a wrong user or password, or no password configured all raise
:class:`SignatureError` -- and compares in constant time; :func:`sign_basic_auth` is its twin for tests.

An unsubscribe link served by connectzap (``unsubscribe_base_url``) carries a token:
:func:`sign_unsubscribe` makes it (the sender, and tests), :func:`verify_unsubscribe` checks it. The
token names the contact by its keyed hash (the ledger's ``contact_key``, never the address), the
consent category and medium it withdraws, and when it expires, with an HMAC-SHA256 over all four.
Verification fails closed: a malformed token, one signed with another key, or one past its expiry
raises :class:`SignatureError`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ...core.errors import SignatureError
from ...core.signatures import SecretLike, any_equal, as_key, mac, secret_keys

TOKEN_VERSION = "u1"
_TOKEN = re.compile(r"u1\.([0-9a-f]{16,64})\.([a-z_]{1,32})\.([a-z0-9_]{1,16})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class UnsubscribeClaim:
    """What a valid unsubscribe token says: whose consent (``contact_key``), for which category and
    medium, until when (``expires``, seconds since the epoch), and ``reference`` -- a short,
    non-secret prefix of its signature that names this token in the consent's proof."""

    contact_key: str
    category: str
    medium: str
    expires: int
    reference: str


def unsubscribe_key(install_secret: bytes) -> bytes:
    """The key unsubscribe tokens are signed with, derived from the install's secret so a token
    cannot be mistaken for any other keyed hash connectzap makes."""
    return hmac.new(install_secret, b"connectzap:email-unsubscribe:v1", "sha256").digest()


def _token_mac(key: bytes, contact_key: str, category: str, medium: str, expires: int) -> str:
    signed = f"{TOKEN_VERSION}.{contact_key}.{category}.{medium}.{expires}".encode()
    return base64.urlsafe_b64encode(mac(key, signed)).decode().rstrip("=")


def sign_unsubscribe(contact_key: str, category: str, medium: str, expires: int, key: SecretLike) -> str:
    """The token of an unsubscribe link: URL-safe (letters, digits, ``.``, ``_``, ``-``)."""
    signature = _token_mac(as_key(key), contact_key, category, medium, expires)
    return f"{TOKEN_VERSION}.{contact_key}.{category}.{medium}.{expires}.{signature}"


def verify_unsubscribe(token: str | None, key: SecretLike, now: float) -> UnsubscribeClaim:
    """The claim of ``token``, or :class:`SignatureError`: malformed, signed with another key, or
    expired at ``now``. The signature is checked before the expiry, so a forged token learns nothing."""
    if not key:
        raise SignatureError("no unsubscribe key configured")
    found = _TOKEN.fullmatch(token or "")
    if found is None:
        raise SignatureError("the unsubscribe link is malformed")
    contact_key, category, medium, expires_text, given = found.groups()
    expires = int(expires_text)
    expected = _token_mac(as_key(key), contact_key, category, medium, expires)
    if not any_equal([expected.encode()], given.encode()):
        raise SignatureError("the unsubscribe link's signature does not match")
    if now > expires:
        raise SignatureError("the unsubscribe link has expired")
    return UnsubscribeClaim(contact_key, category, medium, expires, given[:12])


def sign_basic_auth(username: str, password: SecretLike) -> str:
    secret = password.decode() if isinstance(password, bytes) else password
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


def verify_basic_auth(header: str | None, username: str, passwords: SecretLike | Iterable[SecretLike]) -> None:
    keys = secret_keys(passwords)  # first: with no password configured nothing passes
    if not header:
        raise SignatureError("Authorization header missing")
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise SignatureError("Authorization must use the Basic scheme")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("Authorization is not valid base64") from None
    expected = [f"{username}:".encode() + key for key in keys]
    if not any_equal(expected, given):
        raise SignatureError("user or password does not match")
