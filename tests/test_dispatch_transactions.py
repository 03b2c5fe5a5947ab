"""How many transactions dispatching takes: hooks that leave nothing behind share one commit per wave;
a hook that proposes a send or writes state is committed before the next event runs, so the next
event's hooks see it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from connectzap import (Category, ConsentChange, Connectzap, Contact, Event, EventKind, InboundMessage, Order,
                        Outgoing, PluginSettings, TemplateContent, hookimpl)
from connectzap.core.plugins import pm
from connectzap.core.store.schema import deliveries, events, outbox
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

EVENTS = 12


class Watching:
    """Does nothing for most orders; for order ``act_on`` it writes state and proposes a message.
    Records what each call saw in the state, to prove the write was committed before the next event."""

    def __init__(self, act_on: str | None) -> None:
        self.act_on = act_on
        self.seen: dict[str, Any] = {}

    @hookimpl
    def on_order_created(self, order: Order, ctx: Any) -> None:
        self.seen[order.id] = ctx.state.get("marked")
        ctx.note("seen", f"order {order.id}")
        if order.id == self.act_on:
            ctx.state.set("marked", order.id)
            assert order.customer is not None
            ctx.send(order.customer, TemplateContent(name="confirm", language="en", body=[order.id]))


@pytest.fixture
def watching(request: pytest.FixtureRequest) -> Iterator[Watching]:
    plugin = Watching(getattr(request, "param", None))
    pm.register(plugin, name="watching")
    yield plugin
    pm.unregister(name="watching")


def orders(app: Connectzap) -> list[int]:
    seed_template(app, "confirm", "Order {{1}} confirmed")
    batch = []
    for n in range(EVENTS):
        phone = f"+49151{20000000 + n}"  # one contact each: every event has its own ordering key, one wave
        app.set_consent(ConsentChange(phone=phone, category=Category.UTILITY, granted=True, source="t", proof="box"))
        batch.append(Event(kind=EventKind.ORDER_CREATED, source="shop", dedupe_key=f"order-{n}",
                           data={"id": str(n), "status": "processing", "customer": {"phone": phone}}))
    return [j.event_id for j in app.ingest(batch)]


def statuses(app: Connectzap, ids: list[int]) -> set[str]:
    with app.db.read() as conn:
        return set(conn.execute(select(events.c.status).where(events.c.id.in_(ids))).scalars())


def recorded_while(app: Connectzap, name: str, work: Any) -> list[tuple[Any, ...]]:
    """The arguments of every ``name`` engine event (``commit``, ``before_cursor_execute``) during ``work``."""
    seen: list[tuple[Any, ...]] = []

    def record(*args: Any) -> None:
        seen.append(args)

    sa_event.listen(app.db.engine, name, record)
    try:
        work()
    finally:
        sa_event.remove(app.db.engine, name, record)
    return seen


def commits_while(app: Connectzap, work: Any) -> int:
    return len(recorded_while(app, "commit", work))


def statements_while(app: Connectzap, work: Any) -> list[str]:
    return [" ".join(args[2].split()[:3]) for args in recorded_while(app, "before_cursor_execute", work)]


def dispatch(app: Connectzap) -> int:
    return asyncio.run(Worker(app).dispatch_once())


def test_hooks_that_leave_nothing_share_one_commit_per_wave(make: Any, watching: Watching) -> None:
    app = make()
    ids = orders(app)
    commits = commits_while(app, lambda: dispatch(app))
    # the claim with the wave's preparation (deliveries, the core's bookkeeping), then one commit for
    # the wave's outcomes: not one per event
    assert commits <= 3, commits
    assert statuses(app, ids) == {"done"}


@pytest.mark.parametrize("watching", ["0"], indirect=True)
def test_a_hook_that_writes_is_committed_before_the_next_event_runs(make: Any, watching: Watching) -> None:
    app = make()
    ids = orders(app)
    commits = commits_while(app, lambda: dispatch(app))
    # order 0's outcome has its own commit, before the rest of the wave's: one more than above
    assert commits <= 4, commits
    # every later order's hook saw what order 0's wrote
    assert watching.seen == {"0": None, **{str(n): "0" for n in range(1, EVENTS)}}
    assert len(app.channel.sent()) == 0  # proposals are queued, not sent, by the dispatcher
    assert statuses(app, ids) == {"done"}


def test_deliveries_that_leave_nothing_are_finished_with_one_statement(make: Any, watching: Watching) -> None:
    """No savepoint and no UPDATE per delivery: the wave's quiet deliveries (this hook's twelve) are
    finished together, each still with its own result (its note)."""
    app = make()
    ids = orders(app)
    statements = statements_while(app, lambda: dispatch(app))
    # one savepoint: the core's bookkeeping for the batch; none per delivery
    assert len([s for s in statements if s.startswith("SAVEPOINT")]) == 1, statements
    # the core's deliveries (order events: one each, applied one by one) and then the hook's, together
    hook_updates = [s for s in statements if s.startswith("UPDATE deliveries")]
    assert len(hook_updates) <= EVENTS + 1, statements
    with app.db.read() as conn:
        results = {row.event_id: row.result for row in conn.execute(
            select(deliveries.c.event_id, deliveries.c.result)
            .where(deliveries.c.target == "watching", deliveries.c.status == "done"))}
    assert sorted(results) == sorted(ids)
    for n, event_id in enumerate(ids):
        assert f"order {n}" in results[event_id]


class Reading:
    """A plain-function inbound hook that only looks (as do the bundled ones: opt-out and opt-in keywords)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def on_inbound_message(self, message: InboundMessage, ctx: Any) -> None:
        self.seen.append(message.wamid)


def test_a_wave_of_plain_function_hooks_takes_one_trip_to_a_thread(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim, then the wave's hook calls (this plugin's and the bundled ones', all plain functions)
    and its commit in one trip: not a trip per call."""
    app = make()
    ids = inbound(app, EVENTS)
    trips: list[str] = []
    real = asyncio.to_thread

    async def counted(function: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(function, "__name__", repr(function)))
        return await real(function, *args, **kwargs)

    reading = Reading()
    pm.register(reading, name="reading")
    monkeypatch.setattr(asyncio, "to_thread", counted)
    try:
        dispatch(app)
    finally:
        pm.unregister(name="reading")
    assert len(trips) <= 2, trips
    assert reading.seen == [f"wamid.{n}" for n in range(EVENTS)]
    assert statuses(app, ids) == {"done"}


class Deferring:
    """A plain function that returns a coroutine, and an async hook: both kinds still run, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def on_order_created(self, order: Order, ctx: Any) -> Any:
        self.calls.append(f"plain {order.id}")

        async def later() -> Outgoing:
            assert order.customer is not None
            return Outgoing(to=order.customer, content=TemplateContent(name="confirm", language="en", body=[order.id]))
        return later()


class Awaiting:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    @hookimpl
    async def on_order_created(self, order: Order, ctx: Any) -> None:
        self.calls.append(f"async {order.id}")


def test_a_plain_hook_may_return_an_awaitable_and_async_hooks_keep_their_turn(make: Any) -> None:
    app = make()
    deferring = Deferring()
    pm.register(deferring, name="deferring")
    pm.register(Awaiting(deferring.calls), name="awaiting")
    try:
        ids = orders(app)
        dispatch(app)
    finally:
        pm.unregister(name="deferring")
        pm.unregister(name="awaiting")
    assert statuses(app, ids) == {"done"}
    # every order reached both hooks, each order's hooks in pluggy's order, orders one after another
    assert len(deferring.calls) == 2 * EVENTS
    firsts = [deferring.calls[n].split()[0] for n in range(0, 2 * EVENTS, 2)]
    assert len(set(firsts)) == 1
    assert [c.split()[1] for c in deferring.calls[::2]] == [c.split()[1] for c in deferring.calls[1::2]]
    with app.db.read() as conn:
        queued = conn.execute(select(outbox.c.id).where(outbox.c.template_name == "confirm")).all()
    assert len(queued) == EVENTS  # the coroutine's proposals went through the gate


class Idle(PluginSettings):
    """Off unless ``enabled``: the dispatcher then does not call this plugin's hook at all."""

    enabled: bool = False

    def wants(self, kind: str) -> bool:
        return self.enabled


class Optional:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def register_plugin_settings(self, register: Any) -> None:
        register("optional", Idle)

    @hookimpl
    def on_inbound_message(self, message: InboundMessage, ctx: Any) -> None:
        self.seen.append(message.wamid)


def inbound(app: Connectzap, count: int) -> list[int]:
    when = datetime.now(UTC)
    return [j.event_id for j in app.ingest([Event.of(EventKind.INBOUND_MESSAGE, InboundMessage(
        wamid=f"wamid.{n}", type="text", text="hello", timestamp=when,
        contact=Contact(phone=f"+49151{20000000 + n}")), source="whatsapp", dedupe_key=f"m{n}")
        for n in range(count)])]


@pytest.mark.parametrize("enabled", [False, True])
def test_a_hook_its_configuration_leaves_idle_is_not_called(make: Any, enabled: bool) -> None:
    """Both sides: unconfigured, no call and no delivery; enabled, a call and a delivery per event.
    A delivery created while it was enabled is finished as skipped once it is not (no dead letter)."""
    optional = Optional()
    pm.register(optional, name="optional")
    try:
        app = make(plugins={"optional": {"enabled": enabled}})
        ids = inbound(app, 3)
        if not enabled:  # a delivery left from when the plugin was on
            with app.db.begin() as conn:
                conn.execute(deliveries.insert().values(event_id=ids[0], target="optional", status="pending",
                                                        attempts=0, next_attempt_at=0, updated_at=0))
        asyncio.run(Worker(app).run_until_idle())
    finally:
        pm.unregister(name="optional")
    assert statuses(app, ids) == {"done"}
    with app.db.read() as conn:
        rows = conn.execute(select(deliveries.c.event_id, deliveries.c.status, deliveries.c.result)
                            .where(deliveries.c.target == "optional")).all()
    if enabled:
        assert optional.seen == [f"wamid.{n}" for n in range(3)]
        assert sorted(r.event_id for r in rows) == sorted(ids)
    else:
        assert optional.seen == []
        assert [(r.event_id, r.status) for r in rows] == [(ids[0], "done")]
        assert "not_configured" in rows[0].result
