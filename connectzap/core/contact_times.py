"""Times a plugin keeps per customer ("last wrote at", "last answered at") that follow the customer.

A plugin keeps such a time in its state under the customer's contact key (a keyed hash: no
number, no text). The key changes when the identities layer links a BSUID to a number, moves a
customer to a new number, or gives a recycled number's records back to their earlier customer
(:mod:`connectzap.core.identities`); a time declared here moves with the rest of the customer's
records, so the customer is found whichever identifier their next message arrives with. When both
keys hold a time, the later one is kept.

Declare one per kind of time, at import (the core moves every declared name)::

    LAST_SEEN = ContactTime("seen")
    last = LAST_SEEN.get(ctx, key)
    LAST_SEEN.set(ctx, key, at)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from .store.database import Database, now
from .store.schema import plugin_state

if TYPE_CHECKING:
    from .context import EventContext

_DECLARED: set[str] = set()


class ContactTime:
    """A POSIX time per customer in the calling plugin's state, under ``"<name>:<contact key>"``."""

    def __init__(self, name: str) -> None:
        if ":" in name:
            raise ValueError(f"a contact time's name has no colon: {name!r}")
        self.name = name
        _DECLARED.add(name)

    def key(self, contact_key: str) -> str:
        return f"{self.name}:{contact_key}"

    def get(self, ctx: EventContext, contact_key: str) -> float | None:
        value = ctx.state.get(self.key(contact_key))
        return None if value is None else float(value)

    def set(self, ctx: EventContext, contact_key: str, at: float) -> None:
        ctx.state.set(self.key(contact_key), at)


def keys_of(contact_key: str) -> list[str]:
    """The plugin-state keys every declared time of ``contact_key`` is kept under."""
    return sorted(f"{name}:{contact_key}" for name in _DECLARED)


def move(db: Database, conn: Connection, old: str, new: str) -> None:
    """Every declared time kept under contact ``old`` becomes ``new``'s (the later one when both have one)."""
    names = keys_of(old)
    if not names:
        return
    rows = conn.execute(select(plugin_state.c.plugin, plugin_state.c.key, plugin_state.c.value)
                        .where(plugin_state.c.key.in_(names))).all()
    for plugin, key, value in rows:
        target = str(key)[: -len(old)] + new
        current = conn.execute(select(plugin_state.c.value).where(plugin_state.c.plugin == plugin,
                                                                  plugin_state.c.key == target)).scalar()
        at = float(json.loads(str(value)))
        if current is None or float(json.loads(current)) < at:
            db.upsert(conn, plugin_state, {"plugin": plugin, "key": target, "value": json.dumps(at),
                                           "updated_at": now()}, ["plugin", "key"])
        conn.execute(plugin_state.delete().where(plugin_state.c.plugin == plugin, plugin_state.c.key == key))
