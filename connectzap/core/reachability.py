"""Contacts the channel said it cannot reach (e.g. no WhatsApp account), until they write again."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection

from .store.database import Database, now
from .store.schema import contacts


def mark_unreachable(db: Database, conn: Connection, contact_key: str) -> None:
    db.upsert(conn, contacts, {"contact_key": contact_key, "unreachable_since": now(), "updated_at": now()},
              ["contact_key"])


def mark_reachable(conn: Connection, contact_keys: str | Iterable[str]) -> None:
    """The contact (or each of several) wrote to us: no longer marked unreachable."""
    keys = [contact_keys] if isinstance(contact_keys, str) else sorted(contact_keys)
    for at in range(0, len(keys), 500):
        conn.execute(contacts.delete().where(contacts.c.contact_key.in_(keys[at:at + 500])))
