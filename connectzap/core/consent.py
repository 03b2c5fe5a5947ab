"""The consent ledger (per contact and category, with proof) and the 24-hour service windows.

The ledger is append-only: the newest record for (contact, category) decides, ordered by the
time the consent was given (``at``), then by insertion. Contacts are keyed hashes only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, select

from .models import Category, ConsentChange, ConsentRecord
from .store.database import Database, now
from .store.schema import consents, contacts, windows

WINDOW_SECONDS = 24 * 3600


def record(db: Database, conn: Connection, contact_key: str, change: ConsentChange) -> bool:
    """Append ``change`` to the ledger. Returns False when it repeats the current state exactly.

    Records order by the time consent was given, then by recording order: an older change that
    arrives late never outranks a newer one. (connectzap's own notifications of changes it already
    recorded are marked ``Event.already_recorded`` and never come back here.)"""
    current = latest(conn, contact_key, change.category)
    if current is not None and current.granted == change.granted and current.source == change.source \
            and current.proof == change.proof:
        return False
    conn.execute(consents.insert().values(
        contact_key=contact_key, category=change.category.value, granted=change.granted,
        source=change.source[:128], proof=change.proof, at=change.at.timestamp(), recorded_at=now()))
    return True


def latest(conn: Connection, contact_key: str, category: Category | str) -> ConsentRecord | None:
    row = conn.execute(
        select(consents).where(consents.c.contact_key == contact_key, consents.c.category == str(category))
        .order_by(consents.c.at.desc(), consents.c.id.desc()).limit(1)).first()
    return to_record(row) if row else None


def current(conn: Connection, contact_key: str) -> dict[Category, ConsentRecord]:
    """The deciding record per category (categories never mentioned are absent)."""
    return {cat: rec for cat in Category if (rec := latest(conn, contact_key, cat)) is not None}


def history(conn: Connection, contact_key: str) -> list[ConsentRecord]:
    rows = conn.execute(select(consents).where(consents.c.contact_key == contact_key)
                        .order_by(consents.c.at, consents.c.id)).all()
    return [to_record(r) for r in rows]


def to_record(row: object) -> ConsentRecord:
    m = row._mapping  # type: ignore[attr-defined]
    return ConsentRecord(contact_key=m["contact_key"], category=Category(m["category"]), granted=m["granted"],
                         source=m["source"], proof=m["proof"], at=datetime.fromtimestamp(m["at"], UTC))


# --- service windows ---------------------------------------------------------------------

def open_window(db: Database, conn: Connection, contact_key: str, at: float, business_number: str | None) -> None:
    """Open or refresh the window from an inbound message's own timestamp (never moving it back)."""
    key = {"contact_key": contact_key, "business_phone_number_id": business_number or ""}
    row = conn.execute(select(windows.c.last_inbound_at).where(
        windows.c.contact_key == contact_key, windows.c.business_phone_number_id == key["business_phone_number_id"])
    ).first()
    if row is None:
        conn.execute(windows.insert().values(**key, last_inbound_at=at))
    elif row[0] < at:
        conn.execute(windows.update().where(
            windows.c.contact_key == contact_key,
            windows.c.business_phone_number_id == key["business_phone_number_id"]).values(last_inbound_at=at))
    # An inbound message proves the contact is reachable again.
    conn.execute(contacts.delete().where(contacts.c.contact_key == contact_key))


def last_inbound(conn: Connection, contact_key: str, business_number: str | None = None) -> float | None:
    stmt = select(windows.c.business_phone_number_id, windows.c.last_inbound_at).where(
        windows.c.contact_key == contact_key)
    return latest_inbound([(r[0], r[1]) for r in conn.execute(stmt)], business_number)


def latest_inbound(windows_of_contact: list[tuple[str, float]], business_number: str | None) -> float | None:
    """The newest inbound time among (number, time) pairs that count for ``business_number``:
    a window opened on that number, or one recorded before we knew the number."""
    return max((at for number, at in windows_of_contact if not business_number or number in (business_number, "")),
               default=None)


def is_open(last: float | None, at: float | None = None) -> bool:
    return last is not None and (at if at is not None else now()) < last + WINDOW_SECONDS


def window_open(conn: Connection, contact_key: str, at: float | None = None,
                business_number: str | None = None) -> bool:
    return is_open(last_inbound(conn, contact_key, business_number), at)


def mark_unreachable(db: Database, conn: Connection, contact_key: str) -> None:
    db.upsert(conn, contacts, {"contact_key": contact_key, "unreachable_since": now(), "updated_at": now()},
              ["contact_key"])
