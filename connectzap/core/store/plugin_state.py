"""The ``plugin_state`` table: durable JSON values per (plugin, key). Only
:class:`connectzap.core.context.PluginState` and the dispatcher (committing a hook's buffered
writes) use it; plugins and connectors go through ``ctx.state`` or ``app.plugin_state(name)``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from .database import Database, now
from .schema import plugin_state

DELETED: Any = object()
"""A change that removes the key."""


def read(conn: Connection, plugin: str, key: str, default: Any = None) -> Any:
    row = conn.execute(select(plugin_state.c.value).where(plugin_state.c.plugin == plugin,
                                                          plugin_state.c.key == key)).first()
    return json.loads(row[0]) if row else default


def write(db: Database, conn: Connection, plugin: str, changes: Mapping[str, Any]) -> None:
    """Apply ``changes`` (key -> JSON-able value, or :data:`DELETED`) for ``plugin``."""
    for key, value in changes.items():
        if value is DELETED:
            conn.execute(plugin_state.delete().where(plugin_state.c.plugin == plugin, plugin_state.c.key == key))
        else:
            db.upsert(conn, plugin_state, {"plugin": plugin, "key": key, "value": json.dumps(value),
                                           "updated_at": now()}, ["plugin", "key"])
