"""The email connector: the email channel, ``POST /webhooks/email`` for the provider's bounces
and complaints (Postmark), and, with ``unsubscribe_base_url``, connectzap's own one-click unsubscribe
(``/unsubscribe/email/{token}``: :mod:`.unsubscribe_page`)."""

from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar


from ...core import clock
from ...core.channel import Channel
from ...core.errors import ConfigurationError, SignatureError
from ...core.models import Event
from ..base import Connector, WebhookRequest, WebhookResponse
from . import unsubscribe_page as page
from .channel import EmailChannel
from .settings import EmailSettings
from .signatures import (SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP, UnsubscribeClaim, unsubscribe_key,
                         verify_basic_auth, verify_mailgun, verify_sendgrid, verify_unsubscribe)
from .unsubscribe import ROUTE
from .webhooks import SOURCE, parse_mailgun, parse_postmark, parse_sendgrid

if TYPE_CHECKING:
    from ...core.app import Connectzap
    from ..base import ConnectorSettings


class EmailConnector(Connector):
    name: ClassVar[str] = SOURCE
    title: ClassVar[str] = "Email (SMTP)"
    settings_model = EmailSettings
    routes = ("/webhooks/email", ROUTE)
    methods = ("GET", "POST")
    settings: EmailSettings

    def __init__(self, settings: ConnectorSettings, app: Connectzap) -> None:
        assert isinstance(settings, EmailSettings)
        config = app.settings.config_path
        try:  # relative paths in the file mean the config file's folder, as everywhere in it
            settings = settings.against(config.parent if config is not None else Path.cwd())
        except ValueError as exc:
            raise ConfigurationError(f"connector email cannot start: [connectors.email] {exc}") from None
        super().__init__(settings, app)
        self.unsubscribe_key = unsubscribe_key(app.secret)

    @property
    def sender_name(self) -> str:
        name, address = parseaddr(self.settings.from_address)
        return name or address

    def claim(self, request: WebhookRequest) -> UnsubscribeClaim:
        """The valid token of an unsubscribe request, or :class:`SignatureError` (also while connectzap
        serves no unsubscribe: ``unsubscribe_base_url`` unset)."""
        if self.settings.unsubscribe_base_url is None:
            raise SignatureError("connectzap serves no unsubscribe links (unsubscribe_base_url is not set)")
        return verify_unsubscribe(page.token_of(request), self.unsubscribe_key, clock.now())

    def handshake(self, request: WebhookRequest) -> WebhookResponse | None:
        """The unsubscribe's pages: a GET (never a change), a refused token or a POST without RFC
        8058's body are answered here; only a valid one-click POST goes on to be journaled. The
        bounce webhook takes POST only."""
        if not page.is_unsubscribe(request):
            if request.method != "POST":
                return WebhookResponse(status=405, body={"error": "method_not_allowed", "detail": "use POST"})
            return None
        try:
            claim = self.claim(request)
        except SignatureError:
            return page.invalid_page(self.settings.list_unsubscribe_mailto)
        if request.method != "POST":
            return page.confirmation_page(self.sender_name, claim)
        if not page.one_click_body(request.body):
            return page.wrong_method_page()
        return None

    def verify_request(self, request: WebhookRequest) -> None:
        if page.is_unsubscribe(request):
            self.claim(request)
            return
        settings = self.settings
        if settings.webhook_provider == "sendgrid":
            verify_sendgrid(request.body, request.header(SENDGRID_SIGNATURE), request.header(SENDGRID_TIMESTAMP),
                            settings.webhook_public_key, tolerance=settings.webhook_tolerance_seconds)
        elif settings.webhook_provider == "mailgun":
            verify_mailgun(request.body, [k.get_secret_value() for k in settings.webhook_signing_keys],
                           tolerance=settings.webhook_tolerance_seconds)
        else:
            verify_basic_auth(request.header("authorization"), settings.webhook_username,
                              [p.get_secret_value() for p in settings.webhook_passwords])

    def parse(self, request: WebhookRequest) -> list[Event]:
        if page.is_unsubscribe(request):
            return page.unsubscribe_events(self.claim(request), clock.now(), self.name)
        parse = {"sendgrid": parse_sendgrid, "mailgun": parse_mailgun}.get(self.settings.webhook_provider,
                                                                          parse_postmark)
        return parse(request.body, self.settings.sender_domain)

    def accepted(self, request: WebhookRequest, received: int, duplicates: int) -> WebhookResponse:
        if page.is_unsubscribe(request):
            return page.done_page(self.sender_name)
        return super().accepted(request, received, duplicates)

    def make_channel(self) -> Channel | None:
        return EmailChannel(self.settings, self.unsubscribe_key, self.app.db)

    def status_lines(self) -> list[tuple[str, str]]:
        return [("SMTP relay", f"{self.settings.host}:{self.settings.smtp_port} ({self.settings.tls})")]
