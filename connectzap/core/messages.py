"""Outbound message content: what a plugin, the CLI or the REST API asks connectzap to send.

The shapes follow WhatsApp's message types; turning them into Cloud API request bodies is the
WhatsApp connector's job (:mod:`connectzap.connectors.whatsapp.payloads`). Limits Meta
enforces are checked here, so a bad message is refused before it is queued.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import email_addresses, media
from .automatic import AutomaticAnswer
from .bsuids import checked_bsuid, identify
from .models import Category, Contact


def _type_is_required(schema: dict[str, Any]) -> None:
    # Members of a union told apart by ``type`` cannot be sent without it (pydantic refuses a
    # member whose tag is missing), although Python callers may leave it to its default. The
    # published schema says so, which also keeps the union's branches disjoint.
    required = schema.setdefault("required", [])
    if "type" not in required:
        required.insert(0, "type")


TAGGED = ConfigDict(extra="forbid", json_schema_extra=_type_is_required)


class Content(BaseModel):
    model_config = TAGGED

    @property
    def is_template(self) -> bool:
        return False


class MediaRef(BaseModel):
    """A media object by uploaded ``id``, public ``link``, or local ``file`` to upload first."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    link: str | None = None
    file: str | None = None
    filename: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MediaRef:
        if sum(x is not None for x in (self.id, self.link, self.file)) != 1:
            raise ValueError("give exactly one of id, link or file")
        return self


# --- template parameters ----------------------------------------------------------------

class CurrencyParam(BaseModel):
    model_config = TAGGED
    type: Literal["currency"] = "currency"
    fallback_value: str
    code: str
    amount_1000: int

    @classmethod
    def of(cls, amount: Decimal | float | str, code: str, fallback: str | None = None) -> CurrencyParam:
        value = Decimal(str(amount))
        return cls(fallback_value=fallback or f"{value:.2f} {code}", code=code, amount_1000=int(value * 1000))


class DateTimeParam(BaseModel):
    model_config = TAGGED
    type: Literal["date_time"] = "date_time"
    fallback_value: str


class TextParam(BaseModel):
    model_config = TAGGED
    type: Literal["text"] = "text"
    text: str


def _flat_any_of(schema: dict[str, Any]) -> None:
    # The members' required ``type`` constants make them disjoint, so a plain ``anyOf`` says what
    # ``oneOf`` plus a discriminator said; its negation is simple enough for schema-driven fuzzers
    # (schemathesis could not build invalid arrays of the discriminated items: a run in five failed).
    if "oneOf" in schema:
        schema["anyOf"] = schema.pop("oneOf")
        schema.pop("discriminator", None)


def _any_of(schema: dict[str, Any]) -> None:
    # In JSON a parameter may also be a plain string or number, the text parameter (``_as_param``):
    # the document says so in the same flat ``anyOf``, or it would call ``"body": ["Ana"]`` invalid.
    _flat_any_of(schema)
    schema.setdefault("anyOf", []).extend([{"type": "string"}, {"type": "number"}])


BodyParam = Annotated[TextParam | CurrencyParam | DateTimeParam,
                      Field(discriminator="type", json_schema_extra=_any_of)]


def _as_param(value: Any) -> Any:
    # bool is an int to Python, but `true` is no parameter value anyone meant to send.
    if isinstance(value, (str, int, float, Decimal)) and not isinstance(value, bool):
        return {"type": "text", "text": str(value)}
    return value


class HeaderParam(BaseModel):
    """The header parameter of a template: text, a media object, or a location."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "image", "video", "document", "location"]
    text: str | None = None
    media: MediaRef | None = None
    latitude: float | None = None
    longitude: float | None = None
    name: str | None = None
    address: str | None = None
    parameter_name: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> HeaderParam:
        if self.type == "text" and self.text is None:
            raise ValueError("a text header needs text")
        if self.type in ("image", "video", "document") and self.media is None:
            raise ValueError(f"a {self.type} header needs media")
        if self.type == "location" and (self.latitude is None or self.longitude is None):
            raise ValueError("a location header needs latitude and longitude")
        return self


class ButtonParam(BaseModel):
    """A template button parameter: quick-reply payload, URL suffix, or copy-code coupon."""

    model_config = ConfigDict(extra="forbid")
    sub_type: Literal["quick_reply", "url", "copy_code", "flow"]
    index: int = Field(ge=0, le=9)
    payload: str | None = None
    text: str | None = None
    coupon_code: str | None = None
    flow_token: str | None = None
    flow_action_data: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _shape(self) -> ButtonParam:
        need = {"quick_reply": self.payload, "url": self.text, "copy_code": self.coupon_code,
                "flow": self.flow_token}[self.sub_type]
        if need is None:
            field = {"quick_reply": "payload", "url": "text", "copy_code": "coupon_code", "flow": "flow_token"}
            raise ValueError(f"a {self.sub_type} button needs {field[self.sub_type]}")
        return self


class TemplateContent(Content):
    """An approved template. ``body`` is a list (positional) or a dict (named parameters)."""

    type: Literal["template"] = "template"
    name: str
    language: str
    header: HeaderParam | None = None
    body: list[BodyParam] | dict[str, BodyParam] = Field(default_factory=list)
    buttons: list[ButtonParam] = Field(default_factory=list)

    @field_validator("body", mode="before")
    @classmethod
    def _wrap(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _as_param(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_as_param(v) for v in value]
        return value

    @property
    def is_template(self) -> bool:
        return True


class TextContent(Content):
    type: Literal["text"] = "text"
    body: str = Field(min_length=1, max_length=4096)
    preview_url: bool = False


class MediaContent(Content):
    type: Literal["image", "video", "audio", "document", "sticker"]
    media: MediaRef
    caption: str | None = Field(default=None, max_length=1024)

    @model_validator(mode="after")
    def _caption(self) -> MediaContent:
        if self.caption and self.type in ("audio", "sticker"):
            raise ValueError(f"{self.type} messages take no caption")
        return self


class ReplyButton(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1, max_length=20)


class InteractiveHeader(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "image", "video", "document"] = "text"
    text: str | None = Field(default=None, max_length=60)
    media: MediaRef | None = None


class ButtonsContent(Content):
    """Interactive reply buttons (1 to 3)."""

    type: Literal["buttons"] = "buttons"
    body: str = Field(min_length=1, max_length=1024)
    buttons: list[ReplyButton] = Field(min_length=1, max_length=3)
    header: InteractiveHeader | None = None
    footer: str | None = Field(default=None, max_length=60)


class ListRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=24)
    description: str | None = Field(default=None, max_length=72)


class ListSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, max_length=24)
    rows: list[ListRow] = Field(min_length=1)


class ListContent(Content):
    """An interactive list: up to 10 sections and 10 rows in all."""

    type: Literal["list"] = "list"
    body: str = Field(min_length=1, max_length=4096)
    button: str = Field(min_length=1, max_length=20)
    sections: list[ListSection] = Field(min_length=1, max_length=10)
    header: str | None = Field(default=None, max_length=60)
    footer: str | None = Field(default=None, max_length=60)

    @model_validator(mode="after")
    def _rows(self) -> ListContent:
        if sum(len(s.rows) for s in self.sections) > 10:
            raise ValueError("a list holds at most 10 rows in all")
        return self


class CtaUrlContent(Content):
    type: Literal["cta_url"] = "cta_url"
    body: str = Field(min_length=1, max_length=1024)
    display_text: str = Field(min_length=1, max_length=20)
    url: str
    header: InteractiveHeader | None = None
    footer: str | None = Field(default=None, max_length=60)


class RequestContactInfoContent(Content):
    """A message with WhatsApp's own "share contact info" button: the way to ask a customer known
    only by a business-scoped user id (a username, no number) for their phone number. The reply
    is a ``contacts`` message holding their number; connectzap then links the two."""

    type: Literal["request_contact_info"] = "request_contact_info"
    body: str = Field(min_length=1, max_length=1024)


class ProductContent(Content):
    type: Literal["product"] = "product"
    catalog_id: str
    product_retailer_id: str
    body: str | None = Field(default=None, max_length=1024)
    footer: str | None = Field(default=None, max_length=60)


class ProductSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(max_length=24)
    product_retailer_ids: list[str] = Field(min_length=1)


class ProductListContent(Content):
    type: Literal["product_list"] = "product_list"
    catalog_id: str
    header: str = Field(min_length=1, max_length=60)
    body: str = Field(min_length=1, max_length=1024)
    sections: list[ProductSection] = Field(min_length=1, max_length=10)
    footer: str | None = Field(default=None, max_length=60)


class LocationContent(Content):
    type: Literal["location"] = "location"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = None
    address: str | None = None


class ContactsContent(Content):
    """Contact cards (Meta's vCard-like objects); each needs ``name.formatted_name``."""

    type: Literal["contacts"] = "contacts"
    contacts: list[dict[str, Any]] = Field(min_length=1)

    @field_validator("contacts")
    @classmethod
    def _named(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for card in value:
            if not (card.get("name") or {}).get("formatted_name"):
                raise ValueError("every contact card needs name.formatted_name")
        return value


class ReactionContent(Content):
    type: Literal["reaction"] = "reaction"
    message_id: str
    emoji: str = ""


MessageContent = Annotated[
    TemplateContent | TextContent | MediaContent | ButtonsContent | ListContent | CtaUrlContent
    | ProductContent | ProductListContent | LocationContent | ContactsContent | ReactionContent
    | RequestContactInfoContent,
    Field(discriminator="type"),
]

MessageContentItem = Annotated[MessageContent, Field(json_schema_extra=_flat_any_of)]
""":data:`MessageContent` as an item of a list in an API document: the same validation, described
as a flat ``anyOf`` (see ``_flat_any_of``)."""


MAX_FALLBACK_AFTER_MINUTES = 1440
"""The longest :attr:`Outgoing.fallback_after_minutes`: a message waiting for it keeps its content
and address until then (docs/channels.md, "Fallback")."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LAST_STORABLE = datetime(9999, 1, 1, tzinfo=UTC)


class Outgoing(BaseModel):
    """A message someone wants sent. It goes through the send gate, never straight to WhatsApp.

    :ivar to: the recipient: a :class:`Contact`, a phone number, or a business-scoped user id
        (``"US.13491208655302741918"``) for a customer known without a number.
    :ivar content: what to send.
    :ivar idempotency_key: one key, one message, ever. Plugins get a stable default.
    :ivar not_before: keep the message queued until this time (reminders).
    :ivar fallback: a template to send instead when the 24-hour window turns out closed.
    :ivar reply_to: the wamid this message quotes.
    :ivar cancel_key: a later :class:`~connectzap.core.models.CancelRequest` with this key
        cancels the message while it waits.
    :ivar category: for free-form messages only a label; templates use their own category.
    :ivar origin: ids naming the record the message is about, e.g. ``{"source": "woocommerce",
        "shop": "main", "order": "1042", "status": "completed"}``. Kept with the message after its
        text and number are erased (a connector writes a failed delivery back onto the record), so
        ids only -- never personal data. At most 8 entries.
    :ivar automatic: set on an answer nobody wrote for this customer (an FAQ rule, a welcome, a
        bot...): the core then sends at most one automatic answer per inbound message (the first
        :class:`~connectzap.AutomaticAnswer` kind wins), none while a person handles the
        conversation and none to a stale message (:mod:`connectzap.core.automatic`).
    :ivar medium: the medium it goes out on (``channel`` in JSON): ``whatsapp`` (the default),
        ``email`` (to ``to.email``) or ``sms`` (to ``to.phone``), or another a plugin's channel
        sends on. On any medium but WhatsApp ``category`` is required: it names the consent the
        message needs there.
    :ivar fallback_media: the media to fall back on (``fallback_channels`` in JSON), in order, when
        the WhatsApp message cannot be delivered (:mod:`connectzap.core.fallbacks`): at most one
        fallback message goes, on the first of them whose consent holds. ``to.email`` is the address
        an ``email`` fallback goes to.
    :ivar fallback_after_minutes: for a time-critical message: when it is not ``delivered`` (or
        ``read``) this many minutes after it was due, its fallback goes (1 to 1440; needs
        ``fallback_media``). The original may still arrive later: WhatsApp does not take it back.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    to: Contact
    content: MessageContent
    idempotency_key: str | None = Field(default=None, max_length=255)
    not_before: datetime | None = None
    fallback: TemplateContent | None = None
    reply_to: str | None = None
    cancel_key: str | None = Field(default=None, max_length=255)
    category: Category | None = None
    business_phone_number_id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    origin: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=255)]] | None = \
        Field(default=None, max_length=8)
    automatic: AutomaticAnswer | None = None
    medium: media.Medium = Field(default=media.WHATSAPP, alias="channel",
                        description="The medium the message goes out on: whatsapp (the default), email (to "
                                    "to.email) or sms (to to.phone); on any but whatsapp, category is required.")
    fallback_media: list[media.Medium] = Field(
        default_factory=list, alias="fallback_channels", max_length=4,
        description="Media to fall back on, in order, when the WhatsApp message cannot be delivered (no "
                    "WhatsApp account, a configured error code): one fallback message goes on the first whose "
                    "consent holds; email needs to.email.")
    fallback_after_minutes: int | None = Field(
        default=None, ge=1, le=MAX_FALLBACK_AFTER_MINUTES,
        description="For a time-critical message: when it is not delivered (or read) this many minutes after it "
                    "was due, its fallback goes on fallback_channels (which it needs). The WhatsApp message may "
                    "still arrive later.")

    @field_validator("fallback_media")
    @classmethod
    def _fallback_media(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("fallback_channels names a medium twice")
        return value

    @model_validator(mode="after")
    def _addressed_for_its_medium(self) -> Outgoing:
        if self.fallback_media and self.medium != media.WHATSAPP:
            raise ValueError("fallback_channels is for a message on whatsapp: only WhatsApp's outcomes trigger a "
                             "fallback")
        if media.WHATSAPP in self.fallback_media:
            raise ValueError("fallback_channels cannot name whatsapp: it is the medium the message falls back from")
        if self.fallback_after_minutes is not None and not self.fallback_media:
            raise ValueError("fallback_after_minutes needs fallback_channels: the media its fallback goes on when the "
                             "message is not delivered in time")
        if self.to.email and (self.medium == media.EMAIL or media.EMAIL in self.fallback_media):
            self.to = self.to.model_copy(update={"email": email_addresses.normalized(self.to.email)})
        if self.medium == media.WHATSAPP:
            return self
        if self.category is None:
            raise ValueError(f"a message on {self.medium} needs a category (marketing, utility or authentication): "
                             "it names the consent the message needs there")
        if self.medium == media.EMAIL and not self.to.email:
            raise ValueError("a message on email needs to.email, the recipient's email address")
        if self.medium != media.EMAIL and not self.to.phone:
            raise ValueError(f"a message on {self.medium} needs to.phone, the recipient's number")
        return self

    @field_validator("not_before")
    @classmethod
    def _storable_time(cls, value: datetime | None) -> datetime | None:
        # Stored as seconds since the epoch and shown back as UTC: a time without a zone is read as
        # UTC (not the host's zone), and one outside what can be shown back is refused here, not
        # when the message is listed.
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if not _EPOCH <= value < _LAST_STORABLE:
            raise ValueError("not_before must be a time between 1970-01-01 and 9998-12-31 (UTC)")
        return value

    @field_validator("to", mode="before")
    @classmethod
    def _contact(cls, value: Any) -> Any:
        if isinstance(value, str):
            return identify(value)
        if isinstance(value, dict) and not value.get("phone") and value.get("user_id"):
            return {**value, "user_id": checked_bsuid(value["user_id"])}  # the recipient: a BSUID, or nothing
        return value
