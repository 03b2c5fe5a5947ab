"""``[connectors.generic]``: inbound sources (authentication + mapping) and outbound subscriptions.

Every value that reads the payload is a JMESPath expression (a constant is a raw string
literal, ``"'en'"``). Expressions are compiled when the configuration loads, so a typo stops
start-up with the expression named instead of failing on the first webhook.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ...core.business_hours import ZoneName
from ...core.media import WHATSAPP, FallbackMedia, Medium
from ...core.models import Category
from ...core.plugin_settings import TemplateUse
from ..base import ConnectorSettings

SUBSCRIBABLE = ("inbound_message", "message_status", "consent_changed", "order_created", "order_updated", "lead")
"""Event kinds an outbound subscription may receive."""

_OFFSET_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_offset(text: str) -> timedelta:
    """``"-24h"``, ``"+1d"``, ``"-1h30m"``, ``"90s"`` -> a timedelta. Raises ValueError otherwise."""
    value = text.strip().replace(" ", "")
    sign = -1 if value.startswith("-") else 1
    body = value.lstrip("+-")
    parts = _OFFSET_PART.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise ValueError(f"offset {text!r} is not like '-24h', '+1d' or '-1h30m'")
    return timedelta(seconds=sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


def check_expression(expr: str) -> str:
    try:
        jmespath.compile(expr)
    except JMESPathError as exc:
        raise ValueError(f"{expr!r} is not a valid JMESPath expression ({exc})") from None
    return expr


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldSpec(Spec):
    """A payload field read by ``expr``. Required unless ``required = false`` or a ``default`` is given."""

    expr: str
    required: bool = True
    default: Any = None

    @field_validator("expr")
    @classmethod
    def _check(cls, value: str) -> str:
        return check_expression(value)

    @classmethod
    def of(cls, value: str | FieldSpec) -> FieldSpec:
        return value if isinstance(value, FieldSpec) else cls(expr=value)

    @property
    def optional(self) -> bool:
        return not self.required or self.default is not None


Expr = str | FieldSpec


def _as_field(value: Any) -> Any:
    return FieldSpec(expr=check_expression(value)) if isinstance(value, str) else value


class SendAt(Spec):
    """Schedule a message relative to a time in the payload: ``{field = "start", offset = "-24h"}``."""

    field: str
    offset: str = "0s"
    timezone: ZoneName = "UTC"
    """Used when the payload's time has no offset of its own."""
    if_past: Literal["send", "skip"] = "send"
    """When the computed time has already passed: send now, or send nothing."""

    @field_validator("field")
    @classmethod
    def _expr(cls, value: str) -> str:
        return check_expression(value)

    @field_validator("offset")
    @classmethod
    def _offset(cls, value: str) -> str:
        parse_offset(value)
        return value

    @property
    def delta(self) -> timedelta:
        return parse_offset(self.offset)


class ConsentSpec(Spec):
    """Consent the payload carries (a checkout or form opt-in), recorded before any plugin runs.

    ``granted`` is an expression: true records an opt-in, false an opt-out, null nothing.
    Without it, every matching payload records an opt-in.
    """

    category: Category
    source: str
    """A label recorded as where consent was collected, e.g. ``"checkout"``."""
    medium: Medium = WHATSAPP
    """The medium the consent is for: ``whatsapp`` (the default), or ``sms``/``email`` for the
    fallback a send names (an email opt-in is kept under the contact's number)."""
    proof: str | None = None
    """Expression for the wording or reference the person agreed to."""
    granted: str | None = None

    @field_validator("proof", "granted")
    @classmethod
    def _expr(cls, value: str | None) -> str | None:
        return check_expression(value) if value is not None else None


MappingKind = Literal["order_created", "order_updated", "lead", "send", "cancel"]


class MappingSpec(Spec):
    """How one kind of payload becomes an event. The first mapping whose ``when`` holds is used."""

    kind: MappingKind
    when: str | None = None
    dedupe_key: str | None = None
    """Identifies the delivery. Default: ``webhook-id`` (Standard Webhooks), else a hash of the body."""
    phone: FieldSpec | None = None
    country: FieldSpec | None = None
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    """Target field (dotted, e.g. ``customer.name``) -> expression."""
    consents: list[ConsentSpec] = Field(default_factory=list)
    previous_status: str | None = None
    # kind = "send"
    template: str | None = None
    language: str = "en"
    language_field: FieldSpec | None = None
    """Expression for the language, when the payload says it (``language`` is then the fallback)."""
    parameters: list[FieldSpec] | dict[str, FieldSpec] = Field(default_factory=list)
    send_at: SendAt | None = None
    idempotency_key: str | None = None
    """Default: the event's dedupe key, so a repeated delivery never sends twice."""
    replace: bool = False
    """With ``cancel_key``: cancel what is still waiting under the key before queueing this one."""
    fallback: FallbackMedia = Field(default_factory=list)
    """Media the message falls back on, in order, when WhatsApp cannot deliver it (docs/channels.md,
    "Fallback"); ``email`` goes to ``fields`` ``email``."""
    fallback_after_minutes: int | None = Field(default=None, ge=1, le=1440)
    """Also fall back when the message is not delivered within this many minutes of being due."""
    # kind = "send" or "cancel"
    cancel_key: str | None = None

    @field_validator("phone", "country", "language_field", mode="before")
    @classmethod
    def _field(cls, value: Any) -> Any:
        return _as_field(value)

    @field_validator("fields", mode="before")
    @classmethod
    def _fields(cls, value: Any) -> Any:
        return {k: _as_field(v) for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("parameters", mode="before")
    @classmethod
    def _params(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _as_field(v) for k, v in value.items()}
        if isinstance(value, list):
            return [_as_field(v) for v in value]
        return value

    @field_validator("when", "dedupe_key", "previous_status", "idempotency_key", "cancel_key")
    @classmethod
    def _expr(cls, value: str | None) -> str | None:
        return check_expression(value) if value is not None else None

    @model_validator(mode="after")
    def _complete(self) -> MappingSpec:
        need: dict[str, Any] = {}
        if self.kind in ("order_created", "order_updated"):
            need = {"fields.id": self.fields.get("id"), "fields.status": self.fields.get("status")}
        elif self.kind == "lead":
            need = {"fields.id": self.fields.get("id"), "phone": self.phone}
        elif self.kind == "send":
            need = {"template": self.template, "phone": self.phone}
        elif self.kind == "cancel":
            need = {"cancel_key": self.cancel_key}
        missing = [name for name, value in need.items() if value is None]
        if missing:
            raise ValueError(f"a {self.kind} mapping needs {', '.join(missing)}")
        if self.replace and not self.cancel_key:
            raise ValueError("replace = true needs a cancel_key")
        if (self.send_at or self.parameters or self.replace or self.fallback or self.fallback_after_minutes) \
                and self.kind != "send":
            raise ValueError("send_at, parameters, replace and fallback belong to send mappings")
        return self


class AuthSpec(Spec):
    """How a source proves a webhook is authentic. List several ``secrets`` to rotate one."""

    scheme: Literal["hmac", "standard", "shared_secret"]
    secrets: list[SecretStr] = Field(default_factory=list)
    header: str | None = None
    """hmac: the signature header (required). shared_secret: the header carrying the secret."""
    query: str | None = None
    """shared_secret only: read the secret from this query parameter instead of a header."""
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    """hmac: text before the digest, e.g. ``"sha256="``."""
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    tolerance_seconds: float = Field(default=300, gt=0)
    """standard: how far ``webhook-timestamp`` may be from now."""
    dedupe_on_webhook_id: bool = True
    """standard: a mapping without ``dedupe_key`` uses ``webhook-id``."""

    @model_validator(mode="after")
    def _fail_closed(self) -> AuthSpec:
        if not [s for s in self.secrets if s.get_secret_value()]:
            raise ValueError("secrets is empty: a source without its secret does not start")
        if self.scheme == "hmac" and not self.header:
            raise ValueError("hmac needs header (the name of the signature header)")
        if self.scheme == "shared_secret" and self.header and self.query:
            raise ValueError("shared_secret takes header or query, not both")
        return self

    @field_validator("header")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    @property
    def secret_values(self) -> list[str]:
        return [s.get_secret_value() for s in self.secrets if s.get_secret_value()]


class SourceSpec(Spec):
    """``[connectors.generic.sources.NAME]``: one system posting to ``/webhooks/generic/NAME``."""

    auth: AuthSpec
    mappings: list[MappingSpec] = Field(min_length=1)
    unmatched: Literal["reject", "ignore"] = "reject"
    """A payload no mapping matches: answer 422 (reject) or 200 and journal nothing (ignore)."""


SubscribedEvent = Literal["inbound_message", "message_status", "consent_changed", "order_created",
                          "order_updated", "lead", "contact_changed", "past_message"]
# Typed default: a bare list literal in a default_factory lambda reads as list[str] to mypy.
_DEFAULT_EVENTS: tuple[SubscribedEvent, ...] = ("inbound_message", "message_status", "consent_changed")


class SubscriptionSpec(Spec):
    """``[connectors.generic.subscriptions.NAME]``: connectzap events POSTed to ``url``, signed."""

    url: str
    secret: SecretStr
    """Standard Webhooks signing secret (``whsec_<base64>`` or any string)."""
    events: list[SubscribedEvent] = Field(default_factory=lambda: list(_DEFAULT_EVENTS))
    timeout_seconds: float = Field(default=15.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("secret is empty: a subscription without its secret does not start")
        return value


class GenericSettings(ConnectorSettings):
    sources: dict[str, SourceSpec] = Field(default_factory=dict)
    subscriptions: dict[str, SubscriptionSpec] = Field(default_factory=dict)

    def templates_used(self) -> Iterator[TemplateUse]:
        for name, source in sorted(self.sources.items()):
            for index, mapping in enumerate(source.mappings):
                if mapping.kind == "send" and mapping.template:
                    # A language read from the payload can be any: then only the name is certain.
                    languages = () if mapping.language_field is not None else (mapping.language,)
                    yield TemplateUse(f"sources.{name}.mappings.{index}.template", mapping.template, languages)

    @field_validator("sources", "subscriptions")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name):
                raise ValueError(f"name {name!r}: use letters, digits, - and _ (at most 40)")
        return value
