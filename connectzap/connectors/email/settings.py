"""``[connectors.email]``: the SMTP relay email goes out through, where templates live, the
unsubscribe addresses of marketing email, and the credentials of the bounce webhook.

Every setting is checked when the configuration loads, so a bad relay or address stops start-up
with one line naming it instead of failing on the first send. The SMTP password and the webhook
passwords are secrets: never shown in a repr, a log line or an error.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from ..base import ConnectorSettings

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


def checked_address(value: str, what: str) -> str:
    """``value`` as a single mailbox (``Shop <shop@example.com>`` or ``shop@example.com``); raises
    ValueError naming ``what`` otherwise. CR and LF are refused: they would split a header."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{what} must be one line")
    name, addr = parseaddr(value)
    local, at, domain = addr.rpartition("@")
    if not at or not local or "." not in domain or " " in addr:
        raise ValueError(f"{what} {value!r} is not an email address like 'Shop <shop@example.com>'")
    Address(display_name=name, addr_spec=addr)  # the stdlib's own check of the address' syntax
    return value


class EmailSettings(ConnectorSettings):
    """The email channel. ``host`` and ``from_address`` are required; the rest has defaults."""

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    """Default: 587 for ``starttls``, 465 for ``tls``, 25 for ``none``."""
    tls: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls`` upgrades a plain connection (port 587); ``tls`` is TLS from the first byte
    (port 465); ``none`` sends in the clear and is only allowed without a login."""
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    """A CA bundle to verify the relay's certificate with, instead of the system's (a private relay)."""
    helo_name: str | None = None
    """The name connectzap greets the relay with (EHLO). Default: the domain of ``from_address``."""
    timeout_seconds: float = Field(default=30.0, gt=0)
    connection_max_messages: int = Field(default=100, ge=1, le=10000)
    """How many emails one SMTP connection carries before it is closed and a new one opened (1: a
    connection per email, as before connections were kept)."""
    connection_idle_seconds: float = Field(default=30.0, gt=0, le=3600)
    """How long a kept connection may sit unused before it is closed rather than used again."""
    from_address: str
    reply_to: str | None = None
    default_subject: str = Field(default="A message for you", min_length=1)
    """The subject of a plain-text send (a message that names no template)."""
    templates_dir: Path | None = None
    """Where named templates live: ``<templates_dir>/<name>/<language>/subject.txt, body.txt, body.html``."""
    default_language: str = "en"
    """The language tried last when a template has neither the asked language nor its base language."""
    messages_per_second: float | None = Field(default=None, gt=0)
    """The relay's sending limit, if it has one."""
    list_unsubscribe_mailto: str | None = None
    """The address a mail client writes to when the reader unsubscribes (``List-Unsubscribe: <mailto:...>``)."""
    list_unsubscribe_url: str | None = None
    """The https address of the one-click unsubscribe (RFC 8058); ``{outbox_id}`` is replaced by the
    message's id, so the page knows which message (and so which contact) it is about."""
    unsubscribe_base_url: str | None = None
    """The https address connectzap itself is reached at (``https://hooks.shop.example``): marketing
    email then links to connectzap's own one-click unsubscribe, ``<base>/unsubscribe/email/<token>``,
    instead of ``list_unsubscribe_url``."""
    unsubscribe_valid_days: int = Field(default=90, ge=30, le=3650)
    """How long a link served by connectzap keeps working after the email was sent (at least 30 days:
    a reader must be able to unsubscribe from an email that is a month old)."""
    webhook_provider: Literal["postmark", "sendgrid", "mailgun"] = "postmark"
    """Who calls ``/webhooks/email`` with deliveries, bounces and complaints, and so how a call is
    authenticated: Postmark with HTTP Basic (``webhook_username``, ``webhook_passwords``), SendGrid
    with its ECDSA signature (``webhook_public_key``), Mailgun with its HMAC (``webhook_signing_keys``)."""
    webhook_username: str = "connectzap"
    webhook_passwords: list[SecretStr] = Field(default_factory=list)
    """The HTTP Basic password(s) the provider's webhook calls ``/webhooks/email`` with. Several may be
    given while one is replaced; none refuses every call."""
    webhook_public_key: str | None = None
    """SendGrid: the signed Event Webhook's verification key (base64, as SendGrid shows it, or PEM).
    Not a secret; without it every call is refused."""
    webhook_signing_keys: list[SecretStr] = Field(default_factory=list)
    """Mailgun: the HTTP webhook signing key(s). Several may be given while one is replaced; none
    refuses every call."""
    webhook_tolerance_seconds: int = Field(default=300, ge=30, le=86400)
    """SendGrid and Mailgun: how far a signed timestamp may be from now (older calls are replays)."""

    @field_validator("from_address")
    @classmethod
    def _from(cls, value: str) -> str:
        return checked_address(value, "from_address")

    @field_validator("default_subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("default_subject must be one line")
        return value

    @field_validator("reply_to")
    @classmethod
    def _reply_to(cls, value: str | None) -> str | None:
        return None if value is None else checked_address(value, "reply_to")

    @field_validator("list_unsubscribe_mailto")
    @classmethod
    def _mailto(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.removeprefix("mailto:")
        checked_address(value, "list_unsubscribe_mailto")
        if parseaddr(value)[1] != value:
            raise ValueError("list_unsubscribe_mailto must be a bare address, like unsubscribe@shop.example")
        return value

    @field_validator("list_unsubscribe_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("https://") or any(c in value for c in " <>\r\n"):
            raise ValueError("list_unsubscribe_url must be an https:// address (RFC 8058 one-click needs https)")
        try:
            value.format(outbox_id="x")
        except (KeyError, IndexError, ValueError):
            raise ValueError("list_unsubscribe_url may contain {outbox_id} and no other {placeholder}") from None
        return value

    @field_validator("unsubscribe_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("https://") or any(c in value for c in " <>{}?#\r\n"):
            raise ValueError("unsubscribe_base_url must be an https:// address without a query, like "
                             "https://hooks.shop.example (RFC 8058 one-click needs https)")
        return value.rstrip("/")

    @field_validator("webhook_public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str | None:
        if value is not None:
            from .signatures import sendgrid_public_key
            sendgrid_public_key(value)  # ValueError says what is wrong with it
        return value

    @field_validator("templates_dir")
    @classmethod
    def _templates(cls, value: Path | None) -> Path | None:
        # A relative folder is checked once it is resolved against the config file's (:meth:`against`).
        if value is not None and value.is_absolute() and not value.is_dir():
            raise ValueError(f"templates_dir {str(value)!r} is not a directory")
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca(cls, value: Path | None) -> Path | None:
        if value is not None and value.is_absolute() and not value.is_file():
            raise ValueError(f"ca_file {str(value)!r} does not exist")
        return value

    def against(self, folder: Path) -> EmailSettings:
        """These settings with relative ``templates_dir`` and ``ca_file`` resolved against ``folder``
        (the config file's), like every relative path in the file; ValueError names one that is not there."""
        changes: dict[str, Path] = {}
        if self.templates_dir is not None and not self.templates_dir.is_absolute():
            changes["templates_dir"] = folder / self.templates_dir
            if not changes["templates_dir"].is_dir():
                raise ValueError(f"templates_dir {str(changes['templates_dir'])!r} is not a directory")
        if self.ca_file is not None and not self.ca_file.is_absolute():
            changes["ca_file"] = folder / self.ca_file
            if not changes["ca_file"].is_file():
                raise ValueError(f"ca_file {str(changes['ca_file'])!r} does not exist")
        return self.model_copy(update=changes) if changes else self

    @model_validator(mode="after")
    def _login(self) -> EmailSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: set both or neither")
        if self.username is not None and self.tls == "none":
            raise ValueError("a login needs tls = 'starttls' or 'tls': the password would cross the network in clear")
        if self.unsubscribe_base_url is not None and self.list_unsubscribe_url is not None:
            raise ValueError("set unsubscribe_base_url (connectzap serves the unsubscribe) or list_unsubscribe_url "
                             "(your own page), not both")
        return self

    @property
    def smtp_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.tls]

    @property
    def sender(self) -> str:
        """The bare address of ``from_address`` (the SMTP envelope's sender)."""
        return parseaddr(self.from_address)[1]

    @property
    def sender_domain(self) -> str:
        return self.sender.rpartition("@")[2]

    def doctor_notes(self) -> list[str]:
        login = f", login {self.username}" if self.username else ""
        return [f"email via {self.host}:{self.smtp_port} ({self.tls}{login}) from {self.sender}"]
