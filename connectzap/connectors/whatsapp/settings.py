"""``[connectors.whatsapp]``: Cloud API credentials, webhook secrets, limits.

With no ``access_token`` the connector still runs (webhooks, if secrets are set) and sends go
to the sandbox. With an ``access_token``, ``phone_number_id`` is required, and the webhook
needs ``app_secrets`` and ``verify_token``: a connector that could accept unsigned webhooks
does not start.
"""

from __future__ import annotations

from datetime import date

from pydantic import Field, SecretStr, model_validator

from ..base import ConnectorSettings


class WhatsAppSettings(ConnectorSettings):
    access_token: SecretStr | None = None
    phone_number_id: str | None = None
    """The default sending number. Inbound webhooks for other numbers are accepted and routed by id."""
    phone_number_ids: list[str] = Field(default_factory=list)
    """Further numbers behind the same webhook URL."""
    waba_id: str | None = None
    app_secrets: list[SecretStr] = Field(default_factory=list)
    """Meta app secrets for X-Hub-Signature-256; list the new one first while rotating."""
    verify_token: SecretStr | None = None
    api_base_url: str = "https://graph.facebook.com"
    api_version: str = "v23.0"
    marketing_messages_api: bool = False
    """Send MARKETING templates through /{phone-number-id}/marketing_messages."""
    timeout_seconds: float = Field(default=15.0, gt=0)
    messages_per_second: float = Field(default=80.0, gt=0, le=1000)
    pair_spacing_seconds: float = Field(default=6.0, ge=0)
    """Minimum time between two messages to the same recipient (Meta's pair rate limit)."""
    daily_unique_recipients: int | None = Field(default=None, ge=1)
    """Unique recipients of business-initiated messages per rolling 24 h. Unset: the messaging limit
    Meta reports, in ``phone_number_quality_update`` webhooks and in the phone number's Graph fields
    (250, where every portfolio starts, until one arrives); a number fixes it and Meta's reports
    are ignored."""
    messaging_limit_refresh_minutes: float = Field(default=60.0, ge=0)
    """With ``daily_unique_recipients`` unset, the workers read the messaging limit from the phone
    number's Graph fields when they start and again this often (0: at start only)."""
    coexistence_numbers: list[str] = Field(default_factory=list)
    """Phone number ids also used in the WhatsApp Business app (coexistence): the pacer keeps them at
    Meta's fixed 20 messages per second whatever ``messages_per_second`` says. A number is also
    treated so, without being listed, once a coexistence webhook (message echoes, app contacts,
    history) arrived for it."""
    coexistence_history: bool = False
    """Forward the chat history a coexistence number shares at onboarding (Meta's ``history``
    webhook: up to 180 days of WhatsApp Business app chats) to hooks and CRM connectors as past
    messages (``on_past_message``, ``sync_past_message``). Off: those webhooks are acknowledged and
    nothing of them is journaled. Either way connectzap keeps no history once dispatched."""
    transport: str = "aiohttp"
    """HTTP transport under httpx: "aiohttp" (httpx-aiohttp) or "httpx" (httpx's own)."""

    @model_validator(mode="after")
    def _fail_closed(self) -> WhatsAppSettings:
        if self.access_token is not None and self.enabled:
            missing = [name for name, value in (("phone_number_id", self.phone_number_id),
                                                ("app_secrets", self.app_secrets),
                                                ("verify_token", self.verify_token)) if not value]
            if missing:
                raise ValueError(f"with an access_token, also set {', '.join(missing)}")
        return self

    def doctor_warnings(self, today: date) -> list[str]:
        """The configured ``api_version`` when Meta retires it within 90 days, or it is unknown."""
        from .api_versions import warning
        found = warning(self.api_version, today) if self.enabled else None
        return [found] if found else []

    @property
    def live(self) -> bool:
        """True when sends go to the Cloud API (credentials configured), False for the sandbox."""
        return self.access_token is not None and self.enabled

    @property
    def graph_url(self) -> str:
        return f"{self.api_base_url.rstrip('/')}/{self.api_version.strip('/')}"
