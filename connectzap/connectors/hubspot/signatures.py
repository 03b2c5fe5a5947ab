"""HubSpot's webhook signatures, v1 to v3, keyed with the app's client secret.

* v1: ``X-HubSpot-Signature`` = hex SHA-256 of secret + body;
* v2: the same over secret + method + URI + body;
* v3: ``X-HubSpot-Signature-v3`` = base64 HMAC-SHA256 of method + URI + body + timestamp, with
  ``X-HubSpot-Request-Timestamp`` (milliseconds) checked against a tolerance.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from urllib.parse import unquote

from ...core.errors import SignatureError
from ...core.signatures import SecretLike, any_equal, as_key, check_age, mac, secret_keys


def sign_hubspot_v1(body: bytes, client_secret: SecretLike) -> str:
    return hashlib.sha256(as_key(client_secret) + body).hexdigest()


def sign_hubspot_v2(method: str, uri: str, body: bytes, client_secret: SecretLike) -> str:
    return hashlib.sha256(as_key(client_secret) + method.upper().encode() + uri.encode() + body).hexdigest()


def _v3_uri(uri: str) -> str:
    # HubSpot signs the URI with these percent-escapes decoded (its docs list them).
    for escaped in ("%3A", "%2F", "%3F", "%40", "%21", "%24", "%27", "%28", "%29", "%2A", "%2C", "%3B"):
        uri = uri.replace(escaped, unquote(escaped)).replace(escaped.lower(), unquote(escaped))
    return uri


def sign_hubspot_v3(method: str, uri: str, body: bytes, timestamp: int | str, client_secret: SecretLike) -> str:
    message = method.upper().encode() + _v3_uri(uri).encode() + body + str(timestamp).encode()
    return base64.b64encode(mac(as_key(client_secret), message)).decode()


def verify_hubspot_v1(body: bytes, header: str | None, secrets: SecretLike | Iterable[SecretLike]) -> None:
    if not header:
        raise SignatureError("X-HubSpot-Signature missing")
    given = header.strip().lower().encode()
    if not any_equal((sign_hubspot_v1(body, k).encode() for k in secret_keys(secrets)), given):
        raise SignatureError("signature does not match")


def verify_hubspot_v2(method: str, uri: str, body: bytes, header: str | None,
                      secrets: SecretLike | Iterable[SecretLike]) -> None:
    if not header:
        raise SignatureError("X-HubSpot-Signature missing")
    given = header.strip().lower().encode()
    if not any_equal((sign_hubspot_v2(method, uri, body, k).encode() for k in secret_keys(secrets)), given):
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
    check_age(ts_ms / 1000, tolerance, now)
    given = header.strip().encode()
    keys = secret_keys(secrets)
    if not any_equal((sign_hubspot_v3(method, uri, body, timestamp, k).encode() for k in keys), given):
        raise SignatureError("signature does not match")
