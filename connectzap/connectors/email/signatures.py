"""The email providers' webhook authentication, pure functions over the request's header.

Postmark signs nothing: it calls the webhook URL with HTTP Basic credentials the business puts in
it (``https://user:password@host/webhooks/email``), over https. :func:`verify_basic_auth` fails
closed -- no header, another scheme, a wrong user or password, or no password configured all raise
:class:`SignatureError` -- and compares in constant time; :func:`sign_basic_auth` is its twin for tests.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from ...core.errors import SignatureError
from ...core.signatures import SecretLike, any_equal, secret_keys


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
