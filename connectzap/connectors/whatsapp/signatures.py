"""Meta's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``,
keyed with the app secret."""

from __future__ import annotations

from collections.abc import Iterable

from ...core.signatures import SecretLike, sign_hmac, verify_hmac


def sign_meta(body: bytes, app_secret: SecretLike) -> str:
    return sign_hmac(body, app_secret, prefix="sha256=")


def verify_meta(body: bytes, header: str | None, app_secrets: SecretLike | Iterable[SecretLike]) -> None:
    verify_hmac(body, header, app_secrets, prefix="sha256=")
