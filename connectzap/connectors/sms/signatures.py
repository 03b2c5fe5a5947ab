"""Twilio's webhook signature: ``X-Twilio-Signature: base64(HMAC-SHA1(url + sorted form params))``.

The signed string is the full URL Twilio called (scheme, host, path and query string) followed by
every form parameter of the body, sorted by name, each written as name then value with nothing
between. The key is the account's auth token. A URL may be signed with or without its default
port (``:443``), so both spellings are checked, as Twilio's own libraries do.

A body that is not ``application/x-www-form-urlencoded`` (Twilio's JSON webhooks) is not accepted
here: nothing we receive on ``/webhooks/sms`` is sent that way.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ...core.errors import SignatureError
from ...core.signatures import SecretLike, any_equal, as_key, mac, secret_keys

SIGNATURE_HEADER = "x-twilio-signature"
DEFAULT_PORTS = {"https": 443, "http": 80}


def form_params(body: bytes) -> list[tuple[str, str]]:
    """The form parameters of a raw ``application/x-www-form-urlencoded`` body, as sent."""
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise SignatureError("the body is not UTF-8 form data") from None


def signed_string(url: str, params: Iterable[tuple[str, str]]) -> bytes:
    """What Twilio signs: the URL, then each parameter name and value, in name order (a name given
    several times: its distinct values in order)."""
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        by_name.setdefault(name, set()).add(value)
    parts = [url]
    for name in sorted(by_name):
        parts.extend(name + value for value in sorted(by_name[name]))
    return "".join(parts).encode("utf-8")


def sign_twilio(url: str, params: Iterable[tuple[str, str]], auth_token: SecretLike) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for a POST of ``params`` to ``url``."""
    return base64.b64encode(mac(as_key(auth_token), signed_string(url, params), "sha1")).decode()


def url_spellings(url: str) -> list[str]:
    """``url`` as given and with its default port added or removed."""
    parts = urlsplit(url)
    default = DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname or ""
    if default is None or not host:
        return [url]
    if parts.port is None:
        other = parts._replace(netloc=f"{parts.netloc}:{default}")
    elif parts.port == default:
        other = parts._replace(netloc=parts.netloc.rsplit(":", 1)[0])
    else:
        return [url]
    return [url, urlunsplit(other)]


def verify_twilio(urls: Sequence[str], body: bytes, header: str | None,
                  auth_tokens: SecretLike | Iterable[SecretLike]) -> None:
    """Raise :class:`SignatureError` unless ``header`` signs ``body`` posted to one of ``urls``
    (the address the request arrived at and the configured public one) with one of the tokens.
    Pure: the raw request in, no state; no token, no header or a mismatch all fail."""
    keys = secret_keys(auth_tokens)
    if not header:
        raise SignatureError("X-Twilio-Signature missing")
    try:
        given = base64.b64decode(header.strip(), validate=True)
    except ValueError:
        raise SignatureError("X-Twilio-Signature is not base64") from None
    params = form_params(body)
    candidates = [mac(key, signed_string(spelling, params), "sha1")
                  for url in urls for spelling in url_spellings(url) for key in keys]
    if not any_equal(candidates, given):
        raise SignatureError("X-Twilio-Signature does not match")
