"""Simulations: an engine that rehearses instead of acting (``connectzap simulate``).

A simulating engine (``Connectzap(settings, simulation=Simulation())``) runs the whole pipeline
-- journal, the core's bookkeeping, every plugin hook, the send gate, the sender -- on a scratch
database of its own and the sandbox channel, with one difference the core enforces: connector
delivery targets (CRM write-backs, outbound subscriptions, any third-party connector's sync
methods) are never called. Each is *rehearsed* instead (:meth:`Connector.rehearse`), and the
requests it would have made are recorded here for the report. A connector that does not describe
its requests is still not called; the report says it would have been.

:func:`scratch_engine` builds such an engine from the real settings: a temporary SQLite database,
seeded read-only from the real database's template cache and, when asked, its consent ledger,
24-hour windows and unreachable marks. The real database is opened read-only and never written.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from pydantic import SecretStr
from sqlalchemy import Table, create_engine, select
from sqlalchemy.exc import SQLAlchemyError

from .connector import OutboundCall
from .hooks import DeliveryTarget
from .phones import mask
from .settings import Settings, _is_secret_key
from .store.schema import consents, contacts, templates, unreachable_media, windows

if TYPE_CHECKING:
    from .app import Connectzap
    from .context import EventContext

MASK = "**********"


@dataclass(frozen=True)
class Rehearsed:
    """A call recorded for one event and delivery target."""

    event_id: int
    target: str
    call: OutboundCall


class Simulation:
    """The recording side of a simulating engine: what connectors (and hooks) would have done."""

    def __init__(self) -> None:
        self.rehearsed: list[Rehearsed] = []

    def record(self, event_id: int, target: str, call: OutboundCall) -> None:
        self.rehearsed.append(Rehearsed(event_id, target, call))

    def calls_for(self, event_id: int) -> list[Rehearsed]:
        return [r for r in self.rehearsed if r.event_id == event_id]

    def stand_in(self, target: DeliveryTarget, kind: str) -> DeliveryTarget:
        """The target as a simulation runs it: plugin hooks unchanged (they only propose, through
        the gate), a connector's delivery replaced by its rehearsal."""
        connector = target.connector
        if connector is None:
            return target

        async def rehearse(payload: Any, ctx: EventContext) -> None:
            for call in await connector.rehearse(target.name, kind, payload, ctx):
                self.record(ctx.event_id, target.name, call)

        return DeliveryTarget(name=target.name, connector_method=rehearse, connector=connector)


# --- masking what a report shows ------------------------------------------------------------

def mask_url(url: str) -> str:
    """The URL with user info and query values hidden (either may carry a token)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    query = "&".join(f"{quote(k)}={MASK}" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class Masker:
    """Hides secrets and the phone numbers a simulation handled in anything it reports."""

    def __init__(self, numbers: Iterable[str] = ()) -> None:
        self.numbers: set[str] = set()
        for number in numbers:
            self.add(number)

    def add(self, number: str | None) -> None:
        if number:
            self.numbers.add(number.lstrip("+"))

    def text(self, value: str) -> str:
        for digits in sorted(self.numbers, key=len, reverse=True):
            if digits in value:
                value = re.sub(r"\+?" + re.escape(digits), mask("+" + digits), value)
        return value

    def __call__(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v, key) for v in value]
        if isinstance(value, str):
            if key and _is_secret_key(key) and value:
                return MASK
            return self.text(value)
        return value


# --- the scratch engine ----------------------------------------------------------------------

SEEDED_ALWAYS: tuple[Table, ...] = (templates,)
SEEDED_WITH_CONSENT: tuple[Table, ...] = (consents, windows, contacts, unreachable_media)


@dataclass
class Seeding:
    """What a scratch engine copied from the real database (for the report)."""

    source: str
    found: bool = True
    rows: dict[str, int] = field(default_factory=dict)
    problem: str | None = None


def read_only_url(url: str) -> tuple[str, dict[str, Any]]:
    """An SQLAlchemy URL (and engine options) that can only read the database at ``url``."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        return f"sqlite:///file:{path}?mode=ro&uri=true", {}
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url, {"execution_options": {"postgresql_readonly": True}}


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[-1]
    return None if path in ("", ":memory:") else Path(path)


def read_tables(url: str, tables: Iterable[Table]) -> tuple[dict[str, list[dict[str, Any]]], Seeding]:
    """Rows of ``tables`` from the database at ``url``, opened read-only (never created, migrated
    or written). A database that does not exist yet, or lacks a table, yields no rows for it."""
    seeding = Seeding(source=mask_url(url) if not url.startswith("sqlite") else url)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        seeding.found = False
        return {}, seeding
    ro_url, options = read_only_url(url)
    engine = create_engine(ro_url, **options)
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        with engine.connect() as conn:
            for table in tables:
                try:
                    rows = [dict(r._mapping) for r in conn.execute(select(table))]
                except SQLAlchemyError:
                    conn.rollback()
                    rows = []
                out[table.name] = rows
                seeding.rows[table.name] = len(rows)
    except SQLAlchemyError as exc:
        seeding.found = False
        seeding.problem = type(exc).__name__
    finally:
        engine.dispose()
    return out, seeding


def real_hash_secret(real: Settings) -> str | None:
    """The real HMAC key for contact hashes, read without creating one."""
    if real.privacy.hash_secret is not None:
        return real.privacy.hash_secret.get_secret_value()
    path = real.data_dir / "hash-secret"
    return path.read_text().strip() if path.is_file() else None


def scratch_settings(real: Settings, workdir: Path, *, hash_secret: str | None = None) -> Settings:
    """The real settings pointed at a scratch database and sandbox log in ``workdir``.

    ``model_copy`` (not a new ``Settings``): environment variables such as
    ``CONNECTZAP_DATABASE__URL`` must not point the scratch engine back at the real database.
    """
    scratch_url = f"sqlite:///{workdir / 'simulation.db'}"
    copied = real.model_copy(update={
        "data_dir": workdir,
        "database": real.database.model_copy(update={"url": scratch_url}),
        "sandbox": real.sandbox.model_copy(update={"log_file": str(workdir / "sandbox-sends.jsonl"),
                                                   "quiet": True, "latency_seconds": 0.0,
                                                   "simulate_statuses": True}),
        # The report reads numbers and payloads after the work is done; the whole folder goes afterwards.
        "privacy": real.privacy.model_copy(update={
            "hash_secret": SecretStr(hash_secret or secrets.token_hex(32)), "retention_hours": 1.0}),
    })
    if copied.database_url == real.database_url:  # never: but a simulation must not be able to
        raise RuntimeError("a simulation would use the real database")
    return copied


def scratch_engine(real: Settings, workdir: Path, *, with_consent: bool = False) -> tuple[Connectzap, Seeding]:
    """A started, simulating engine in ``workdir``, seeded read-only from the real database."""
    from .app import Connectzap
    tables = SEEDED_ALWAYS + (SEEDED_WITH_CONSENT if with_consent else ())
    rows, seeding = read_tables(real.database_url, tables)
    secret = real_hash_secret(real) if with_consent else None
    app = Connectzap(scratch_settings(real, workdir, hash_secret=secret), simulation=Simulation()).start()
    with app.db.begin() as conn:
        for table in tables:
            found = rows.get(table.name) or []
            if found:
                names = set(table.c.keys())
                conn.execute(table.insert(), [{k: v for k, v in row.items() if k in names} for row in found])
    return app, seeding


def sandbox_requests(app: Connectzap) -> dict[str, dict[str, Any]]:
    """The Cloud API request bodies the simulation's sandbox received, by outbox id."""
    path = app.settings.sandbox_log
    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line:
            continue
        body = json.loads(line).get("body")  # read receipts are logged too, without a message body
        outbox_id = body.get("biz_opaque_callback_data") if body else None
        if outbox_id:
            out[outbox_id] = body
    return out
