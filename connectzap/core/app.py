"""The engine: settings, store, plugins, connectors and channel, wired together once.

``Connectzap`` is what the CLI, the HTTP service and tests hold. Ingress goes through
:meth:`Connectzap.ingest`; anything that wants a message sent goes through :meth:`send`
(the gate); workers drain the journal and the outbox (:mod:`connectzap.core.workers`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .connector import Connector
from . import consent as ledger
from . import gate
from .channel import Channel
from .hooks import collect_connectors
from .errors import ConfigurationError, NotFoundError
from .messages import Outgoing
from .models import Category, ConsentChange, ConsentRecord, Event, EventKind
from .phones import contact_key, set_default_region, to_e164
from .plugins import load_failures, load_plugins
from .settings import Settings, describe_validation_error, load_settings
from .store import journal, outbox
from .store.database import Database, now
from .store.schema import flags

if TYPE_CHECKING:
    from .simulation import Simulation

log = logging.getLogger("connectzap")


class Connectzap:
    """The running engine. Create it with settings (or the embedded defaults), then :meth:`start`."""

    def __init__(self, settings: Settings | None = None, *, channel: Channel | None = None,
                 simulation: Simulation | None = None) -> None:
        self.settings = settings or load_settings()
        self.simulation = simulation
        """Set for a rehearsal (:mod:`.simulation`): the sandbox channel, connectors rehearsed, not called."""
        set_default_region(self.settings.phones.default_region)
        self.db = Database(self.settings.database_url, pool_size=self.settings.database.pool_size)
        self.secret = self.settings.hash_secret()
        self._channel = channel
        self.connectors: dict[str, Connector] = {}
        self.started = False

    # --- start-up ------------------------------------------------------------------------

    def start(self, *, migrate: bool = True) -> Connectzap:
        """Migrate the database, load plugins, build and validate connectors (fail closed)."""
        if self.started:
            return self
        if migrate:
            self.db.migrate()
        load_plugins()
        self.connectors = self._build_connectors()
        if self._channel is None:
            self._channel = self._default_channel()
        self.started = True
        return self

    def _build_connectors(self) -> dict[str, Connector]:
        built: dict[str, Connector] = {}
        for name, cls in collect_connectors().items():
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
                    f"connector {name} cannot start: {describe_validation_error(exc, f'connectors.{name}')}") from None
            built[name] = cls(settings, self)
        return built

    def _default_channel(self) -> Channel:
        """The channel of the first connector that offers one (``make_channel``: the bundled
        WhatsApp connector gives the Cloud API when configured), else the sandbox. A simulation
        always gets the sandbox."""
        for connector in self.connectors.values() if self.simulation is None else ():
            make = getattr(connector, "make_channel", None)
            if make is not None:
                return make()  # type: ignore[no-any-return]
        # The embedded default: without any sending connector, sends go to the sandbox.
        from ..connectors.whatsapp.sandbox import SandboxChannel
        return SandboxChannel(self)

    @property
    def channel(self) -> Channel:
        if self._channel is None:
            self.start()
        assert self._channel is not None
        return self._channel

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.aclose()
        for connector in self.connectors.values():
            await connector.aclose()
        self.db.dispose()

    def close(self) -> None:
        self.db.dispose()

    # --- ingress -------------------------------------------------------------------------

    def ingest(self, events: list[Event]) -> list[journal.Journaled]:
        """Journal events durably (one transaction). Duplicates by (source, dedupe_key) are skipped."""
        with self.db.begin() as conn:
            return journal.append(self.db, conn, events)

    # --- sending -------------------------------------------------------------------------

    def send(self, outgoing: Outgoing, *, idempotency_key: str | None = None, source: str = "api",
             strict_key: bool = False) -> gate.Decision:
        """Put a message through the gate. Without a key, each call is a new message."""
        key = idempotency_key or outgoing.idempotency_key
        with self.db.begin() as conn:
            return gate.admit(self.db, conn, self.secret, outgoing, idempotency_key=_scoped_key(source, key),
                              strict_key=strict_key, fresh_key=key is None)

    def send_many(self, messages: list[Outgoing], *, source: str = "api") -> list[gate.Decision]:
        """Put several messages through the gate in one transaction (a campaign, a bulk import).

        Each message gets exactly the checks :meth:`send` applies, in order; the consent, window
        and template facts are read once for the batch and the outbox rows written in one
        statement. A message's own ``idempotency_key`` makes it idempotent; without one each is new.
        """
        admissions = [gate.Admission(m, _scoped_key(source, m.idempotency_key), fresh_key=m.idempotency_key is None)
                      for m in messages]
        with self.db.begin() as conn:
            return gate.admit_many(self.db, conn, self.secret, admissions)

    def message(self, message_id: str) -> dict[str, Any]:
        with self.db.read() as conn:
            row = outbox.get(conn, message_id)
        if row is None:
            raise NotFoundError(f"no message {message_id}")
        return row

    def messages(self, *, phone: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        key = self.contact_key(phone) if phone else None
        with self.db.read() as conn:
            return outbox.listing(conn, contact_key=key, **filters)

    # --- consent ---------------------------------------------------------------------------

    def contact_key(self, phone: str, country: str | None = None) -> str:
        return contact_key(to_e164(phone, country), self.secret)

    def set_consent(self, change: ConsentChange) -> bool:
        """Record a consent change now (an opt-out wins at once) and journal it for the hooks."""
        key = contact_key(change.phone, self.secret)
        with self.db.begin() as conn:
            changed = ledger.record(self.db, conn, key, change)
            if changed:
                dedupe = f"{key}:{change.category.value}:{int(change.granted)}:{change.at.timestamp():.6f}"
                journal.append(self.db, conn, [Event.of(EventKind.CONSENT_CHANGED, change, source=change.source,
                                                        already_recorded=True,
                                                        dedupe_key=dedupe)])
        return changed

    def consent(self, phone: str, country: str | None = None) -> dict[Category, ConsentRecord]:
        key = self.contact_key(phone, country)
        with self.db.read() as conn:
            return ledger.current(conn, key)

    def consent_history(self, phone: str, country: str | None = None) -> list[ConsentRecord]:
        key = self.contact_key(phone, country)
        with self.db.read() as conn:
            return ledger.history(conn, key)

    # --- health ----------------------------------------------------------------------------

    def paused(self) -> str | None:
        """Why sending is paused (e.g. an expired access token), or None."""
        from sqlalchemy import select
        with self.db.read() as conn:
            row = conn.execute(select(flags.c.value).where(flags.c.name == "sending_paused")).first()
        return row[0] if row and row[0] else None

    def set_paused(self, reason: str | None) -> None:
        with self.db.begin() as conn:
            self.db.upsert(conn, flags, {"name": "sending_paused", "value": reason, "updated_at": now()}, ["name"])

    def health(self) -> dict[str, Any]:
        from sqlalchemy import func, select

        from .store.schema import workers
        db_ok = self.db.ping()
        result: dict[str, Any] = {"database": "ok" if db_ok else "unreachable",
                                  "channel": getattr(self._channel, "name", None),
                                  "plugin_errors": [f.__dict__ for f in load_failures()],
                                  "paused": None, "workers": 0, "queue": {}}
        if db_ok:
            result["paused"] = self.paused()
            with self.db.read() as conn:
                result["workers"] = conn.execute(select(func.count()).select_from(workers).where(
                    workers.c.heartbeat_at > now() - 30)).scalar_one()
                result["queue"] = {"events_pending": journal.pending_count(conn), "messages": outbox.counts(conn)}
        result["ok"] = db_ok and not result["paused"] and not result["plugin_errors"]
        return result


def _scoped_key(source: str, key: str | None) -> str:
    """Idempotency keys are per source; a message without one gets a key nobody else can hold."""
    return f"{source}:{key or gate.new_message_id()}"
