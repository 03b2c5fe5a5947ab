"""Meta's alternate callback URLs: send one number's (or one business account's) webhooks to a
service other than the app's default callback, so several services can each receive their own
numbers (``connectzap whatsapp webhook set|show``).

Request shapes, from Meta's "Webhook overrides" page (developers.facebook.com, updated
2026-06-28, read through the search tool on 2026-12-02):

- per business account: ``POST /{waba-id}/subscribed_apps`` with ``override_callback_uri``
  (at most 200 characters) and ``verify_token``; answer ``{"success": true}``; ``GET
  /{waba-id}/subscribed_apps`` lists the subscribed apps, each with its ``override_callback_uri``;
- per phone number: ``POST /{phone-number-id}`` with ``webhook_configuration``
  {``override_callback_uri``, ``verify_token``}; ``GET /{phone-number-id}?fields=webhook_configuration``
  answers which URL is used at each level (``phone_number``, ``whatsapp_business_account``,
  ``application``). The search tool's excerpts of that page showed the business-account section
  verbatim; they did not reach the phone-number section, whose shapes are as the task brief gives
  them (not seen verbatim).

Meta checks a new URL with the usual ``hub.verify_token`` handshake before it is saved, so the
service behind it must already answer. The verify token is a secret: it is sent to Meta only, and
kept in a :class:`~pydantic.SecretStr` so no repr, log or error shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from ...core.errors import ConfigurationError, PayloadError
from .client import GraphClient

MAX_CALLBACK_LENGTH = 200
"""Meta's limit on ``override_callback_uri``."""
LEVELS = ("phone_number", "whatsapp_business_account", "application")
"""Where a number's webhooks can be configured, in the order Meta tries them."""


@dataclass(frozen=True)
class CallbackOverride:
    """An alternate callback URL and the token Meta's handshake sends to it."""

    callback_url: str
    verify_token: SecretStr

    def __post_init__(self) -> None:
        parts = urlsplit(self.callback_url)
        if parts.scheme != "https" or not parts.netloc:
            raise PayloadError("the callback URL must be an https:// URL (Meta refuses others)", field="callback_url")
        if len(self.callback_url) > MAX_CALLBACK_LENGTH:
            raise PayloadError(f"the callback URL must be at most {MAX_CALLBACK_LENGTH} characters, "
                               f"got {len(self.callback_url)}", field="callback_url")
        if not self.verify_token.get_secret_value():
            raise PayloadError("the verify token must not be empty", field="verify_token")

    def body(self) -> dict[str, str]:
        return {"override_callback_uri": self.callback_url, "verify_token": self.verify_token.get_secret_value()}


def _number(client: GraphClient, phone_number_id: str | None) -> str:
    number = phone_number_id or client.settings.phone_number_id
    if not number:
        raise ConfigurationError("no phone number: set phone_number_id in [connectors.whatsapp] or pass --number")
    return number


def _waba(client: GraphClient, waba_id: str | None) -> str:
    waba = waba_id or client.settings.waba_id
    if not waba:
        raise ConfigurationError("no business account: set waba_id in [connectors.whatsapp] or pass --waba-id")
    return waba


async def set_for_number(client: GraphClient, override: CallbackOverride, phone_number_id: str | None = None) -> str:
    """Send the number's webhooks to ``override``; returns the number's id."""
    number = _number(client, phone_number_id)
    await client.request("POST", number, json_body={"webhook_configuration": override.body()})
    return number


async def set_for_waba(client: GraphClient, override: CallbackOverride, waba_id: str | None = None) -> str:
    """Send the business account's webhooks (numbers without their own override) to ``override``."""
    waba = _waba(client, waba_id)
    await client.request("POST", f"{waba}/subscribed_apps", json_body=override.body())
    return waba


async def show_for_number(client: GraphClient, phone_number_id: str | None = None) -> dict[str, Any]:
    """Which callback URL each level sets for the number (None where it sets none)."""
    number = _number(client, phone_number_id)
    answer = await client.request("GET", number, params={"fields": "webhook_configuration"})
    configured = answer.get("webhook_configuration") or {}
    shown: dict[str, Any] = {"phone_number_id": number, **{level: configured.get(level) for level in LEVELS}}
    shown["in_use"] = next((level for level in LEVELS if shown[level]), None)
    return shown
