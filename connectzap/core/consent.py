"""The consent ledger: per contact, category and medium, with proof.

The ledger is append-only: the newest record for (contact, category, medium) decides, ordered by
the time the consent was given (``at``), then by insertion. Contacts are keyed hashes only.
Consent on one medium says nothing about another; records from before media existed are
WhatsApp's, and every function here asks about WhatsApp unless told another ``medium``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from . import reachability
from .media import WHATSAPP
from .models import Category, ConsentChange, ConsentRecord
from .store.database import Database, now
from .store.schema import consents


def change(phone: str, category: str, granted: bool, source: str, proof: str | None,
           country: str | None = None, medium: str = WHATSAPP) -> ConsentChange:
    """A consent change for ``phone`` (a number, national with ``country``, a BSUID, or an email
    address) on ``medium``, as the CLI and the console record one."""
    from .bsuids import identify
    who = {"email": phone} if "@" in phone else identify(phone, country)  # an address: a customer known by email
    return ConsentChange.model_validate({**who, "category": Category(category),
                                         "granted": granted, "source": source, "proof": proof, "medium": medium})


def contact_of(conn: Connection, secret: bytes, change: ConsentChange) -> str:
    """The contact key ``change`` is recorded under: its number's or BSUID's (see :mod:`.identities`),
    else, for a customer known only by email address, the address's keyed hash, else the key the
    change names itself (a change about the recipient of one of our messages)."""
    from . import identities
    from .email_addresses import email_key
    key = identities.resolve(conn, secret, change.phone, change.user_id)
    if key is None and change.email:
        key = email_key(change.email, secret)
    if key is None:
        assert change.contact_key is not None  # a ConsentChange always names someone
        key = change.contact_key
    return key


def subject(change: ConsentChange) -> str:
    """What a change is about, for keys that name it: its category, and its medium unless
    WhatsApp (so keys of WhatsApp changes are what they were before media existed)."""
    return change.category.value if change.medium == WHATSAPP else f"{change.category.value}:{change.medium}"


def record(db: Database, conn: Connection, contact_key: str, change: ConsentChange) -> bool:
    """Append ``change`` to the ledger. Returns False when it repeats the current state exactly
    (nothing to tell the hooks).

    Records order by the time consent was given, then by recording order: an older change that
    arrives late never outranks a newer one. A repeat given *later* than the current record is
    still kept -- it moves the deciding time on, so an older opposite change arriving after it
    cannot win. (connectzap's own notifications of changes it already recorded are marked
    ``Event.already_recorded`` and never come back here.)"""
    current = latest(conn, contact_key, change.category, change.medium)
    repeat = current is not None and current.granted == change.granted and current.source == change.source \
        and current.proof == change.proof
    if repeat and current is not None and change.at <= current.at:
        return False
    conn.execute(consents.insert().values(
        contact_key=contact_key, category=change.category.value, granted=change.granted,
        source=change.source[:128], proof=change.proof, at=change.at.timestamp(), recorded_at=now(),
        medium=change.medium))
    if change.granted and change.medium != WHATSAPP:  # a new opt-in there: e.g. a new, working address
        reachability.reached(db, conn, contact_key, change.medium, change.at.timestamp(), if_marked=True)
    return not repeat


def latest(conn: Connection, contact_key: str, category: Category | str,
           medium: str = WHATSAPP) -> ConsentRecord | None:
    row = conn.execute(
        select(consents).where(consents.c.contact_key == contact_key, consents.c.category == str(category),
                               consents.c.medium == medium)
        .order_by(consents.c.at.desc(), consents.c.id.desc()).limit(1)).first()
    return to_record(row) if row else None


def current(conn: Connection, contact_key: str, medium: str = WHATSAPP) -> dict[Category, ConsentRecord]:
    """The deciding record per category on ``medium`` (categories never mentioned are absent)."""
    return {cat: rec for cat in Category if (rec := latest(conn, contact_key, cat, medium)) is not None}


def by_medium(conn: Connection, contact_key: str) -> dict[str, dict[Category, ConsentRecord]]:
    """The deciding record per category, for each medium the contact has any record on."""
    deciding: dict[str, dict[Category, ConsentRecord]] = {}
    for record in history(conn, contact_key):  # oldest first: the newest of each pair stays
        deciding.setdefault(record.medium, {})[record.category] = record
    return dict(sorted(deciding.items()))


def history(conn: Connection, contact_key: str, medium: str | None = None) -> list[ConsentRecord]:
    """Every record of the contact, oldest first (on ``medium`` only, when given)."""
    query = select(consents).where(consents.c.contact_key == contact_key)
    if medium is not None:
        query = query.where(consents.c.medium == medium)
    return [to_record(r) for r in conn.execute(query.order_by(consents.c.at, consents.c.id)).all()]


def to_record(row: Row[Any]) -> ConsentRecord:
    m = row._mapping
    return ConsentRecord(contact_key=m["contact_key"], category=Category(m["category"]), granted=m["granted"],
                         source=m["source"], proof=m["proof"], at=datetime.fromtimestamp(m["at"], UTC),
                         medium=m["medium"])


def all_records(conn: Connection) -> list[ConsentRecord]:
    """The whole ledger, oldest first (``consent export``)."""
    return [to_record(r) for r in conn.execute(select(consents).order_by(consents.c.at, consents.c.id))]
