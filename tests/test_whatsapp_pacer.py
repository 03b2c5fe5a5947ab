"""The pacer: per-number slots, per-recipient spacing, the rolling 24 h unique-recipient budget --
shared through the database, so two engines (own connection pools, like two processes) on one
database together stay inside every limit. Slot times are checked, not measured: no timed tests.
The pacers read a clock held still at :data:`NOW` (as two processes reading one wall clock at once),
so every wait is exact, however slow the machine."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select

from connectzap.connectors.whatsapp.pacer import Pacer
from connectzap.core.channel import OutboundSend
from connectzap.core.errors import PacedError
from connectzap.core.messages import TemplateContent, TextContent
from connectzap.core.store.database import Database
from connectzap.core.store.schema import rate_counters

NUMBER = "106540352242922"
NOW = 2_966_667 * 600.0  # on a 10-minute boundary of the daily budget's buckets: its waits are round


def ask(n: int, *, template: bool = True) -> tuple[OutboundSend, dict[str, Any]]:
    content = TemplateContent(name="t", language="en") if template else TextContent(body="hi")
    phone = f"+1650555{n:04d}"
    message = OutboundSend(outbox_id=f"m{n}", recipient=phone, content=content, category="utility",
                           contact_key=f"{n:032x}")
    return message, {"contact_key": message.contact_key}


def pacer(db: Database, **kwargs: Any) -> Pacer:
    options: dict[str, Any] = {"messages_per_second": 1000.0, "pair_spacing_seconds": 0.0,
                               "daily_unique_recipients": None, "burst_seconds": 0.0, "clock": lambda: NOW}
    options.update(kwargs)
    return Pacer(db, default_number=NUMBER, **options)


def decide(p: Pacer, asks: list[tuple[OutboundSend, dict[str, Any]]]) -> list[Any]:
    """One batch decision, as the sender's concurrent acquires produce it (slot times, no sleeping)."""
    from connectzap.connectors.whatsapp.pacer import _Ask
    loop = asyncio.new_event_loop()
    try:
        batch = [_Ask(NUMBER, row["contact_key"], m.content.is_template, loop.create_future()) for m, row in asks]
        return p._decide(batch)
    finally:
        loop.close()


async def decide_concurrently(pacers: list[Pacer], batches: list[list[Any]]) -> list[list[Any]]:
    return list(await asyncio.gather(*(asyncio.to_thread(decide, p, b) for p, b in zip(pacers, batches, strict=True))))


@pytest.fixture
def second(app):
    """Another engine's database handle on the same database (its own pool, like another process)."""
    db = Database(app.db.url)
    yield db
    db.dispose()


def test_slots_are_spaced_at_the_configured_rate(app):
    p = pacer(app.db, messages_per_second=80.0)
    first = decide(p, [ask(n) for n in range(10)])
    then = decide(p, [ask(n) for n in range(10, 20)])
    slots = sorted(first + then)
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)]
    assert min(gaps) == pytest.approx(1 / 80, abs=1e-6)  # epoch floats: ~2e-7 resolution
    assert slots[0] == NOW and slots[-1] - slots[0] == pytest.approx(19 / 80, abs=1e-6)


async def test_two_engines_share_one_rate(app, second):
    a, b = pacer(app.db, messages_per_second=200.0), pacer(second, messages_per_second=200.0)
    results = await decide_concurrently([a, b, a, b], [[ask(n) for n in range(k * 25, k * 25 + 25)] for k in range(4)])
    slots = sorted(s for batch in results for s in batch)
    assert len(slots) == 100
    gaps = [y - x for x, y in zip(slots, slots[1:], strict=False)]
    assert min(gaps) >= 1 / 200 - 1e-6, "two engines together exceeded the per-number rate"


async def test_recipient_spacing_holds_across_engines(app, second):
    # the second engine reads the clock a second later (two processes never decide at one instant)
    a = pacer(app.db, pair_spacing_seconds=6.0)
    b = pacer(second, pair_spacing_seconds=6.0, clock=lambda: NOW + 1)
    [ra], [rb] = await decide_concurrently([a, b], [[ask(1)], [ask(1)]])
    outcomes = sorted([ra, rb], key=lambda r: isinstance(r, PacedError))
    assert isinstance(outcomes[0], float) and isinstance(outcomes[1], PacedError)
    # whichever went first holds the recipient for 6 s from its own instant
    assert outcomes[1].retry_after == pytest.approx(5.0 if outcomes[0] == NOW else 7.0)
    # a second message to the same recipient in one batch waits too; other recipients flow
    batch = decide(a, [ask(2), ask(2), ask(3)])
    assert isinstance(batch[0], float) and isinstance(batch[1], PacedError) and isinstance(batch[2], float)


async def test_recipient_spacing_holds_for_two_engines_deciding_at_one_instant(app, second):
    """Both read the same clock: the second must not take the grant the first just stored (a grant
    is what this statement changed, not a row that happens to hold the same time)."""
    a, b = pacer(app.db, pair_spacing_seconds=6.0), pacer(second, pair_spacing_seconds=6.0)
    first, then = decide(a, [ask(1), ask(2)]), decide(b, [ask(1), ask(3)])
    assert isinstance(first[0], float) and isinstance(first[1], float) and isinstance(then[1], float)
    assert isinstance(then[0], PacedError) and then[0].retry_after == pytest.approx(6.0)
    [ra], [rb] = await decide_concurrently([a, b], [[ask(4)], [ask(4)]])
    assert sorted(isinstance(r, PacedError) for r in (ra, rb)) == [False, True]


async def test_pair_limit_cooldown_holds_that_recipient_only(app):
    p = pacer(app.db, pair_spacing_seconds=1.0)
    await p.cool_down(f"{7:032x}", NUMBER, 30.0)
    held, other = decide(p, [ask(7), ask(8)])
    assert isinstance(held, PacedError) and held.retry_after == pytest.approx(30.0) and other == NOW


async def test_daily_budget_is_never_exceeded_by_two_engines(app, second):
    a, b = pacer(app.db, daily_unique_recipients=5), pacer(second, daily_unique_recipients=5)
    results = await decide_concurrently([a, b], [[ask(n) for n in range(0, 6)], [ask(n) for n in range(6, 12)]])
    flat = [r for batch in results for r in batch]
    admitted = [r for r in flat if isinstance(r, float)]
    waiting = [r for r in flat if isinstance(r, PacedError)]
    assert len(admitted) == 5 and len(waiting) == 7
    # until the oldest count (its 10-minute bucket, counted in full) leaves the window
    assert {w.retry_after for w in waiting} == {24 * 3600 + 600.0}
    # a recipient already counted in the window costs nothing more; free-form replies never count
    counted = next(n for n in range(12) if isinstance(flat[n], float))
    again = decide(b, [ask(counted), ask(99, template=False), ask(100)])
    assert isinstance(again[0], float) and isinstance(again[1], float) and isinstance(again[2], PacedError)


def test_rate_rows_hold_keyed_hashes_never_numbers(app):
    p = pacer(app.db, pair_spacing_seconds=6.0, daily_unique_recipients=10)
    decide(p, [ask(n) for n in range(3)])
    with app.db.read() as conn:
        keys = [r[0] for r in conn.execute(select(rate_counters.c.key))]
    assert keys and not any("1650555" in k for k in keys)


async def test_acquire_waits_for_its_slot_and_raises_when_held(app):
    # acquire() sleeps until its slot: here it reads the real clock (nothing here asserts a duration)
    p = pacer(app.db, messages_per_second=1000.0, pair_spacing_seconds=6.0, clock=time.time)
    message, _ = ask(1)
    await asyncio.gather(p.acquire(message), p.acquire(ask(2)[0]))
    with pytest.raises(PacedError):
        await p.acquire(message)


async def test_paced_messages_wait_without_using_attempts(make):
    from connectzap import Category, ConsentChange, Outgoing
    from connectzap.core.worker import Worker
    from connectzap.testing import seed_template
    from connectzap.testing.fake_graph import FakeGraph
    with FakeGraph(token="tok") as fake:
        app = make(connectors={"whatsapp": {
            "access_token": "tok", "phone_number_id": NUMBER, "app_secrets": ["s"], "verify_token": "v",
            "api_base_url": fake.url, "pair_spacing_seconds": 60, "daily_unique_recipients": None}})
        seed_template(app, "notice", "Notice {{1}}")
        phone = "+16505551234"
        app.set_consent(ConsentChange(phone=phone, category=Category.UTILITY, granted=True, source="t", proof="x"))
        ids = [app.send(Outgoing(to=phone, content=TemplateContent(name="notice", language="en", body=[str(n)]))).id
               for n in range(2)]
        await Worker(app).run_until_idle()
        await app.aclose()
        rows = [app.message(i) for i in ids]
        assert sorted(r["status"] for r in rows) == ["accepted", "queued"]
        waiting = next(r for r in rows if r["status"] == "queued")
        assert waiting["attempts"] == 0 and waiting["error_code"] is None
        assert len(fake.sends()) == 1
