"""Engine-wide switches kept in the ``flags`` table; today one: whether sending is paused."""

from __future__ import annotations

from sqlalchemy import Connection, select

from .database import Database, now
from .schema import flags

SENDING_PAUSED = "sending_paused"


def sending_paused(conn: Connection) -> str | None:
    """Why sending is paused (e.g. an expired access token), or None."""
    row = conn.execute(select(flags.c.value).where(flags.c.name == SENDING_PAUSED)).first()
    return row[0] if row and row[0] else None


def pause_sending(db: Database, conn: Connection, reason: str | None) -> None:
    """Pause sending for every worker, saying why; ``None`` resumes it."""
    db.upsert(conn, flags, {"name": SENDING_PAUSED, "value": reason, "updated_at": now()}, ["name"])
