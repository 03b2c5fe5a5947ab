"""The event journal and the per-target deliveries that fan each event out to plugins.

An event is acknowledged only once it is committed here; its (source, dedupe_key) is unique,
so a repeated delivery is a no-op. Workers claim due events with a lease: a worker that dies
mid-event loses its lease and another picks the event up, re-running only the deliveries that
had not finished.

Events with the same ordering key (:mod:`..ordering`) are claimed one key at a time: a claim
takes a key only when no event of it is claimed by anyone, and then the key's pending events
from the oldest on, as long as each is due. The dispatcher runs them in that order. On
PostgreSQL a transaction-scoped advisory lock on the key guards the claim across processes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, literal_column, or_, select, text

from .. import identities, ordering
from ..errors import ConflictError, NotFoundError
from ..models import Event, EventKind
from ..phones import scrub
from .database import Database, now
from .schema import deliveries, events
from . import bulk
from .among import among


DEAD_LETTER_KEEP_SECONDS = 7 * 86400
"""How long a dead-lettered event keeps its payload (at least), so ``events retry`` can replay it."""


@dataclass(frozen=True)
class Journaled:
    event_id: int | None
    duplicate: bool


def append(db: Database, conn: Connection, batch: list[Event], *, due_at: float | None = None) -> list[Journaled]:
    """Insert events, skipping (source, dedupe_key) pairs already present. Order is kept.
    ``due_at``: workers take them only from then on (default: at once)."""
    if not batch:
        return []
    t = now()
    batch = _statuses_under_linked_identity(conn, batch)
    rows = [{"source": e.source, "dedupe_key": e.dedupe_key, "kind": e.kind.value,
             "payload": e.model_dump_json(exclude={"ordering_key"}), "status": "pending", "attempts": 0,
             "next_attempt_at": max(t, due_at or t), "received_at": t, "ordering_key": key}
            for e, key in zip(batch, _stored_keys(db, conn, batch), strict=True)]
    # executemany form: the statement compiles once and is cached (a multi-row .values() would be
    # compiled anew for every batch); returned rows are matched by key, so their order does not matter.
    stmt = db.insert(events).on_conflict_do_nothing(index_elements=["source", "dedupe_key"])
    inserted = {(r.source, r.dedupe_key): r.id
                for r in conn.execute(stmt.returning(events.c.id, events.c.source, events.c.dedupe_key), rows)}
    out = []
    seen: set[tuple[str, str]] = set()
    for e in batch:
        pair = (e.source, e.dedupe_key)
        fresh = pair in inserted and pair not in seen
        seen.add(pair)
        out.append(Journaled(inserted.get(pair), duplicate=not fresh))
    return out


def _stored_keys(db: Database, conn: Connection, batch: list[Event]) -> list[str | None]:
    """Each event's stored ordering key: its own, else its customer's (:func:`ordering.contact` of the
    contact key, a BSUID resolved to the number it is linked to: one query for the batch), else none."""
    subjects = [ordering.subject_of(e) for e in batch]
    if not any(e.ordering_key for e in batch) and not any(subjects):
        return [None] * len(batch)
    if db.secret is None:
        raise ValueError("journaling an event with an ordering key needs the engine's hash secret (Database.secret)")
    resolved = iter(identities.resolve_many(conn, db.secret, [s for s in subjects if s is not None]))
    keys: list[str | None] = []
    for event, subject in zip(batch, subjects, strict=True):
        customer = next(resolved) if subject is not None else None
        key = event.ordering_key or (ordering.contact(customer) if customer else None)
        keys.append(ordering.hashed(key, db.secret) if key else None)
    return keys


def _statuses_under_linked_identity(conn: Connection, batch: list[Event]) -> list[Event]:
    """A status the edge keyed by the recipient's BSUID (it has no database to see links) is journaled
    under the customer's key when that BSUID is linked to a number, as everything else about them is."""
    named = {str(e.data["contact_key"]) for e in batch
             if e.kind == EventKind.MESSAGE_STATUS and e.data.get("contact_key")}
    links = identities.linked(conn, named) if named else {}
    if not links:
        return batch
    return [e.model_copy(update={"data": {**e.data, "contact_key": links[e.data["contact_key"]]}})
            if e.kind == EventKind.MESSAGE_STATUS and e.data.get("contact_key") in links else e for e in batch]


def claim(db: Database, conn: Connection, worker: str, limit: int, lease: float,
          *, statuses_up_to: int = 0) -> list[dict[str, Any]]:
    """Lease up to ``limit`` due events to ``worker``, oldest due first. An event with an ordering
    key is taken only as the oldest pending event of its key and only when no event of the key is
    leased to anyone (a live lease: a dead worker's key is free again once its lease runs out); the
    key's next pending events come along while they are due and the batch has room (a run, in
    journal order). Each row has ``id``, ``event``, ``attempts`` and ``key``.

    ``statuses_up_to``: when larger than ``limit``, a batch that begins with status events may hold
    up to that many of them (the dispatcher applies statuses nobody listens to itself, cheaply in
    bulk): when the first ``limit`` due events are all statuses, more due statuses are added, and
    only statuses are read for that, so no other event is held from the other workers."""
    t = now()
    other = events.alias("other")
    # Only the head of each key is a candidate, so events that cannot be claimed never fill the
    # batch: one behind an older pending event of its key, or of a key someone holds.
    blocked: Select[Any] = select(literal_column("1")).select_from(other).where(
        other.c.ordering_key == events.c.ordering_key, other.c.status == literal_column("'pending'"),
        other.c.id != events.c.id, or_(other.c.id < events.c.id, other.c.claimed_until >= t))
    due = (events.c.status == "pending", events.c.next_attempt_at <= t,
           or_(events.c.claimed_until.is_(None), events.c.claimed_until < t),
           or_(events.c.ordering_key.is_(None), ~blocked.exists()))
    candidates = select(events.c.id, events.c.ordering_key, events.c.kind).order_by(events.c.next_attempt_at,
                                                                                    events.c.id)
    rows = list(conn.execute(db.for_update(candidates.where(*due).limit(limit))).all())
    status = EventKind.MESSAGE_STATUS.value
    if statuses_up_to > limit and len(rows) == limit and all(r.kind == status for r in rows):
        # Only more status events are read (and, on PostgreSQL, locked): the other kinds stay free for
        # the other workers. Statuses carry no ordering key, so taking them past another event is safe.
        rows += conn.execute(db.for_update(candidates.where(*due, events.c.kind == status,
                                                            events.c.id.not_in([r.id for r in rows]))
                                           .limit(statuses_up_to - limit))).all()
    ids = [r.id for r in rows if r.ordering_key is None]
    heads = {r.ordering_key: r.id for r in rows if r.ordering_key is not None}
    if heads:
        ids += _runs(db, conn, heads, t, limit - len(rows))
    if not ids:
        return []
    claimed = sorted(conn.execute(events.update().where(among(conn, events.c.id, ids))
                                  .values(claimed_by=worker, claimed_until=t + lease)
                                  .returning(events.c.id, events.c.payload, events.c.attempts, events.c.ordering_key,
                                             events.c.next_attempt_at)),
                     key=lambda r: (r.next_attempt_at, r.id))
    return [{"id": r.id, "event": Event.model_validate_json(r.payload), "attempts": r.attempts,
             "key": r.ordering_key} for r in claimed]


def _runs(db: Database, conn: Connection, heads: dict[str, int], t: float, room: int) -> list[int]:
    """The keyed events this claim takes: for each selected head, the head and, while ``room``
    lasts, the key's next pending events that are due -- provided the head is still the key's
    oldest pending event and no event of the key is leased. Read afresh after taking the keys'
    advisory locks on PostgreSQL: the selection above may predate another claimer's commit (or an
    older event of the key committed late), this read cannot."""
    keys = set(heads)
    if not db.is_sqlite:
        # try-locks never wait (no deadlock between claimers); a key someone else is claiming
        # right now is simply left for the next round.
        by_lock = {ordering.lock_id(k): k for k in keys}
        got: Sequence[int] = conn.execute(text("SELECT k FROM unnest(CAST(:ids AS bigint[])) AS k "
                                "WHERE pg_try_advisory_xact_lock(k)"), {"ids": list(by_lock)}).scalars().all()
        keys = {by_lock[k] for k in got}
        if not keys:
            return []
    pending = conn.execute(
        select(events.c.id, events.c.ordering_key, events.c.next_attempt_at, events.c.claimed_until)
        .where(among(conn, events.c.ordering_key, sorted(keys)), events.c.status == "pending")
        .order_by(events.c.ordering_key, events.c.id)).all()
    by_key: dict[str, list[Any]] = {}
    for row in pending:
        by_key.setdefault(row.ordering_key, []).append(row)
    taken: list[int] = []
    for key, head in heads.items():
        run = by_key.get(key, [])
        if not run or run[0].id != head or any(r.claimed_until is not None and r.claimed_until >= t for r in run):
            continue
        taken.append(head)
        for r in run[1:]:
            if room <= 0 or r.next_attempt_at > t:
                break
            taken.append(r.id)
            room -= 1
    return taken


def renew(conn: Connection, event_ids: list[int], worker: str, until: float) -> int:
    """Extend ``worker``'s lease on events it still holds (a long batch keeps its keys)."""
    if not event_ids:
        return 0
    return conn.execute(events.update().where(among(conn, events.c.id, event_ids), events.c.claimed_by == worker,
                                              events.c.status == "pending")
                        .values(claimed_until=until)).rowcount


def release(conn: Connection, event_ids: list[int], worker: str) -> None:
    """Give back events ``worker`` claimed but will not run now (an older event of their key must
    be retried first); they keep their place in the journal."""
    if event_ids:
        conn.execute(events.update().where(among(conn, events.c.id, event_ids), events.c.claimed_by == worker,
                                           events.c.status == "pending")
                     .values(claimed_by=None, claimed_until=None))


def ensure_deliveries(db: Database, conn: Connection, event_id: int, targets: list[str]) -> None:
    ensure_many(db, conn, {event_id: targets})


def ensure_many(db: Database, conn: Connection, targets_by_event: dict[int, list[str]]) -> None:
    """Create the missing delivery rows of several events in one statement."""
    if rows := _new_deliveries(targets_by_event):
        conn.execute(db.insert(deliveries).on_conflict_do_nothing(index_elements=["event_id", "target"]), rows)


def _new_deliveries(targets_by_event: dict[int, list[str]]) -> list[dict[str, Any]]:
    t = now()
    return [{"event_id": event_id, "target": target, "status": "pending", "attempts": 0, "next_attempt_at": t,
             "updated_at": t} for event_id, targets in targets_by_event.items() for target in targets]


def ensure_and_read(db: Database, conn: Connection,
                    targets_by_event: dict[int, list[str]]) -> dict[int, list[dict[str, Any]]]:
    """:func:`ensure_many`, then every delivery of those events (:func:`deliveries_of_many`). An
    event's first dispatch creates all its rows, and the insert returns them: no second query."""
    rows = _new_deliveries(targets_by_event)
    if not rows:
        return {}
    found: Sequence[Any]
    if db.is_sqlite:
        stmt = db.insert(deliveries).on_conflict_do_nothing(index_elements=["event_id", "target"])
        found = conn.execute(stmt.returning(*deliveries.c), rows).all()
    else:  # a batch's rows as one array per column, not a parameter per value
        found = bulk.insert_new_returning(conn, deliveries, rows, "event_id, target")
    created = [dict(r._mapping) for r in found]
    if len(created) < len(rows):  # some existed already (a retry, or a worker that died mid-dispatch)
        return deliveries_of_many(conn, list(targets_by_event))
    out: dict[int, list[dict[str, Any]]] = {}
    for row in sorted(created, key=lambda r: (r["event_id"], r["id"])):
        out.setdefault(row["event_id"], []).append(row)
    return out


def deliveries_of(conn: Connection, event_id: int) -> list[dict[str, Any]]:
    return deliveries_of_many(conn, [event_id]).get(event_id, [])


def deliveries_of_many(conn: Connection, event_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for row in conn.execute(select(deliveries).where(among(conn, deliveries.c.event_id, event_ids))
                            .order_by(deliveries.c.event_id, deliveries.c.id)):
        out.setdefault(row.event_id, []).append(dict(row._mapping))
    return out


def finish_delivery(conn: Connection, event_id: int, target: str, result: Any = None) -> None:
    finish_each(conn, [(event_id, target, result)])


def finish_many(conn: Connection, target: str, results: dict[int, Any]) -> None:
    """Finish ``target``'s delivery of several events, each with its result, in one statement."""
    finish_each(conn, [(event_id, target, result) for event_id, result in results.items()])


_FINISH = deliveries.update().where(deliveries.c.event_id == bindparam("b_event"),
                                    deliveries.c.target == bindparam("b_target")).values(
    status="done", attempts=deliveries.c.attempts + 1, result=bindparam("b_result"), last_error=None,
    updated_at=bindparam("b_at"))
"""Built once: constructing the statement anew cost more than running it (a dispatch wave finishes
one delivery per event and hook)."""


_FINISH_ARRAYS = (
    "UPDATE deliveries AS d SET status = 'done', attempts = d.attempts + 1, result = u.result, last_error = NULL, "
    "updated_at = %(at)s FROM unnest(%(events)b::int8[], %(targets)b::text[], %(results)b::text[]) "
    "AS u(event_id, target, result) "
    "WHERE d.event_id = ANY(ARRAY(SELECT unnest(%(events)b::int8[]))) AND d.event_id = u.event_id "
    "AND d.target = u.target")
"""PostgreSQL: a wave's finished deliveries as one array per column -- one statement text whatever the
wave's size, where an executemany sends and psycopg adapts a row at a time. With the join alone the
planner hashed the whole deliveries table (600 finished of 22,000: Seq Scan + Hash Join, 11 ms); the
event ids again, as an ``ARRAY(SELECT ...)`` it computes once and cannot size, make it read just the
wave's events through ``uq_deliveries_event_target`` (Bitmap Index Scan, 5 ms) -- in the same
statement, where planner settings cost round trips of their own."""


def finish_each(conn: Connection, finished: list[tuple[int, str, Any]]) -> None:
    """Finish several deliveries -- (event id, target, result) -- in one statement."""
    if not finished:
        return
    t = now()
    results = [json.dumps(result, default=str) for _, _, result in finished]
    pairs = [(event_id, target) for event_id, target, _ in finished]
    # A pair named twice would be finished once by the join (the executemany counts both attempts).
    if conn.dialect.name == "postgresql" and len(set(pairs)) == len(pairs):
        conn.exec_driver_sql(_FINISH_ARRAYS, {"at": t, "events": [e for e, _ in pairs],
                                              "targets": [g for _, g in pairs], "results": results})
        return
    conn.execute(_FINISH, [{"b_event": event_id, "b_target": target, "b_result": result, "b_at": t}
                           for (event_id, target), result in zip(pairs, results, strict=True)])


def fail_delivery(conn: Connection, event_id: int, target: str, error: str, retry_at: float | None) -> None:
    # Error texts are kept for good (they explain a dead letter): a number quoted in one is masked.
    values: dict[str, Any] = {"attempts": deliveries.c.attempts + 1, "last_error": scrub(error)[:2000],
                              "updated_at": now()}
    if retry_at is None:
        values["status"] = "dead"
    else:
        values["next_attempt_at"] = retry_at
    conn.execute(deliveries.update().where(deliveries.c.event_id == event_id, deliveries.c.target == target)
                 .values(**values))


def settle(conn: Connection, event_id: int, retention_seconds: float) -> str:
    """Close the event when no delivery is pending, else schedule it for the next due delivery."""
    return settle_many(conn, [event_id], retention_seconds)[event_id]


def settle_many(conn: Connection, event_ids: list[int], retention_seconds: float,
                known: dict[int, list[dict[str, Any]]] | None = None) -> dict[int, str]:
    """:func:`settle` for several events: one query for their deliveries (none when the caller
    passes them as ``known``, as they stand in this transaction), and the events that are simply
    done (the usual case) closed with one statement."""
    if not event_ids:
        return {}
    by_event = known if known is not None else deliveries_of_many(conn, event_ids)
    t = now()
    outcome: dict[int, str] = {}
    done: list[int] = []
    for event_id in event_ids:
        rows = by_event.get(event_id, [])
        pending = [r for r in rows if r["status"] == "pending"]
        if pending:
            # While the core's bookkeeping waits for its retry, the plugins wait with it.
            first = [r for r in pending if r["target"] == "core"] or pending
            conn.execute(events.update().where(events.c.id == event_id).values(
                next_attempt_at=min(r["next_attempt_at"] for r in first), claimed_by=None, claimed_until=None,
                attempts=events.c.attempts + 1,
                # NULL, never '', when the pending deliveries have not failed (only not run yet)
                last_error="; ".join(f"{r['target']}: {r['last_error']}" for r in pending if r["last_error"])[:2000]
                or None))
            outcome[event_id] = "pending"
        elif any(r["status"] == "dead" for r in rows):
            # a dead letter keeps its payload a while so it can be retried once fixed
            conn.execute(events.update().where(events.c.id == event_id).values(
                status="dead", completed_at=t, claimed_by=None, claimed_until=None,
                erase_after=t + max(retention_seconds, DEAD_LETTER_KEEP_SECONDS)))
            outcome[event_id] = "dead"
        else:
            done.append(event_id)
            outcome[event_id] = "done"
    if done:
        values: dict[str, Any] = {"status": "done", "completed_at": t, "claimed_by": None, "claimed_until": None}
        if retention_seconds <= 0:
            values["payload"] = None
        else:
            values["erase_after"] = t + retention_seconds
        for at in range(0, len(done), 500):
            conn.execute(events.update().where(among(conn, events.c.id, done[at:at + 500])).values(**values))
    return outcome


def erase_expired(conn: Connection) -> int:
    """Drop payloads whose retention ran out."""
    t = now()
    return conn.execute(events.update().where(
        events.c.erase_after.is_not(None), events.c.erase_after <= t).values(payload=None, erase_after=None)).rowcount


def pending_count(conn: Connection) -> int:
    from sqlalchemy import func
    return conn.execute(select(func.count()).select_from(events).where(events.c.status == "pending")).scalar_one()


def received_count(conn: Connection, since: float) -> int:
    """Events journaled since ``since`` (by ``ix_events_received``)."""
    from sqlalchemy import func
    return conn.execute(select(func.count()).select_from(events).where(events.c.received_at >= since)).scalar_one()


def oldest_pending_received(conn: Connection, kind: str) -> float | None:
    """When the oldest event of ``kind`` still waiting to be applied was received (None: none waits)."""
    from sqlalchemy import func
    return conn.execute(select(func.min(events.c.received_at))
                        .where(events.c.status == "pending", events.c.kind == kind)).scalar()


def dead_letters(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(select(deliveries.c.event_id, deliveries.c.target, deliveries.c.attempts,
                               deliveries.c.last_error, deliveries.c.updated_at, events.c.source, events.c.kind)
                        .join(events, events.c.id == deliveries.c.event_id)
                        .where(deliveries.c.status == "dead").order_by(deliveries.c.updated_at.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]


def replay(conn: Connection, event_id: int, target: str) -> str:
    """Queue one finished delivery (done or dead) again, as if it had not been tried: attempts from
    zero, the event pending again. Returns the status it had. Refused (nothing changed) when the
    event or that delivery does not exist, when it is still queued, or when the event's payload is
    erased (there is nothing to deliver)."""
    row = conn.execute(select(events.c.payload).where(events.c.id == event_id)).first()
    if row is None:
        raise NotFoundError(f"no event {event_id}")
    found = conn.execute(select(deliveries.c.id, deliveries.c.status)
                         .where(deliveries.c.event_id == event_id, deliveries.c.target == target)).first()
    if found is None:
        raise NotFoundError(f"event {event_id} has no delivery to {target}")
    if found.status == "pending":
        raise ConflictError(f"the delivery of event {event_id} to {target} is still queued: nothing to replay")
    if row.payload is None:
        raise NotFoundError(f"event {event_id} no longer holds its payload (privacy.retention_hours); "
                            "it cannot be replayed")
    t = now()
    conn.execute(deliveries.update().where(deliveries.c.id == found.id)
                 .values(status="pending", attempts=0, next_attempt_at=t, last_error=None, updated_at=t))
    conn.execute(events.update().where(events.c.id == event_id)
                 .values(status="pending", next_attempt_at=t, completed_at=None))
    return str(found.status)


def retry_dead(conn: Connection, event_id: int | None = None, *, target: str | None = None) -> int:
    """Put dead deliveries back in the queue (after the cause was fixed): an event's, or every one
    of ``target``, or both filters at once."""
    if event_id is None and target is None:
        raise ValueError("retry_dead needs an event id or a target")
    t = now()
    which = [deliveries.c.status == "dead"]
    if event_id is not None:
        which.append(deliveries.c.event_id == event_id)
    if target is not None:
        which.append(deliveries.c.target == target)
    event_ids = [r[0] for r in conn.execute(select(deliveries.c.event_id).where(and_(*which)).distinct())]
    count = conn.execute(deliveries.update().where(and_(*which))
                         .values(status="pending", attempts=0, next_attempt_at=t)).rowcount
    for chunk in range(0, len(event_ids), 500):
        conn.execute(events.update().where(events.c.id.in_(event_ids[chunk:chunk + 500]),
                                           events.c.payload.is_not(None))
                     .values(status="pending", next_attempt_at=t))
    return count
