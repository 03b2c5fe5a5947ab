"""Automatic answers: at most one per inbound message, none while a person handles the
conversation, none to a stale message.

Where the choice is made. A hook's deliveries are independent: each plugin is called, retried
and committed on its own, possibly in another round or on another worker than the rest. So no
single call sees every answer proposed to a message, and picking one when the first is admitted
would let a low-precedence answer (a welcome) go out before a higher one (an FAQ answer) whose
plugin is being retried. The choice is therefore made when the event's proposals are *all in*:

* an automatic proposal goes through the gate like any message, but what the gate queues is
  *held* (``reason = automatic_pending``, never due), in the transaction that commits its
  delivery -- durable, so a crash loses nothing and runs nothing twice;
* in the transaction that finishes the last hook delivery of the event (success or dead
  letter), :func:`arbitrate` picks the held answer of highest precedence, makes it due, and
  refuses the others with their reason. The usual case -- every hook succeeds in one round --
  holds and picks in one transaction, so the sender never waits;
* the pick is recorded in ``automatic_answers`` under the inbound message's own id (its
  wamid), once: a replayed webhook, a dead letter retried by hand or a late proposal finds the
  slot taken and is refused (``already_answered``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from .automatic import NEVER, PENDING, REASONS, AutomaticAnswer
from .store import outbox as outbox_store
from .store.database import Database, now
from .store.schema import automatic_answers, conversations, outbox

@dataclass(frozen=True)
class Inbound:
    """What arbitration needs to know about the message being answered."""

    event_id: int
    slot: str
    """The inbound message's own id (its wamid), or ``event:<id>`` for other events."""
    sent_at: float | None
    """When the customer sent it (None: not a customer message, never stale)."""


def arbitrate(db: Database, conn: Connection, inbound: Inbound, stale_after_seconds: float) -> dict[str, Any] | None:
    """Decide between the held automatic answers of ``inbound``'s event (call once every hook
    delivery of the event is finished). Returns the slot's record, or None with nothing held."""
    held = [dict(r._mapping) for r in conn.execute(
        select(outbox.c.id, outbox.c.automatic, outbox.c.not_before, outbox.c.plugin, outbox.c.contact_key)
        .where(outbox.c.source_event_id == inbound.event_id, outbox.c.status == "queued",
               outbox.c.reason == PENDING)
        .order_by(outbox.c.created_at, outbox.c.id))]
    if not held:
        return None
    t = now()
    taken = conn.execute(select(automatic_answers.c.message_id).where(
        automatic_answers.c.inbound_key == inbound.slot)).first()
    reason: str | None = None
    if taken is not None:
        reason = "already_answered"
    elif inbound.sent_at is not None and t - inbound.sent_at > stale_after_seconds:
        reason = "stale_inbound"
    elif any(human_handles(conn, key, t, answering=inbound.event_id) for key in {r["contact_key"] for r in held}):
        reason = "human_handling"
    winner = None if reason else min(held, key=lambda r: AutomaticAnswer(r["automatic"]).rank)
    # One answer may be several messages (a bot's text and then its buttons): the winner's plugin's
    # other answers of the same kind go with it, in the order proposed.
    going = [r for r in held if winner is not None and (r["plugin"], r["automatic"]) ==
             (winner["plugin"], winner["automatic"])]
    for row in held:
        if any(row is g for g in going):
            continue
        detail = REASONS[reason] if reason else (
            f"the {winner['automatic']} answer of {winner['plugin']} went instead" if winner else None)
        outbox_store.refuse(conn, row["id"], reason or "automatic_superseded", detail)
    if taken is not None:
        return None
    record = {"inbound_key": inbound.slot, "event_id": inbound.event_id,
              "message_id": winner["id"] if winner else None, "kind": winner["automatic"] if winner else reason,
              "at": t}
    db.upsert(conn, automatic_answers, record, ["inbound_key"])
    for row in going:
        due = max(row["not_before"] or t, t)
        conn.execute(outbox.update().where(outbox.c.id == row["id"]).values(
            reason=None, error_details=None, next_attempt_at=due, updated_at=t))
    return record


def inbound_slot(wamid: str) -> str:
    """The ``automatic_answers`` key of a customer's message: its wamid."""
    return f"wamid:{wamid}"


def claim_late(db: Database, conn: Connection, inbound_key: str, event_id: int, message_id: str | None,
               kind: AutomaticAnswer) -> bool:
    """Take ``inbound_key``'s slot for an answer sent after its event was decided (a bot answering
    through the API): False when the message already had its automatic answer (or its reason for
    none). A ``fallback`` answer still waiting to go (deferred while the bot had time to answer)
    gives way and is withdrawn. Call inside the transaction that admits the answer."""
    taken = conn.execute(select(automatic_answers.c.message_id, automatic_answers.c.kind).where(
        automatic_answers.c.inbound_key == inbound_key)).first()
    if taken is not None:
        waiting_fallback = taken.kind == AutomaticAnswer.fallback.value and taken.message_id is not None
        if not waiting_fallback or not outbox_store.withdraw_queued(
                conn, taken.message_id, "automatic_superseded", f"the late {kind.value} answer went instead"):
            return False
    db.upsert(conn, automatic_answers, {"inbound_key": inbound_key, "event_id": event_id, "message_id": message_id,
                                        "kind": kind.value, "at": now()}, ["inbound_key"])
    return True


def claim_late_message(conn: Connection, inbound_key: str, message_id: str | None) -> None:
    """Name the message that answered, once :func:`claim_late` took the slot and it was admitted."""
    conn.execute(automatic_answers.update().where(automatic_answers.c.inbound_key == inbound_key)
                 .values(message_id=message_id))


def expire_held(conn: Connection, stale_after_seconds: float, at: float | None = None) -> int:
    """Refuse the answers still held past the staleness limit -- their event's last plugin
    delivery never finished in a way that arbitrates (its plugin was removed, its payload could not
    be read): by now they would answer a stale message anyway. Housekeeping runs it."""
    t = now() if at is None else at
    # held answers are never due: the (status, next_attempt_at) index finds them without a scan
    stuck = [r[0] for r in conn.execute(select(outbox.c.id).where(
        outbox.c.status == "queued", outbox.c.next_attempt_at >= NEVER, outbox.c.reason == PENDING,
        outbox.c.created_at < t - stale_after_seconds).limit(500))]
    for message_id in stuck:
        outbox_store.refuse(conn, message_id, "stale_inbound", REASONS["stale_inbound"])
    return len(stuck)


def human_handles(conn: Connection, contact_key: str, at: float, answering: int | None = None) -> bool:
    """Whether a person handles ``contact_key``'s conversation at ``at``. A handoff made while
    answering event ``answering`` does not count for that event: its own confirmation may go."""
    row = conn.execute(select(conversations.c.until, conversations.c.event_id)
                       .where(conversations.c.contact_key == contact_key)).first()
    return row is not None and handed_over(row.until, row.event_id, at, answering)


def handed_over(until: float | None, event_id: int | None, at: float, answering: int | None) -> bool:
    """:func:`human_handles`, given the conversation's row (its ``until`` and ``event_id``)."""
    if until is not None and until <= at:
        return False
    return answering is None or event_id != answering
