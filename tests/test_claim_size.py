"""The dispatcher's claim size: on PostgreSQL it grows while claims come back full (a backlog), so a
worker pays a batch's round trips and commits for more events, and goes back to ``batch_size`` once a
claim comes back short; on SQLite it stays ``batch_size``. Exactly once and per-key order hold at any
size (the claim itself is unchanged: tests/test_ordering*.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from connectzap import Event, EventKind, Order, hookimpl
from connectzap.core.dispatcher import CLAIM_GROWTH, ClaimSize
from connectzap.core.plugins import pm
from connectzap.core.store.schema import events
from connectzap.core.worker import Worker

BATCH = 4


@given(base=st.integers(1, 100), growth=st.integers(1, 8), got=st.lists(st.integers(0, 1000), max_size=30))
def test_the_claim_size_doubles_while_claims_are_full_and_falls_back_when_one_is_short(
        base: int, growth: int, got: list[int]) -> None:
    size = ClaimSize(base, base * growth)
    expected = base
    for n in got:
        asked = size.next
        assert asked == expected
        assert base <= asked <= base * growth
        size.after(asked, n)
        expected = min(base * growth, asked * 2) if n >= asked else base
    assert size.next == expected


class Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def on_order_created(self, order: Order, ctx: Any) -> None:
        assert order.customer is not None and order.customer.phone is not None
        self.calls.append((order.customer.phone, order.id))


def test_a_backlog_is_claimed_in_growing_batches_on_postgresql_each_event_once_in_key_order(make: Any) -> None:
    app = make(workers={"batch_size": BATCH})
    # three orders of each of 40 customers, journaled customer after customer: the first claims take
    # the head of a key with its run, so keys and runs both cross batch boundaries
    batch = [Event(kind=EventKind.ORDER_CREATED, source="shop", dedupe_key=f"order-{c}-{n}",
                   data={"id": f"{c}-{n}", "status": "processing", "customer": {"phone": f"+49151{30000000 + c}"}})
             for n in range(3) for c in range(40)]
    ids = [j.event_id for j in app.ingest(batch)]
    recording = Recording()
    pm.register(recording, name="recording")
    try:
        worker = Worker(app)
        sizes = []
        while got := asyncio.run(worker.dispatch_once()):
            sizes.append(got)
    finally:
        pm.unregister(name="recording")
    if app.db.is_sqlite:
        assert set(sizes) == {BATCH}
    else:
        assert sizes[:3] == [BATCH, 2 * BATCH, 4 * BATCH]
        assert max(sizes) == BATCH * CLAIM_GROWTH
    assert sum(sizes) == len(ids)
    assert sorted(Counter(recording.calls).values()) == [1] * len(ids)  # each event once
    by_customer: dict[str, list[str]] = {}
    for phone, order_id in recording.calls:
        by_customer.setdefault(phone, []).append(order_id)
    assert all(seen == sorted(seen, key=lambda i: int(i.split("-")[1])) for seen in by_customer.values())
    with app.db.read() as conn:
        assert set(conn.execute(select(events.c.status).where(events.c.id.in_(ids))).scalars()) == {"done"}
