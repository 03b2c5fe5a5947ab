"""The SMS connector: Twilio webhooks in (statuses, STOP/START), the SMS channel out."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ...core import clock
from ...core.channel import Channel
from ...core.errors import SignatureError
from ...core.phones import contact_key
from ...core.models import Event
from ..base import Connector, WebhookRequest
from . import webhooks
from .channel import TwilioSmsChannel
from .settings import SmsSettings
from .signatures import SIGNATURE_HEADER, verify_twilio

if TYPE_CHECKING:
    from ...core.app import Connectzap


class SmsConnector(Connector):
    name: ClassVar[str] = "sms"
    title: ClassVar[str] = "SMS (Twilio)"
    settings_model = SmsSettings
    routes: ClassVar[tuple[str, ...]] = ("/webhooks/sms",)

    settings: SmsSettings

    def __init__(self, settings: SmsSettings, app: Connectzap) -> None:
        super().__init__(settings, app)

    def signed_urls(self, request: WebhookRequest) -> list[str]:
        """The URLs Twilio may have signed: the one the request arrived at and, behind a proxy that
        changes it, ``status_callback_url`` with the request's query string."""
        urls = [request.url]
        public = self.settings.status_callback_url
        if public:
            query = request.url.partition("?")[2]
            urls.append(f"{public}?{query}" if query else public)
        return urls

    def verify_request(self, request: WebhookRequest) -> None:
        token = self.settings.auth_token.get_secret_value()
        if not token:
            raise SignatureError("no auth_token configured in [connectors.sms]")
        verify_twilio(self.signed_urls(request), request.body, request.header(SIGNATURE_HEADER), token)

    def parse(self, request: WebhookRequest) -> list[Event]:
        return webhooks.parse(request.body, request.query, account_sid=self.settings.account_sid, now=clock.utcnow(),
                              key_of=lambda e164: contact_key(e164, self.app.secret),
                              opt_out=self.settings.opt_out_keywords, opt_in=self.settings.opt_in_keywords)

    def make_channel(self) -> Channel:
        return TwilioSmsChannel(self.settings)
