"""Generic webhook signature primitives, as pure functions over raw bytes.

The core keeps what any connector may build on: an HMAC of the raw body (hex or base64, with
an optional prefix), Standard Webhooks, and a shared secret. A vendor's own scheme (Meta,
WooCommerce, HubSpot v1-v3) lives in its connector (``connectzap/connectors/NAME/signatures.py``),
built from the helpers below.

Every ``verify_*`` fails closed: it raises :class:`SignatureError` with a reason (never a
secret) unless one of the given secrets produced the signature. Several secrets may be
passed so a secret can rotate without downtime. Every scheme has a ``sign_*`` twin that
tests use to build valid requests.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable, Sequence

from . import clock
from .errors import SignatureError

SecretLike = str | bytes


def as_key(secret: SecretLike) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def secret_keys(secrets: SecretLike | Iterable[SecretLike]) -> list[bytes]:
    """The configured secrets as keys; none at all is a :class:`SignatureError` (fail closed)."""
    items = [secrets] if isinstance(secrets, (str, bytes)) else list(secrets)
    keys = [as_key(s) for s in items if s]
    if not keys:
        raise SignatureError("no secret configured")
    return keys


def mac(key: bytes, message: bytes, algo: str = "sha256") -> bytes:
    return hmac.new(key, message, algo).digest()


def any_equal(candidates: Iterable[bytes], given: bytes) -> bool:
    """Whether ``given`` equals one of ``candidates``, in constant time per candidate."""
    ok = False
    for candidate in candidates:  # no early exit: the same work for every secret
        ok |= hmac.compare_digest(candidate, given)
    return ok


def check_age(timestamp: float, tolerance: float, now: float | None) -> None:
    """Refuse a signed timestamp further than ``tolerance`` seconds from now (a replay)."""
    current = clock.now() if now is None else now  # the engine's clock: tests move it, not wait on it
    if abs(current - timestamp) > tolerance:
        raise SignatureError("timestamp outside the allowed tolerance")


# --- generic HMAC of the raw body (hex or base64, optional prefix) ------------------------

def sign_hmac(body: bytes, secret: SecretLike, *, encoding: str = "hex", prefix: str = "",
              algo: str = "sha256") -> str:
    digest = mac(as_key(secret), body, algo)
    text = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    return prefix + text


def verify_hmac(body: bytes, header: str | None, secrets: SecretLike | Iterable[SecretLike], *,
                encoding: str = "hex", prefix: str = "", algo: str = "sha256") -> None:
    if not header:
        raise SignatureError("signature header missing")
    value = header.strip()
    if prefix:
        if not value.lower().startswith(prefix.lower()):
            raise SignatureError(f"signature must start with {prefix!r}")
        value = value[len(prefix):]
    try:
        given = bytes.fromhex(value) if encoding == "hex" else base64.b64decode(value, validate=True)
    except ValueError:
        raise SignatureError("signature is not valid " + encoding) from None
    if not any_equal((mac(k, body, algo) for k in secret_keys(secrets)), given):
        raise SignatureError("signature does not match")


# --- Standard Webhooks: webhook-id / webhook-timestamp / webhook-signature -------------------

def _standard_key(secret: SecretLike) -> bytes:
    if isinstance(secret, str) and secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return as_key(secret)


def sign_standard(msg_id: str, timestamp: int | str, body: bytes, secret: SecretLike) -> str:
    message = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(mac(_standard_key(secret), message)).decode()


def verify_standard(msg_id: str | None, timestamp: str | None, signature: str | None, body: bytes,
                    secrets: SecretLike | Sequence[SecretLike], *, tolerance: float = 300,
                    now: float | None = None) -> None:
    if not msg_id or not timestamp or not signature:
        raise SignatureError("webhook-id, webhook-timestamp and webhook-signature are required")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not a number") from None
    check_age(ts, tolerance, now)
    items = [secrets] if isinstance(secrets, (str, bytes)) else list(secrets)
    if not [s for s in items if s]:
        raise SignatureError("no secret configured")
    expected = [sign_standard(msg_id, ts, body, s).split(",", 1)[1].encode() for s in items if s]
    for part in signature.split():
        version, _, value = part.partition(",")
        if version == "v1" and any_equal(expected, value.encode()):
            return
    raise SignatureError("signature does not match")


# --- shared secret in a header or query parameter ------------------------------------------

def verify_shared_secret(given: str | None, secrets: SecretLike | Iterable[SecretLike]) -> None:
    if not given:
        raise SignatureError("shared secret missing")
    if not any_equal(secret_keys(secrets), given.encode()):
        raise SignatureError("shared secret does not match")
