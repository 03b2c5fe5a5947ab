"""Typed domain models: who we talk to, what happened, and what consent says.

Every connector turns its vendor's payload into these; every plugin receives them. Phone
numbers are normalised to E.164 on the way in (see :mod:`connectzap.core.phones`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from . import clock, media, payloads
from .media import Medium
from .bsuids import checked_bsuid, identify
from .phones import to_e164


def utcnow() -> datetime:
    return clock.utcnow()


class Model(BaseModel):
    """Base for connectzap models: unknown fields are kept (vendors add fields all the time)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Category(StrEnum):
    """Consent category of a business-initiated message (Meta's template categories)."""

    MARKETING = "marketing"
    UTILITY = "utility"
    AUTHENTICATION = "authentication"


class Contact(Model):
    """A person we may message. ``phone`` is E.164; ``country`` helps read national numbers.

    Pass ``country`` (ISO alpha-2) or a validation context ``{"country": "DE"}`` when the
    number may be written without its country code; the configured default region is the
    last resort. ``wa_id`` and ``user_id`` (Meta's business-scoped user id, BSUID) are kept as
    given. A contact may have a BSUID and no phone (a WhatsApp user with a username): messages
    then go to the BSUID. Written as one string, a contact is a phone number or a BSUID
    (``"US.13491208655302741918"``).
    """

    phone: str | None = None
    country: str | None = None
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    wa_id: str | None = None
    user_id: str | None = None
    external_id: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _normalise_phone(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, str):
            data = identify(data)
        if isinstance(data, dict) and data.get("phone") not in (None, ""):
            context = info.context or {}
            country = data.get("country") or context.get("country")
            data = {**data, "phone": to_e164(data["phone"], country)}
        elif isinstance(data, dict) and data.get("phone") == "":
            data = {**data, "phone": None}
        return data

    @property
    def display_name(self) -> str | None:
        if self.name:
            return self.name
        parts = [p for p in (self.first_name, self.last_name) if p]
        return " ".join(parts) or None


class OrderItem(Model):
    name: str
    quantity: Decimal = Decimal(1)
    sku: str | None = None
    price: Decimal | None = None
    total: Decimal | None = None


class Order(Model):
    """An order from a shop. ``status`` is the shop's own status name (``processing``, ``completed``...)."""

    id: str
    status: str
    number: str | None = None
    currency: str | None = None
    total: Decimal | None = None
    customer: Contact | None = None
    items: list[OrderItem] = Field(default_factory=list)
    shop: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    tracking_url: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    partial: bool | None = None
    """True when only the id and status are known (a thin webhook): hooks that need the rest wait
    for the full order, which its connector fetches and journals as another event. Unset (None)
    on a complete order, so its serialised form carries no such key."""

    @field_validator("id", "number", mode="before")
    @classmethod
    def _str_id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class Lead(Model):
    """A lead or contact from a CRM, with whatever properties the CRM gave us."""

    id: str
    contact: Contact
    stage: str | None = None
    owner_id: str | None = None
    created_at: datetime | None = None
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _str_id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


# --- inbound WhatsApp ---------------------------------------------------------------------

class MediaInfo(Model):
    id: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    url: str | None = None
    voice: bool | None = None
    animated: bool | None = None


class LocationInfo(Model):
    latitude: float | None = None
    longitude: float | None = None
    name: str | None = None
    address: str | None = None
    url: str | None = None


class ReactionInfo(Model):
    message_id: str | None = None
    emoji: str | None = None


class ReplyInfo(Model):
    """A tap on a template quick reply (``button``) or an interactive button/list row."""

    id: str | None = None
    title: str | None = None
    description: str | None = None
    payload: str | None = None


class MessageContext(Model):
    id: str | None = None
    from_: str | None = Field(default=None, alias="from")
    forwarded: bool | None = None
    frequently_forwarded: bool | None = None


class ApiErrorInfo(Model):
    code: int | str | None = None
    title: str | None = None
    message: str | None = None
    details: str | None = None


class AdReferral(Model):
    """Where a customer came from when their message followed a tap on a Click-to-WhatsApp ad or a
    post (Meta's ``referral`` object, on the first message after the tap). ``ctwa_clid`` is the
    click id Meta's Conversions API takes back to attribute the conversation to the ad. Every field
    is optional; image/video/thumbnail URLs and the ad's welcome message are kept as given."""

    source_type: str | None = None
    """``ad`` or ``post``."""
    source_id: str | None = None
    source_url: str | None = None
    headline: str | None = None
    body: str | None = None
    media_type: str | None = None
    ctwa_clid: str | None = None

    def summary(self) -> str:
        """One line for a CRM: what the customer tapped, its id and link, and the click id."""
        parts = [f"{self.source_type or 'ad'} {self.source_id}" if self.source_id else (self.source_type or "ad")]
        parts += [p for p in (self.headline, self.source_url) if p]
        if self.ctwa_clid:
            parts.append(f"ctwa_clid {self.ctwa_clid}")
        return "Click-to-WhatsApp " + " · ".join(parts)


class InboundMessage(Model):
    """A message a customer sent us: to one of our WhatsApp numbers, or -- ``medium`` says which --
    on another medium (an SMS to our Twilio number).

    ``type`` is Meta's message type; unknown types keep their payload in ``raw``. ``text``
    holds the readable text for any type that has some (text body, caption, button title).
    ``wamid`` is the message's id where it came from (Twilio's ``MessageSid`` for an SMS).
    """

    wamid: str
    type: str
    timestamp: datetime
    contact: Contact
    medium: Medium = Field(default=media.WHATSAPP,  # not media.Medium: the field ``media`` below shadows the module
                           description="The medium the message came on: whatsapp (the default), sms, ...")
    """Where the customer wrote: ``whatsapp`` (the default: payloads journaled before the field
    existed are WhatsApp messages) or another medium. Only a WhatsApp message opens the 24-hour
    window, and event hooks see other media only when their plugin declares them
    (:func:`connectzap.inbound_media`)."""
    media_types: list[str] = Field(default_factory=list)
    """The content types of the attachments of a message that may carry several (an MMS), in
    order: recorded, never fetched. Their number is ``len(media_types)``."""
    business_phone_number_id: str | None = None
    text: str | None = None
    media: MediaInfo | None = None
    location: LocationInfo | None = None
    contacts: list[dict[str, Any]] | None = None
    reaction: ReactionInfo | None = None
    reply: ReplyInfo | None = None
    order: dict[str, Any] | None = None
    system: dict[str, Any] | None = None
    context: MessageContext | None = None
    referral: AdReferral | None = None
    """Set on the message that followed a tap on a Click-to-WhatsApp ad (or post): the lead's source."""
    errors: list[ApiErrorInfo] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict)


class StatusValue(StrEnum):
    """Lifecycle of an outbound message. Ranks make status updates monotonic."""

    QUEUED = "queued"
    SENDING = "sending"
    UNKNOWN = "unknown"
    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"
    REFUSED = "refused"
    CANCELLED = "cancelled"

    @property
    def rank(self) -> int:
        return _STATUS_RANK[self]


_STATUS_RANK = {
    StatusValue.QUEUED: 0, StatusValue.SENDING: 1, StatusValue.UNKNOWN: 2, StatusValue.ACCEPTED: 3,
    StatusValue.SENT: 4, StatusValue.DELIVERED: 5, StatusValue.READ: 6, StatusValue.PLAYED: 7,
    StatusValue.FAILED: 8, StatusValue.REFUSED: 8, StatusValue.CANCELLED: 8,
}


SENT_FROM_BUSINESS_APP = "business_app"
""":attr:`MessageStatus.sent_from` of a message a person sent from the WhatsApp Business app."""

CHANGED_IN_APP = ("edited", "revoked")
""":attr:`MessageStatus.status` values of a change the business made in the WhatsApp Business app to a
message sent earlier (``sent_from == "business_app"``): its text ``edited``, or the message deleted for
everyone (``revoked``). They name no delivery step, so they never move the message's status."""


class DeliveryOutcome(StrEnum):
    """What a failed delivery says about the recipient, in neutral terms. A channel or its connector
    maps its vendor's error codes to these; the core acts on them and knows no vendor's codes."""

    WINDOW_CLOSED = "window_closed"
    """Free-form messages need a customer message in the last 24 hours (a fallback template may go)."""
    OPTED_OUT = "opted_out"
    """The recipient stopped marketing messages at the channel: a marketing opt-out is recorded."""
    UNREACHABLE = "unreachable"
    """The number cannot receive messages: business-initiated sends wait until the contact writes."""


class MessageStatus(Model):
    """A status update for a message we sent (from Meta's status webhook or the sandbox).

    ``outbox_id`` comes back from ``biz_opaque_callback_data``; ``content`` is filled only on
    the ``accepted`` status connectzap emits itself, so CRM plugins can log what was sent.
    ``outcome`` is set on a ``failed`` status whose error says something about the recipient.

    A status from outside (a webhook) is journaled without the recipient's number: ``contact_key``
    (the keyed hash the consent ledger and the outbox use) names the contact instead, and
    ``recipient`` is kept only on a failure whose ``outcome`` is ``opted_out`` and on a message the
    business sent from the WhatsApp Business app (``sent_from``), until it is dispatched (docs/privacy.md).
    """

    wamid: str
    status: str
    timestamp: datetime
    recipient: str | None = None
    contact_key: str | None = None
    recipient_user_id: str | None = None
    outbox_id: str | None = None
    business_phone_number_id: str | None = None
    errors: list[ApiErrorInfo] = Field(default_factory=list)
    pricing: dict[str, Any] | None = None
    conversation: dict[str, Any] | None = None
    content: dict[str, Any] | None = None
    category: str | None = None
    source_event_id: int | None = None
    outcome: DeliveryOutcome | None = None
    reason: str | None = None
    """On a ``failed`` status: why, as a short code the channel chose (``template_paused``,
    ``unreachable``...); it becomes the message's ``reason``."""
    sent_from: str | None = None
    """``business_app`` on the ``accepted`` status of a message the business wrote itself in the
    WhatsApp Business app on a coexistence number (Meta's ``smb_message_echoes``): a person, not
    connectzap, answered the customer. connectzap records it as an outbound message (so its later
    statuses apply and CRM connectors log it like any other) and never sends it. Also on an
    ``edited`` or ``revoked`` status (:data:`CHANGED_IN_APP`): the business changed message ``wamid``
    in the app; an edit's ``content`` is the new text."""
    medium: media.Medium = media.WHATSAPP
    """The medium the message went out on, on the ``accepted`` status connectzap emits (a CRM logs an
    SMS as an SMS); ``whatsapp`` on statuses from Meta."""

    @field_validator("recipient", mode="before")
    @classmethod
    def _e164(cls, value: Any) -> Any:
        return to_e164(value) if value else None


class PastMessage(Model):
    """A message from before connectzap handled the number: the WhatsApp Business app's chat history
    that a coexistence number shares once, at onboarding (Meta's ``history`` webhook, up to 180 days
    back). Not a conversation to answer: it opens no window and no automation should reply to it.

    ``direction`` is ``inbound`` (the customer wrote) or ``outbound`` (the business did);
    ``contact`` is the customer either way. ``text`` is the text or the caption, when there is one.
    ``status`` is the message's last status as the app knew it (``delivered``, ``read``...).
    """

    wamid: str
    direction: Literal["inbound", "outbound"]
    contact: Contact
    timestamp: datetime
    type: str
    text: str | None = None
    status: str | None = None
    business_phone_number_id: str | None = None


class ContactAction(StrEnum):
    """What happened to a contact in the business's own address book."""

    SAVED = "saved"
    """Added, or edited (Meta's ``add`` covers both)."""
    REMOVED = "removed"


class ContactChange(Model):
    """A contact in the business's own address book was saved or removed -- today the WhatsApp
    Business app's contacts on a coexistence number (Meta's ``smb_app_state_sync``), including the
    whole list once, when the provider first synchronises it.

    ``full_name`` and ``first_name`` are the names the business gave the contact; a removal has none.
    """

    phone: str | None = None
    user_id: str | None = None
    action: ContactAction
    full_name: str | None = None
    first_name: str | None = None
    business_phone_number_id: str | None = None
    source: str
    at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("phone"):
            data = {**data, "phone": to_e164(data["phone"])}
        if isinstance(data, dict) and data.get("user_id"):
            data = {**data, "user_id": checked_bsuid(data["user_id"])}
        return data

    @model_validator(mode="after")
    def _someone(self) -> ContactChange:
        if not (self.phone or self.user_id):
            raise ValueError("a contact change needs a phone number or a business-scoped user id")
        return self


class ConsentChange(Model):
    """A grant or revocation of consent for one category on one medium (``whatsapp`` unless said),
    with its proof. The contact is a phone number, a business-scoped user id (``user_id``, for a
    customer known without a number), or both; an email address for a customer known only by it;
    or, for a change the core derives from a message it sent (a spam complaint names only the
    message), the contact's key as the ledger keeps it (``contact_key``)."""

    phone: str | None = None
    user_id: str | None = None
    category: Category
    granted: bool
    source: str
    proof: str | None = None
    at: datetime = Field(default_factory=utcnow)
    country: str | None = None
    medium: media.Medium = Field(default=media.WHATSAPP,
                                 description="The medium the consent is for: whatsapp (the default), email, sms, ...")
    email: str | None = Field(default=None, description="For a customer known only by email address: the address "
                                                        "(kept as its keyed hash, like numbers).")
    contact_key: str | None = Field(default=None, max_length=64,
                                    description="For a change about the recipient of a message connectzap sent, "
                                                "known by nothing else (a spam complaint): the contact's keyed hash.")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        from .email_addresses import normalized
        return normalized(value) if value else None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("phone"):
            data = {**data, "phone": to_e164(data["phone"], data.get("country"))}
        if isinstance(data, dict) and data.get("user_id"):
            data = {**data, "user_id": checked_bsuid(data["user_id"])}
        return data

    @model_validator(mode="after")
    def _someone(self) -> ConsentChange:
        if not (self.phone or self.user_id or self.email or self.contact_key):
            raise ValueError("a consent change needs a phone number, a business-scoped user id or an email address")
        return self


class ConsentRecord(Model):
    """One row of the consent ledger as stored: the contact is a keyed hash, never the number."""

    contact_key: str
    category: Category
    granted: bool
    source: str
    proof: str | None = None
    at: datetime
    medium: str = media.WHATSAPP


class TemplateInfo(Model):
    """An approved-or-not message template as cached from the WhatsApp Business Account."""

    name: str
    language: str
    status: str = "APPROVED"
    category: str = "UTILITY"
    parameter_format: Literal["POSITIONAL", "NAMED"] = "POSITIONAL"
    components: list[dict[str, Any]] = Field(default_factory=list)
    id: str | None = None
    waba_id: str | None = None
    pending_category: str | None = None
    """The category Meta announced it will move the template to (``template_category_update``)..."""
    category_effective_at: float | None = None
    """... from this time (unix seconds); until then ``category`` holds."""
    quality: str | None = None
    """Meta's quality rating (GREEN, YELLOW, RED or UNKNOWN), as last synced or reported; None: not known."""

    @field_validator("id", mode="before")
    @classmethod
    def _str_id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    def category_at(self, at: float) -> str:
        """The category whose consent rule applies to a send at ``at``."""
        if self.pending_category and self.category_effective_at is not None and at >= self.category_effective_at:
            return self.pending_category
        return self.category

    @field_validator("status", "category", "parameter_format", "pending_category", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class TemplateUpdate(Model):
    """A change to a template reported by WhatsApp (status, category or quality)."""

    name: str
    language: str | None = None
    id: str | None = None
    waba_id: str | None = None
    status: str | None = None
    category: str | None = None
    reason: str | None = None
    quality: str | None = None
    correct_category: str | None = None
    """An announced re-categorisation: the category the template will have..."""
    category_update_timestamp: float | None = None
    """... from this time (unix seconds). ``category`` stays unset until Meta reports it done."""

    @field_validator("id", mode="before")
    @classmethod
    def _str_id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class CallActivity(Model):
    """A WhatsApp voice call between a customer and one of our numbers, as one step of it: the call
    connected (``connect``), a business-initiated call rang / was answered / rejected (``status``), or
    it ended (``terminate``, with its times and ``duration_seconds``). ``call_id`` is Meta's wacid;
    ``contact`` is the customer, whichever side called. No media or session data is kept."""

    call_id: str
    event: Literal["connect", "status", "terminate"]
    timestamp: datetime
    contact: Contact
    status: str | None = None
    """``RINGING``, ``ACCEPTED``, ``REJECTED`` (status); ``COMPLETED``, ``FAILED`` (terminate)."""
    direction: str | None = None
    """``USER_INITIATED`` or ``BUSINESS_INITIATED``."""
    business_phone_number_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration_seconds: float | None = None
    outbox_id: str | None = None
    """``biz_opaque_callback_data`` of a business-initiated call."""
    errors: list[ApiErrorInfo] = Field(default_factory=list)


class Handoff(Model):
    """A conversation changed hands: a person took it over (``to="human"``) or gave it back to the
    bot (``to="bot"``). ``by`` says who did it: a plugin's name, ``cli``, ``api``, a connector.
    ``until`` is when a handoff for a limited time ends by itself (None: until released)."""

    contact: Contact
    to: Literal["human", "bot"]
    at: datetime
    reason: str = ""
    by: str = ""
    until: datetime | None = None


class CampaignFinished(Model):
    """A campaign ended: every recipient has an outcome (``state="finished"``), or it was cancelled.
    ``outcomes`` counts its recipients per outcome (``sent``, ``delivered``, ``refused``, ...);
    each recipient's own outcome is in the campaign's results (masked numbers, keyed hashes)."""

    id: str
    name: str
    state: Literal["finished", "cancelled"]
    template: str
    language: str
    started_at: datetime | None = None
    ended_at: datetime
    recipients: int
    outcomes: dict[str, int] = Field(default_factory=dict)
    audience_source: str | None = None
    """The connector source the audience was read from (e.g. ``hubspot_list``), None for a file:
    that connector's write-back finds each recipient's record in ``Campaigns.source_outcomes``."""


class CancelRequest(Model):
    """Cancel every scheduled message whose ``cancel_key`` matches (e.g. an appointment was cancelled)."""

    cancel_key: str


class EventKind(StrEnum):
    ORDER_CREATED = "order_created"
    ORDER_UPDATED = "order_updated"
    LEAD = "lead"
    INBOUND_MESSAGE = "inbound_message"
    MESSAGE_STATUS = "message_status"
    CONSENT_CHANGED = "consent_changed"
    TEMPLATE_UPDATE = "template_update"
    CONTACT_CHANGED = "contact_changed"
    CALL = "call"
    PAST_MESSAGE = "past_message"
    HANDOFF = "handoff"
    CAMPAIGN_FINISHED = "campaign_finished"
    SEND = "send"
    REPLY = "reply"
    """A person's reply to a customer (an order note, a CRM reply): the core sends the text inside
    the 24-hour window, the ``[replies]`` template outside it (:class:`~connectzap.core.replies.ReplyRequest`)."""
    CANCEL = "cancel"
    FALLBACK_DUE = "fallback_due"
    """The time of a message's ``fallback_after_minutes`` is up: the core checks whether it was
    delivered and, if not, sends its fallback (:class:`FallbackDue`). No event hook sees it."""
    RESOLVE = "resolve"
    """A thin webhook (ids only) that its connector completes later, outside the webhook edge, by
    fetching the record and journaling the full events. No event hook sees it."""


class Event(Model):
    """One journaled event: what a connector parsed from a delivery, before any plugin runs.

    ``dedupe_key`` is unique per ``source``: a second delivery with the same key is
    acknowledged and ignored. ``consents`` carried by the event are recorded in the consent
    ledger before plugins see it (a checkout opt-in arrives with its order).
    """

    model_config = ConfigDict(extra="forbid")

    kind: EventKind
    source: str
    dedupe_key: str
    data: dict[str, Any]
    occurred_at: datetime = Field(default_factory=utcnow)
    previous_status: str | None = None
    consents: list[ConsentChange] = Field(default_factory=list)
    already_recorded: bool = False
    """Set on the ``consent_changed`` notification connectzap journals for a change it has already
    written to the ledger: the hooks hear of it, the ledger does not record it a second time."""
    ordering_key: str | None = Field(default=None, max_length=512)
    """What the event is about, for ordering: events with the same key are applied one at a time, in
    journal order, by every worker together (``woocommerce:{shop}:order:{id}``, a lead, a contact).
    Chosen by whoever journals the event; when unset, :func:`connectzap.core.ordering.subject_of` picks
    the contact for inbound messages, consent changes and sends, and nothing (no ordering) otherwise.
    Only its keyed hash is stored; it is left out of the stored payload, so hooks never see it."""

    def payload(self) -> BaseModel:
        """The typed model of ``data`` for this kind (Order, Lead, InboundMessage, ...).

        Raises :class:`LookupError` for a kind nothing declared a model for: the kinds in
        :data:`CORE_PAYLOADS` always work; ``send`` and connectors' own kinds once an engine
        started (:mod:`.payloads`)."""
        model = payload_model(self.kind, self.source)
        if model is None:
            raise LookupError(f"no payload model is declared for {self.kind.value} events")
        return model.model_validate(self.data)

    def has_typed_payload(self) -> bool:
        """True when :meth:`payload` knows this kind's model."""
        return payload_model(self.kind, self.source) is not None

    @classmethod
    def of(
        cls,
        kind: EventKind | str,
        model: BaseModel,
        *,
        source: str,
        dedupe_key: str,
        **extra: Any,
    ) -> Event:
        return cls(kind=EventKind(kind), source=source, dedupe_key=dedupe_key,
                   data=model.model_dump(mode="json", by_alias=True, exclude_none=True), **extra)


class FallbackDue(Model):
    """The check :attr:`~connectzap.core.messages.Outgoing.fallback_after_minutes` asked for,
    journaled when message ``message_id`` was admitted and due at its time."""

    message_id: str = Field(max_length=64)
    minutes: int


CORE_PAYLOADS: dict[str, type[BaseModel]] = {
    EventKind.ORDER_CREATED: Order, EventKind.ORDER_UPDATED: Order, EventKind.LEAD: Lead,
    EventKind.INBOUND_MESSAGE: InboundMessage, EventKind.MESSAGE_STATUS: MessageStatus,
    EventKind.CONSENT_CHANGED: ConsentChange, EventKind.TEMPLATE_UPDATE: TemplateUpdate,
    EventKind.CONTACT_CHANGED: ContactChange, EventKind.PAST_MESSAGE: PastMessage,
    EventKind.CALL: CallActivity, EventKind.HANDOFF: Handoff,
    EventKind.CAMPAIGN_FINISHED: CampaignFinished,
    EventKind.CANCEL: CancelRequest, EventKind.FALLBACK_DUE: FallbackDue,
}
"""The typed model of each kind whose model is defined in this module. ``send`` (its model is
:class:`~connectzap.core.messages.Outgoing`) and connectors' kinds are declared at start-up."""


def payload_model(kind: str, source: str | None = None) -> type[BaseModel] | None:
    """The model that reads events of ``kind`` (from ``source``: a connector's own kinds are read
    by the model its connector declared), or ``None`` when nothing declared one (yet)."""
    return CORE_PAYLOADS.get(kind) or payloads.declared(kind, source)
