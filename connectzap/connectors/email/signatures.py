"""The email providers' webhook authentication, and connectzap's own signed unsubscribe links,
as pure functions over what the request carries.

Postmark signs nothing: it calls the webhook URL with HTTP Basic credentials the business puts in
it (``https://user:password@host/webhooks/email``), over https. :func:`verify_basic_auth` fails
closed -- no header, another scheme, a wrong user or password, or no password configured all raise
:class:`SignatureError` -- and compares in constant time; :func:`sign_basic_auth` is its twin for tests.

SendGrid's Event Webhook is signed with ECDSA P-256 over SHA-256 of the timestamp header's text
followed by the raw body (``X-Twilio-Email-Event-Webhook-Signature``, base64 DER; and
``X-Twilio-Email-Event-Webhook-Timestamp``), verified with the public key SendGrid shows
(:func:`verify_sendgrid`; :func:`sign_sendgrid` signs with a private key, for tests). Mailgun
signs inside the body: ``signature.signature`` is the hex HMAC-SHA256, under the webhook signing
key, of ``signature.timestamp`` followed by ``signature.token`` (:func:`verify_mailgun`,
:func:`sign_mailgun`). Both refuse a timestamp further than ``tolerance`` seconds from now.

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
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ...core.errors import SignatureError
from ...core.signatures import SecretLike, any_equal, as_key, check_age, mac, secret_keys

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"

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


# --- SendGrid: ECDSA P-256 over timestamp + body ------------------------------------------------

def sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The P-256 public key SendGrid shows for a signed Event Webhook: base64 DER as its settings page
    gives it, or PEM. ValueError for anything else."""
    raw = text.strip()
    try:
        if raw.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(raw.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(raw, validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise ValueError("the public key is not a base64 (or PEM) public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the public key is not an ECDSA P-256 key")
    return key


def sign_sendgrid(body: bytes, timestamp: int | str, private_key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    """The two headers of a signed Event Webhook request."""
    signature = private_key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SENDGRID_SIGNATURE: base64.b64encode(signature).decode(), SENDGRID_TIMESTAMP: str(timestamp)}


def verify_sendgrid(body: bytes, signature: str | None, timestamp: str | None, public_key: str | None, *,
                    tolerance: float = 300, now: float | None = None) -> None:
    if not public_key:
        raise SignatureError("no public key configured")
    if not signature or not timestamp:
        raise SignatureError(f"{SENDGRID_SIGNATURE} and {SENDGRID_TIMESTAMP} are required")
    try:
        check_age(int(timestamp), tolerance, now)
    except ValueError:
        raise SignatureError("the timestamp is not a number") from None
    try:
        key = sendgrid_public_key(public_key)
        der = base64.b64decode(signature.strip(), validate=True)
    except ValueError as exc:
        raise SignatureError(str(exc) if "public key" in str(exc) else "the signature is not valid base64") from None
    try:
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("signature does not match") from None


# --- Mailgun: HMAC-SHA256 over timestamp + token, inside the body --------------------------------

def sign_mailgun(timestamp: int | str, token: str, key: SecretLike) -> dict[str, str]:
    """The ``signature`` object of a Mailgun webhook body."""
    digest = mac(as_key(key), f"{timestamp}{token}".encode()).hex()
    return {"timestamp": str(timestamp), "token": token, "signature": digest}


def verify_mailgun(body: bytes, keys: SecretLike | Iterable[SecretLike], *, tolerance: float = 300,
                   now: float | None = None) -> None:
    candidates = secret_keys(keys)  # first: with no key configured nothing passes
    try:
        signed = json.loads(body).get("signature")
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise SignatureError("the body is not a Mailgun webhook (JSON with a signature)") from None
    if not isinstance(signed, dict):
        raise SignatureError("the body has no signature object")
    timestamp, token, given = signed.get("timestamp"), signed.get("token"), signed.get("signature")
    if not isinstance(timestamp, (str, int)) or isinstance(timestamp, bool) or not isinstance(token, str) \
            or not isinstance(given, str) or not token:
        raise SignatureError("signature needs timestamp, token and signature")
    try:
        check_age(int(timestamp), tolerance, now)
    except ValueError:
        raise SignatureError("the timestamp is not a number") from None
    message = f"{timestamp}{token}".encode()
    if not any_equal((mac(k, message).hex().encode() for k in candidates), given.strip().lower().encode()):
        raise SignatureError("signature does not match")
