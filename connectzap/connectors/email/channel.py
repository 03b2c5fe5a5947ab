"""The email channel: one SMTP conversation per message through the configured relay.

For each send: check the recipient is an email address, compose the email (templates, headers,
the marketing rule), then connect (STARTTLS or TLS from the first byte, login), MAIL FROM, RCPT
TO, DATA. Each stage's failure maps to the exception tree (:mod:`.smtp_errors`); the returned
message id is the Message-ID the channel gave the email.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from email.headerregistry import Address
from email.utils import parseaddr

import aiosmtplib

from ...core.channel import EMAIL, BaseChannel, OutboundSend, Refusal
from ...core.errors import SkippableDeliveryError
from .composing import Composer
from .rate import SendRate
from .settings import EmailSettings
from .smtp_errors import Stage, delivery_error


def recipient_address(recipient: str) -> str:
    """``recipient`` as a bare email address; a phone number, a display name or anything that would
    break a header is a :class:`SkippableDeliveryError` (it is not this medium's address)."""
    value = recipient.strip()
    name, addr = parseaddr(value)
    local, at, domain = addr.rpartition("@")
    if name or addr != value or not at or not local or "." not in domain or any(c in value for c in " \r\n<>,"):
        raise SkippableDeliveryError("the recipient is not an email address", code="invalid_recipient")
    try:
        Address(addr_spec=addr)
    except (ValueError, IndexError):
        raise SkippableDeliveryError("the recipient is not an email address", code="invalid_recipient") from None
    return addr


class EmailChannel(BaseChannel):
    name = "email"
    medium = EMAIL

    def __init__(self, settings: EmailSettings, unsubscribe_key: bytes | None = None) -> None:
        self.settings = settings
        self.composer = Composer(settings, unsubscribe_key)
        self._tls_context: ssl.SSLContext | None = None
        rate = settings.messages_per_second
        self.rate = SendRate(rate) if rate is not None else None

    async def pace(self, message: OutboundSend) -> None:
        if self.rate is not None:
            wait = self.rate.reserve(time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)

    def tls_context(self) -> ssl.SSLContext:
        if self._tls_context is None:  # built once: loading a CA bundle reads files
            ca = self.settings.ca_file
            self._tls_context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
        return self._tls_context

    def messages_per_second(self) -> float | None:
        return self.settings.messages_per_second

    def client(self) -> aiosmtplib.SMTP:
        settings = self.settings
        password = settings.password.get_secret_value() if settings.password is not None else None
        return aiosmtplib.SMTP(hostname=settings.host, port=settings.smtp_port, username=settings.username,
                               password=password, use_tls=settings.tls == "tls",
                               start_tls=settings.tls == "starttls", tls_context=self.tls_context(),
                               local_hostname=settings.helo_name or settings.sender_domain,
                               timeout=settings.timeout_seconds)

    def refusal(self, message: OutboundSend, at: float) -> Refusal | None:
        """The email channel's rule: a marketing email shows its unsubscribe link (:mod:`.unsubscribe`)."""
        why = self.composer.refusal(message)
        return Refusal("unsubscribe_missing", why) if why is not None else None

    async def send(self, message: OutboundSend) -> str:
        address = recipient_address(message.recipient)
        composed = self.composer.compose(message, address)
        smtp = self.client()
        stage: Stage = "connect"
        try:
            await smtp.connect()
            stage = "envelope"
            await smtp.mail(self.settings.sender)
            await smtp.rcpt(address)
            stage = "data"
            await smtp.data(composed.message.as_bytes())
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            smtp.close()
            raise delivery_error(exc, stage) from None
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            smtp.close()  # the relay took the message already; a failed goodbye changes nothing
        return composed.message_id

    def __repr__(self) -> str:
        return f"EmailChannel({self.settings.host}:{self.settings.smtp_port}, {self.settings.tls})"
