"""Hooks' plugin state reads shared by a wave (:class:`connectzap.core.store.plugin_state.Reads`): a key
every event of a wave reads is read once, yet each hook still sees exactly what was committed before
it ran -- another event's buffered writes, writes committed at once, deletions -- and never what an
earlier hook changed in the value it was given without storing it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectzap import Connectzap, Event, EventKind, Order, hookimpl
from connectzap.core.plugins import pm
from connectzap.core.worker import Worker
from test_dispatch_transactions import statements_while

NAME = "stateful"
_runs = itertools.count()


class Stateful:
    """For each order, records what ``ctx.state`` held under the run's key, then does the order's action:
    ``read`` nothing more; ``write`` / ``delete`` through the buffered ``ctx.state``; ``write_now``
    committed at once (``app.plugin_state``); ``mutate`` changes the dict it got and stores nothing,
    ``mutate_fail`` then fails."""

    def __init__(self) -> None:
        self.key = ""
        self.actions: dict[str, str] = {}
        self.seen: dict[str, Any] = {}

    @hookimpl
    def on_order_created(self, order: Order, ctx: Any) -> None:
        got = ctx.state.get(self.key)
        self.seen[order.id] = None if got is None else dict(got)
        action = self.actions[order.id]
        if action == "write":
            ctx.state.set(self.key, {"by": order.id})
        elif action == "delete":
            ctx.state.delete(self.key)
        elif action == "write_now":
            ctx.app.plugin_state(NAME).set(self.key, {"by": order.id, "now": True})
        elif action.startswith("mutate"):
            if got is not None:
                got["by"] = "never stored"
            if action == "mutate_fail":
                raise RuntimeError("this hook fails: its buffered state is not committed")


@pytest.fixture
def stateful() -> Iterator[Stateful]:
    plugin = Stateful()
    pm.register(plugin, name=NAME)
    yield plugin
    pm.unregister(name=NAME)


def run(app: Connectzap, plugin: Stateful, actions: list[str]) -> list[str]:
    """Journal one order per action (no customer: one wave, in journal order) and dispatch them once."""
    n = next(_runs)
    plugin.key = f"run-{n}"
    ids = [f"{n}-{i}" for i in range(len(actions))]
    plugin.actions = dict(zip(ids, actions, strict=True))
    plugin.seen = {}
    app.ingest([Event(kind=EventKind.ORDER_CREATED, source="shop", dedupe_key=f"order-{order}",
                      data={"id": order, "status": "processing"}) for order in ids])
    assert asyncio.run(Worker(app).dispatch_once()) == len(ids)
    return ids


def committed(actions: list[tuple[str, str]]) -> dict[str, Any]:
    """What each order's hook must see: the value committed by the orders before it, one at a time."""
    value: dict[str, Any] | None = None
    seen: dict[str, Any] = {}
    for order, action in actions:
        seen[order] = value
        if action == "write":
            value = {"by": order}
        elif action == "delete":
            value = None
        elif action == "write_now":
            value = {"by": order, "now": True}
    return seen


@pytest.fixture
def app(make: Any) -> Connectzap:
    return make(workers={"backoff_base_seconds": 3600})  # a failed hook is not retried within the test


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["read", "write", "delete", "write_now", "mutate", "mutate_fail"]),
                min_size=1, max_size=12))
def test_each_hook_sees_what_was_committed_before_it(app: Connectzap, stateful: Stateful, actions: list[str]) -> None:
    ids = run(app, stateful, actions)
    assert stateful.seen == committed(list(zip(ids, actions, strict=True)))


def test_a_wave_reads_a_key_once_when_nothing_is_written(app: Connectzap, stateful: Stateful) -> None:
    app.plugin_state(NAME).set("run-warm", {"by": "setup"})  # a value to read (a missing key is cached too)
    statements = statements_while(app, lambda: run(app, stateful, ["read"] * 12))
    reads = [s for s in statements if s.startswith("SELECT plugin_state.value")]
    assert len(reads) == 1, statements
    assert list(stateful.seen.values()) == [None] * 12  # run-N, not run-warm: nothing stored under it


def test_a_write_in_the_wave_makes_the_next_hook_read_again(app: Connectzap, stateful: Stateful) -> None:
    statements = statements_while(app, lambda: run(app, stateful, ["read", "read", "write", "read", "read"]))
    reads = [s for s in statements if s.startswith("SELECT plugin_state.value")]
    assert len(reads) == 2, statements  # the first hook's, and the one after the write
    assert list(stateful.seen.values())[3:] == [{"by": list(stateful.seen)[2]}] * 2
