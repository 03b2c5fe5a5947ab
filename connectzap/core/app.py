"""The engine: settings, store, plugins, connectors and channel, wired together once.

``Connectzap`` is what the CLI, the HTTP service and tests hold. Ingress goes through
:meth:`Connectzap.ingest`; anything that wants a message sent goes through :meth:`send`
(the gate); workers drain the journal and the outbox (:mod:`connectzap.core.worker`).
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import ValidationError
from sqlalchemy import func, select

from . import consent as ledger
from . import consent_files
from . import conversations, fallbacks, gate, identities, minimize, outcomes, payloads, replies, windows
from .bsuids import identify, is_bsuid
from .business_hours import BusinessHours
from .channel import WHATSAPP, Channel, LegacyChannel, NoChannel, PreMediumChannel
from .connector import Connector
from .conversations import ConversationState, Handover
from .context import PluginState
from .errors import ConfigurationError, ConflictError, NotFoundError
from .hooks import collect_connectors, collect_plugin_settings, delivery_targets, plugin_names
from .idempotency import scoped_key, unique_key
from .messages import Outgoing, TemplateContent
from .operators import Operators
from .models import CORE_PAYLOADS, Category, ConsentChange, ConsentRecord, Contact, Event, EventKind, TemplateInfo
from .phones import contact_key, set_default_region, to_e164
from .plugin_settings import PluginSettings, check_together, did_you_mean, template_problems, validate_sections, where
from .plugins import load_failures, load_plugins
from .settings import Settings, describe_validation_error, load_settings
from .store import flags, journal, outbox
from .store.database import Database, now
from .store.schema import workers
from .templates import BusinessAccounts
from .views import DeadLetter, EventDetail, EventSummary, UnknownMessage

if TYPE_CHECKING:
    from .campaigns import Campaigns
    from .simulation import Simulation

log = logging.getLogger("connectzap")

def _no_rule(outgoing: Outgoing) -> list[str] | None:
    return None


ChannelFactory = Callable[["Connectzap"], Channel]
"""Builds a channel for an engine: a channel class taking the engine, or a function."""


class Connectzap:
    """The running engine. Create it with settings (or the embedded defaults), then :meth:`start`.

    ``channel`` is where sends go: a channel, or a :data:`ChannelFactory` called with the engine
    (``channel=SandboxChannel``); it sends on its medium, and :meth:`use_channel` adds others.
    For every other medium (for all of them without one), :meth:`start` asks the connectors
    (:meth:`Connector.make_channel`; a simulation asks for :meth:`Connector.make_rehearsal_channel`)
    and keeps the first channel offered for each medium (:attr:`channels`). Messages on a medium
    without a channel wait in the queue (:meth:`channel_for` says why; so do ``/healthz`` and
    ``connectzap doctor``).
    """

    def __init__(self, settings: Settings | None = None, *, channel: Channel | ChannelFactory | None = None,
                 simulation: Simulation | None = None) -> None:
        self.settings = settings or load_settings()
        self.simulation = simulation
        """Set for a rehearsal (:mod:`.simulation`): a rehearsal channel, connectors rehearsed, not called."""
        set_default_region(self.settings.phones.default_region)
        self.secret = self.settings.hash_secret()
        self.db = Database(self.settings.database_url, pool_size=self.settings.database.pool_size,
                           secret=self.secret)
        self.operators = Operators(self.db)
        """The console's users, sessions and audit log."""
        self._channels: dict[str, Channel] | None = None  # medium -> its channel, once known
        self._spare: list[Channel] = []  # offered for a medium already taken: only closed
        if channel is not None:
            built = _checked(channel(self) if isinstance(channel, type) or inspect.isroutine(channel) else channel)
            self._channels = {built.medium: built}
        self.connectors: dict[str, Connector] = {}
        self.plugin_settings: dict[str, PluginSettings] = {}
        """Each declared ``[plugins.NAME]`` section, validated by :meth:`start` (``ctx.plugin_settings``)."""
        self.business_accounts: BusinessAccounts | None = None
        """Which business account's templates each number sends (:meth:`Connector.business_accounts`),
        set by :meth:`start`; None: every cached template counts for every number."""
        self.business_hours = BusinessHours(self.settings.business_hours)
        """When the business answers (``[business_hours]``); ``ctx.business_hours`` in hooks."""
        self.started = False

    # --- start-up ------------------------------------------------------------------------

    def start(self, *, migrate: bool = True) -> Connectzap:
        """Migrate the database, load plugins, build and validate connectors (fail closed)."""
        if self.started:
            return self
        if migrate:
            self.db.migrate()
        load_plugins()
        self.plugin_settings = validate_sections(self.settings.plugins, collect_plugin_settings(),
                                                 owners=plugin_names() | set(collect_connectors()),
                                                 config_path=self.settings.config_path)
        check_together(self.plugin_settings, self.settings)
        self.connectors = self._build_connectors()
        self._declare_payloads()
        self.business_accounts = next((found for found in (c.business_accounts() for c in self.connectors.values())
                                       if found is not None), None)
        given = self._channels or {}  # the channel passed in (and any added since): they keep their media
        self._channels = {**self._channels_from_connectors(taken=set(given)), **given}
        self.started = True
        return self

    def _declare_payloads(self) -> None:
        """What reads each event kind beyond models.CORE_PAYLOADS: the core's ``send`` and each
        connector's own kinds -- declared here, never by importing a module."""
        payloads.declare(EventKind.SEND, Outgoing, "the core")
        payloads.declare(EventKind.REPLY, replies.ReplyRequest, "the core")
        for name, connector in self.connectors.items():
            for kind, model in connector.payload_models.items():
                if kind in CORE_PAYLOADS or kind in (EventKind.SEND, EventKind.REPLY):
                    raise ConfigurationError(f"connector {name} declares a payload model for {kind} events, "
                                             "which the core owns")
                # keyed by the connector's name, the source of the events it journals; the first one
                # also reads the kind from sources no connector names (as before per-source models)
                payloads.declare(str(kind), model, f"connector {name}", source=name)
                payloads.declare_default(str(kind), model, f"connector {name}")

    def config_problems(self) -> list[str]:
        """What the configuration asks for that the database lacks: templates named in plugin and
        connector sections but missing from the template cache (with several business accounts:
        from the templates of the account whose number sends them). One line each; ``doctor``,
        ``serve`` and ``worker`` refuse to go on while there are any."""
        from . import templates
        with self.db.read() as conn:
            cached = [(t.name, t.language, t.waba_id) for t in templates.all_templates(conn)]
        uses = [(f"plugins.{name}", use) for name, settings in sorted(self.plugin_settings.items())
                for use in settings.templates_used()]
        uses += [(f"connectors.{name}", use) for name, connector in sorted(self.connectors.items())
                 for use in connector.settings.templates_used()]
        return template_problems(uses, cached, config_path=self.settings.config_path,
                                 accounts=self.business_accounts)

    def _build_connectors(self) -> dict[str, Connector]:
        built: dict[str, Connector] = {}
        registered = collect_connectors()
        if not load_failures():  # a section may belong to a connector whose plugin failed to load
            for name in self.settings.connectors:
                if name not in registered:
                    raise ConfigurationError(f"{where(self.settings.config_path)}: [connectors.{name}]: no connector "
                                             f"has this name{did_you_mean(name, registered)}")
        for name, cls in registered.items():
            section = self.settings.connector_section(name)
            if section is None and not cls.enabled_by_default:
                continue
            section = dict(section or {})
            if section.get("enabled", True) is False:
                continue
            try:
                settings = cls.settings_model.model_validate(section)
            except ValidationError as exc:
                raise ConfigurationError(
                    f"connector {name} cannot start: "
                    f"{describe_validation_error(exc, f'connectors.{name}', cls.settings_model)}") from None
            built[name] = cls(settings, self)
        return built

    def _channels_from_connectors(self, taken: set[str]) -> dict[str, Channel]:
        """Each medium's channel: the first a connector offers for it (the bundled WhatsApp
        connector offers one for ``whatsapp``: the Cloud API when configured, else the sandbox). A
        channel offered for a medium already taken -- by an earlier connector, or in ``taken`` (the
        engine was given a channel for it) -- is kept only to be closed. A simulation takes only
        rehearsal channels (the WhatsApp connector's sandbox): it never sends."""
        rehearsing = self.simulation is not None
        found: dict[str, Channel] = {}
        for connector in self.connectors.values():
            offered = connector.make_rehearsal_channel() if rehearsing else connector.make_channel()
            if offered is None:
                continue
            checked = _checked(offered)
            if checked.medium in found or checked.medium in taken:
                self._spare.append(checked)
            else:
                found[checked.medium] = checked
        return found

    def _no_channel(self, medium: str) -> NoChannel:
        enabled = ", ".join(sorted(self.connectors)) or "none"
        what = "a rehearsal channel" if self.simulation is not None else "one"
        if medium == WHATSAPP:
            return NoChannel(f"no channel: none of the enabled connectors ({enabled}) offers {what}, so messages "
                             "wait in the queue; enable a connector that sends (is [connectors.whatsapp] enabled "
                             "= false?)")
        return NoChannel(f"no {medium} channel: none of the enabled connectors ({enabled}) offers {what} for "
                         f"{medium}, so {medium} messages wait in the queue; enable a connector that sends {medium}",
                         medium)

    @property
    def channels(self) -> dict[str, Channel]:
        """Each medium's channel (a copy), only the media that have one."""
        if self._channels is None:
            self.start()
        assert self._channels is not None
        return dict(self._channels)

    def channel_for(self, medium: str) -> Channel:
        """Where messages on ``medium`` go: its channel, or a :class:`NoChannel` saying why there is none."""
        return self.channels.get(medium) or self._no_channel(medium)

    @property
    def channel(self) -> Channel:
        """The channel of the default medium, WhatsApp (a :class:`NoChannel` when there is none)."""
        return self.channel_for(WHATSAPP)

    @property
    def channel_missing(self) -> str | None:
        """Why this engine has no channel at all to send through, or None when it has one."""
        return None if self.channels else self._no_channel(WHATSAPP).reason

    def use_channel(self, channel: Channel) -> Channel:
        """Send through ``channel`` from now on, on its medium (e.g. the same channel wrapped to count
        sends, or a second medium's channel in a test); returns the channel used before on that
        medium (a :class:`NoChannel` when there was none)."""
        checked = _checked(channel)
        previous = self.channel_for(checked.medium)
        assert self._channels is not None
        if isinstance(checked, NoChannel):  # putting back "none" (what an earlier call returned)
            self._channels.pop(checked.medium, None)
        else:
            self._channels[checked.medium] = checked
        return previous

    @property
    def campaigns(self) -> Campaigns:
        """Broadcasts of a template to an audience (:mod:`.campaigns`)."""
        from .campaigns import Campaigns
        return Campaigns(self)

    def marketing_messages_api(self, number: str | None) -> bool | None:
        """Whether ``number`` (None: the default number) may send through Meta's Marketing Messages
        API, as the first connector that sends from it says (:meth:`Connector.marketing_messages_api`);
        None when none does (or the engine is not started)."""
        return next((found for found in (c.marketing_messages_api(number) for c in self.connectors.values())
                     if found is not None), None)

    def plugin_state(self, plugin: str) -> PluginState:
        """Durable key/value state of ``plugin`` outside any hook (a cursor, a crash mark): reads
        see what is committed, and each write commits at once. Inside a hook use ``ctx.state``."""
        return PluginState(self, plugin, buffered=False)

    async def aclose(self) -> None:
        for channel in [*(self._channels or {}).values(), *self._spare]:
            await channel.aclose()
        for connector in self.connectors.values():
            await connector.aclose()
        self.db.dispose()

    def close(self) -> None:
        self.db.dispose()

    # --- ingress -------------------------------------------------------------------------

    def ingest(self, events: list[Event], *, due_at: float | None = None) -> list[journal.Journaled]:
        """Journal events durably (one transaction). Duplicates by (source, dedupe_key) are skipped.
        Each event keeps only what its work needs (:mod:`.minimize`): a status loses its recipient's number.
        ``due_at`` (POSIX time): workers take the events only from then on -- timed work (a
        connector's follow-up days later) that survives restarts like any journaled event."""
        with self.db.begin() as conn:
            return journal.append(self.db, conn, minimize.for_journal(events, self.secret), due_at=due_at)

    # --- sending -------------------------------------------------------------------------

    def send(self, outgoing: Outgoing, *, idempotency_key: str | None = None, source: str = "api",
             strict_key: bool = False) -> gate.Decision:
        """Put a message through the gate. Without a key, each call is a new message."""
        admission = self.admission(outgoing, idempotency_key=idempotency_key, source=source)
        with self.db.begin() as conn:
            return gate.admit_many(self.db, conn, self.secret, [admission], strict_key=strict_key,
                                   accounts=self.business_accounts)[0]

    def admission(self, outgoing: Outgoing, *, idempotency_key: str | None = None,
                  source: str = "api") -> gate.Admission:
        """``outgoing`` with the key it is admitted under: ``idempotency_key`` (or the message's own)
        scoped to ``source``; without either, a key of its own, so each call is a new message."""
        key = idempotency_key or outgoing.idempotency_key
        return gate.Admission(self.configured(outgoing), scoped_key(source, key) if key else unique_key(source),
                              fresh_key=key is None)

    def configured(self, outgoing: Outgoing, plugin: str | None = None) -> Outgoing:
        """``outgoing`` with the fallback media configured for it (:func:`.fallbacks.configured`):
        those of ``plugin``'s settings when it proposed the message, else those of the connector
        its ``origin`` names (a shop's ``fallback``), else ``[fallback] media``."""
        settings = self.plugin_settings.get(plugin.removeprefix("connector:")) if plugin else None
        connector = self.connectors.get((outgoing.origin or {}).get("source", ""))
        return fallbacks.configured(outgoing, settings.fallback_media if settings is not None else _no_rule,
                                    connector.fallback_media if connector is not None else _no_rule,
                                    self.settings.fallback.media)

    def answer_later(self, inbound_key: str, event_id: int, messages: list[Outgoing], *,
                     source: str) -> list[gate.Decision]:
        """Send the automatic answer to an inbound message after its event was decided (a bot that
        answers through the API): its messages (each with ``automatic`` set) go through the gate
        together, only if the message has had no automatic answer yet -- else a
        :class:`ConflictError` (``already_answered``) and nothing is sent. ``inbound_key`` is the
        inbound message's wamid."""
        from . import arbitration
        kind = messages[0].automatic if messages else None
        if kind is None or any(m.automatic != kind for m in messages):
            raise ValueError("a late answer is one or more messages of one automatic kind")
        admissions = [self.admission(m, idempotency_key=m.idempotency_key or f"{inbound_key}:{n}", source=source)
                      for n, m in enumerate(messages)]
        slot = arbitration.inbound_slot(inbound_key)
        with self.db.begin() as conn:
            if not arbitration.claim_late(self.db, conn, slot, event_id, None, kind):
                raise ConflictError("this inbound message already had its automatic answer", code="already_answered")
            decisions = gate.admit_many(self.db, conn, self.secret, admissions, accounts=self.business_accounts)
            arbitration.claim_late_message(conn, slot, decisions[0].id)
            return decisions

    def send_many(self, messages: list[Outgoing], *, source: str = "api",
                  strict_key: bool = False) -> list[gate.Decision]:
        """Put several messages through the gate in one transaction (a campaign, a bulk import).

        Each message gets exactly the checks :meth:`send` applies, in order; the consent, window
        and template facts are read once for the batch and the outbox rows written in one
        statement. A message's own ``idempotency_key`` makes it idempotent; without one each is new.
        With ``strict_key``, a key already used for a different message (before, or earlier in
        this batch) gives that message ``status="conflict"``; the others are admitted as usual.
        """
        admissions = [self.admission(m, source=source) for m in messages]
        with self.db.begin() as conn:
            return gate.admit_many(self.db, conn, self.secret, admissions, strict_key=strict_key,
                                   report_conflicts=True, accounts=self.business_accounts)

    def message(self, message_id: str) -> dict[str, Any]:
        with self.db.read() as conn:
            row = outbox.get(conn, message_id)
        if row is None:
            raise NotFoundError(f"no message {message_id}")
        return row

    def messages(self, *, phone: str | None = None, contact_key: str | None = None,
                 **filters: Any) -> list[dict[str, Any]]:
        """Messages, newest first (filters: :func:`.store.outbox.listing`); ``phone`` is hashed here,
        or ``contact_key`` is the hash already."""
        key = self.contact_key(phone) if phone else contact_key
        with self.db.read() as conn:
            return outbox.listing(conn, contact_key=key, **filters)

    def unknown_messages(self, limit: int = 200) -> list[UnknownMessage]:
        """Messages that may or may not have been sent, the longest-waiting first, with their age and
        what ``workers.unknown_policy`` will do once their grace period is over."""
        cfg = self.settings.workers
        with self.db.read() as conn:
            rows = outbox.unknown_listing(conn, limit)
        at = now()
        return [UnknownMessage.of(row, at=at, grace=cfg.unknown_grace_seconds, policy=cfg.unknown_policy,
                                  max_attempts=cfg.max_attempts) for row in rows]

    def settle_unknown(self, message_id: str) -> str | None:
        """Settle an ``unknown`` message now, as ``workers.unknown_policy`` would once its grace period
        is over: ``"resend"`` or ``"fail"``; None when it is not (or no longer) unknown."""
        from .sender import settle_unknown
        notify = bool(delivery_targets(EventKind.MESSAGE_STATUS.value, self.connectors.values()))
        with self.db.begin() as conn:
            done = settle_unknown(self, conn, outbox.unknown_locked(self.db, conn, message_id), notify=notify)
        return done.get(message_id)

    # --- consent ---------------------------------------------------------------------------

    def contact_key(self, phone: str, country: str | None = None) -> str:
        """The keyed hash the store knows a contact by: ``phone`` is a phone number, or a
        business-scoped user id (BSUID), which resolves to the number it is linked to, or the email
        address of a customer known only by it."""
        if "@" in phone:
            from .email_addresses import email_key, normalized
            return email_key(normalized(phone), self.secret)
        if is_bsuid(phone):
            with self.db.read() as conn:
                key = identities.resolve(conn, self.secret, None, phone)
            assert key is not None
            return key
        return contact_key(to_e164(phone, country), self.secret)

    def contact_key_of(self, contact: Contact) -> str | None:
        """The keyed hash of ``contact`` (by its phone, else its BSUID); None when it names neither."""
        with self.db.read() as conn:
            return identities.resolve(conn, self.secret, contact.phone, contact.user_id)

    def conversation(self, contact: str) -> ConversationState:
        """Who handles the conversation with ``contact`` (a phone number or a BSUID) now."""
        key = self.contact_key(contact)
        with self.db.read() as conn:
            return conversations.state(conn, key)

    def hand_to_human(self, contact: str, reason: str, minutes: int | None = None, *, by: str = "api") -> bool:
        """Hand the conversation with ``contact`` to people for ``minutes`` (None: until released):
        no automatic answers meanwhile. Returns whether it changed hands."""
        return self._hand_over(contact, Handover("human", reason, minutes, by))

    def release(self, contact: str, *, by: str = "api") -> bool:
        """Give the conversation with ``contact`` back to the bot. Returns whether a person had it."""
        return self._hand_over(contact, Handover("bot", by=by))

    def handled_by_people(self, limit: int = 200) -> list[conversations.HandledConversation]:
        """The conversations people handle now (no automatic answers to them), most recent first."""
        with self.db.read() as conn:
            return conversations.handled_by_people(conn, limit)

    def window(self, contact: str, country: str | None = None) -> replies.WindowState:
        """The 24-hour windows ``contact`` (a phone number or a BSUID) opened, and when each closes."""
        key = self.contact_key(contact, country)
        with self.db.read() as conn:
            return replies.window_state(conn, key, now())

    def reply(self, contact: str, text: str, *, country: str | None = None,
              fallback: TemplateContent | None = None, fallback_params: list[str] | None = None,
              business_number: str | None = None, idempotency_key: str | None = None,
              by: str = "api") -> replies.AgentReply:
        """A person's reply to ``contact``: ``text`` inside the 24-hour window, else ``fallback`` (by
        default the ``[replies]`` template with ``fallback_params``); refused ``window_closed`` when
        the window is closed and there is no template. Sent from ``business_number``, by default the
        number the customer wrote to last. An admitted reply hands the conversation to people for
        ``[replies] handoff_minutes`` in the same transaction; a repeated ``idempotency_key`` returns
        the first reply's message and changes nothing."""
        request = replies.ReplyRequest(to=Contact.model_validate(identify(contact, country)), text=text,
                                       fallback=fallback, fallback_params=fallback_params or [],
                                       business_phone_number_id=business_number, by=by)
        key = scoped_key(f"reply:{by}", idempotency_key) if idempotency_key else unique_key(f"reply:{by}")
        listened = not self.started or bool(delivery_targets(EventKind.HANDOFF.value, self.connectors.values()))
        with self.db.begin() as conn:
            return replies.admit(self.db, conn, self.secret, request, key, settings=self.settings.replies,
                                 accounts=self.business_accounts, handoff_listened=listened, strict_key=True)

    def _hand_over(self, contact: str, change: Handover) -> bool:
        if change.minutes is not None and change.minutes <= 0:
            raise ValueError("minutes must be positive (or none: until released)")
        key = self.contact_key(contact)
        listened = not self.started or bool(delivery_targets(EventKind.HANDOFF.value, self.connectors.values()))
        with self.db.begin() as conn:
            return conversations.hand_over(self.db, conn, key, Contact.model_validate(identify(contact)), change,
                                           listened=listened)

    def set_consent(self, change: ConsentChange) -> bool:
        """Record a consent change now (an opt-out wins at once) and journal it for the hooks.

        The journaled notification holds the number until it is dispatched, so it is journaled only
        when something listens to ``consent_changed`` (always, before :meth:`start` has loaded the
        plugins and connectors that would say)."""
        listened = not self.started or bool(delivery_targets(EventKind.CONSENT_CHANGED.value,
                                                             self.connectors.values()))
        with self.db.begin() as conn:
            key = ledger.contact_of(conn, self.secret, change)
            changed = ledger.record(self.db, conn, key, change)
            if changed and listened:
                dedupe = f"{key}:{ledger.subject(change)}:{int(change.granted)}:{change.at.timestamp():.6f}"
                journal.append(self.db, conn, [Event.of(EventKind.CONSENT_CHANGED, change, source=change.source,
                                                        already_recorded=True,
                                                        dedupe_key=dedupe)])
        return changed

    def consent(self, phone: str | None = None, country: str | None = None, *,
                key: str | None = None, medium: str = WHATSAPP) -> dict[Category, ConsentRecord]:
        """The deciding record per category on ``medium`` of ``phone`` (hashed here), or of the
        contact ``key``."""
        key = key or self.contact_key(str(phone), country)
        with self.db.read() as conn:
            return ledger.current(conn, key, medium)

    def consent_by_medium(self, phone: str | None = None, country: str | None = None, *,
                          key: str | None = None) -> dict[str, dict[Category, ConsentRecord]]:
        """The deciding record per category, for each medium the contact has any record on."""
        key = key or self.contact_key(str(phone), country)
        with self.db.read() as conn:
            return ledger.by_medium(conn, key)

    def consent_history(self, phone: str | None = None, country: str | None = None, *,
                        key: str | None = None) -> list[ConsentRecord]:
        key = key or self.contact_key(str(phone), country)
        with self.db.read() as conn:
            return ledger.history(conn, key)

    def last_inbound(self, key: str) -> float | None:
        """When the contact ``key`` last wrote (their 24-hour window runs from then), or None."""
        with self.db.read() as conn:
            return windows.last_inbound(conn, key)

    # --- health ----------------------------------------------------------------------------

    def paused(self) -> str | None:
        """Why sending is paused (e.g. an expired access token), or None."""
        with self.db.read() as conn:
            return flags.sending_paused(conn)

    def set_paused(self, reason: str | None) -> None:
        with self.db.begin() as conn:
            flags.pause_sending(self.db, conn, reason)

    def resume_sending(self) -> str | None:
        """Resume paused sending; returns why it was paused (None: it was not)."""
        reason = self.paused()
        if reason is not None:
            self.set_paused(None)
        return reason

    def queue_depths(self) -> QueueDepths:
        """What ``/metrics`` reports at scrape time and the console shows: events waiting for
        dispatch, messages per outbox status, and stored messages by pricing."""
        with self.db.read() as conn:
            return QueueDepths(journal.pending_count(conn), outbox.counts(conn), outbox.pricing_counts(conn))

    def throughput(self, seconds: float = 300.0) -> Throughput:
        """How much flowed in the last ``seconds``: events journaled (webhooks, CRM and shop events),
        messages admitted, and messages handed to a channel. Read from the database, so it counts every
        process of a ``serve`` (``/metrics`` counters are per process)."""
        since = now() - seconds
        with self.db.read() as conn:
            admitted, handed_off = outbox.flow_counts(conn, since)
            return Throughput(seconds, journal.received_count(conn, since), admitted, handed_off)

    def message_counts(self, since: float) -> dict[str, int]:
        """Messages created since ``since``, per status (what became of them)."""
        with self.db.read() as conn:
            return outbox.counts(conn, since=since)

    def health(self) -> dict[str, Any]:
        db_ok = self.db.ping()
        missing = self.channel_missing
        result: dict[str, Any] = {"database": "ok" if db_ok else "unreachable",
                                  "channel": self.channel.name if WHATSAPP in self.channels else None,
                                  "channels": {medium: c.name for medium, c in sorted(self.channels.items())},
                                  "plugin_errors": [f.__dict__ for f in load_failures()],
                                  "paused": missing, "workers": 0, "queue": {}}
        if db_ok:
            result["paused"] = missing or self.paused()
            with self.db.read() as conn:
                result["workers"] = conn.execute(select(func.count()).select_from(workers).where(
                    workers.c.heartbeat_at > now() - 30)).scalar_one()
                result["queue"] = {"events_pending": journal.pending_count(conn), "messages": outbox.counts(conn)}
        result["ok"] = db_ok and not result["paused"] and not result["plugin_errors"]
        return result

    # --- what happened: events, their deliveries and outcomes; templates; the ledger ----------------
    # The CLI and the REST API read the store through these methods only.

    def events(self, *, source: str | None = None, kind: str | None = None, status: str | None = None,
               since: float | None = None, until: float | None = None, before_id: int | None = None,
               limit: int = 50) -> list[EventSummary]:
        """Journaled events, newest first, each with what it became in one line."""
        with self.db.read() as conn:
            return outcomes.listing(conn, source=source, kind=kind, status=status, since=since, until=until,
                                    before_id=before_id, limit=limit)

    def event(self, event_id: int) -> EventDetail:
        """One event with every delivery: status, attempts, last error, notes and proposed messages."""
        with self.db.read() as conn:
            found = outcomes.detail(conn, event_id)
        if found is None:
            raise NotFoundError(f"no event {event_id}")
        return found

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self.db.read() as conn:
            return outcomes.dead_letters(conn, limit)

    def retry_dead(self, event_id: int | None = None, *, target: str | None = None) -> int:
        """Queue dead deliveries again: an event's, or every one of ``target`` (a plugin, ``core`` or
        ``connector:NAME``); 0 when there are none (or their payloads are erased)."""
        with self.db.begin() as conn:
            return journal.retry_dead(conn, event_id, target=target)

    def replayable(self, target: str) -> bool:
        """Whether a finished delivery to ``target`` may be sent again on request: only when the
        connector that owns it says so (:meth:`.Connector.replays`)."""
        return any(connector.replays(target) for connector in self.connectors.values())

    def replay_delivery(self, event_id: int, target: str) -> str:
        """Send an event to one delivery target again -- a dead outbound webhook after its receiver
        was fixed, or a delivered one the receiver lost -- with what the connector sends every time
        (the generic subscriptions: the same ``webhook-id``, so a receiver that has it ignores the
        copy). Returns the status the delivery had. Refused (:class:`.ConflictError`) for targets
        whose connector does not declare replays: a plugin's delivery runs its hook again, which
        is :meth:`retry_dead` for a dead one and never done for one that succeeded."""
        if not self.replayable(target):
            raise ConflictError(f"deliveries to {target} are not replayed (only outbound webhooks are); "
                                "retry a dead letter instead")
        with self.db.begin() as conn:
            return journal.replay(conn, event_id, target)

    def templates(self) -> list[TemplateInfo]:
        """The template cache the gate checks."""
        from . import templates
        with self.db.read() as conn:
            return templates.all_templates(conn)

    def consent_ledger(self) -> list[ConsentRecord]:
        """Every consent record, oldest first (contacts appear as keyed hashes only)."""
        with self.db.read() as conn:
            return ledger.all_records(conn)

    def check_consent_rows(self, records: Iterable[tuple[int, Mapping[str, str | None]]],
                           country: str | None = None) -> consent_files.CheckedFile:
        """Check ``(line, row)`` pairs of a consent file (:mod:`.consent_files`); nothing is written."""
        return consent_files.check_rows(records, self.secret, country)

    def import_consent(self, rows: list[consent_files.ImportRow],
                       advance: Callable[[int], None] = lambda n: None) -> consent_files.ImportResult:
        """Write checked rows in one transaction: all of them, or (on any failure) none. Like
        :meth:`set_consent`, each new change is journaled for the hooks only when something listens."""
        listened = not self.started or bool(delivery_targets(EventKind.CONSENT_CHANGED.value,
                                                             self.connectors.values()))
        with self.db.begin() as conn:
            return consent_files.write(self.db, conn, rows, advance, notify=listened)

    def consent_export(self) -> Iterator[list[str]]:
        """The consent export's header and rows (:func:`.consent_files.export_rows`)."""
        return consent_files.export_rows(self.consent_ledger(), self.secret)


class Throughput(NamedTuple):
    """What :meth:`Connectzap.throughput` counted over its last ``seconds``."""
    seconds: float
    events_received: int
    messages_admitted: int
    messages_handed_off: int

    def per_minute(self, count: int) -> float:
        return round(count * 60.0 / self.seconds, 1)


class QueueDepths(NamedTuple):
    events_pending: int
    messages: dict[str, int]
    priced: list[tuple[str, str, str, int]]


def _checked(channel: Any) -> Channel:
    """``channel`` as the sender uses it. One written before ``pace`` or ``medium`` existed is
    adapted (it sends on WhatsApp), with a warning."""
    if isinstance(channel, Channel):
        return channel
    missing = "medium attribute" if isinstance(channel, PreMediumChannel) else "pace() method"
    warnings.warn(f"{type(channel).__name__} has no {missing}; subclass connectzap.core.channel.BaseChannel "
                  "(channels without one are adapted for now, as WhatsApp channels)", DeprecationWarning,
                  stacklevel=3)
    return LegacyChannel(channel)
