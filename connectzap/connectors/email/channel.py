"""The email channel: SMTP through the configured relay, connections kept across messages.

For each send: check the recipient is an email address, compose the email (templates, headers,
the marketing rule), then take a connection -- a kept one, or a new one (STARTTLS or TLS from the
first byte, login) -- and MAIL FROM, RCPT TO, DATA. Each stage's failure maps to the exception tree
(:mod:`.smtp_errors`); the returned message id is the Message-ID the channel gave the email.

Connections are kept per worker process (each channel instance, in its event loop): after a
message the connection goes back to be used again, until it has carried
``connection_max_messages`` or sat unused for ``connection_idle_seconds``. Any failure closes it.
A kept connection the relay closed meanwhile fails at MAIL FROM, before anything of the message is
sent: the message then goes once more on a new connection. A connection lost during DATA stays
ambiguous (the relay may have the message) and is never retried here.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr

import aiosmtplib

from ...core import clock
from ...core.channel import EMAIL, BaseChannel, OutboundSend, Refusal
from ...core.errors import SkippableDeliveryError
from ...core.store.database import Database
from .composing import Composer
from .rate import SendRate, SharedSendRate
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


@dataclass
class Kept:
    """One SMTP connection and what decides whether it may carry another message."""

    smtp: aiosmtplib.SMTP
    loop: asyncio.AbstractEventLoop
    sent: int = 0
    idle_since: float = 0.0


def closed_by_relay(exc: BaseException) -> bool:
    """Whether ``exc`` at MAIL FROM says the relay dropped the connection (no reply, or ``421``:
    "closing the channel") rather than refusing the message."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code == 421
    return isinstance(exc, (aiosmtplib.SMTPServerDisconnected, OSError, TimeoutError))


class EmailChannel(BaseChannel):
    name = "email"
    medium = EMAIL

    def __init__(self, settings: EmailSettings, unsubscribe_key: bytes | None = None,
                 db: Database | None = None) -> None:
        """``db``: the engine's database, where ``messages_per_second`` is shared by every worker
        process (without one, each process keeps its own)."""
        self.settings = settings
        self.composer = Composer(settings, unsubscribe_key)
        self._tls_context: ssl.SSLContext | None = None
        rate = settings.messages_per_second
        self.rate: SendRate | None = SendRate(rate) if rate is not None and db is None else None
        self.shared_rate = SharedSendRate(db, f"{settings.host}:{settings.smtp_port}", rate) \
            if rate is not None and db is not None else None
        self.kept: list[Kept] = []
        self.monotonic = time.monotonic  # tests move it instead of waiting

    async def pace(self, message: OutboundSend) -> None:
        wait = 0.0
        if self.shared_rate is not None:
            wait = await asyncio.to_thread(self.shared_rate.reserve, clock.now())
        elif self.rate is not None:
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
        content = composed.message.as_bytes()
        fresh_only = False
        while True:
            stage: Stage = "connect"
            connection: Kept | None = None
            try:
                connection = await self.take(fresh_only)
                stage = "envelope"
                await connection.smtp.mail(self.settings.sender)
                await connection.smtp.rcpt(address)
                stage = "data"
                await connection.smtp.data(content)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                reused = connection is not None and connection.sent > 0
                if connection is not None:
                    connection.smtp.close()
                if reused and stage == "envelope" and closed_by_relay(exc):
                    fresh_only = True  # nothing of the message was sent: once more, on a new connection
                    continue
                raise delivery_error(exc, stage) from None
            await self.give_back(connection)
            return composed.message_id

    async def take(self, fresh_only: bool = False) -> Kept:
        """A kept connection that may carry another message, else a new one. Kept connections of
        another event loop, idle too long, or closed meanwhile are let go on the way."""
        loop = asyncio.get_running_loop()
        now = self.monotonic()
        usable: list[Kept] = []
        for kept in self.kept:
            if kept.loop is not loop:
                continue  # its loop is gone (a restarted worker loop): nothing to say goodbye on
            if fresh_only or now - kept.idle_since > self.settings.connection_idle_seconds \
                    or not kept.smtp.is_connected:
                await self.goodbye(kept)
            else:
                usable.append(kept)
        self.kept = usable
        if self.kept:
            return self.kept.pop()  # the most recently used: the least likely to have been dropped
        smtp = self.client()
        await smtp.connect()
        return Kept(smtp, loop)

    async def give_back(self, connection: Kept) -> None:
        """After a message went: keep the connection for the next one, or close it when it carried
        ``connection_max_messages``."""
        connection.sent += 1
        if connection.sent >= self.settings.connection_max_messages or not connection.smtp.is_connected:
            await self.goodbye(connection)
            return
        connection.idle_since = self.monotonic()
        self.kept.append(connection)

    @staticmethod
    async def goodbye(connection: Kept) -> None:
        try:
            await connection.smtp.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            connection.smtp.close()  # the relay has the messages already; a failed goodbye changes nothing

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        kept, self.kept = self.kept, []
        for connection in kept:
            if connection.loop is loop:
                await self.goodbye(connection)

    def __repr__(self) -> str:
        return f"EmailChannel({self.settings.host}:{self.settings.smtp_port}, {self.settings.tls})"
