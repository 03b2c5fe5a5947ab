"""``[connectors.sms]``: a Twilio account sending SMS, its sender, text templates and quiet hours.

::

    [connectors.sms]
    account_sid = "AC..."
    auth_token = "..."                     # also the key Twilio signs its webhooks with
    from_number = "+15017122661"           # or messaging_service_sid = "MG..."
    status_callback_url = "https://connectzap.example.com/webhooks/sms"
    marketing_send_window = "09:00-20:00"  # recipient's local time; unset: marketing at any hour
    max_segments = 6

    [connectors.sms.templates.order_shipped]
    en = "Your order {{ order }} is on its way: {{ tracking_url }}"
    de = "Ihre Bestellung {{ order }} ist unterwegs: {{ tracking_url }}"

The ``auth_token`` is a secret: it is never logged, shown or put in an error. Without it the
connector does not start (it could neither send nor check a webhook's signature).
"""

from __future__ import annotations

import re

from jinja2 import TemplateSyntaxError
from pydantic import Field, SecretStr, field_validator, model_validator

from ...core.campaigns.send_window import parse_window
from ...core.phones import to_e164
from ...core.wording import counted
from ..base import ConnectorSettings
from .rendering import compile_text

ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
TWILIO_MAX_SEGMENTS = 10
"""Twilio's advice: longer messages may arrive out of order or not at all (and the body is capped
at 1,600 characters)."""


class SmsSettings(ConnectorSettings):
    account_sid: str
    """The Twilio account (``AC`` + 32 hex digits), from the Twilio console's Account Info."""
    auth_token: SecretStr
    """The account's auth token: the REST API's password and the key of ``X-Twilio-Signature``."""
    from_number: str | None = None
    """The sender: a Twilio number (E.164), a short code, or an alphanumeric sender id."""
    messaging_service_sid: str | None = None
    """A messaging service (``MG...``) to send through instead of ``from_number`` (Twilio picks the sender)."""
    api_base_url: str = "https://api.twilio.com"
    """Where Twilio's REST API is (a local stand-in in tests)."""
    status_callback_url: str | None = None
    """The public address of ``POST /webhooks/sms``; Twilio reports each message's status there.
    Unset: no status callbacks (messages stay ``accepted``)."""
    timeout_seconds: float = Field(default=15, gt=0)
    max_segments: int = Field(default=TWILIO_MAX_SEGMENTS, ge=1, le=TWILIO_MAX_SEGMENTS)
    """A text longer than this many segments is refused (``too_many_segments``), never sent in part."""
    marketing_send_window: str | None = "08:00-21:00"
    """Marketing SMS go out only between these times of the recipient's local day (their number's
    time zone); outside it they wait in the queue. Unset: at any hour. Other categories are not held."""
    templates: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Text templates by name and language: ``[connectors.sms.templates.NAME]`` with ``en = "..."``."""
    opt_out_keywords: list[str] = Field(default_factory=lambda: [
        "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"])
    """Inbound texts that revoke SMS consent (Twilio's default opt-out keywords, which it enforces itself)."""
    opt_in_keywords: list[str] = Field(default_factory=lambda: ["START", "YES", "UNSTOP"])
    """Inbound texts that grant SMS consent again (Twilio's default opt-in keywords)."""

    @field_validator("account_sid")
    @classmethod
    def _account_sid(cls, value: str) -> str:
        if not ACCOUNT_SID.match(value):
            raise ValueError("must be AC followed by 32 hex digits (Twilio console -> Account Info)")
        return value

    @field_validator("messaging_service_sid")
    @classmethod
    def _service_sid(cls, value: str | None) -> str | None:
        if value is not None and not MESSAGING_SERVICE_SID.match(value):
            raise ValueError("must be MG followed by 32 hex digits")
        return value

    @field_validator("from_number")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        if value is None or value.isdigit() and len(value) <= 6 or ALPHANUMERIC_SENDER.match(value):
            return value  # a short code or an alphanumeric sender id
        return to_e164(value)

    @field_validator("api_base_url", "status_callback_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a local test)")
        return value.rstrip("/") if value is not None else None

    @field_validator("marketing_send_window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            parse_window(value)
        return value

    @field_validator("templates")
    @classmethod
    def _templates(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for name, languages in value.items():
            for language, text in languages.items():
                try:
                    compile_text(text)
                except TemplateSyntaxError as exc:
                    raise ValueError(f"template {name!r} ({language}) line {exc.lineno}: {exc.message}") from None
        return value

    @field_validator("opt_out_keywords", "opt_in_keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        return [k.strip().upper() for k in value if k.strip()]

    @model_validator(mode="after")
    def _one_sender(self) -> SmsSettings:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise ValueError("set exactly one of from_number and messaging_service_sid")
        return self

    @property
    def window(self) -> tuple[int, int] | None:
        """The marketing send window as minutes after local midnight, or None (no quiet hours)."""
        return parse_window(self.marketing_send_window) if self.marketing_send_window else None

    @property
    def messages_path(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def doctor_notes(self) -> list[str]:
        sender = self.from_number or f"messaging service {self.messaging_service_sid}"
        callbacks = "on" if self.status_callback_url else "off (no status_callback_url)"
        return [f"sends from {sender}; status callbacks {callbacks}; marketing window "
                f"{self.marketing_send_window or 'none'}; at most {counted(self.max_segments, 'segment')}"]
