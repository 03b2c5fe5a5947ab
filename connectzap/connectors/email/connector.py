"""The email connector: the email channel, and ``POST /webhooks/email`` for the provider's bounces
and complaints (Postmark)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ...core.channel import Channel
from ...core.errors import ConfigurationError
from ...core.models import Event
from ..base import Connector, WebhookRequest
from .channel import EmailChannel
from .settings import EmailSettings
from .signatures import verify_basic_auth
from .webhooks import SOURCE, parse_postmark

if TYPE_CHECKING:
    from ...core.app import Connectzap
    from ..base import ConnectorSettings


class EmailConnector(Connector):
    name: ClassVar[str] = SOURCE
    title: ClassVar[str] = "Email (SMTP)"
    settings_model = EmailSettings
    routes = ("/webhooks/email",)
    settings: EmailSettings

    def __init__(self, settings: ConnectorSettings, app: Connectzap) -> None:
        assert isinstance(settings, EmailSettings)
        config = app.settings.config_path
        try:  # relative paths in the file mean the config file's folder, as everywhere in it
            settings = settings.against(config.parent if config is not None else Path.cwd())
        except ValueError as exc:
            raise ConfigurationError(f"connector email cannot start: [connectors.email] {exc}") from None
        super().__init__(settings, app)

    def verify_request(self, request: WebhookRequest) -> None:
        verify_basic_auth(request.header("authorization"), self.settings.webhook_username,
                          [p.get_secret_value() for p in self.settings.webhook_passwords])

    def parse(self, request: WebhookRequest) -> list[Event]:
        return parse_postmark(request.body, self.settings.sender_domain)

    def make_channel(self) -> Channel | None:
        return EmailChannel(self.settings)

    def status_lines(self) -> list[tuple[str, str]]:
        return [("SMTP relay", f"{self.settings.host}:{self.settings.smtp_port} ({self.settings.tls})")]
