"""The consent ledger: per contact and category, with proof.

The ledger is append-only: the newest record for (contact, category) decides, ordered by the
time the consent was given (``at``), then by insertion. Contacts are keyed hashes only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from .models import Category, ConsentChange, ConsentRecord
from .store.database import Database, now
from .store.schema import consents


def change(phone: str, category: str, granted: bool, source: str, proof: str | None,
           country: str | None = None) -> ConsentChange:
    """A consent change for ``phone`` (a number, national with ``country``, or a BSUID), as the CLI
    and the console record one."""
    from .bsuids import identify
    return ConsentChange.model_validate({**identify(phone, country), "category": Category(category),
                                         "granted": granted, "source": source, "proof": proof})


def record(db: Database, conn: Connection, contact_key: str, change: ConsentChange) -> bool:
    """Append ``change`` to the ledger. Returns False when it repeats the current state exactly
    (nothing to tell the hooks).

    Records order by the time consent was given, then by recording order: an older change that
    arrives late never outranks a newer one. A repeat given *later* than the current record is
    still kept -- it moves the deciding time on, so an older opposite change arriving after it
    cannot win. (connectzap's own notifications of changes it already recorded are marked
    ``Event.already_recorded`` and never come back here.)"""
    current = latest(conn, contact_key, change.category)
    repeat = current is not None and current.granted == change.granted and current.source == change.source \
        and current.proof == change.proof
    if repeat and current is not None and change.at <= current.at:
        return False
    conn.execute(consents.insert().values(
        contact_key=contact_key, category=change.category.value, granted=change.granted,
        source=change.source[:128], proof=change.proof, at=change.at.timestamp(), recorded_at=now()))
    return not repeat


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


def to_record(row: Row[Any]) -> ConsentRecord:
    m = row._mapping
    return ConsentRecord(contact_key=m["contact_key"], category=Category(m["category"]), granted=m["granted"],
                         source=m["source"], proof=m["proof"], at=datetime.fromtimestamp(m["at"], UTC))


def all_records(conn: Connection) -> list[ConsentRecord]:
    """The whole ledger, oldest first (``consent export``)."""
    return [to_record(r) for r in conn.execute(select(consents).order_by(consents.c.at, consents.c.id))]
