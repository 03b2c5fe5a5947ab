"""Webhook signature schemes as pure functions over raw bytes.

Every ``verify_*`` fails closed: it raises :class:`SignatureError` with a reason (never a
secret) unless one of the given secrets produced the signature. Several secrets may be
passed so a secret can rotate without downtime. Every scheme has a ``sign_*`` twin that
tests use to build valid requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Sequence
from urllib.parse import unquote

from .errors import SignatureError

SecretLike = str | bytes


def _key(secret: SecretLike) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def _secrets(secrets: SecretLike | Iterable[SecretLike]) -> list[bytes]:
    items = [secrets] if isinstance(secrets, (str, bytes)) else list(secrets)
    keys = [_key(s) for s in items if s]
    if not keys:
        raise SignatureError("no secret configured")
    return keys


def _mac(key: bytes, message: bytes, algo: str = "sha256") -> bytes:
    return hmac.new(key, message, getattr(hashlib, algo)).digest()


def _any_equal(candidates: Iterable[bytes], given: bytes) -> bool:
    ok = False
    for candidate in candidates:  # no early exit: the same work for every secret
        ok |= hmac.compare_digest(candidate, given)
    return ok


def _check_age(timestamp: float, tolerance: float, now: float | None) -> None:
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("timestamp outside the allowed tolerance")


# --- generic HMAC of the raw body (hex or base64, optional prefix) ------------------------

def sign_hmac(body: bytes, secret: SecretLike, *, encoding: str = "hex", prefix: str = "",
              algo: str = "sha256") -> str:
    digest = _mac(_key(secret), body, algo)
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
    if not _any_equal((_mac(k, body, algo) for k in _secrets(secrets)), given):
        raise SignatureError("signature does not match")


# --- Meta (WhatsApp): X-Hub-Signature-256: sha256=<hex> ------------------------------------

def sign_meta(body: bytes, app_secret: SecretLike) -> str:
    return sign_hmac(body, app_secret, prefix="sha256=")


def verify_meta(body: bytes, header: str | None, app_secrets: SecretLike | Iterable[SecretLike]) -> None:
    verify_hmac(body, header, app_secrets, prefix="sha256=")


# --- WooCommerce: X-WC-Webhook-Signature: base64(HMAC-SHA256(body)) ------------------------

def sign_woocommerce(body: bytes, secret: SecretLike) -> str:
    return sign_hmac(body, secret, encoding="base64")


def verify_woocommerce(body: bytes, header: str | None, secrets: SecretLike | Iterable[SecretLike]) -> None:
    verify_hmac(body, header, secrets, encoding="base64")


# --- HubSpot v1 / v2 / v3 -------------------------------------------------------------------

def sign_hubspot_v1(body: bytes, client_secret: SecretLike) -> str:
    return hashlib.sha256(_key(client_secret) + body).hexdigest()


def sign_hubspot_v2(method: str, uri: str, body: bytes, client_secret: SecretLike) -> str:
    return hashlib.sha256(_key(client_secret) + method.upper().encode() + uri.encode() + body).hexdigest()


def _hubspot_v3_uri(uri: str) -> str:
    # HubSpot signs the URI with these percent-escapes decoded (its docs list them).
    for escaped in ("%3A", "%2F", "%3F", "%40", "%21", "%24", "%27", "%28", "%29", "%2A", "%2C", "%3B"):
        uri = uri.replace(escaped, unquote(escaped)).replace(escaped.lower(), unquote(escaped))
    return uri


def sign_hubspot_v3(method: str, uri: str, body: bytes, timestamp: int | str, client_secret: SecretLike) -> str:
    message = method.upper().encode() + _hubspot_v3_uri(uri).encode() + body + str(timestamp).encode()
    return base64.b64encode(_mac(_key(client_secret), message)).decode()


def verify_hubspot_v1(body: bytes, header: str | None, secrets: SecretLike | Iterable[SecretLike]) -> None:
    if not header:
        raise SignatureError("X-HubSpot-Signature missing")
    given = header.strip().lower().encode()
    if not _any_equal((sign_hubspot_v1(body, k).encode() for k in _secrets(secrets)), given):
        raise SignatureError("signature does not match")


def verify_hubspot_v2(method: str, uri: str, body: bytes, header: str | None,
                      secrets: SecretLike | Iterable[SecretLike]) -> None:
    if not header:
        raise SignatureError("X-HubSpot-Signature missing")
    given = header.strip().lower().encode()
    if not _any_equal((sign_hubspot_v2(method, uri, body, k).encode() for k in _secrets(secrets)), given):
        raise SignatureError("signature does not match")


def verify_hubspot_v3(method: str, uri: str, body: bytes, header: str | None, timestamp: str | None,
                      secrets: SecretLike | Iterable[SecretLike], *, tolerance: float = 300,
                      now: float | None = None) -> None:
    if not header:
        raise SignatureError("X-HubSpot-Signature-v3 missing")
    if not timestamp:
        raise SignatureError("X-HubSpot-Request-Timestamp missing")
    try:
        ts_ms = int(timestamp)
    except ValueError:
        raise SignatureError("X-HubSpot-Request-Timestamp is not a number") from None
    _check_age(ts_ms / 1000, tolerance, now)
    given = header.strip().encode()
    keys = _secrets(secrets)
    if not _any_equal((sign_hubspot_v3(method, uri, body, timestamp, k).encode() for k in keys), given):
        raise SignatureError("signature does not match")


# --- Standard Webhooks: webhook-id / webhook-timestamp / webhook-signature -------------------

def _standard_key(secret: SecretLike) -> bytes:
    if isinstance(secret, str) and secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return _key(secret)


def sign_standard(msg_id: str, timestamp: int | str, body: bytes, secret: SecretLike) -> str:
    message = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(_mac(_standard_key(secret), message)).decode()


def verify_standard(msg_id: str | None, timestamp: str | None, signature: str | None, body: bytes,
                    secrets: SecretLike | Sequence[SecretLike], *, tolerance: float = 300,
                    now: float | None = None) -> None:
    if not msg_id or not timestamp or not signature:
        raise SignatureError("webhook-id, webhook-timestamp and webhook-signature are required")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not a number") from None
    _check_age(ts, tolerance, now)
    items = [secrets] if isinstance(secrets, (str, bytes)) else list(secrets)
    if not [s for s in items if s]:
        raise SignatureError("no secret configured")
    expected = [sign_standard(msg_id, ts, body, s).split(",", 1)[1].encode() for s in items if s]
    for part in signature.split():
        version, _, value = part.partition(",")
        if version == "v1" and _any_equal(expected, value.encode()):
            return
    raise SignatureError("signature does not match")


# --- shared secret in a header or query parameter ------------------------------------------

def verify_shared_secret(given: str | None, secrets: SecretLike | Iterable[SecretLike]) -> None:
    if not given:
        raise SignatureError("shared secret missing")
    if not _any_equal(_secrets(secrets), given.encode()):
        raise SignatureError("shared secret does not match")
