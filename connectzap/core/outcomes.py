"""What each journaled event became, and why: read from the journal, its deliveries and the outbox.

A delivery's ``result`` column holds what its target produced (see :mod:`.dispatcher`):

* a plugin or connector: the gate's decisions for the messages it proposed (a list), or
  ``{"skipped": code, "detail": ...}`` when it raised :class:`~.errors.SkippableError`, or
  ``{"messages": [...], "notes": [...]}`` when it also left notes (``ctx.note``);
* the core's bookkeeping: ``{}``, a decision (a direct send), ``{"updated": bool}`` (template
  cache) or ``{"cancelled": n}``.

Everything shown is masked: numbers are masked (also inside error texts), texts never appear.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import Connection, select

from .clock import iso_utc
from .media import WHATSAPP
from .models import Event, EventKind
from .templates import announcement
from .phones import mask, scrub
from .store import journal
from .store.schema import events, outbox
from .views import DeadLetter, DeliveryView, EventDetail, EventSummary, MessageOutcome, Note, utc
from .wording import counted


def read_result(raw: str | None) -> tuple[list[dict[str, Any]], Note | None, list[Note], dict[str, Any]]:
    """A delivery's stored result as (decisions, skipped, notes, anything else the core recorded)."""
    value = json.loads(raw) if raw else None
    if isinstance(value, list):
        return [d for d in value if isinstance(d, dict) and "id" in d], None, [], {}
    if not isinstance(value, dict):
        return [], None, [], {}
    if "skipped" in value:
        return [], Note(code=str(value["skipped"]), detail=scrub(str(value.get("detail") or ""))), [], {}
    if "id" in value and "status" in value:  # the core's direct send
        return [value], None, [], {}
    if "messages" in value or "notes" in value:
        notes = [Note(code=str(n.get("code")), detail=scrub(str(n.get("detail") or "")))
                 for n in value.get("notes") or [] if isinstance(n, dict)]
        return [d for d in value.get("messages") or [] if isinstance(d, dict) and "id" in d], None, notes, {}
    return [], None, [], value


def decisions_of(raw: str | None) -> list[dict[str, Any]]:
    """The gate's decisions recorded in a delivery's result (whatever its shape)."""
    return read_result(raw)[0]


# --- listing and showing ---------------------------------------------------------------------

def listing(conn: Connection, *, source: str | None = None, kind: str | None = None, status: str | None = None,
            since: float | None = None, until: float | None = None, before_id: int | None = None,
            limit: int = 50) -> list[EventSummary]:
    """Events, newest first, each with its outcome in one line."""
    stmt = select(events)
    if source:
        stmt = stmt.where(events.c.source == source)
    if kind:
        stmt = stmt.where(events.c.kind == kind)
    if status:
        stmt = stmt.where(events.c.status == status)
    if since is not None:
        stmt = stmt.where(events.c.received_at >= since)
    if until is not None:
        stmt = stmt.where(events.c.received_at < until)
    if before_id is not None:
        stmt = stmt.where(events.c.id < before_id)
    rows = [dict(r._mapping) for r in conn.execute(stmt.order_by(events.c.id.desc()).limit(limit))]
    return [EventSummary.model_validate(d.model_dump(exclude={"deliveries"})) for d in _details(conn, rows)]


def detail(conn: Connection, event_id: int) -> EventDetail | None:
    row = conn.execute(select(events).where(events.c.id == event_id)).first()
    return _details(conn, [dict(row._mapping)])[0] if row else None


def dead_letters(conn: Connection, limit: int = 100) -> list[DeadLetter]:
    return [DeadLetter(event_id=r["event_id"], source=r["source"], kind=r["kind"], target=r["target"],
                       attempts=r["attempts"], last_error=scrub(r["last_error"]) if r["last_error"] else None,
                       updated_at=utc(r["updated_at"]))
            for r in journal.dead_letters(conn, limit)]


def _details(conn: Connection, rows: list[dict[str, Any]]) -> list[EventDetail]:
    if not rows:
        return []
    by_event = journal.deliveries_of_many(conn, [r["id"] for r in rows])
    message_ids = {d["id"] for delivery_rows in by_event.values() for row in delivery_rows
                   for d in decisions_of(row["result"])}
    messages = _messages(conn, message_ids)
    out = []
    for row in rows:
        views = [_delivery(d, messages) for d in by_event.get(row["id"], [])]
        out.append(EventDetail(
            id=row["id"], source=row["source"], kind=row["kind"], dedupe_key=row["dedupe_key"], status=row["status"],
            subject=_subject(row["payload"]), payload="kept" if row["payload"] is not None else "erased",
            outcome=_event_outcome(row, views), attempts=row["attempts"], received_at=utc(row["received_at"]),
            completed_at=utc(row["completed_at"]),
            next_attempt_at=utc(row["next_attempt_at"]) if row["status"] == "pending" else None,
            deliveries=views))
    return out


def _messages(conn: Connection, ids: set[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    wanted = sorted(ids)
    columns = [outbox.c.id, outbox.c.status, outbox.c.reason, outbox.c.error_details, outbox.c.template_name,
               outbox.c.content_type, outbox.c.recipient, outbox.c.not_before]
    for at in range(0, len(wanted), 500):
        for r in conn.execute(select(*columns).where(outbox.c.id.in_(wanted[at:at + 500]))):
            found[r.id] = dict(r._mapping)
    return found


def _delivery(row: dict[str, Any], messages: dict[str, dict[str, Any]]) -> DeliveryView:
    decisions, skipped, notes, extra = read_result(row["result"]) if row["status"] == "done" else ([], None, [], {})
    shown = [_message(d, messages.get(d["id"])) for d in decisions]
    target = row["target"]
    role: Literal["core", "plugin", "connector"] = (
        "core" if target == "core" else "connector" if target.startswith("connector:") else "plugin")
    error = scrub(row["last_error"]) if row["last_error"] else None
    view = DeliveryView(target=target, role=role, status=row["status"], outcome="", attempts=row["attempts"],
                        last_error=error, updated_at=utc(row["updated_at"]),
                        next_attempt_at=utc(row["next_attempt_at"]) if row["status"] == "pending" else None,
                        skipped=skipped, notes=notes, messages=shown)
    view.outcome = _delivery_outcome(view, extra)
    return view


def _message(decision: dict[str, Any], row: dict[str, Any] | None) -> MessageOutcome:
    if row is None:  # recorded by the gate but gone from the outbox: show what the gate said
        return MessageOutcome(id=decision["id"], status=decision.get("status") or "?", reason=decision.get("reason"),
                              detail=decision.get("detail"), what="message",
                              duplicate=bool(decision.get("duplicate")))
    return MessageOutcome(id=row["id"], status=row["status"], reason=row["reason"],
                          detail=scrub(row["error_details"]) if row["error_details"] else None,
                          what=row["template_name"] or row["content_type"],
                          recipient=mask(row["recipient"]) if row["recipient"] else None,
                          not_before=utc(row["not_before"]), duplicate=bool(decision.get("duplicate")))


# --- the one-line outcomes -----------------------------------------------------------------------

def _message_line(m: MessageOutcome) -> str:
    line = f"{m.what} {m.status}"
    if m.reason and m.reason != m.status:
        line += f" ({m.reason}" + (f": {m.detail})" if m.detail else ")")
    if m.status == "queued" and m.not_before is not None:
        line += f", scheduled for {iso_utc(m.not_before)}"
    if m.duplicate:
        line += " [already proposed by an earlier event]"
    return line


def _delivery_outcome(view: DeliveryView, extra: dict[str, Any]) -> str:
    if view.status == "dead":
        return f"dead letter after {counted(view.attempts, 'attempt')}: {view.last_error or 'no error recorded'}"
    if view.status == "pending":
        if not view.attempts:
            return "waiting"
        when = iso_utc(view.next_attempt_at) if view.next_attempt_at else "soon"
        return f"failed {counted(view.attempts, 'time')}, next try {when}: {view.last_error or 'no error recorded'}"
    if view.skipped is not None:
        return f"skipped ({view.skipped.code}): {view.skipped.detail}"
    parts = [_message_line(m) for m in view.messages]
    parts += [f"{n.code}: {n.detail}" for n in view.notes]
    if "updated" in extra:
        parts.append("template cache updated" if extra["updated"] else "template cache already up to date")
    if extra.get("announced"):
        parts.append(f"warning: {extra['announced']}")
    if extra.get("released"):
        parts.append(f"{counted(extra['released'], 'message')} waiting for the template judged again")
    if "changed" in extra:  # an edit or deletion made in the WhatsApp Business app
        parts.append("the message is marked as changed in the WhatsApp Business app" if extra["changed"]
                     else "no recorded message has this wamid: nothing to mark")
    if "cancelled" in extra:
        parts.append(f"cancelled {counted(extra['cancelled'], 'scheduled message')}")
    if parts:
        return "; ".join(parts)
    return "done" if view.role == "core" else "done, proposed nothing"


def _event_outcome(row: dict[str, Any], views: list[DeliveryView]) -> str:
    if row["status"] == "dead":
        dead = [f"{v.target}: {v.outcome}" for v in views if v.status == "dead"]
        return "; ".join(dead) + f" -- once fixed: connectzap events retry {row['id']}"
    if row["status"] == "pending":
        failing = [f"{v.target}: {v.outcome}" for v in views if v.status == "pending" and v.attempts]
        return "retrying: " + "; ".join(failing) if failing else "waiting for a worker"
    said = [f"{v.target}: {v.outcome}" for v in views
            if v.messages or v.notes or v.skipped or (v.role == "core" and v.outcome != "done")]
    if said:
        return "; ".join(said)
    if not any(v.role != "core" for v in views):
        return f"done: recorded; no plugin or connector listens to {row['kind']} events"
    return "done: no plugin proposed anything"


def _subject(payload: str | None) -> str | None:
    """What the event is about, in a few words, without a number or a message text."""
    if payload is None:
        return None
    try:
        event = Event.model_validate_json(payload)
        data: Any = event.payload() if event.has_typed_payload() else None
    except (ValidationError, ValueError):
        return None
    kind = event.kind
    if kind in (EventKind.ORDER_CREATED, EventKind.ORDER_UPDATED):
        moved = f"{event.previous_status} -> {data.status}" if event.previous_status else data.status
        return f"order {data.number or data.id} {moved}" + (f" (shop {data.shop})" if data.shop else "")
    if kind == EventKind.LEAD:
        return f"lead {data.id}" + (f" ({data.stage})" if data.stage else "") + _to(data.contact.phone)
    if kind == EventKind.INBOUND_MESSAGE:
        on = "" if data.medium == WHATSAPP else f" by {data.medium}"  # an SMS says so
        return f"{data.type} message{on}" + (f" from {mask(data.contact.phone)}" if data.contact.phone else "")
    if kind == EventKind.MESSAGE_STATUS:
        return f"{data.status} for message {data.outbox_id or data.wamid}"
    if kind == EventKind.CONSENT_CHANGED:
        return f"{data.category.value} {'granted' if data.granted else 'revoked'}{_to(data.phone)} via {data.source}"
    if kind == EventKind.TEMPLATE_UPDATE:
        return announcement(data) or f"template {data.name}" + (f" ({data.language})" if data.language else "") \
            + (f" {data.status}" if data.status else "")
    if kind == EventKind.CALL:
        return f"call {data.event}" + (f" {data.status}" if data.status else "") + _to(data.contact.phone)
    if kind == EventKind.CAMPAIGN_FINISHED:
        return f"campaign {data.name} {data.state}"
    if kind == EventKind.HANDOFF:
        return f"conversation to {'a person' if data.to == 'human' else 'the bot'}" + _to(data.contact.phone)
    if kind == EventKind.SEND:
        return f"send {getattr(data.content, 'name', None) or data.content.type}{_to(data.to.phone)}"
    if kind == EventKind.REPLY:
        return f"a reply by {data.by}{_to(data.to.phone)}"
    if kind == EventKind.CANCEL:
        return f"cancel messages keyed {data.cancel_key}"
    if kind == EventKind.FALLBACK_DUE:
        return f"is message {data.message_id} delivered after {counted(data.minutes, 'minute')}? if not, its fallback"
    # A connector's own payload model (its ``resolve`` notices) may say what the event is about.
    said = getattr(data, "subject", None)
    return said() if callable(said) else None


def _to(phone: str | None) -> str:
    return f" for {mask(phone)}" if phone else ""
