"""One plugin's exception never stops another's delivery; failures retry with backoff, then dead-letter.

The dead letter is visible through ``connectzap events dead`` and ``events retry`` puts it back
once the cause is fixed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from connectzap import Category, ConsentChange, Connectzap, Event, EventKind, Order, TemplateContent, hookimpl
from connectzap.cli import cli
from connectzap.core import clock
from connectzap.core.plugins import pm
from connectzap.core.store import journal
from connectzap.core.store.schema import events
from connectzap.core.worker import Worker
from connectzap.testing import registered_plugin, seed_template

PHONE = "+4915112345678"


class Flaky:
    """Raises until ``healthy`` is set."""

    def __init__(self) -> None:
        self.healthy = False
        self.calls = 0

    @hookimpl
    def on_order_created(self, order: Order, ctx: Any) -> None:
        self.calls += 1
        if not self.healthy:
            raise ConnectionError("CRM unreachable")
        ctx.state.set("seen", order.id)


class Confirming:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def on_order_created(self, order: Order, ctx: Any) -> None:
        self.calls += 1
        assert order.customer is not None
        ctx.send(order.customer, TemplateContent(name="confirm", language="en", body=[order.id]))


@pytest.fixture
def plugins() -> Iterator[tuple[Flaky, Confirming]]:
    flaky, confirming = Flaky(), Confirming()
    pm.register(flaky, name="flaky_crm")
    pm.register(confirming, name="confirming")
    yield flaky, confirming
    pm.unregister(name="flaky_crm")
    pm.unregister(name="confirming")


def order_event(n: int = 1) -> Event:
    return Event(kind=EventKind.ORDER_CREATED, source="shop", dedupe_key=f"order-{n}",
                 data={"id": str(n), "status": "processing", "customer": {"phone": PHONE}})


def prepared(make: Any, **settings: Any) -> Connectzap:
    app = make(workers={"max_attempts": 3, "backoff_base_seconds": 10, "backoff_max_seconds": 100}, **settings)
    seed_template(app, "confirm", "Order {{1}} confirmed")
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="t", proof="box"))
    return app


def delivery(app: Connectzap, event_id: int, target: str) -> dict[str, Any]:
    with app.db.read() as conn:
        return next(d for d in journal.deliveries_of(conn, event_id) if d["target"] == target)


def config_for(app: Connectzap, tmp_path: Path) -> Path:
    """A config file pointing the CLI at ``app``'s database and data directory."""
    path = tmp_path / "cli.toml"
    path.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.db.url}"\n'
                    '[sandbox]\nquiet = true\n')
    return path


async def test_a_failing_plugin_does_not_stop_another(make: Any, plugins: tuple[Flaky, Confirming]) -> None:
    flaky, confirming = plugins
    app = prepared(make)
    [journaled] = app.ingest([order_event()])
    await Worker(app).run_until_idle()
    assert confirming.calls == 1 and flaky.calls == 1
    assert len(app.channel.sent()) == 1
    assert delivery(app, journaled.event_id, "confirming")["status"] == "done"
    failed = delivery(app, journaled.event_id, "flaky_crm")
    assert failed["status"] == "pending" and "CRM unreachable" in failed["last_error"]


async def test_retries_back_off_then_dead_letter_then_retry(make: Any, plugins: tuple[Flaky, Confirming],
                                                            tmp_path: Path) -> None:
    flaky, confirming = plugins
    app = prepared(make)
    [journaled] = app.ingest([order_event()])
    event_id = journaled.event_id
    t = clock.now()
    waits = []
    with clock.use_clock(lambda: t):
        worker = Worker(app)
        for attempt in range(1, 4):
            await worker.run_until_idle()
            d = delivery(app, event_id, "flaky_crm")
            assert d["attempts"] == attempt
            if attempt < 3:
                assert d["status"] == "pending"
                waits.append(d["next_attempt_at"] - t)
                t = d["next_attempt_at"] - 1  # nothing happens before the retry is due
                await worker.run_until_idle()
                assert delivery(app, event_id, "flaky_crm")["attempts"] == attempt
                t += 1
        assert delivery(app, event_id, "flaky_crm")["status"] == "dead"
    # Exponential with jitter in [0.5, 1.5): 10s nominal, then 20s nominal.
    assert 5 <= waits[0] < 15 and 10 <= waits[1] < 30
    assert confirming.calls == 1 and len(app.channel.sent()) == 1  # the healthy plugin ran once, sent once

    runner = CliRunner()
    config = str(config_for(app, tmp_path))
    dead = runner.invoke(cli, ["--config", config, "events", "dead"])
    assert dead.exit_code == 0 and dead.output.splitlines()[1].split()[0] == str(event_id) \
        and "flaky_crm" in dead.output
    assert "CRM unreachable" in dead.output

    flaky.healthy = True
    retried = runner.invoke(cli, ["--config", config, "events", "retry", str(event_id)])
    assert retried.exit_code == 0 and "requeued 1" in retried.output, retried.output
    await Worker(app).run_until_idle()
    assert delivery(app, event_id, "flaky_crm")["status"] == "done"
    with app.db.read() as conn:
        assert conn.execute(select(events.c.status).where(events.c.id == event_id)).scalar_one() == "done"
    assert confirming.calls == 1 and len(app.channel.sent()) == 1  # the retry re-ran only the dead delivery
    assert runner.invoke(cli, ["--config", config, "events", "dead"]).output.strip() == "no dead letters"


async def test_retry_of_an_unknown_event_is_one_line(app: Connectzap, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(config_for(app, tmp_path)), "events", "retry", "999"])
    assert result.exit_code == 0 and result.output.strip().startswith("nothing to retry")


async def test_a_hook_returning_garbage_fails_alone(make: Any, plugins: tuple[Flaky, Confirming]) -> None:
    class Garbage:
        @hookimpl
        def on_order_created(self, order: Order) -> object:
            return 42

    flaky, confirming = plugins
    flaky.healthy = True
    pm.register(Garbage(), name="garbage")
    try:
        app = prepared(make)
        [journaled] = app.ingest([order_event()])
        await Worker(app).run_until_idle()
        assert "returned int" in delivery(app, journaled.event_id, "garbage")["last_error"]
        assert delivery(app, journaled.event_id, "flaky_crm")["status"] == "done"
        assert len(app.channel.sent()) == 1
    finally:
        pm.unregister(name="garbage")


async def test_core_bookkeeping_that_fails_for_one_event_keeps_the_rest_of_its_batch(app: Connectzap) -> None:
    # The batch's core bookkeeping runs under one savepoint; a failure in the middle must roll back
    # only that event's part, not the consent recorded by the event before it or after it.
    others = ["+4915112345671", "+4915112345672"]
    good = [Event.of(EventKind.CONSENT_CHANGED, ConsentChange(phone=phone, category=Category.MARKETING, granted=True,
                                                                source="t", proof="form"),
                     source="t", dedupe_key=f"consent-{n}") for n, phone in enumerate(others)]
    broken = Event(kind=EventKind.MESSAGE_STATUS, source="t", dedupe_key="broken", data={"status": "sent"})
    first, bad, last = app.ingest([good[0], broken, good[1]])
    await Worker(app).run_until_idle()
    for phone in others:
        assert app.consent(phone)[Category.MARKETING].granted
    assert delivery(app, first.event_id, "core")["status"] == "done"
    assert delivery(app, last.event_id, "core")["status"] == "done"
    failed = delivery(app, bad.event_id, "core")
    assert failed["status"] == "pending" and failed["attempts"] == 1 and "wamid" in failed["last_error"]


async def test_core_bookkeeping_retried_keeps_its_backoff_and_the_plugins_wait_for_it(app: Connectzap) -> None:
    # With a plugin listening, the event used to come back at once for the plugin's delivery, and
    # the failing core bookkeeping ran again each time: every attempt in a tight loop, then dead.
    heard: list[str] = []

    class Listener:
        @hookimpl
        def on_message_status(self, status: Any) -> None:
            heard.append(status.wamid)

    with registered_plugin(Listener()):
        [bad] = app.ingest([Event(kind=EventKind.MESSAGE_STATUS, source="t", dedupe_key="broken",
                                  data={"status": "sent"})])
        await Worker(app).run_until_idle()
    core = delivery(app, bad.event_id, "core")
    assert (core["status"], core["attempts"]) == ("pending", 1) and heard == []
    with app.db.read() as conn:
        waits_until = conn.execute(select(events.c.next_attempt_at).where(events.c.id == bad.event_id)).scalar()
    assert waits_until == core["next_attempt_at"]  # the event comes back when the core's retry is due
