"""The outbox, and every change of a message's state: each transition is one named function here.

A message is admitted ``queued`` (or ``refused``) by the gate (:func:`add_many`), claimed
``sending`` by a sender (:func:`claim`), marked handed off right before its request goes to the
channel (:func:`hand_off`), and then -- by what the channel said -- ``accepted``, back to
``queued`` (paced, retried, switched to its fallback template), ``failed``, ``refused`` (the
send-time re-check) or ``unknown`` (it may have gone out). Status webhooks move it on
monotonically (:func:`apply_status`); an ``unknown`` one nobody settles is resent or failed after
a grace period (:func:`unknown_past_grace`). Nothing else writes to the table.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, bindparam, case, func, or_, select, text, union_all

from ..channel import SentId
from ..models import StatusValue
from ..phones import scrub
from . import bulk
from .database import Database, now
from .pipeline import Sent, Writes
from .schema import CONTACT_INDEXED, campaign_recipients, campaigns, outbox
from .among import among

S = StatusValue

TERMINAL = {S.SENT, S.DELIVERED, S.READ, S.PLAYED, S.FAILED, S.REFUSED, S.CANCELLED, S.ACCEPTED}
"""Statuses after which the message body and raw number are no longer needed."""

# Ranks for monotonic status: a late "sent" never overwrites "delivered" or "read".
_RANK = {s.value: s.rank for s in StatusValue}
_RELEASE = {"claimed_by": None, "claimed_until": None}


def new_message_id() -> str:
    """A message id: sortable by creation time, unguessable."""
    return f"m{int(time.time() * 1000):011x}{secrets.token_hex(6)}"


@dataclass(frozen=True)
class ErrorRecord:
    """What a failed attempt leaves on the message: the channel's error code, details and trace id."""

    code: str | None = None
    details: str | None = None
    trace_id: str | None = None

    def values(self) -> dict[str, Any]:
        # Kept after the message is erased: a number the channel quoted in its details is masked.
        return {"error_code": self.code, "error_details": scrub(self.details) if self.details else None,
                "fbtrace_id": self.trace_id}


NO_ERROR = ErrorRecord()


# --- admission ----------------------------------------------------------------------------------

def by_keys(conn: Connection, keys: list[str], columns: tuple[Any, ...], chunk: int = 500) -> dict[str, Any]:
    """The messages already holding any of ``keys`` (their ``columns``), by idempotency key.
    ``chunk`` bounds the parameters per ``IN (...)``, well inside every backend's limit."""
    found: dict[str, Any] = {}
    for at in range(0, len(keys), chunk):
        for row in conn.execute(select(*columns).where(outbox.c.idempotency_key.in_(keys[at:at + chunk]))):
            found[row.idempotency_key] = row
    return found


def add_many(db: Database, conn: Connection, rows: list[dict[str, Any]]) -> list[str]:
    """Insert admitted (or refused) messages; a key that is already taken is skipped. Returns the
    keys inserted."""
    if not rows:
        return []
    return inserted_keys(conn, rows, bulk.insert_new(db, conn, outbox, rows, "idempotency_key"))


def send_many(writes: Writes, conn: Connection, rows: list[dict[str, Any]]) -> Sent:
    """:func:`add_many` sent through ``writes``: :func:`inserted_keys` of its count, once settled,
    says which keys went in."""
    return bulk.send_insert_new(writes, conn, outbox, rows, "idempotency_key")


def inserted_keys(conn: Connection, rows: list[dict[str, Any]], count: int) -> list[str]:
    """The keys of ``rows`` an insert of ``count`` of them (skipping keys already taken) put in."""
    if count == len(rows):
        return [row["idempotency_key"] for row in rows]
    # Some key was taken already: those stored under one of these ids are the ones inserted.
    ids = {row["id"] for row in rows}
    stored = by_keys(conn, [row["idempotency_key"] for row in rows], (outbox.c.idempotency_key, outbox.c.id))
    return [row["idempotency_key"] for row in rows
            if (found := stored.get(row["idempotency_key"])) is not None and found.id in ids]


# --- the sender's transitions ---------------------------------------------------------------------

def claim(db: Database, conn: Connection, worker: str, limit: int, lease: float,
          media: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Claim up to ``limit`` due messages for ``worker`` -- only those on ``media`` when given (the
    media that have a channel: the others wait in the queue)."""
    t = now()
    query = select(outbox).where(outbox.c.status == S.QUEUED, outbox.c.next_attempt_at <= t,
                                 or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < t))
    if media is not None:
        query = query.where(outbox.c.medium.in_(sorted(media)))
    stmt = db.for_update(query.order_by(outbox.c.next_attempt_at, outbox.c.id).limit(limit))
    rows = [dict(r._mapping) for r in conn.execute(stmt)]
    if rows:
        conn.execute(outbox.update().where(among(conn, outbox.c.id, [r["id"] for r in rows])).values(
            status=S.SENDING, claimed_by=worker, claimed_until=t + lease, attempts=outbox.c.attempts + 1,
            handed_off_at=None, updated_at=t))
    return rows


def hand_off(conn: Connection, message_ids: list[str], worker: str) -> set[str]:
    """These messages' requests are about to go to the channel: from now on a crash leaves them
    ``unknown``, not simply unsent. One statement for every message of a group commit. Returns
    the ids marked: a message whose claim ``worker`` lost (its lease ran out and recovery took it)
    is not marked, and must not be sent."""
    if not message_ids:
        return set()
    stmt = (outbox.update().where(among(conn, outbox.c.id, message_ids), outbox.c.status == S.SENDING,
                                  outbox.c.claimed_by == worker)
            .values(handed_off_at=now()).returning(outbox.c.id))
    return {r[0] for r in conn.execute(stmt)}


def stale_sending(db: Database, conn: Connection, limit: int = 100,
                  media: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Messages whose sender died mid-send: the send may or may not have happened (only those on
    ``media`` when given: only their channels can say)."""
    t = now()
    query = select(outbox).where(outbox.c.status == S.SENDING, outbox.c.claimed_until < t)
    if media is not None:
        query = query.where(outbox.c.medium.in_(sorted(media)))
    stmt = db.for_update(query.limit(limit))
    return [dict(r._mapping) for r in conn.execute(stmt)]


def _update(conn: Connection, message_id: str, **values: Any) -> None:
    values.setdefault("updated_at", now())
    conn.execute(outbox.update().where(outbox.c.id == message_id).values(**values))


def lease(conn: Connection, message_id: str, worker: str, until: float) -> None:
    """Hold a message left ``sending`` by a dead worker while this one asks the channel about it."""
    _update(conn, message_id, claimed_by=worker, claimed_until=until)


def refuse(conn: Connection, message_id: str, reason: str, detail: str | None) -> None:
    """The send-time re-check of the gate refused it (e.g. an opt-out arrived while it waited)."""
    _update(conn, message_id, status=S.REFUSED, reason=reason, error_details=detail, **_RELEASE, **erase_values(0))


def withdraw_queued(conn: Connection, message_id: str, reason: str, detail: str | None) -> bool:
    """Refuse a message only while it is still ``queued`` (a sender may be taking it right now):
    True when it was withdrawn, False when it is on its way or settled."""
    done = conn.execute(outbox.update().where(outbox.c.id == message_id, outbox.c.status == S.QUEUED).values(
        status=S.REFUSED, reason=reason, error_details=detail, updated_at=now(), **_RELEASE, **erase_values(0)))
    return done.rowcount == 1


def hold_back(conn: Connection, message_id: str, until: float, attempts: int) -> None:
    """A rate limit held it back before it was sent: it waits, and the attempt is given back."""
    _update(conn, message_id, status=S.QUEUED, next_attempt_at=until, attempts=attempts, **_RELEASE)


def wait(conn: Connection, message_id: str, until: float, attempts: int, reason: str, detail: str | None,
         template: tuple[str, str] | None, *, new_send_time: bool = False) -> None:
    """The gate says "not now" (``template``, its name and language, is paused): back to the queue
    until ``until`` or until :func:`release_waiting`, with ``reason`` showing why it waits; the
    attempt is given back. ``new_send_time``: ``until`` is the message's send time from now on
    (its ``not_before``: a campaign's rate gave it a new one)."""
    named: dict[str, Any] = {"template_name": template[0], "language": template[1]} if template else {}
    if new_send_time:
        named["not_before"] = until
    _update(conn, message_id, status=S.QUEUED, next_attempt_at=until, attempts=attempts, reason=reason,
            error_details=detail, **named, **_RELEASE)


def give_back(conn: Connection, message_id: str, reason: str, detail: str, again_at: float) -> None:
    """A claimed campaign message may not leave now and goes back to its campaign, which admits its
    recipient again from ``again_at`` (kept as ``next_attempt_at``); the message itself is over:
    cancelled, with ``reason`` and its content and number erased."""
    _update(conn, message_id, status=S.CANCELLED, reason=reason, error_details=detail, next_attempt_at=again_at,
            content=None, recipient=None, **_RELEASE)


WAITING_FOR_TEMPLATE = "template_paused"
"""The reason a queued message shows while it waits for its paused template (cleared when it is sent)."""


def release_waiting(conn: Connection, template_name: str, language: str | None, reason: str) -> int:
    """Make the messages waiting for template ``template_name`` (``reason``) due now -- or at their
    ``not_before``, when they were scheduled for later: the gate's re-check then sends them, or
    refuses them if the template can no longer be sent."""
    stmt = outbox.update().where(outbox.c.status == S.QUEUED, outbox.c.template_name == template_name,
                                 outbox.c.reason == reason)
    if language:
        stmt = stmt.where(outbox.c.language == language)
    t = now()
    due = case((outbox.c.not_before > t, outbox.c.not_before), else_=t)
    return conn.execute(stmt.values(next_attempt_at=due, updated_at=t)).rowcount


def queued_with_template(conn: Connection, template_name: str, language: str | None) -> list[dict[str, Any]]:
    """The WhatsApp messages still queued for template ``template_name`` (in ``language``, when
    given) that are due by now and name media to fall back on, locked for this transaction (a sender
    claiming one waits, then finds it no longer queued)."""
    t = now()
    stmt = select(outbox).where(outbox.c.status == S.QUEUED, outbox.c.medium == "whatsapp",
                                outbox.c.template_name == template_name,
                                or_(outbox.c.not_before.is_(None), outbox.c.not_before <= t),
                                outbox.c.content.like('%"fallback_media"%'))
    if language:
        stmt = stmt.where(outbox.c.language == language)
    return [dict(r._mapping) for r in conn.execute(stmt.order_by(outbox.c.id).with_for_update())]


def retry_later(conn: Connection, message_id: str, at: float, error: ErrorRecord) -> None:
    """It was not sent this time (a retriable error, or sending paused): back to the queue until ``at``."""
    _update(conn, message_id, status=S.QUEUED, next_attempt_at=at, **error.values(), **_RELEASE)


def switch_to_fallback(conn: Connection, message_id: str, fallback: dict[str, Any], reply_to: str | None,
                       error: ErrorRecord) -> None:
    """The 24-hour window turned out closed: queue its fallback template in its place, at once."""
    _update(conn, message_id, status=S.QUEUED, next_attempt_at=now(), **error.values(), **_RELEASE,
            content=json.dumps({"content": fallback, "original": fallback, "fallback": None, "reply_to": reply_to}),
            content_type="template", template_name=fallback.get("name"), language=fallback.get("language"))


def fail(conn: Connection, message_id: str, reason: str, error: ErrorRecord, erase: dict[str, Any]) -> None:
    """It will not be sent: ``reason`` says why (``max_attempts``, ``opted_out``, ...)."""
    _update(conn, message_id, status=S.FAILED, reason=reason, **error.values(), **_RELEASE, **erase)


def mark_unknown(conn: Connection, message_id: str, error: ErrorRecord | None = None,
                 reason: str | None = None) -> None:
    """It may or may not have been sent (a timeout, a crash after it was handed off): never resent
    blindly. A status webhook settles it; otherwise the settle policy does, after its grace period."""
    values = error.values() if error is not None else {}
    if reason is not None:
        values["reason"] = reason
    _update_while_sending(conn, message_id, status=S.UNKNOWN, unknown_since=now(), **values, **_RELEASE)


def _update_while_sending(conn: Connection, message_id: str, **values: Any) -> None:
    """Update a message only while it is still ``sending``: a status webhook may have settled it
    since it was read (it went out after all), and that must not be overwritten with a guess."""
    values.setdefault("updated_at", now())
    conn.execute(outbox.update().where(outbox.c.id == message_id, outbox.c.status == S.SENDING).values(**values))


def requeue_now(conn: Connection, message_id: str) -> None:
    """A message left ``sending`` by a dead worker never went out (it was never handed off, or the
    channel says so): send it again."""
    _update_while_sending(conn, message_id, status=S.QUEUED, next_attempt_at=now(), handed_off_at=None, **_RELEASE)


def unknown_past_grace(db: Database, conn: Connection, grace: float, statuses_applied_until: float,
                       limit: int = 100) -> list[dict[str, Any]]:
    """``unknown`` messages no status settled within ``grace`` seconds, oldest first, locked for
    this transaction (another worker skips them). ``statuses_applied_until``: every status received
    before this time has been applied -- a status that arrived in time but waits behind a backlog
    must still settle its message, so the grace period only ends where the applied statuses reach."""
    stmt = db.for_update(select(outbox).where(outbox.c.status == S.UNKNOWN,
                                              outbox.c.unknown_since < min(now(), statuses_applied_until) - grace)
                         .order_by(outbox.c.unknown_since).limit(limit))
    return [dict(r._mapping) for r in conn.execute(stmt)]


def unknown_locked(db: Database, conn: Connection, message_id: str) -> list[dict[str, Any]]:
    """The message, locked for this transaction, while it is ``unknown`` (else nothing)."""
    stmt = db.for_update(select(outbox).where(outbox.c.id == message_id, outbox.c.status == S.UNKNOWN))
    return [dict(r._mapping) for r in conn.execute(stmt)]


def settles_by(row: dict[str, Any], policy: str, max_attempts: int) -> Literal["resend", "fail"]:
    """What the settle policy does to an ``unknown`` row past its grace: ``resend`` it, or ``fail`` it
    (the policy says so, its content is gone, or it used up its attempts)."""
    resend = policy == "resend" and row.get("content") is not None and row["attempts"] < max_attempts
    return "resend" if resend else "fail"


def unknown_listing(conn: Connection, limit: int = 200) -> list[dict[str, Any]]:
    """``unknown`` messages, the longest-waiting first."""
    stmt = select(outbox).where(outbox.c.status == S.UNKNOWN).order_by(outbox.c.unknown_since, outbox.c.id)
    return [dict(r._mapping) for r in conn.execute(stmt.limit(limit))]


def resend_unknown(conn: Connection, message_id: str) -> bool:
    """No status came within the grace period: send it again, with the same id (and so the same
    ``biz_opaque_callback_data``). False if a status settled it meanwhile or its content is gone."""
    t = now()
    return bool(conn.execute(outbox.update().where(outbox.c.id == message_id, outbox.c.status == S.UNKNOWN,
                                                   outbox.c.content.is_not(None))
                             .values(status=S.QUEUED, next_attempt_at=t, reason="resent_unconfirmed",
                                     unknown_since=None, handed_off_at=None, updated_at=t)).rowcount)


def fail_unknown(conn: Connection, message_id: str, erase: dict[str, Any]) -> bool:
    """No status came within the grace period and the policy is not to resend: it failed as
    ``unconfirmed``. False if a status settled it meanwhile."""
    return bool(conn.execute(outbox.update().where(outbox.c.id == message_id, outbox.c.status == S.UNKNOWN)
                             .values(status=S.FAILED, reason="unconfirmed", updated_at=now(), **_RELEASE, **erase))
                .rowcount)


def mark_accepted(conn: Connection, message_id: str, wamid: str | None, erase: dict[str, Any]) -> None:
    mark_accepted_many(conn, [(message_id, wamid)], erase)


def mark_accepted_many(conn: Connection, sent: list[tuple[str, str | None]], erase: dict[str, Any]) -> None:
    """Record successful sends in one statement. A status webhook that raced ahead (``delivered``)
    keeps its status; only the wamid is added. A wamid that is a :class:`SentId` with ``held``
    leaves that reason on the message (accepted, delivery held); one with ``segments`` records them."""
    if not sent:
        return
    held = [(message_id, wamid.held) for message_id, wamid in sent if isinstance(wamid, SentId) and wamid.held]
    stmt = outbox.update().where(outbox.c.id == bindparam("b_id")).values(
        # Spelled out, not IN (...): an expanding IN cannot be used with executemany.
        status=case((or_(outbox.c.status == S.SENDING, outbox.c.status == S.QUEUED, outbox.c.status == S.UNKNOWN),
                     S.ACCEPTED.value), else_=outbox.c.status),
        wamid=bindparam("b_wamid"), claimed_by=None,
        # the note of a wait for a paused template ends with it; any other reason stays on record
        reason=case((outbox.c.reason == WAITING_FOR_TEMPLATE, None), else_=outbox.c.reason),
        error_details=case((outbox.c.reason == WAITING_FOR_TEMPLATE, None), else_=outbox.c.error_details),
        claimed_until=None, updated_at=now(), **erase)
    conn.execute(stmt, [{"b_id": message_id, "b_wamid": None if wamid is None else str(wamid)}
                        for message_id, wamid in sent])
    for message_id, why in held:
        _update(conn, message_id, reason=why)
    for message_id, wamid in sent:
        if isinstance(wamid, SentId) and wamid.segments is not None:
            _update(conn, message_id, segments=wamid.segments)


def record_sent_elsewhere(db: Database, conn: Connection, *, wamid: str, contact_key: str, content_type: str,
                          sent_from: str, business_phone_number_id: str | None, source_event_id: int,
                          at: float) -> bool:
    """A message that left by another way than connectzap (the business typed it in the WhatsApp
    Business app): added ``accepted`` with its wamid, so the statuses Meta reports for it apply. No
    body and no number are stored, and a sender never claims it (only ``queued`` rows are claimed).
    Returns False when this wamid was already recorded."""
    t = now()
    row = dict(id=new_message_id(), idempotency_key=f"sent_from:{sent_from}:{wamid}", request_hash=sent_from,
               contact_key=contact_key, recipient=None, category="service", content_type=content_type[:16],
               content=None, status=S.ACCEPTED.value, wamid=wamid, next_attempt_at=at, attempts=0,
               business_phone_number_id=business_phone_number_id, source_event_id=source_event_id,
               origin=json.dumps({"sent_from": sent_from}), created_at=at, updated_at=t)
    return bool(add_many(db, conn, [row]))


REVOKED_ELSEWHERE = "revoked_in_app"


def mark_changed_elsewhere(conn: Connection, wamid: str, change: str) -> bool:
    """The business edited (``change="edited"``) or deleted for everyone (``"revoked"``) message
    ``wamid`` in the WhatsApp Business app: its ``reason`` says so (``edited_in_app``,
    ``revoked_in_app``); its delivery status stays what Meta reported. Nothing of the new text is
    kept. A deletion is final: a later edit notice does not hide it. False when no message has
    this wamid (sent before connectzap recorded the number's messages)."""
    reason = f"{change}_in_app"
    done = conn.execute(outbox.update().where(
        outbox.c.wamid == wamid,
        or_(outbox.c.reason.is_(None), outbox.c.reason != REVOKED_ELSEWHERE)).values(reason=reason, updated_at=now()))
    return bool(done.rowcount) or conn.execute(select(outbox.c.id).where(outbox.c.wamid == wamid)).first() is not None


def erase_values(retention_seconds: float) -> dict[str, Any]:
    """Column values that erase a finished message (or schedule its erasure)."""
    if retention_seconds <= 0:
        return {"content": None, "recipient": None}
    return {"erase_after": now() + retention_seconds}


# --- statuses, cancellation, erasure --------------------------------------------------------------

@dataclass(frozen=True)
class StatusReport:
    """One status the channel reported for a message: by its ``wamid`` or, for a message whose
    wamid we never learned (a crash mid-send), by our own id (``biz_opaque_callback_data``)."""

    wamid: str
    status: str
    error_code: str | None = None
    error_details: str | None = None
    outbox_id: str | None = None
    reason: str | None = None
    """On a ``failed`` status: why, as a short code the channel chose; it becomes the message's ``reason``."""
    pricing: dict[str, Any] | None = None
    """The status's ``pricing`` (per-message pricing): the latest one given is kept on the message."""
    at: float | None = None
    """When the channel says the status happened (the webhook's ``timestamp``); None: now."""


def apply_status(conn: Connection, wamid: str, status: str, error_code: str | None = None,
                 error_details: str | None = None, outbox_id: str | None = None,
                 reason: str | None = None) -> dict[str, Any] | None:
    """Move a message's status forward; never backwards. ``failed`` after ``delivered`` keeps delivered
    and records the error; a message that does fail takes ``reason``. Returns the row before the change,
    or None when the message is unknown."""
    return apply_statuses(conn, [StatusReport(wamid, status, error_code, error_details, outbox_id, reason)])[0]


def apply_statuses(conn: Connection, reports: list[StatusReport]) -> list[dict[str, Any] | None]:
    """:func:`apply_status` for several reports, in their order, with one locking read and one
    write per changed message: the outcome is what applying them one by one gives (each report
    sees the state the previous ones left). For each report, the row before it (None: unknown).

    The rows are read ``FOR UPDATE`` (PostgreSQL; SQLite's writer holds the database): a status is
    a read-modify-write, and two workers applying ``read`` and ``delivered`` of one message at once
    must not let the later commit carry the older rank."""
    if not reports:
        return []
    rows = _locked(conn, outbox.c.wamid, {r.wamid for r in reports if r.wamid})
    by_wamid = {row["wamid"]: row for row in rows.values() if row["wamid"]}
    # by our own id only what its wamid did not find (Meta echoes it as biz_opaque_callback_data)
    rows |= _locked(conn, outbox.c.id, {r.outbox_id for r in reports
                                        if r.outbox_id and r.wamid not in by_wamid and r.outbox_id not in rows})
    changes: dict[str, dict[str, Any]] = {}
    before: list[dict[str, Any] | None] = []
    for report in reports:
        row = by_wamid.get(report.wamid) if report.wamid else None
        if row is None and report.outbox_id:
            row = rows.get(report.outbox_id)
        before.append(dict(row) if row is not None else None)
        if row is None:
            continue
        values = _status_change(row, report)
        if values:
            row.update(values)
            changes.setdefault(row["id"], {}).update(values)
            if "wamid" in values:
                by_wamid[row["wamid"]] = row
    _write_changes(conn, changes)
    return before


def _locked(conn: Connection, column: Any, keys: set[str]) -> dict[str, dict[str, Any]]:
    """The messages whose ``column`` is one of ``keys``, by id, locked for this transaction."""
    found: dict[str, dict[str, Any]] = {}
    ordered = sorted(keys)
    for at in range(0, len(ordered), 500):
        # id order: concurrent appliers lock the rows they share in the same order (no deadlock)
        for row in conn.execute(select(outbox).where(column.in_(ordered[at:at + 500])).order_by(outbox.c.id)
                                .with_for_update()):
            found[row.id] = dict(row._mapping)
    return found


def _status_change(row: dict[str, Any], report: StatusReport) -> dict[str, Any]:
    """The columns one status report changes on a message in state ``row``."""
    status, error_code = report.status, report.error_code
    error_details = scrub(report.error_details) if report.error_details else None  # kept for good: no number
    values: dict[str, Any] = {}
    current = row["status"]
    if row["wamid"] is None and report.wamid:
        values["wamid"] = report.wamid
    if status == S.FAILED and _RANK.get(current, 0) >= S.DELIVERED.rank and current != S.FAILED:
        values.update(error_code=error_code, error_details=error_details)
    elif current == S.FAILED and S.DELIVERED.rank <= _RANK.get(status, 0) < S.FAILED.rank:
        # Meta: a message that got "delivered" reached at least one device, even if another failed;
        # the order the two webhooks arrive in must not matter. The error stays recorded.
        values["status"] = status
    elif _RANK.get(status, 0) > _RANK.get(current, 0) or current in (S.UNKNOWN, S.SENDING):
        values["status"] = status
        if error_code is not None:
            values.update(error_code=error_code, error_details=error_details)
        if status == S.FAILED:
            values["reason"] = report.reason
    if current in (S.UNKNOWN, S.SENDING):
        values.update(claimed_by=None, claimed_until=None, recipient=None, content=None)
    values.update(pricing_values(report.pricing))
    values.update(status_time(row, report))
    return values


TIME_COLUMNS: dict[str, str] = {S.SENT.value: "sent_at", S.DELIVERED.value: "delivered_at", S.READ.value: "read_at",
                                S.PLAYED.value: "read_at", S.FAILED.value: "failed_at"}
"""The column keeping when a message first got each status the channel reports."""


def status_time(row: dict[str, Any], report: StatusReport) -> dict[str, Any]:
    """The time column ``report`` sets on ``row``: the earliest time reported for that status wins,
    whatever order the webhooks arrive in (a status Meta retries keeps its first time)."""
    column = TIME_COLUMNS.get(report.status)
    if column is None:
        return {}
    at = report.at if report.at is not None else now()
    return {column: at} if row.get(column) is None or at < row[column] else {}


def _write_changes(conn: Connection, changes: dict[str, dict[str, Any]]) -> None:
    """One UPDATE per message, batched (executemany) by the set of columns that changed."""
    t = now()
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for message_id, values in changes.items():
        columns = tuple(sorted(values))
        by_columns.setdefault(columns, []).append({"b_id": message_id, **{f"b_{c}": values[c] for c in columns}})
    for columns, params in by_columns.items():
        stmt = outbox.update().where(outbox.c.id == bindparam("b_id")).values(
            updated_at=t, **{c: bindparam(f"b_{c}") for c in columns})
        conn.execute(stmt, params)


def pricing_values(pricing: dict[str, Any] | None) -> dict[str, Any]:
    """The pricing columns for a status's ``pricing`` (Meta's ``category``, ``type``, ``billable``);
    nothing when the status carries none (a ``read`` status has none: what an earlier one said stays)."""
    if not pricing:
        return {}
    category, kind, billable = pricing.get("category"), pricing.get("type"), pricing.get("billable")
    values: dict[str, Any] = {}
    if isinstance(category, str):
        values["pricing_category"] = category[:48]
    if isinstance(kind, str):
        values["pricing_type"] = kind[:48]
    if isinstance(billable, bool):
        values["billable"] = billable
    return values


def pricing_counts(conn: Connection) -> list[tuple[str, str, str, int]]:
    """Messages with pricing, by (category, type, billable as ``true``/``false``/``unknown``)."""
    rows = conn.execute(select(outbox.c.pricing_category, outbox.c.pricing_type, outbox.c.billable, func.count())
                        .where(outbox.c.pricing_category.is_not(None))
                        .group_by(outbox.c.pricing_category, outbox.c.pricing_type, outbox.c.billable)).all()
    return [(r[0], r[1] or "unknown", "unknown" if r[2] is None else str(bool(r[2])).lower(), r[3]) for r in rows]


def get(conn: Connection, message_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(outbox).where(outbox.c.id == message_id)).first()
    return dict(row._mapping) if row else None


def get_locked(conn: Connection, message_id: str) -> dict[str, Any] | None:
    """:func:`get`, the row locked for this transaction (a sender claiming it waits)."""
    return _locked(conn, outbox.c.id, {message_id}).get(message_id)


def by_wamid(conn: Connection, wamid: str) -> dict[str, Any] | None:
    row = conn.execute(select(outbox).where(outbox.c.wamid == wamid).limit(1)).first()
    return dict(row._mapping) if row else None


_CONTACT_INDEXED = text(f"({CONTACT_INDEXED})")
"""``ix_outbox_contact``'s predicate as literal SQL, in parentheses (beside other conditions), as the
planner must see it to use the partial index: with 'queued' a bound parameter it could not."""


def of_contacts(conn: Connection, keys: Collection[str]) -> ColumnElement[bool]:
    """The outbox rows of these contacts: through ``ix_outbox_contact`` (its predicate repeated, so
    that the database uses it), and a campaign's messages still queued, which that index leaves out
    (:data:`.schema.CONTACT_INDEXED`), through the campaigns' recipients (each keeps its message's id;
    a seek of their primary key per campaign)."""
    return outbox.c.id.in_(union_all(
        select(outbox.c.id).where(among(conn, outbox.c.contact_key, keys), _CONTACT_INDEXED),
        select(campaign_recipients.c.message_id).where(
            campaign_recipients.c.campaign_id.in_(select(campaigns.c.id)),
            among(conn, campaign_recipients.c.contact_key, keys), campaign_recipients.c.message_id.is_not(None))))


def listing(conn: Connection, *, contact_key: str | None = None, status: str | None = None,
            since: float | None = None, until: float | None = None, before_id: str | None = None,
            source_event_id: int | None = None, reason: str | None = None, plugin: str | None = None,
            medium: str | None = None, fallback_of: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Messages, newest first; ``medium``: only those going out on it; ``fallback_of``: the fallbacks
    (admitted or refused) of that message (by ``ix_outbox_fallback_of``)."""
    stmt = select(outbox)
    if medium:
        stmt = stmt.where(outbox.c.medium == medium)
    if fallback_of:
        stmt = stmt.where(outbox.c.fallback_of == fallback_of)
    if reason:
        stmt = stmt.where(outbox.c.reason == reason)
    if plugin:
        stmt = stmt.where(outbox.c.plugin == plugin)
    if contact_key:
        stmt = stmt.where(of_contacts(conn, [contact_key]))
    if status:
        stmt = stmt.where(outbox.c.status == status)
    if since is not None:
        stmt = stmt.where(outbox.c.created_at >= since)
    if until is not None:
        stmt = stmt.where(outbox.c.created_at < until)
    if before_id:
        stmt = stmt.where(outbox.c.id < before_id)
    if source_event_id is not None:
        stmt = stmt.where(outbox.c.source_event_id == source_event_id)
    return [dict(r._mapping) for r in conn.execute(stmt.order_by(outbox.c.id.desc()).limit(limit))]


def cancel(conn: Connection, cancel_key: str) -> int:
    """Cancel every message still waiting under ``cancel_key``. Returns how many."""
    return conn.execute(outbox.update().where(outbox.c.cancel_key == cancel_key, outbox.c.status == S.QUEUED)
                        .values(status=S.CANCELLED, reason="cancelled", content=None, recipient=None,
                                updated_at=now())).rowcount


def take_back(conn: Connection, cancel_key: str, reason: str) -> list[str]:
    """Cancel the messages still waiting under ``cancel_key`` (a paused or cancelled campaign takes
    back what no sender has claimed); returns their ids. A message already claimed goes on."""
    stmt = (outbox.update().where(outbox.c.cancel_key == cancel_key, outbox.c.status == S.QUEUED)
            .values(status=S.CANCELLED, reason=reason, content=None, recipient=None, updated_at=now())
            .returning(outbox.c.id))
    return [r[0] for r in conn.execute(stmt)]


def counts(conn: Connection, since: float | None = None) -> dict[str, int]:
    """Messages per status (created since ``since``, when given)."""
    stmt = select(outbox.c.status, func.count()).group_by(outbox.c.status)
    if since is not None:
        stmt = stmt.where(outbox.c.created_at >= since)
    rows = conn.execute(stmt).all()
    return {r[0]: r[1] for r in rows}


def flow_counts(conn: Connection, since: float) -> tuple[int, int]:
    """Messages admitted since ``since``, and messages handed to a channel since then among those
    admitted in the day before it (by ``ix_outbox_created``, never a scan of the whole outbox)."""
    admitted = conn.execute(select(func.count()).select_from(outbox)
                            .where(outbox.c.created_at >= since)).scalar_one()
    handed_off = conn.execute(select(func.count()).select_from(outbox).where(
        outbox.c.created_at >= since - 86400.0, outbox.c.handed_off_at >= since)).scalar_one()
    return admitted, handed_off


def erase(conn: Connection, message_id: str, erase: dict[str, Any]) -> None:
    """Apply :func:`erase_values` to a message kept longer for a while (one that may fall back)."""
    _update(conn, message_id, **erase)


def erase_expired(conn: Connection) -> int:
    t = now()
    return conn.execute(outbox.update().where(outbox.c.erase_after.is_not(None), outbox.c.erase_after <= t)
                        .values(content=None, recipient=None, erase_after=None)).rowcount


def content_of(row: dict[str, Any]) -> dict[str, Any] | None:
    return json.loads(row["content"]) if row.get("content") else None


def origin_of(row: dict[str, Any]) -> dict[str, str]:
    """The ids of what the message is about (:attr:`Outgoing.origin`); empty when it named none."""
    return json.loads(row["origin"]) if row.get("origin") else {}
