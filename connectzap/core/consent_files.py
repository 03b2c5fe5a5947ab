"""Consent ledger files: CSV import (checked whole before anything is written) and export.

An import file names contacts by phone number (``phone``; an email address for a customer known
only by it, on medium ``email``) or, in a file ``consent export`` wrote, by the ledger's keyed hash
(``contact_key`` with ``hash_key_id``). Each row is for one medium (``medium``; WhatsApp when the
column is absent or empty, so files from before media existed import as they did). Every row is checked first; a
file with a bad row changes nothing unless the caller asks to skip bad rows. Writing is batched
in one transaction, and a row the ledger already holds is not written again, so importing the
same file twice leaves one history.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from sqlalchemy import Connection, select

from .bsuids import bsuid_key, identify
from .clock import iso_utc
from .email_addresses import email_key, normalized
from .media import EMAIL, WHATSAPP, checked
from .errors import InvalidPhoneError, InvalidRecipientError
from .models import Category, ConsentChange, ConsentRecord, Event, EventKind
from .phones import contact_key, to_e164
from . import consent as ledger
from . import identities, ordering
from .store import journal
from .store.database import Database, now
from .store.schema import consents
from .wording import plural

PHONE_COLUMNS = ("phone", "category", "granted", "source", "proof", "at", "country", "medium")
EXPORT_COLUMNS = ("contact_key", "hash_key_id", "category", "granted", "source", "proof", "at", "medium")
KNOWN_COLUMNS = frozenset(PHONE_COLUMNS) | frozenset(EXPORT_COLUMNS)
DEFAULT_SOURCE = "csv-import"
SOURCE_LENGTH = 128  # the ledger's column
BATCH = 1000
CLOCK_SKEW = timedelta(minutes=5)

GRANTED_WORDS = {"true": True, "yes": True, "y": True, "1": True, "granted": True,
                 "false": False, "no": False, "n": False, "0": False, "revoked": False}

PROOF_REQUIRED = "an opt-in needs its proof: the wording the customer agreed to, or a reference to it"
"""Why a grant without proof is refused -- by ``consent grant``, the REST API and imports alike."""

_CONTACT_KEY = re.compile(r"[0-9a-f]{32}")


def proof_missing(granted: bool, proof: str | None) -> bool:
    """True for a grant that carries no proof (a revocation needs none)."""
    return granted and not (proof or "").strip()


def hash_key_id(secret: bytes) -> str:
    """A short fingerprint of the contact hash key: an export's contact keys mean something only to
    an installation with the same key, and this says which key made them (it reveals nothing of it)."""
    return hmac.new(secret, b"connectzap consent export", hashlib.sha256).hexdigest()[:12]


@dataclass(frozen=True)
class ImportRow:
    """One checked row: the ledger record it becomes, and the change the hooks hear of (rows that
    name a phone number; a restored contact key has no number to tell them)."""

    line: int
    contact_key: str
    category: Category
    granted: bool
    source: str
    proof: str | None
    at: datetime
    at_given: bool
    change: ConsentChange | None
    by_bsuid: bool = False
    medium: str = WHATSAPP
    """The contact is a business-scoped user id: ``contact_key`` is its own hash until :func:`write`
    finds the number it is linked to."""


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str


@dataclass
class CheckedFile:
    rows: list[ImportRow] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)


@dataclass(frozen=True)
class ImportResult:
    added: int
    unchanged: int


class BadHeader(ValueError):
    """The file's columns cannot be imported (nothing was read)."""


def check_header(columns: Iterable[str] | None) -> None:
    names = [c.strip() for c in columns or []]
    if not names:
        raise BadHeader("the file is empty: it needs a header row "
                        "(phone,category,granted,source,proof,at or an export's columns)")
    unknown = [c for c in names if c not in KNOWN_COLUMNS]
    if unknown:
        raise BadHeader(f"unknown {plural(len(unknown), 'column')} {', '.join(repr(c) for c in unknown)}; "
                        f"the columns are {', '.join(PHONE_COLUMNS)} (or an export's {', '.join(EXPORT_COLUMNS)})")
    missing = [c for c in ("category", "granted") if c not in names]
    if "phone" not in names and "contact_key" not in names:
        missing.insert(0, "phone")
    if "contact_key" in names and "hash_key_id" not in names:
        missing.append("hash_key_id")
    if missing:
        raise BadHeader(f"missing {plural(len(missing), 'column')}: {', '.join(missing)}")


def records(stream: TextIO, seen: Callable[[int], None] = lambda n: None
            ) -> Iterator[tuple[int, dict[str, str | None]]]:
    """A CSV file's ``(line, row)`` pairs for :func:`check_rows` (the line where a row ends, when a
    quoted field spans lines), ``seen(1)`` after each. Raises :class:`BadHeader` at once, before any
    row is read, when its columns cannot be imported."""
    reader = csv.DictReader(stream)
    check_header(reader.fieldnames)
    reader.fieldnames = [name.strip() for name in reader.fieldnames or []]

    def numbered() -> Iterator[tuple[int, dict[str, str | None]]]:
        for row in reader:
            yield reader.line_num, row
            seen(1)
    return numbered()


def check_rows(records: Iterable[tuple[int, Mapping[str, str | None]]], secret: bytes,
               country: str | None = None, clock: Callable[[], float] = now) -> CheckedFile:
    """Check every ``(line, row)``; bad rows are named with their line and why, never stored."""
    checked = CheckedFile()
    key_id = hash_key_id(secret)
    latest_allowed = datetime.fromtimestamp(clock(), UTC) + CLOCK_SKEW
    for line, raw in records:
        try:
            if None in raw:  # csv.DictReader files fields beyond the header under None
                raise ValueError("more fields than the header has columns")
            if any(value is None for value in raw.values()):
                raise ValueError("fewer fields than the header has columns")
            row = {str(k).strip(): str(v).strip() for k, v in raw.items()}
            checked.rows.append(_row(line, row, secret, key_id, country, latest_allowed))
        except ValueError as exc:  # InvalidPhoneError is one; the reason is a sentence for people
            checked.bad.append(BadLine(line, str(exc.args[0]) if exc.args else type(exc).__name__))
    return checked


def _row(line: int, row: dict[str, str], secret: bytes, key_id: str, country: str | None,
         latest_allowed: datetime) -> ImportRow:
    category_text = row.get("category", "").lower()
    try:
        category = Category(category_text)
    except ValueError:
        raise ValueError(f"category {row.get('category', '')!r} is not one of "
                         f"{', '.join(c.value for c in Category)}") from None
    granted_text = row.get("granted", "").lower()
    if granted_text not in GRANTED_WORDS:
        raise ValueError(f"granted {row.get('granted', '')!r} is not true or false "
                         "(yes/no, 1/0 and granted/revoked are read too)")
    granted = GRANTED_WORDS[granted_text]
    source = row.get("source") or DEFAULT_SOURCE
    if len(source) > SOURCE_LENGTH:
        raise ValueError(f"source is longer than {SOURCE_LENGTH} characters")
    proof = row.get("proof") or None
    if proof_missing(granted, proof):
        raise ValueError(f"{PROOF_REQUIRED} (the proof column is empty)")
    try:
        medium = checked(row.get("medium") or WHATSAPP)
    except ValueError as exc:
        raise ValueError(f"medium: {exc}") from None
    at_given = bool(row.get("at"))
    at = _time(row["at"]) if at_given else datetime.fromtimestamp(now(), UTC)
    if at > latest_allowed:
        raise ValueError(f"at {row['at']!r} is in the future")
    phone, key_text = row.get("phone", ""), row.get("contact_key", "")
    if phone and key_text:
        raise ValueError("give phone or contact_key, not both")
    change = None
    if "@" in phone:  # a customer known only by email address
        if medium != EMAIL:
            raise ValueError(f"phone: an email address names a customer on medium email only (medium is {medium})")
        try:
            address = normalized(phone)
        except ValueError as exc:
            raise ValueError(f"phone: {exc}") from None
        change = ConsentChange.model_construct(phone=None, user_id=None, email=address, category=category,
                                               granted=granted, source=source, proof=proof, at=at, country=None,
                                               medium=medium, contact_key=None)
        return ImportRow(line=line, contact_key=email_key(address, secret), category=category, granted=granted,
                         source=source, proof=proof, at=at, at_given=at_given, change=change, medium=medium)
    try:
        bsuid = identify(phone).get("user_id") if phone else None  # a customer known without a number
    except InvalidRecipientError as exc:
        raise ValueError(f"phone: {exc.message}") from None
    if bsuid:
        change = ConsentChange.model_construct(phone=None, user_id=bsuid, category=category, granted=granted,
                                               source=source, proof=proof, at=at, country=None, medium=medium,
                                               email=None, contact_key=None)
        return ImportRow(line=line, contact_key=bsuid_key(bsuid, secret), category=category, granted=granted,
                         source=source, proof=proof, at=at, at_given=at_given, change=change, by_bsuid=True,
                         medium=medium)
    if phone:
        try:
            e164 = to_e164(phone, row.get("country") or country)
        except InvalidPhoneError as exc:
            raise ValueError(f"phone: {exc.message}") from None
        key = contact_key(e164, secret)
        # Every field is checked above; validating the model again would parse the number twice.
        change = ConsentChange.model_construct(phone=e164, user_id=None, category=category, granted=granted,
                                               source=source, proof=proof, at=at, country=None, medium=medium,
                                               email=None, contact_key=None)
    elif key_text:
        if not _CONTACT_KEY.fullmatch(key_text):
            raise ValueError("contact_key is not a contact key from `connectzap consent export` (32 hex digits)")
        if row.get("hash_key_id") != key_id:
            raise ValueError("contact_key was made with another contact hash key (hash_key_id "
                             f"{row.get('hash_key_id') or '(empty)'}, this installation's is {key_id}); it would "
                             "match nobody here: import it where privacy.hash_secret is the exporter's")
        key = key_text
    else:
        raise ValueError("no phone (or contact_key)")
    return ImportRow(line=line, contact_key=key, category=category, granted=granted, source=source, proof=proof,
                     at=at, at_given=at_given, change=change, medium=medium)


def _time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"at {text!r} is not an ISO 8601 time (2026-01-31 or 2026-01-31T12:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- writing ------------------------------------------------------------------------------------

Content = tuple[bool, str, "str | None"]  # (granted, source, proof)


@dataclass
class _Seen:
    """What the ledger holds for one (contact, category, medium), as far as this import needs it."""

    stored: dict[Content, list[float]] = field(default_factory=dict)  # before this import: content -> times
    imported: dict[Content, list[float]] = field(default_factory=dict)  # by this import

    def add(self, at: float, content: Content, *, stored: bool) -> None:
        (self.stored if stored else self.imported).setdefault(content, []).append(at)

    def holds(self, row: ImportRow) -> bool:
        """The ledger already says what ``row`` says, so writing it would only repeat history:

        * a row with a time: the same record (consent, source, proof and time) is there;
        * a row without one (it takes effect now): the same consent, source and proof was recorded
          before this import -- so a file imported again adds nothing, and cannot re-grant what the
          customer revoked since.

        A row is written otherwise, even when it repeats the current state: a repeat at a later time
        moves the deciding time on (as :func:`.consent.record` keeps it), and whether a row is
        redundant must not depend on the rows around it, or a second import would differ.
        """
        content = (row.granted, row.source, row.proof)
        if not row.at_given:
            return content in self.stored
        at = row.at.timestamp()
        # Times travel as ISO 8601 text, to the microsecond: a re-imported time is equal to that.
        return any(abs(t - at) < 2e-6
                   for times in (self.stored.get(content, ()), self.imported.get(content, ())) for t in times)


def write(db: Database, conn: Connection, rows: list[ImportRow],
          advance: Callable[[int], None] = lambda n: None, *, notify: bool = True) -> ImportResult:
    """Append the rows the ledger does not hold yet, in batches, and (``notify``) journal a consent
    change for each that names a phone number, as :meth:`Connectzap.set_consent` does."""
    seen: dict[tuple[str, str, str], _Seen] = {}
    loaded: set[str] = set()
    added = unchanged = 0
    for start in range(0, len(rows), BATCH):
        batch = rows[start:start + BATCH]
        linked = identities.linked(conn, {r.contact_key for r in batch if r.by_bsuid})
        if linked:
            batch = [replace(r, contact_key=linked.get(r.contact_key, r.contact_key)) for r in batch]
        fresh_keys = sorted({r.contact_key for r in batch} - loaded)
        for known in conn.execute(select(consents.c.contact_key, consents.c.category, consents.c.granted,
                                         consents.c.source, consents.c.proof, consents.c.at, consents.c.medium)
                                  .where(consents.c.contact_key.in_(fresh_keys))):
            seen.setdefault((known.contact_key, known.category, known.medium), _Seen()).add(
                known.at, (known.granted, known.source, known.proof), stored=True)
        loaded.update(fresh_keys)
        inserts: list[dict[str, Any]] = []
        changes: list[Event] = []
        recorded_at = now()
        for row in batch:
            state = seen.setdefault((row.contact_key, row.category.value, row.medium), _Seen())
            if state.holds(row):
                unchanged += 1
                continue
            at = row.at.timestamp()
            state.add(at, (row.granted, row.source, row.proof), stored=False)
            inserts.append({"contact_key": row.contact_key, "category": row.category.value, "granted": row.granted,
                            "source": row.source, "proof": row.proof, "at": at, "recorded_at": recorded_at,
                            "medium": row.medium})
            if notify and row.change is not None:
                changes.append(Event.of(EventKind.CONSENT_CHANGED, row.change, source=row.source,
                                        already_recorded=True, ordering_key=ordering.contact(row.contact_key),
                                        dedupe_key=f"{row.contact_key}:{ledger.subject(row.change)}:"
                                                   f"{int(row.granted)}:{at:.6f}"))
        if inserts:
            conn.execute(consents.insert(), inserts)
            journal.append(db, conn, changes)
        added += len(inserts)
        advance(len(batch))
    return ImportResult(added=added, unchanged=unchanged)


# --- export -------------------------------------------------------------------------------------

def export_rows(records: Iterable[ConsentRecord], secret: bytes) -> Iterator[list[str]]:
    """The export's header and rows: what the ledger keeps, contacts as keyed hashes."""
    key_id = hash_key_id(secret)
    yield list(EXPORT_COLUMNS)
    for r in records:
        yield [r.contact_key, key_id, r.category.value, "true" if r.granted else "false", r.source, r.proof or "",
               iso_utc(r.at), r.medium]
