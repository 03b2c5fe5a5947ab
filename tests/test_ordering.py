"""Ordering keys: events about one entity are claimed one key at a time, as a run in journal order."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from connectzap import Connectzap, Event, EventKind, Order, hookimpl
from connectzap.core import clock, ordering
from connectzap.core.plugins import pm
from connectzap.core.store import journal
from connectzap.core.store.schema import events
from connectzap.core.worker import Worker
from connectzap.testing import run

PHONE = "+4915112345678"


def order_event(order_id: str, status: str, n: int, *, keyed: bool = True) -> Event:
    return Event.of(EventKind.ORDER_UPDATED, Order(id=order_id, status=status, shop="main"), source="shop",
                    dedupe_key=f"{order_id}:{status}:{n}",
                    ordering_key=f"shop:main:order:{order_id}" if keyed else None)


def claim(app: Connectzap, worker: str, limit: int = 50, lease: float = 60.0) -> list[dict[str, Any]]:
    with app.db.begin() as conn:
        return journal.claim(app.db, conn, worker, limit, lease)


def finish(app: Connectzap, ids: list[int]) -> None:
    with app.db.begin() as conn:
        journal.ensure_many(app.db, conn, {i: ["core"] for i in ids})
        for i in ids:
            journal.finish_delivery(conn, i, "core")
        journal.settle_many(conn, ids, 3600)


def order_of(row: dict[str, Any]) -> str:
    return str(row["event"].data["id"])


def test_the_key_is_stored_as_a_keyed_hash_and_left_out_of_the_payload(app: Connectzap) -> None:
    consent = {"phone": PHONE, "category": "marketing", "granted": False, "source": "test"}
    app.ingest([order_event("1", "processing", 0),
                Event(kind=EventKind.CONSENT_CHANGED, source="test", dedupe_key="c1", data=consent),
                Event(kind=EventKind.TEMPLATE_UPDATE, source="test", dedupe_key="t1", data={"name": "x"})])
    with app.db.read() as conn:
        rows = conn.execute(select(events.c.ordering_key, events.c.payload).order_by(events.c.id)).all()
    customer = ordering.contact(app.contact_key(PHONE))
    assert [r.ordering_key for r in rows] == [ordering.hashed("shop:main:order:1", app.secret),
                                              ordering.hashed(customer, app.secret), None]
    # a contact's key is not its contact hash either, and no raw key is kept anywhere in the row
    assert rows[1].ordering_key != app.contact_key(PHONE)
    assert "ordering_key" not in rows[0].payload and "shop:main:order:1" not in rows[0].payload


def test_a_key_is_claimed_as_one_run_in_journal_order_and_held_against_other_claimers(app: Connectzap) -> None:
    app.ingest([order_event("1", "pending", 0), order_event("2", "pending", 0), order_event("1", "processing", 1),
                order_event("9", "pending", 0, keyed=False), order_event("1", "completed", 2),
                order_event("2", "completed", 1)])
    first = claim(app, "a", limit=2)
    assert [(order_of(r), r["event"].data["status"]) for r in first] == [("1", "pending"), ("2", "pending")]
    # order 1's run and order 2's run are held by "a": "b" gets only the unkeyed event
    second = claim(app, "b")
    assert [order_of(r) for r in second] == ["9"]
    finish(app, [r["id"] for r in first])
    third = claim(app, "b")
    assert [(order_of(r), r["event"].data["status"]) for r in third] == [
        ("1", "processing"), ("1", "completed"), ("2", "completed")]
    assert claim(app, "a") == []


def test_an_event_waiting_for_its_retry_holds_back_the_rest_of_its_key(app: Connectzap) -> None:
    t0 = clock.now()
    with clock.use_clock(lambda: t0):
        app.ingest([order_event("1", "pending", 0), order_event("1", "completed", 1),
                    order_event("2", "pending", 0)])
        with app.db.begin() as conn:  # the first event failed once: retried in ten minutes
            first_id = conn.execute(select(events.c.id).order_by(events.c.id).limit(1)).scalar_one()
            conn.execute(events.update().where(events.c.id == first_id).values(next_attempt_at=t0 + 600))
        other = claim(app, "a")
        assert [order_of(r) for r in other] == ["2"]
        finish(app, [r["id"] for r in other])
    with clock.use_clock(lambda: t0 + 601):
        taken = sorted(claim(app, "b"), key=lambda r: r["id"])  # the dispatcher applies them by id
        assert [r["event"].data["status"] for r in taken] == ["pending", "completed"]


def test_a_retried_head_is_claimed_even_when_later_events_of_its_key_fall_due_earlier(app: Connectzap) -> None:
    """The head's retry time is later than its followers' arrival: a small batch must still take the
    head (it used to fill with followers it could not take, and nothing moved)."""
    t0 = clock.now()
    with clock.use_clock(lambda: t0):
        app.ingest([order_event("1", "pending", 0), order_event("1", "completed", 1),
                    order_event("1", "refunded", 2)])
        with app.db.begin() as conn:
            head = conn.execute(select(events.c.id).order_by(events.c.id).limit(1)).scalar_one()
            conn.execute(events.update().where(events.c.id == head).values(next_attempt_at=t0 + 5))
    with clock.use_clock(lambda: t0 + 6):
        assert [r["event"].data["status"] for r in claim(app, "a", limit=1)] == ["pending"]


def test_a_dead_workers_key_is_free_again_once_its_lease_runs_out(app: Connectzap) -> None:
    t0 = clock.now()
    with clock.use_clock(lambda: t0):
        app.ingest([order_event("1", "pending", 0), order_event("1", "completed", 1)])
        assert len(claim(app, "dies", lease=30)) == 2
        assert claim(app, "b") == []
    with clock.use_clock(lambda: t0 + 29):
        assert claim(app, "b") == []
    with clock.use_clock(lambda: t0 + 31):
        taken = claim(app, "b")
    assert [r["event"].data["status"] for r in taken] == ["pending", "completed"]


def test_renewing_keeps_the_key_and_release_gives_it_back_in_order(app: Connectzap) -> None:
    t0 = clock.now()
    with clock.use_clock(lambda: t0):
        app.ingest([order_event("1", "pending", 0), order_event("1", "completed", 1)])
        ids = [r["id"] for r in claim(app, "a", lease=30)]
        with app.db.begin() as conn:
            assert journal.renew(conn, ids, "a", t0 + 90) == 2
            assert journal.renew(conn, ids, "someone-else", t0 + 900) == 0
    with clock.use_clock(lambda: t0 + 60):
        assert claim(app, "b") == []
        finish(app, ids[:1])
        with app.db.begin() as conn:
            journal.release(conn, ids[1:], "a")
        assert [r["id"] for r in claim(app, "b")] == ids[1:]


def test_two_claimers_at_once_never_hold_the_same_key_and_apply_each_key_in_order(app: Connectzap) -> None:
    """Two threads claim, 'apply' and finish concurrently (each its own connection): a key is never
    held by both, every key's events are applied in journal order, each exactly once."""
    rng = random.Random(14)
    stream = [order_event(str(rng.randrange(12)), f"s{n}", n, keyed=rng.random() < 0.9) for n in range(160)]
    app.ingest(stream)
    with app.db.read() as conn:
        journal_order = dict(conn.execute(select(events.c.dedupe_key, events.c.id)).all())
    holder: dict[str, str] = {}
    applied: list[tuple[str | None, int]] = []
    guard = threading.Lock()
    problems: list[str] = []

    def work(name: str) -> None:
        idle = 0
        while idle < 3:
            rows = claim(app, name, limit=rng.choice([1, 3, 7]))
            if not rows:
                idle += 1
                continue
            idle = 0
            keys = {r["key"] for r in rows if r["key"]}
            with guard:
                for key in keys:
                    if key in holder:
                        problems.append(f"{name} claimed a key {holder[key]} holds")
                    holder[key] = name
            for row in sorted(rows, key=lambda r: r["id"]):  # as the dispatcher applies them
                time.sleep(0)  # let the other claimer in while this one holds its keys
                with guard:
                    applied.append((row["key"], row["id"]))
            with guard:
                for key in keys:
                    del holder[key]  # before the commit below: nobody can claim it until then
            finish(app, [r["id"] for r in rows])

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []
    assert sorted(i for _, i in applied) == sorted(journal_order.values())
    per_key: dict[str, list[int]] = {}
    for key, event_id in applied:
        if key is not None:
            per_key.setdefault(key, []).append(event_id)
    assert per_key and all(ids == sorted(ids) for ids in per_key.values())


class Recorder:
    """A plugin that fails the first attempt at one event, and records what it applied."""

    def __init__(self, fail_once: str) -> None:
        self.fail_once = fail_once
        self.applied: list[str] = []

    @hookimpl
    def on_order_updated(self, order: Order) -> None:
        if order.status == self.fail_once:
            self.fail_once = ""
            raise RuntimeError("the CRM is down")
        self.applied.append(f"{order.id}:{order.status}")


@pytest.fixture
def recorder() -> Callable[[str], Recorder]:
    made: list[Recorder] = []

    def factory(fail_once: str) -> Recorder:
        plugin = Recorder(fail_once)
        pm.register(plugin, name="ordering-recorder")
        made.append(plugin)
        return plugin

    yield factory  # type: ignore[misc]
    for plugin in made:
        pm.unregister(plugin)


def test_a_failed_event_holds_back_its_key_in_the_dispatcher_until_it_succeeds(
        app: Connectzap, recorder: Callable[[str], Recorder]) -> None:
    plugin = recorder("b")
    app.ingest([order_event("1", "a", 0), order_event("1", "b", 1), order_event("1", "c", 2),
                order_event("2", "a", 0)])
    t0 = clock.now()
    with clock.use_clock(lambda: t0):
        run(app)
    # "c" came in the same run as "b" but waited behind it; order 2 went on
    assert plugin.applied == ["1:a", "2:a"]
    with clock.use_clock(lambda: t0 + 3600):
        run(app)
    assert plugin.applied == ["1:a", "2:a", "1:b", "1:c"]


class Overlap:
    """A plugin that notes each order event it applies, and any time two of one order ran at once."""

    def __init__(self) -> None:
        self.applied: list[tuple[str, int]] = []
        self.running: set[str] = set()
        self.overlaps: list[str] = []
        self.guard = threading.Lock()

    @hookimpl
    def on_order_updated(self, order: Order) -> None:
        with self.guard:
            if order.id in self.running:
                self.overlaps.append(order.id)
            self.running.add(order.id)
        time.sleep(0.001)  # hold the key a moment: the other lane's thread runs meanwhile
        with self.guard:
            self.running.discard(order.id)
            self.applied.append((order.id, int(str(order.status)[1:])))


@pytest.mark.parametrize("seed", [3, 15])
def test_two_dispatch_lanes_of_one_worker_apply_each_key_once_in_journal_order_never_two_at_once(
        make: Callable[..., Connectzap], seed: int) -> None:
    """``workers.dispatch_lanes = 2``: two dispatch loops of one worker (one worker id) claim and run
    batches at the same time, their hooks in two threads. Every event is applied exactly once, the
    events of one order in journal order and never two at the same time (the lease is the lock, as
    between workers); unkeyed events too."""
    app = make(workers={"dispatch_lanes": 2, "batch_size": 7})
    worker = Worker(app)
    assert worker.dispatch_lanes() == 2
    rng = random.Random(seed)
    stream = [order_event(str(rng.randrange(9)), f"s{n}", n) if rng.random() < 0.85
              else order_event(f"u{n}", f"s{n}", n, keyed=False) for n in range(120)]
    app.ingest(stream)
    plugin = Overlap()
    pm.register(plugin, name="ordering-overlap")
    try:
        asyncio.run(drain_with_lanes(worker, 2))
    finally:
        pm.unregister(plugin)
    assert plugin.overlaps == []
    assert sorted(n for _, n in plugin.applied) == list(range(len(stream)))  # each once
    for order_id in {e.data["id"] for e in stream if e.ordering_key}:
        journaled = [int(e.data["status"][1:]) for e in stream if e.data["id"] == order_id]
        assert [n for o, n in plugin.applied if o == order_id] == journaled, f"order {order_id} out of order"
    with app.db.read() as conn:
        assert set(conn.execute(select(events.c.status)).scalars()) == {"done"}


async def drain_with_lanes(worker: Worker, lanes: int) -> None:
    """Dispatch until nothing is due, ``lanes`` dispatch loops at once (as :meth:`Worker.run` does)."""
    async def lane() -> int:
        done = 0
        while n := await worker.dispatch_once():
            done += n
        return done

    while sum(await asyncio.gather(*(lane() for _ in range(lanes)))):
        pass


def test_dispatch_lanes_default_to_two_on_postgresql_and_one_on_sqlite(make: Callable[..., Connectzap],
                                                                       backend: str) -> None:
    assert Worker(make()).dispatch_lanes() == (2 if backend == "postgres" else 1)
    assert Worker(make("set", workers={"dispatch_lanes": 3})).dispatch_lanes() == 3
