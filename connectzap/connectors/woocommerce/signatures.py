"""WooCommerce's webhook signature: ``X-WC-Webhook-Signature: base64(HMAC-SHA256(raw body))``,
keyed with the webhook's secret."""

from __future__ import annotations

from collections.abc import Iterable

from ...core.signatures import SecretLike, sign_hmac, verify_hmac


def sign_woocommerce(body: bytes, secret: SecretLike) -> str:
    return sign_hmac(body, secret, encoding="base64")


def verify_woocommerce(body: bytes, header: str | None, secrets: SecretLike | Iterable[SecretLike]) -> None:
    verify_hmac(body, header, secrets, encoding="base64")
