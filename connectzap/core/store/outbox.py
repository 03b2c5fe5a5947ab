"""Outbox operations: claim due messages, record send results, apply statuses monotonically, erase."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, or_, select

from ..models import StatusValue
from .database import Database, now
from .schema import outbox

TERMINAL = {"sent", "delivered", "read", "played", "failed", "refused", "cancelled", "accepted"}
"""Statuses after which the message body and raw number are no longer needed."""

# Ranks for monotonic status: a late "sent" never overwrites "delivered" or "read".
_RANK = {s.value: s.rank for s in StatusValue}


def claim(db: Database, conn: Connection, worker: str, limit: int, lease: float) -> list[dict[str, Any]]:
    t = now()
    stmt = db.for_update(
        select(outbox).where(outbox.c.status == "queued", outbox.c.next_attempt_at <= t,
                             or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < t))
        .order_by(outbox.c.next_attempt_at, outbox.c.id).limit(limit))
    rows = [dict(r._mapping) for r in conn.execute(stmt)]
    if rows:
        conn.execute(outbox.update().where(outbox.c.id.in_([r["id"] for r in rows])).values(
            status="sending", claimed_by=worker, claimed_until=t + lease, attempts=outbox.c.attempts + 1,
            updated_at=t))
    return rows


def stale_sending(db: Database, conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    """Messages whose sender died mid-send: the send may or may not have happened."""
    t = now()
    stmt = db.for_update(select(outbox).where(outbox.c.status == "sending", outbox.c.claimed_until < t).limit(limit))
    return [dict(r._mapping) for r in conn.execute(stmt)]


def update(conn: Connection, message_id: str, **values: Any) -> None:
    values.setdefault("updated_at", now())
    conn.execute(outbox.update().where(outbox.c.id == message_id).values(**values))


def mark_accepted(conn: Connection, message_id: str, wamid: str | None, erase: dict[str, Any]) -> None:
    mark_accepted_many(conn, [(message_id, wamid)], erase)


def mark_accepted_many(conn: Connection, sent: list[tuple[str, str | None]], erase: dict[str, Any]) -> None:
    """Record successful sends in one statement. A status webhook that raced ahead (``delivered``)
    keeps its status; only the wamid is added."""
    if not sent:
        return
    stmt = outbox.update().where(outbox.c.id == bindparam("b_id")).values(
        # Spelled out, not IN (...): an expanding IN cannot be used with executemany.
        status=case((or_(outbox.c.status == "sending", outbox.c.status == "queued", outbox.c.status == "unknown"),
                     "accepted"), else_=outbox.c.status),
        wamid=bindparam("b_wamid"), claimed_by=None, claimed_until=None, updated_at=now(), **erase)
    conn.execute(stmt, [{"b_id": message_id, "b_wamid": wamid} for message_id, wamid in sent])


def erase_values(retention_seconds: float) -> dict[str, Any]:
    """Column values that erase a finished message (or schedule its erasure)."""
    if retention_seconds <= 0:
        return {"content": None, "recipient": None}
    return {"erase_after": now() + retention_seconds}


def apply_status(conn: Connection, wamid: str, status: str, error_code: str | None = None,
                 error_details: str | None = None, outbox_id: str | None = None) -> dict[str, Any] | None:
    """Move a message's status forward; never backwards. ``failed`` after ``delivered`` keeps delivered
    and records the error. Returns the row before the change, or None when the message is unknown."""
    row = None
    if wamid:
        row = conn.execute(select(outbox).where(outbox.c.wamid == wamid)).first()
    if row is None and outbox_id:
        row = conn.execute(select(outbox).where(outbox.c.id == outbox_id)).first()
    if row is None:
        return None
    before = dict(row._mapping)
    values: dict[str, Any] = {}
    current = before["status"]
    if before["wamid"] is None and wamid:
        values["wamid"] = wamid
    if status == "failed" and _RANK.get(current, 0) >= _RANK["delivered"] and current != "failed":
        values.update(error_code=error_code, error_details=error_details)
    elif current == "failed" and _RANK["delivered"] <= _RANK.get(status, 0) < _RANK["failed"]:
        # Meta: a message that got "delivered" reached at least one device, even if another failed;
        # the order the two webhooks arrive in must not matter. The error stays recorded.
        values["status"] = status
    elif _RANK.get(status, 0) > _RANK.get(current, 0) or current in ("unknown", "sending"):
        values["status"] = status
        if error_code is not None:
            values.update(error_code=error_code, error_details=error_details)
    if current in ("unknown", "sending"):
        values.update(claimed_by=None, claimed_until=None, recipient=None, content=None)
    if values:
        update(conn, before["id"], **values)
    return before


def get(conn: Connection, message_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(outbox).where(outbox.c.id == message_id)).first()
    return dict(row._mapping) if row else None


def listing(conn: Connection, *, contact_key: str | None = None, status: str | None = None,
            since: float | None = None, until: float | None = None, before_id: str | None = None,
            source_event_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    stmt = select(outbox)
    if contact_key:
        stmt = stmt.where(outbox.c.contact_key == contact_key)
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
    return conn.execute(outbox.update().where(outbox.c.cancel_key == cancel_key, outbox.c.status == "queued")
                        .values(status="cancelled", reason="cancelled", content=None, recipient=None,
                                updated_at=now())).rowcount


def counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all()
    return {r[0]: r[1] for r in rows}


def erase_expired(conn: Connection) -> int:
    t = now()
    return conn.execute(outbox.update().where(outbox.c.erase_after.is_not(None), outbox.c.erase_after <= t)
                        .values(content=None, recipient=None, erase_after=None)).rowcount


def content_of(row: dict[str, Any]) -> dict[str, Any] | None:
    return json.loads(row["content"]) if row.get("content") else None
