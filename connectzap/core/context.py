"""The context every event hook receives as ``ctx``."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from . import consent, windows
from .conversations import Conversation
from .errors import InvalidPhoneError
from .messages import MessageContent, Outgoing
from .models import Category, ConsentChange, Contact
from .store import plugin_state

ModelT = TypeVar("ModelT", bound=BaseModel)

if TYPE_CHECKING:
    from .app import Connectzap
    from .business_hours import BusinessHours
    from .connector import OutboundCall


class PluginState:
    """Durable key/value state of one plugin (values are JSON: dicts, lists, strings, numbers).

    ``ctx.state`` in a hook is *buffered*: writes are committed together with the hook's
    proposals, only if the hook succeeds -- so state and sends never disagree -- and ``get``
    sees the hook's own writes at once. ``app.plugin_state(name)`` outside a hook (a cursor a
    connector keeps, a mark written before a call that must survive a crash) commits each write
    at once.
    """

    def __init__(self, app: Connectzap, plugin: str, *, buffered: bool = True,
                 reads: plugin_state.Reads | None = None) -> None:
        self._app = app
        self._plugin = plugin
        self._buffered = buffered
        self._reads = reads
        self.pending: dict[str, Any] = {}
        """The buffered writes (key -> value or :data:`connectzap.core.store.plugin_state.DELETED`)."""

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.pending:
            value = self.pending[key]
            if isinstance(value, plugin_state.Forgotten):
                return value.value
            return default if value is plugin_state.DELETED else value
        if self._reads is not None:
            return self._reads.get(self._plugin, key, default)
        with self._app.db.read() as conn:
            return plugin_state.read(conn, self._plugin, key, default)

    def set(self, key: str, value: Any, *, forget_at: float | None = None) -> None:
        """Keep ``value`` under ``key``; with ``forget_at`` (a POSIX time) only until then: the
        housekeeping deletes it after that time (a record useless after a deadline), and ``get``
        no longer sees it."""
        json.dumps(value)  # fail now, inside the hook, if it cannot be stored
        self._change(key, value if forget_at is None else plugin_state.Forgotten(value, forget_at))

    def delete(self, key: str) -> None:
        self._change(key, plugin_state.DELETED)

    def claim(self, key: str, value: Any, *, forget_at: float | None = None) -> Any:
        """Take ``key`` for ``value`` unless it holds a value already; return the value it holds
        then (``value`` when this call took it). Committed at once, buffered or not: for a step
        that must happen once however many workers and retries race for it (one status change
        per order). Never forgotten before ``forget_at`` when given."""
        json.dumps(value)
        db = self._app.db
        with db.begin() as conn:
            held = plugin_state.claim(db, conn, self._plugin, key, value, forget_at=forget_at)
        plugin_state.changed()
        return held

    def _change(self, key: str, value: Any) -> None:
        if self._buffered:
            self.pending[key] = value
            return
        db = self._app.db
        with db.begin() as conn:
            plugin_state.write(db, conn, self._plugin, {key: value})
        plugin_state.changed()

    def __repr__(self) -> str:
        return f"<PluginState {self._plugin}{' (buffered)' if self._buffered else ''}>"


class EventContext:
    """What a hook implementation may use besides its payload.

    :ivar event_id: the journal id of the event.
    :ivar source: the connector (or ``api``, ``cli``...) the event came from.
    :ivar dedupe_key: the event's unique key within its source.
    :ivar plugin: the name of the plugin being called.
    :ivar config: this plugin's ``[plugins.NAME]`` section as a plain dict (see also
        :attr:`plugin_settings`, the validated model).
    :ivar state: durable per-plugin state (:class:`PluginState`).
    :ivar log: a logger named after the plugin.
    :ivar contact: the customer the event is about, when it names one.
    """

    def __init__(self, app: Connectzap, *, event_id: int, source: str, dedupe_key: str,
                 received_at: datetime, plugin: str, contact: Contact | None = None,
                 state_reads: plugin_state.Reads | None = None) -> None:
        self.app = app
        self.event_id = event_id
        self.source = source
        self.dedupe_key = dedupe_key
        self.received_at = received_at
        self.plugin = plugin
        self.config: dict[str, Any] = app.settings.plugin_section(plugin.removeprefix("connector:"))
        self.state = PluginState(app, plugin, reads=state_reads)
        self.log = logging.getLogger(f"connectzap.plugin.{plugin}")
        self.proposals: list[Outgoing] = []
        self.consent_changes: list[ConsentChange] = []
        self.notes: list[dict[str, str]] = []
        self.contact = contact
        self._conversation: Conversation | None = None

    @property
    def conversation(self) -> Conversation:
        """The conversation with the event's customer: who handles it (``handled_by``: ``"bot"`` or
        ``"human"``), ``hand_to_human(reason, minutes=None)`` and ``release()``, committed with this
        hook's proposals. Raises :class:`LookupError` for an event that names no customer."""
        if self._conversation is None:
            if self.contact is None:
                raise LookupError(f"{self.source} event {self.event_id} names no customer: it has no conversation")
            self._conversation = Conversation(self.app, self.contact, self.plugin)
        return self._conversation

    @property
    def handovers(self) -> list[Any]:
        """The conversation changes this hook made (buffered until it succeeds)."""
        return self._conversation.pending if self._conversation is not None else []

    @property
    def settings(self) -> Any:
        return self.app.settings

    @property
    def plugin_settings(self) -> Any:
        """This plugin's section as its declared :class:`~connectzap.PluginSettings` model,
        validated at start-up; ``None`` when the plugin declared no model (use ``config``)."""
        return self.app.plugin_settings.get(self.plugin.removeprefix("connector:"))

    def settings_as(self, model: type[ModelT]) -> ModelT:
        """This plugin's section as ``model``: the instance the engine validated at start-up, or,
        for a context built by hand (a test calling a hook directly), ``config`` validated now."""
        declared = self.plugin_settings
        return declared if isinstance(declared, model) else model.model_validate(self.config)

    @property
    def business_hours(self) -> BusinessHours:
        """The business's opening hours (``[business_hours]``): ``is_open(at)``, ``next_opening(at)``."""
        return self.app.business_hours

    @property
    def simulating(self) -> bool:
        """True inside ``connectzap simulate``: a hook must then make no request outside connectzap
        (describe it with :meth:`would` instead). Proposals go through the gate as usual."""
        return self.app.simulation is not None

    def would(self, call: OutboundCall) -> None:
        """In a simulation, record a request this hook would make (``connectzap simulate`` shows it)."""
        if self.app.simulation is not None:
            self.app.simulation.record(self.event_id, self.plugin, call)

    def send(self, to: Contact | str, content: MessageContent | dict[str, Any], *, key: str | None = None,
             **options: Any) -> Outgoing:
        """Propose a message. ``key`` makes it idempotent across events (default: per event and plugin).

        The message is queued through the send gate only after the hook returns successfully.
        """
        outgoing = Outgoing.model_validate({"to": to, "content": content, "idempotency_key": key, **options})
        self.proposals.append(outgoing)
        return outgoing

    def propose(self, outgoing: Outgoing) -> None:
        self.proposals.append(outgoing)

    def note(self, code: str, detail: str) -> None:
        """Say why this hook did what it did -- or nothing (``no_rule``, ``already_notified``...).

        Kept with the event's delivery when the hook succeeds, and shown by ``connectzap events
        show`` and ``GET /v1/events/{id}``. Never put a phone number or a message text in it.
        """
        self.notes.append({"code": str(code), "detail": str(detail)})

    def set_consent(self, change: ConsentChange) -> None:
        """Record a consent change (e.g. a STOP keyword) when the hook succeeds; it then reaches
        ``on_consent_changed`` like any other change."""
        self.consent_changes.append(change)

    def has_consent(self, phone: str, category: Category | str) -> bool:
        """Whether the ledger currently holds an opt-in for ``category``."""
        key = self._key(phone)
        if key is None:
            return False
        with self.app.db.read() as conn:
            record = consent.latest(conn, key, Category(category))
        return bool(record and record.granted)

    def window_open(self, phone: str) -> bool:
        """Whether the contact wrote to us in the last 24 hours."""
        key = self._key(phone)
        if key is None:
            return False
        with self.app.db.read() as conn:
            return windows.window_open(conn, key)

    def contact_key(self, phone: str) -> str | None:
        """The keyed hash connectzap stores instead of ``phone`` (None when not a valid number).
        ``phone`` may be a business-scoped user id (BSUID): the key of the customer it names."""
        return self._key(phone)

    def _key(self, phone: str) -> str | None:
        try:
            return self.app.contact_key(phone)
        except InvalidPhoneError:
            return None

    def __repr__(self) -> str:
        return f"<EventContext event={self.event_id} source={self.source} plugin={self.plugin}>"

