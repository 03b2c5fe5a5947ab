"""The ``plugin_state`` table: durable JSON values per (plugin, key). Only
:class:`connectzap.core.context.PluginState` and the dispatcher (committing a hook's buffered
writes) use it; plugins and connectors go through ``ctx.state`` or ``app.plugin_state(name)``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from .database import Database, now
from .schema import plugin_state

DELETED: Any = object()
"""A change that removes the key."""


@dataclass(frozen=True)
class Forgotten:
    """A change that sets the key to ``value`` until ``at`` (POSIX time), when the housekeeping forgets it."""

    value: Any
    at: float


Row = tuple[str, float | None] | None
"""A key's stored JSON text and ``forget_at``, or None when there is no row."""

_writes = 0
"""How many times this process has written plugin state: a cache of rows read (:class:`Reads`) is
good only while it has not moved."""


def read_row(conn: Connection, plugin: str, key: str) -> Row:
    row = conn.execute(select(plugin_state.c.value, plugin_state.c.forget_at).where(
        plugin_state.c.plugin == plugin, plugin_state.c.key == key)).first()
    return None if row is None else (row[0], row[1])


def value_of(row: Row, default: Any = None) -> Any:
    """The value ``row`` holds (decoded afresh each time: a caller may change what it gets)."""
    if row is None or (row[1] is not None and row[1] <= now()):  # forgotten, or about to be
        return default
    return json.loads(row[0])


def read(conn: Connection, plugin: str, key: str, default: Any = None) -> Any:
    return value_of(read_row(conn, plugin, key), default)


def changed() -> None:
    """Say that this process committed plugin state: every :class:`Reads` forgets what it read."""
    global _writes
    _writes += 1


class Reads:
    """The rows hooks read during one wave of the dispatcher, so that a key every inbound message
    reads (the optin plugin's link book) is read once per wave, not once per message. They are
    dropped whenever this process commits plugin state, consent or anything else a hook could read
    (:func:`changed`: the dispatcher after an event that left something to see, and every write
    made at once); a value another process writes meanwhile is seen from the next wave on, as if it
    had been written a moment later.
    Connector methods never use it: they mix buffered reads with marks committed at once."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._rows: dict[tuple[str, str], Row] = {}
        self._writes = _writes

    def get(self, plugin: str, key: str, default: Any = None) -> Any:
        if self._writes != _writes:
            self.clear()
        if (plugin, key) not in self._rows:
            with self._db.read() as conn:
                self._rows[plugin, key] = read_row(conn, plugin, key)
        return value_of(self._rows[plugin, key], default)

    def clear(self) -> None:
        self._rows.clear()
        self._writes = _writes


def write(db: Database, conn: Connection, plugin: str, changes: Mapping[str, Any]) -> None:
    """Apply ``changes`` (key -> JSON-able value, :class:`Forgotten`, or :data:`DELETED`) for ``plugin``."""
    for key, value in changes.items():
        if value is DELETED:
            conn.execute(plugin_state.delete().where(plugin_state.c.plugin == plugin, plugin_state.c.key == key))
        else:
            forget_at = value.at if isinstance(value, Forgotten) else None
            kept = value.value if isinstance(value, Forgotten) else value
            db.upsert(conn, plugin_state, {"plugin": plugin, "key": key, "value": json.dumps(kept),
                                           "updated_at": now(), "forget_at": forget_at}, ["plugin", "key"])


def claim(db: Database, conn: Connection, plugin: str, key: str, value: Any, *, forget_at: float | None = None) -> Any:
    """Keep ``value`` under ``key`` unless the key holds a value already, and return the value it
    holds now: ``value`` when this call took it. Of several workers racing for one key, one wins
    (on PostgreSQL the others wait for its commit, then read its value)."""
    row = {"plugin": plugin, "key": key, "value": json.dumps(value), "updated_at": now(), "forget_at": forget_at}
    conn.execute(plugin_state.delete().where(plugin_state.c.plugin == plugin, plugin_state.c.key == key,
                                             plugin_state.c.forget_at.is_not(None), plugin_state.c.forget_at <= now()))
    taken = conn.execute(db.insert(plugin_state).on_conflict_do_nothing(index_elements=["plugin", "key"])
                         .values(row).returning(plugin_state.c.key)).first()
    return value if taken is not None else read(conn, plugin, key)


def erase_expired(conn: Connection, at: float | None = None) -> int:
    """Forget the values whose ``forget_at`` came (the housekeeping, every few seconds)."""
    t = now() if at is None else at
    return conn.execute(plugin_state.delete().where(plugin_state.c.forget_at.is_not(None),
                                                    plugin_state.c.forget_at <= t)).rowcount
