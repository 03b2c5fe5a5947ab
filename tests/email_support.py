"""A real SMTP server for the email channel's tests (aiosmtpd, in a thread on 127.0.0.1), with
STARTTLS or TLS from the first byte on a throwaway CA (trustme), AUTH, and replies the test sets."""

from __future__ import annotations

import asyncio
import email
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "shop", "smtp-pass-7f3a9c"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    tls: bool
    login: str | None


@dataclass
class Relay:
    """What the server received, and the replies it gives (set them to make it fail)."""

    port: int
    ca_file: Path
    received: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    mail_reply: str | None = None
    rcpt_reply: str | None = None
    data_reply: str | None = None
    drop_in_data: bool = False
    close_after_data: bool = False
    sessions: list[Any] = field(default_factory=list)
    mails: int = 0  # MAIL FROM commands: one per message the client started

    @property
    def connections(self) -> int:
        """How many SMTP connections started a message (one session per connection)."""
        return len(self.sessions)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        self.mails += 1
        if not any(seen is session for seen in self.sessions):
            self.sessions.append(session)
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.drop_in_data:  # the whole message arrived; the connection dies before the answer
            server.transport.abort()
            return "250 OK"
        if self.data_reply:
            return self.data_reply
        raw = envelope.original_content or envelope.content
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      email.message_from_bytes(raw, policy=default),  # type: ignore[arg-type]
                                      raw, server.transport.get_extra_info("ssl_object") is not None, login))
        if self.close_after_data:  # the relay hangs up on a connection right after the answer (an idle timeout)
            asyncio.get_running_loop().call_later(0.05, server.transport.close)
        return "250 Message accepted"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword) and data.login.decode() == USER and data.password.decode() == PASSWORD:
            self.logins.append(USER)
            return AuthResult(success=True, auth_data=data.login)
        return AuthResult(success=False, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_relay(tmp_path: Path, mode: str = "starttls", auth: bool = True) -> Iterator[Relay]:
    """A relay on 127.0.0.1: ``starttls`` (STARTTLS required), ``tls`` (TLS from the first byte)
    or ``none`` (plain, no AUTH)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    ca_file = tmp_path / "relay-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    relay = Relay(port=free_port(), ca_file=ca_file)
    kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": relay.port, "server_hostname": "relay.test"}
    if mode == "starttls":
        kwargs.update(tls_context=server_context, require_starttls=True)
    elif mode == "tls":
        kwargs.update(ssl_context=server_context)
    if auth and mode != "none":  # aiosmtpd counts only STARTTLS as TLS; TLS from the first byte is TLS all along
        kwargs.update(authenticator=relay.authenticate, auth_require_tls=mode == "starttls")
    controller = Controller(relay, **kwargs)
    controller.start()
    try:
        yield relay
    finally:
        controller.stop()


def email_config(relay: Relay, **extra: Any) -> dict[str, Any]:
    """A ``[connectors.email]`` section for ``relay`` (STARTTLS with login unless ``extra`` says otherwise)."""
    return {"host": "127.0.0.1", "port": relay.port, "tls": "starttls", "username": USER, "password": PASSWORD,
            "ca_file": str(relay.ca_file), "from_address": "Ana's Shop <shop@shop.example>",
            "reply_to": "help@shop.example", "timeout_seconds": 10, **extra}
