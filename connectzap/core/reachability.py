"""Contacts a channel said it cannot reach.

On WhatsApp (no account for the number) the mark holds business-initiated messages until the
contact writes again. On another medium (an email address that hard-bounced) it is kept per
medium and holds every message on that medium only, until something newer than the failure says
the contact can be reached there: a delivered message on that medium, or an opt-in recorded on it
while the mark stands. Failures and deliveries are compared by when they happened, not by when
their webhooks arrive.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, or_, select

from .media import WHATSAPP
from .store.database import Database, now
from .store.schema import contacts, unreachable_media


def mark_unreachable(db: Database, conn: Connection, contact_key: str, medium: str = WHATSAPP,
                     at: float | None = None) -> None:
    """``contact_key`` cannot be reached on ``medium``, as a failure at ``at`` (default now) said."""
    if medium == WHATSAPP:
        db.upsert(conn, contacts, {"contact_key": contact_key, "unreachable_since": now(), "updated_at": now()},
                  ["contact_key"])
    else:
        _note(db, conn, contact_key, medium, "failed_at", now() if at is None else at)


def reached(db: Database, conn: Connection, contact_key: str, medium: str, at: float, *,
            if_marked: bool = False) -> None:
    """Something at ``at`` showed ``contact_key`` reachable on ``medium`` (not WhatsApp): a delivered
    message, or (``if_marked``: kept only when a failure is on record) a new opt-in. It outranks
    failures before ``at``, not later ones, whatever order they are told in."""
    _note(db, conn, contact_key, medium, "reached_at", at, if_marked=if_marked)


def _note(db: Database, conn: Connection, contact_key: str, medium: str, column: str, at: float, *,
          if_marked: bool = False) -> None:
    """Keep the newer of ``at`` and the recorded time in ``column`` (a replay or a late, older
    webhook changes nothing)."""
    row = conn.execute(select(unreachable_media).where(unreachable_media.c.contact_key == contact_key,
                                                       unreachable_media.c.medium == medium)).first()
    if row is not None and row._mapping[column] is not None and row._mapping[column] >= at:
        return
    if if_marked and (row is None or row.failed_at is None):
        return
    db.upsert(conn, unreachable_media, {"contact_key": contact_key, "medium": medium, column: at},
              ["contact_key", "medium"])


def mark_reachable(conn: Connection, contact_keys: str | Iterable[str]) -> None:
    """The contact (or each of several) wrote to us on WhatsApp: no longer marked unreachable there."""
    keys = [contact_keys] if isinstance(contact_keys, str) else sorted(contact_keys)
    for at in range(0, len(keys), 500):
        conn.execute(contacts.delete().where(contacts.c.contact_key.in_(keys[at:at + 500])))


def unreachable_on(conn: Connection, contact_keys: Iterable[str]) -> set[tuple[str, str]]:
    """(contact key, medium) of each contact among ``contact_keys`` a medium other than WhatsApp
    cannot reach: its newest failure there is newer than its newest delivery."""
    keys = sorted(contact_keys)
    found: set[tuple[str, str]] = set()
    table = unreachable_media.c
    for at in range(0, len(keys), 500):
        found |= {(r[0], r[1]) for r in conn.execute(
            select(table.contact_key, table.medium).where(
                table.contact_key.in_(keys[at:at + 500]), table.failed_at.is_not(None),
                or_(table.reached_at.is_(None), table.failed_at > table.reached_at)))}
    return found
