"""Contacts the channel said it cannot reach (e.g. no WhatsApp account), until they write again."""

from __future__ import annotations

from sqlalchemy import Connection

from .store.database import Database, now
from .store.schema import contacts


def mark_unreachable(db: Database, conn: Connection, contact_key: str) -> None:
    db.upsert(conn, contacts, {"contact_key": contact_key, "unreachable_since": now(), "updated_at": now()},
              ["contact_key"])


def mark_reachable(conn: Connection, contact_key: str) -> None:
    conn.execute(contacts.delete().where(contacts.c.contact_key == contact_key))
