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


def read(conn: Connection, plugin: str, key: str, default: Any = None) -> Any:
    row = conn.execute(select(plugin_state.c.value, plugin_state.c.forget_at).where(
        plugin_state.c.plugin == plugin, plugin_state.c.key == key)).first()
    if row is None or (row[1] is not None and row[1] <= now()):  # forgotten, or about to be
        return default
    return json.loads(row[0])


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


def erase_expired(conn: Connection, at: float | None = None) -> int:
    """Forget the values whose ``forget_at`` came (the housekeeping, every few seconds)."""
    t = now() if at is None else at
    return conn.execute(plugin_state.delete().where(plugin_state.c.forget_at.is_not(None),
                                                    plugin_state.c.forget_at <= t)).rowcount
