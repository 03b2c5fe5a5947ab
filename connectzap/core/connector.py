"""The contract every connector implements, bundled or third-party; the core owns it.

A connector is a webhook source and, optionally, a place replies are synced back to. The
HTTP edge calls, in order: :meth:`Connector.handshake` (set-up pings, GET verification),
:meth:`Connector.verify_request` (signature on the raw bytes, fail closed) and
:meth:`Connector.parse` (payload -> typed events with dedupe keys). Nothing else happens
inline: the events are journaled and the request is answered.

Reply sync methods (``sync_inbound_message``, ``sync_message_status``,
``sync_consent_changed``) are called later by the dispatcher, each as its own isolated,
retried delivery -- exactly like plugin hooks.

Declared extension points, all optional: :meth:`Connector.make_channel` (the connector sends
messages: a :class:`~connectzap.core.channel.Channel`, pacing included), :meth:`Connector.audience`
(campaign audiences read from the external system, for the sources in ``audience_sources``),
:meth:`Connector.background`
(periodic work beside the workers), :meth:`Connector.delivery_targets` (several receivers per
event), :meth:`Connector.operator_actions` (what an operator may run from the console) and
:meth:`Connector.template_management` (the message templates it syncs and creates) and
:meth:`Connector.fallback_media` (the media a message about one of its records falls back on). Durable
state goes through ``ctx.state`` in a sync method and ``self.app.plugin_state(name)`` elsewhere;
settings are a :class:`ConnectorSettings` model. The core probes for nothing else.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr

from .channel import Channel
from .messages import Outgoing
from .plugin_settings import TemplateUse
from .templates import BusinessAccounts
from .models import (CallActivity, CampaignFinished, ConsentChange, ContactChange, Event, EventKind, Handoff,
                     InboundMessage, Lead, MessageStatus, Order, PastMessage)



if TYPE_CHECKING:
    from .app import Connectzap
    from .context import EventContext
    from .replies import ReplyRequest


class ConnectorSettings(BaseModel):
    """Base for a connector's ``[connectors.NAME]`` section. Declare secrets as ``SecretStr``:
    a required secret that is missing stops start-up with one line naming it."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True

    def templates_used(self) -> Iterable[TemplateUse]:
        """The WhatsApp templates this section sends (key relative to the section), so ``doctor``,
        ``serve`` and ``worker`` can refuse to run while one is missing from the template cache.
        Default: none."""
        return ()

    def doctor_warnings(self, today: date) -> list[str]:
        """What ``connectzap doctor`` should warn about in this section as of ``today`` (one line
        each), beyond what validation refuses -- e.g. an API version about to be retired. Default: none."""
        return []

    def doctor_notes(self) -> list[str]:
        """What ``connectzap doctor`` should show about this section (one line each, never a secret),
        e.g. which accounts it speaks for. Default: nothing."""
        return []

    @classmethod
    def secret_fields(cls) -> list[str]:
        out = []
        for name, info in cls.model_fields.items():
            text = str(info.annotation)
            if "SecretStr" in text:
                out.append(name)
        return out


@dataclass
class WebhookRequest:
    """A received webhook, framework-free. ``headers`` keys are lower-case; ``body`` is the raw bytes."""

    method: str
    url: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)
    path_params: Mapping[str, str] = field(default_factory=dict)
    received_at: float = 0.0

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class WebhookResponse:
    status: int = 200
    body: bytes | str | dict[str, Any] = b""
    content_type: str = "application/json"


class Connector:
    """Subclass this and register it with ``register_connectors(register)``.

    Class attributes:

    * ``name`` -- the config section and plugin target name (``[connectors.NAME]``).
    * ``settings_model`` -- a :class:`ConnectorSettings` subclass.
    * ``routes`` -- webhook paths, e.g. ``("/webhooks/shopx", "/webhooks/shopx/{shop}")``.
    * ``methods`` -- HTTP methods the routes accept.
    * ``enabled_by_default`` -- run even without a config section (the WhatsApp sandbox does).
    * ``payload_models`` -- typed models for event kinds of its own (``{EventKind.RESOLVE: Notice}``).
    * ``optional_headers`` -- headers its senders sign deliveries with that it accepts a request
      without (informational ones, e.g. a delivery id); the conformance suite fails it for any other.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    settings_model: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    routes: ClassVar[tuple[str, ...]] = ()
    methods: ClassVar[tuple[str, ...]] = ("POST",)
    enabled_by_default: ClassVar[bool] = False
    payload_models: ClassVar[Mapping[EventKind, type[BaseModel]]] = {}
    """Models for event kinds this connector journals beyond the core's (e.g. a thin ``resolve``
    notice it completes later); the engine declares them when it starts (:mod:`.payloads`), for the
    events whose source is this connector's name, so two connectors may each have a ``resolve``."""
    optional_headers: ClassVar[tuple[str, ...]] = ()
    """Headers (any case) a signed delivery carries that this connector does not need: a request
    without one is still accepted. Declaring them is what lets the conformance suite tell an
    informational header from a signature check that is not enforced."""
    audience_sources: ClassVar[tuple[str, ...]] = ()
    """Campaign audience sources this connector reads (e.g. ``("hubspot_list",)``): a campaign
    created ``--from hubspot-list:123`` (REST ``{"source": "hubspot_list", ...}``) is filled by
    :meth:`audience` of the connector that names the source here."""

    def __init__(self, settings: ConnectorSettings, app: Connectzap) -> None:
        self.settings = settings
        self.app = app

    # --- ingress --------------------------------------------------------------------

    def handshake(self, request: WebhookRequest) -> WebhookResponse | None:
        """Answer set-up requests (GET verification, creation pings) without journaling. Default: none."""
        return None

    def verify_request(self, request: WebhookRequest) -> None:
        """Raise :class:`~connectzap.core.errors.SignatureError` unless the request is authentic."""
        raise NotImplementedError(f"{type(self).__name__} must implement verify_request")

    def parse(self, request: WebhookRequest) -> list[Event]:
        """Turn a verified request into events; raise :class:`~connectzap.core.errors.PayloadError`."""
        raise NotImplementedError(f"{type(self).__name__} must implement parse")

    def accepted(self, request: WebhookRequest, received: int, duplicates: int) -> WebhookResponse:
        """The answer once the request's events are journaled (``received`` new, ``duplicates`` seen
        before). Default: 200 with both counts as JSON. A route a person opens in a browser (the
        email connector's unsubscribe) answers a page instead."""
        return WebhookResponse(status=200, body={"received": received, "duplicates": duplicates})

    # --- reply sync (optional) -------------------------------------------------------

    async def sync_inbound_message(self, message: InboundMessage, ctx: EventContext) -> None:
        """Write an inbound WhatsApp message back to the external system."""

    async def sync_message_status(self, status: MessageStatus, ctx: EventContext) -> None:
        """Write an outbound message's status (or, for ``accepted``, its content) back."""

    async def sync_consent_changed(self, change: ConsentChange, ctx: EventContext) -> None:
        """Mirror a consent change to the external system."""

    async def sync_order_created(self, order: Order, ctx: EventContext) -> None:
        """Forward a new order (from any connector) to the external system."""

    async def sync_order_updated(self, order: Order, ctx: EventContext) -> None:
        """Forward an order change to the external system."""

    async def sync_lead(self, lead: Lead, ctx: EventContext) -> None:
        """Forward a new lead to the external system."""

    async def sync_contact_changed(self, change: ContactChange, ctx: EventContext) -> None:
        """Mirror a contact saved in or removed from the business's own address book (the WhatsApp
        Business app's contacts on a coexistence number)."""

    async def sync_campaign_finished(self, campaign: CampaignFinished, ctx: EventContext) -> None:
        """Write a campaign's results back to the external system (a contact property, a note)."""

    async def sync_reply(self, reply: ReplyRequest, ctx: EventContext) -> None:
        """Write what became of a person's reply (an event of kind ``reply``, e.g. one this connector
        journaled from an order note) back to where it was written: the message the core admitted for
        it is ``ctx.app.messages(source_event_id=ctx.event_id)`` -- sent as text inside the 24-hour
        window, as the ``[replies]`` template outside it, or refused with the gate's reason."""

    async def sync_handoff(self, handoff: Handoff, ctx: EventContext) -> None:
        """Put a change of hands of a conversation (to a person, back to the bot) on the customer's
        record in the external system."""

    async def sync_call(self, call: CallActivity, ctx: EventContext) -> None:
        """Log a WhatsApp call step (connected, rang, ended) as call activity in the external system."""

    async def sync_past_message(self, message: PastMessage, ctx: EventContext) -> None:
        """Log a message of the chat history a coexistence number shared at onboarding (a past
        conversation entry, for a timeline)."""

    # --- campaign audiences (optional) -------------------------------------------------

    def audience(self, query: AudienceQuery) -> AsyncIterator[AudienceMember]:
        """The members of the audience ``query`` describes (its ``source`` is one of
        :attr:`audience_sources`), read page by page so that memory stays flat in the list's size.

        Yield every record, also one without a phone number (``phone=None``: the campaign counts it
        as skipped, with the reason). Raise :class:`~connectzap.core.errors.PayloadError` for options
        it cannot use, :class:`~connectzap.core.errors.NotFoundError` when the list does not exist,
        and the delivery errors of the tree (auth: fatal; 429/5xx: retriable) when the system fails:
        the campaign then keeps nothing of the audience. Default: no source."""
        raise NotImplementedError(f"{type(self).__name__} reads no campaign audience")

    # --- sending (optional) -----------------------------------------------------------

    def make_channel(self) -> Channel | None:
        """The channel sends go through, if this connector provides one (with its own rate limits:
        :meth:`Channel.pace <connectzap.core.channel.Channel.pace>`). Called once at start-up; the
        engine uses the first connector's channel it gets. Default: none."""
        return None

    def business_accounts(self) -> BusinessAccounts | None:
        """Which business account (WABA) each of this connector's numbers sends from, when it
        serves several and each has its own templates: the send gate then checks a message against
        the templates of the account of the number it leaves from. Called once at start-up; the
        engine uses the first connector's answer. Default: none (every cached template counts for
        every number)."""
        return None

    def marketing_messages_api(self, number: str | None) -> bool | None:
        """Whether sends from ``number`` (None: the default number) may go through Meta's Marketing
        Messages API -- its account has it configured. A campaign that asks for that API
        (``marketing_api = use``) is refused when no connector answers True. Default: None (this
        connector does not send from that number)."""
        return None

    def fallback_media(self, outgoing: Outgoing) -> list[str] | None:
        """The media ``outgoing`` -- a WhatsApp message about one of this connector's records
        (``origin["source"]`` names this connector) that names none itself -- falls back on, in
        order, when WhatsApp cannot deliver it (docs/channels.md, "Fallback"), e.g. a shop's
        ``fallback = ["sms", "email"]`` for its order notifications. Asked as the message is
        admitted. Default: None (no rule here: ``[fallback] media`` applies)."""
        return None

    def make_rehearsal_channel(self) -> Channel | None:
        """The channel a simulation (``connectzap simulate``) sends through instead: it must reach
        no one -- it validates and records what would have gone out (the WhatsApp connector's
        sandbox). A simulating engine never takes :meth:`make_channel`'s. Default: none."""
        return None

    async def display_number(self, phone_number_id: str | None = None) -> str | None:
        """The number customers see and write to (E.164) for the business's sending number
        ``phone_number_id`` (None: the default one), when this connector can tell -- e.g. for a
        ``wa.me`` link. Default: None (this connector does not know)."""
        return None

    # --- what an operator sees (optional) -----------------------------------------------

    def status_lines(self) -> list[tuple[str, str]]:
        """What an operator should see about this connector now, as ``(label, value)`` pairs (the
        console's overview shows them; e.g. the messaging limit and how much of it is used). May
        read the store; must not call out. No secret and no customer number. Default: none."""
        return []

    def operator_actions(self) -> list[OperatorAction]:
        """What an operator may run on this connector from the console (e.g. a reconcile of missed
        webhooks), each the same function its CLI command runs. Called on every console page view: build
        the list from settings only, without calling out. Default: none."""
        return []

    def replays(self, target: str) -> bool:
        """Whether a delivery to ``target`` (one of this connector's delivery targets) may be queued
        again after it finished, done or dead (:meth:`Connectzap.replay_delivery`, the Events page's
        Replay): True only when sending it twice is harmless because the receiver recognises the
        copy (a stable id per event and target). Default: False."""
        return False

    def template_management(self) -> TemplateManagement | None:
        """The message templates this connector keeps in the template cache, as an operator syncs and
        creates them (the console's Templates page; the same functions as the connector's CLI
        commands). Built from settings only, without calling out. Default: none."""
        return None

    # --- lifecycle --------------------------------------------------------------------

    async def background(self, stop: asyncio.Event) -> None:
        """Long-running work that runs beside the workers until ``stop`` is set (e.g. a periodic
        reconcile of webhooks the source failed to deliver). Default: nothing."""

    async def aclose(self) -> None:
        """Release clients. Called on shutdown."""

    @classmethod
    def sync_methods(cls) -> dict[str, str]:
        """Event kind -> sync method name, for the methods this class overrides."""
        out = {}
        for kind, method in (("inbound_message", "sync_inbound_message"), ("message_status", "sync_message_status"),
                             ("consent_changed", "sync_consent_changed"), ("order_created", "sync_order_created"),
                             ("order_updated", "sync_order_updated"), ("lead", "sync_lead"),
                             ("contact_changed", "sync_contact_changed"),
                             ("call", "sync_call"), ("handoff", "sync_handoff"), ("past_message", "sync_past_message"),
                             ("reply", "sync_reply"),
                             ("campaign_finished", "sync_campaign_finished")):
            if getattr(cls, method) is not getattr(Connector, method):
                out[kind] = method
        return out

    def delivery_targets(self, kind: str) -> dict[str, Callable[[Any, EventContext], Awaitable[Any]]]:
        """Delivery target name -> coroutine function, for events of ``kind``.

        Each target is retried and dead-lettered on its own. The default is the overridden
        sync method as ``connector:<name>``; a connector that forwards to several receivers
        (the generic webhooks' subscriptions) returns one target per receiver.
        """
        method = type(self).sync_methods().get(kind)
        return {f"connector:{self.name}": getattr(self, method)} if method else {}

    async def rehearse(self, target: str, kind: str, payload: Any, ctx: EventContext) -> list[OutboundCall]:
        """What delivering ``payload`` (an event of ``kind``) to ``target`` would do, without doing it.

        ``connectzap simulate`` calls this instead of every delivery target (the core never calls a
        connector's sync methods in a simulation). Return the requests the delivery would make,
        built by the same code as the real ones; read connectzap's database if needed, but make no
        request outside it. The default describes the delivery without its requests.
        """
        return [OutboundCall(None, None, note=f"{type(self).__name__} would receive this {kind} event "
                                              "(it does not describe its requests: Connector.rehearse)")]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


@dataclass(frozen=True)
class AudienceQuery:
    """What a campaign asks a connector's :meth:`Connector.audience` for.

    ``options`` are the source's own (``{"id": "123"}`` for a list; filters), as the user gave them:
    text from the CLI, JSON values from the REST API -- the connector checks them. ``fields`` are
    the record properties the template's parameters come from: each member carries their values.
    """

    source: str
    options: Mapping[str, Any] = field(default_factory=dict)
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class AudienceMember:
    """One record of an external audience. ``ref`` is its id there (what a write-back after the
    campaign addresses; never a phone number); ``phone`` as the record has it (the campaign
    normalises it, with ``country`` for a national number); ``fields`` the asked-for values."""

    ref: str
    phone: str | None
    country: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OperatorAction:
    """One thing an operator may run on a connector from the console (:meth:`Connector.operator_actions`).

    ``name`` is its id in the console's form (letters, digits, ``_`` and ``-``); ``label`` the button;
    ``description`` one line saying what it does. ``run`` does it (blocking; the console calls it in a
    worker thread) and returns one line for the operator and the audit log -- never a secret or a
    customer's number. It raises a :class:`~connectzap.core.errors.ConnectzapError` whose message the
    operator can act on when it cannot be done.
    """

    name: str
    label: str
    description: str
    run: Callable[[], str]


@dataclass(frozen=True)
class TemplateAccount:
    """A business account whose templates an operator syncs and creates (:class:`TemplateManagement`)."""

    name: str
    """What :meth:`TemplateManagement.sync` and :meth:`~TemplateManagement.create` take as ``account``."""
    waba_id: str | None
    """The ``waba_id`` its templates carry in the cache."""


class TemplateManagement(ABC):
    """Message templates as an operator manages them (:meth:`Connector.template_management`).

    Each method is what the connector's own CLI commands run, so the console and the CLI sync,
    check and create a template by one implementation. Errors are a
    :class:`~connectzap.core.errors.ConnectzapError` an operator can act on: a refused definition
    is a :class:`~connectzap.core.errors.PayloadError` naming its field; the vendor's refusal keeps
    its code and title in the message, never a credential.
    """

    @abstractmethod
    def accounts(self) -> list[TemplateAccount]:
        """The accounts templates live in, the default one first (no calling out)."""

    @abstractmethod
    async def sync(self, account: str | None = None) -> list[str]:
        """Replace the cached templates of ``account`` (None: every account's) with the vendor's;
        one line per account saying what changed."""

    @abstractmethod
    def check(self, definition: dict[str, Any]) -> None:
        """Raise :class:`~connectzap.core.errors.PayloadError` for what the vendor refuses outright
        in a new template's ``definition`` (name, language, category, components[, parameter_format])."""

    @abstractmethod
    async def create(self, definition: dict[str, Any], account: str | None = None) -> str:
        """Check ``definition``, submit it for review in ``account`` (None: the only one; with
        several it is required) and cache it; one line saying what became of it."""


@dataclass(frozen=True)
class OutboundCall:
    """One request a connector (or a hook) would make outside connectzap, shown instead of made
    (:meth:`Connector.rehearse`, ``connectzap simulate``).

    ``method`` and ``url`` are None for an effect the connector does not describe as HTTP.
    """

    method: str | None
    url: str | None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "url": self.url}
        if self.headers:
            out["headers"] = self.headers
        if self.body is not None:
            out["body"] = self.body
        if self.note:
            out["note"] = self.note
        return out


_NEEDS = "connectzap_needs_connector"
_F = TypeVar("_F", bound=Callable[..., Any])


def needs_connector(name: str) -> Callable[[_F], _F]:
    """Declare that an event hook implementation has nothing to do unless connector ``name`` is
    configured (e.g. a shop's hook without the shop)::

        @hookimpl
        @needs_connector("woocommerce")
        def on_inbound_message(message, ctx): ...

    Without that connector the dispatcher does not call it and records no delivery for it: a hook
    called for every inbound message would otherwise cost a delivery row per message for nothing.
    A connector's own ``sync_*`` methods need no such declaration (they exist only when it is)."""
    def declare(function: _F) -> _F:
        setattr(function, _NEEDS, name)
        return function

    return declare


def needed_connector(function: Callable[..., Any]) -> str | None:
    """The connector ``function`` (an event hook implementation) declared it needs, if any."""
    return getattr(function, _NEEDS, None)


def secret_value(secret: SecretStr | None) -> str:
    return secret.get_secret_value() if secret is not None else ""
