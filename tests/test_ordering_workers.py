"""Per-entity ordering with real ``connectzap worker`` processes.

Several workers run as users run them (``python -m connectzap --config FILE worker``) while the test
delivers signed WooCommerce webhooks through the engine's ingress: every order's status webhooks
arrive three times each, shuffled across all orders. The order-notifications plugin keeps per-order
state (its documented status-rank rule), so two workers applying two events of one order at once
would break it. The sends must be exactly what the rule gives when the journaled events are applied
one at a time in journal order. The same for consent changes and sends of one contact.

PostgreSQL: three worker processes. SQLite: one worker process and a worker in the test process.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connectzap import Category, ConsentChange, Connectzap, Event, EventKind, Outgoing, TemplateContent
from connectzap.core import consent, ingress
from connectzap.core.settings import load_settings
from connectzap.core.store import journal
from connectzap.core.store.schema import deliveries, events, outbox, workers
from connectzap.core.worker import Worker
from connectzap.plugins.order_notifications import DEFAULT_RANK, UNKNOWN_RANK
from connectzap.testing import seed_template
from connectzap.testing.apps import drop_postgres_schema
from serve_support import config_file, database_url, process_env, start_worker
from test_woocommerce_webhooks import SECRET, SHOP_URL, payload, wc_request

pytestmark = pytest.mark.slow

ORDERS = int(os.environ.get("ORDERING_TEST_ORDERS", 300))
COPIES = 3
BURST = 400
# True status histories a shop may go through; their webhooks arrive repeated and shuffled.
HISTORIES = [
    ["pending", "processing", "completed"],
    ["pending", "on-hold", "processing", "completed"],
    ["processing", "cancelled"],
    ["pending", "processing", "completed", "refunded"],
    ["on-hold", "cancelled"],
]
NOTIFIED = {"processing": "order_confirmation", "completed": "order_shipped", "cancelled": "order_cancelled",
            "refunded": "order_cancelled"}
CONTACT = "+34612345678"
CONSENT_STEPS = 120


@dataclass
class Setup:
    config: Path
    env: dict[str, str]
    workers: int
    in_process: bool
    logs: Path


@pytest.fixture
def setup(backend: str, tmp_path: Path) -> Iterator[Setup]:
    url = database_url(backend, tmp_path)
    rules = "\n".join(f"""
[[plugins.order_notifications.rules]]
status = "{status}"
template = "{template}"
language = "en"
params = ["{{{{ number }}}}"]""" for status, template in NOTIFIED.items())
    config = config_file(tmp_path / "connectzap.toml", data_dir=tmp_path / "data", database_url=url, rest=f"""
[privacy]
hash_secret = "ordering-test-secret-0123456789"
[workers]
lease_seconds = 10
poll_interval_seconds = 0.05
batch_size = 10
[sandbox]
quiet = true
simulate_statuses = false
[connectors.woocommerce.shops.main]
url = "{SHOP_URL}"
webhook_secrets = ["{SECRET}"]
{rules}
""")
    env = process_env(CONNECTZAP_LOAD_PLUGINS="")
    logs = tmp_path / "logs"
    logs.mkdir()
    yield Setup(config, env, workers=3 if backend == "postgres" else 1, in_process=backend == "sqlite", logs=logs)
    if backend == "postgres":
        drop_postgres_schema(url)


@contextmanager
def running_workers(s: Setup, app: Connectzap) -> Iterator[Callable[[], None]]:
    """Start the worker processes (and on SQLite a worker in this process); yields a check that
    none died; stops them all with SIGTERM (a graceful drain) and requires a clean exit."""
    procs = []
    for n in range(s.workers):
        procs.append(start_worker(s.config, s.env, s.logs / f"worker-{n}.log"))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = None
    if s.in_process:
        worker = Worker(app, worker_id="in-process")
        thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(stop),))
        thread.start()

    def alive() -> None:
        for n, proc in enumerate(procs):
            if proc.poll() is not None:
                raise AssertionError(f"worker {n} exited ({proc.returncode}): "
                                     f"{(s.logs / f'worker-{n}.log').read_text()[-2000:]}")

    try:
        # every worker is up (its heartbeat row written) before the first webhook arrives
        deadline = time.monotonic() + 120
        while True:
            alive()
            with app.db.read() as conn:
                up = conn.execute(select(func.count()).select_from(workers)).scalar_one()
            if up >= len(procs) + s.in_process:
                break
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
        yield alive
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        if thread is not None:
            loop.call_soon_threadsafe(stop.set)
            thread.join(60)
        codes = [proc.wait(60) for proc in procs]
        loop.close()
    assert codes == [0] * len(procs), [(s.logs / f"worker-{n}.log").read_text()[-2000:] for n in range(len(procs))]


def wait_until_idle(app: Connectzap, alive: Callable[[], None], timeout: float = 600) -> None:
    """Until no event is pending and no message waits to be sent (a hang guard, not a timing check)."""
    deadline = time.monotonic() + timeout
    while True:
        alive()
        with app.db.read() as conn:
            pending = conn.execute(select(func.count()).select_from(events)
                                   .where(events.c.status == "pending")).scalar_one()
            waiting = conn.execute(select(func.count()).select_from(outbox).where(
                outbox.c.status.in_(("queued", "sending", "unknown")))).scalar_one()
        if pending == 0 and waiting == 0:
            return
        if time.monotonic() > deadline:
            with app.db.read() as conn:
                stuck = conn.execute(select(events.c.id, events.c.kind, events.c.attempts, events.c.claimed_by,
                                            events.c.claimed_until, events.c.next_attempt_at, events.c.last_error)
                                     .where(events.c.status == "pending").order_by(events.c.id).limit(5)).all()
            raise AssertionError(f"still busy: {pending} events, {waiting} messages; now {time.time()}; "
                                 f"oldest pending: {stuck}")
        time.sleep(0.2)


def order_body(order_id: int, status: str, step: int) -> bytes:
    data = payload("order_created_classic.json")
    data.update(id=order_id, number=str(order_id), status=status, meta_data=[],
                date_modified_gmt=f"2026-03-02T10:{step:02d}:00")
    data["billing"] = {**data["billing"], "phone": phone_of(order_id)}
    return json.dumps(data).encode()


def phone_of(order_id: int) -> str:
    return f"+346{10_000_000 + order_id}"


def seed_order_templates(app: Connectzap) -> None:
    for name, body in (("order_confirmation", "Order {{1}} is confirmed."),
                       ("order_shipped", "Order {{1}} is on its way."),
                       ("order_cancelled", "Order {{1}} was cancelled.")):
        seed_template(app, name, body)


def expected_sends(statuses: list[str]) -> list[str]:
    """The documented rule (order_notifications module doc), applied in journal order: a status
    notifies when a rule matches, it was not notified before for the order, and its rank is not
    below the highest rank seen."""
    highest, sent = -1, []
    for status in statuses:
        rank = DEFAULT_RANK.get(status, UNKNOWN_RANK)
        if rank < highest:
            continue
        highest = rank
        if status in NOTIFIED and status not in sent:
            sent.append(status)
    return sent


def test_workers_apply_each_orders_shuffled_repeated_status_webhooks_in_journal_order(setup: Setup) -> None:
    rng = random.Random(1414)
    deliveries = []
    for order_id in range(1, ORDERS + 1):
        history = rng.choice(HISTORIES)
        for step, status in enumerate(history):
            body = order_body(order_id, status, step)
            # WooCommerce retries with the same delivery id (journaled once); a status saved twice
            # is a second delivery (journaled again): both kinds of repeat are in the stream.
            deliveries += [(order_id, status, f"{order_id}-{status}-{copy % 2}", body) for copy in range(COPIES)]
    rng.shuffle(deliveries)

    app = Connectzap(load_settings(setup.config)).start()
    try:
        seed_order_templates(app)
        for order_id in range(1, ORDERS + 1):
            app.set_consent(ConsentChange(phone=phone_of(order_id), category=Category.UTILITY, granted=True,
                                          source="checkout", proof="order updates by WhatsApp"))
        # Every delivery goes through the webhook edge (signature, parsing); they are journaled in
        # bursts of BURST, as a busy shop's webhook queue drains, so several events of one order
        # wait in the journal together while the workers run.
        connector = app.connectors["woocommerce"]
        parsed: list[Event] = []

        def collect(batch: list[Event]) -> list[journal.Journaled]:
            parsed.extend(batch)
            return [journal.Journaled(None, duplicate=False) for _ in batch]

        for _, _status, delivery, body in deliveries:
            response = ingress.handle(connector, wc_request(body, topic="order.updated", delivery=delivery), collect)
            assert response.status == 200, response.body
        with running_workers(setup, app) as alive:
            for at in range(0, len(parsed), BURST):
                app.ingest(parsed[at:at + BURST])
                alive()
            wait_until_idle(app, alive)

        with app.db.read() as conn:
            journaled = conn.execute(select(events.c.dedupe_key, events.c.status)
                                     .where(events.c.source == "woocommerce").order_by(events.c.id)).all()
            sends = conn.execute(select(outbox.c.origin, outbox.c.status, outbox.c.created_at)
                                 .where(outbox.c.origin.is_not(None)).order_by(outbox.c.created_at)).all()
    finally:
        app.close()

    assert {status for _, status in journaled} == {"done"}
    in_journal_order: dict[str, list[str]] = {}
    for dedupe_key, _ in journaled:  # main:{order}-{status}-{copy}
        order_id, rest = dedupe_key.removeprefix("main:").split("-", 1)
        in_journal_order.setdefault(order_id, []).append(rest.rsplit("-", 1)[0])
    assert len(in_journal_order) == ORDERS and len(journaled) > ORDERS * 2  # repeats were journaled too
    observed: dict[str, list[str]] = {}
    for origin, status, _ in sends:
        assert status != "refused", origin
        about = json.loads(origin)
        observed.setdefault(about["order"], []).append(about["status"])
    expected = {order_id: sent for order_id, statuses in in_journal_order.items()
                if (sent := expected_sends(statuses))}
    # exactly the rule's sends, each order's in the order the rule gives them
    assert observed == expected


def consent_stream(rng: random.Random) -> list[Event]:
    """Opt-outs, opt-ins and marketing sends to one contact, consent given at increasing times."""
    start = datetime.now(UTC) - timedelta(hours=1)
    stream = []
    for n in range(CONSENT_STEPS):
        if rng.random() < 0.4:
            change = ConsentChange(phone=CONTACT, category=Category.MARKETING, granted=rng.random() < 0.5,
                                   source="crm", proof=f"form {n}", at=start + timedelta(seconds=n))
            stream.append(Event.of(EventKind.CONSENT_CHANGED, change, source="crm", dedupe_key=f"consent-{n}"))
        else:
            send = Outgoing(to=CONTACT, content=TemplateContent(name="weekly_offer", language="en"),
                            idempotency_key=f"offer-{n}")
            stream.append(Event.of(EventKind.SEND, send, source="crm", dedupe_key=f"send-{n}"))
    return stream


def test_workers_apply_one_contacts_consent_changes_and_sends_in_journal_order(setup: Setup) -> None:
    stream = consent_stream(random.Random(2626))
    app = Connectzap(load_settings(setup.config)).start()
    try:
        seed_order_templates(app)  # the workers refuse to start with rules naming unknown templates
        seed_template(app, "weekly_offer", "This week's offers are in.", category="MARKETING")
        with running_workers(setup, app) as alive:
            for at in range(0, len(stream), 7):  # arriving in small groups while the workers run
                app.ingest(stream[at:at + 7])
            wait_until_idle(app, alive)
        with app.db.read() as conn:
            journal_order = [key for (key,) in conn.execute(
                select(events.c.dedupe_key).where(events.c.source == "crm").order_by(events.c.id))]
            # The gate's verdict when the send event was applied (the core delivery's result); the
            # sender re-checks consent later, so a message's final status may say opted_out anyway.
            verdicts = {key.replace("send-", "offer-"): json.loads(result)["status"]
                        for key, result in conn.execute(
                            select(events.c.dedupe_key, deliveries.c.result)
                            .join(deliveries, deliveries.c.event_id == events.c.id)
                            .where(events.c.source == "crm", events.c.kind == "send", deliveries.c.target == "core"))}
            admitted_at = {key.removeprefix("crm:"): created for key, created in conn.execute(
                select(outbox.c.idempotency_key, outbox.c.created_at))}
            final = consent.latest(conn, app.contact_key(CONTACT), Category.MARKETING)
    finally:
        app.close()

    by_key = {e.dedupe_key: e for e in stream}
    granted: bool | None = None
    expected: dict[str, bool] = {}
    for key in journal_order:
        event = by_key[key]
        if event.kind == EventKind.CONSENT_CHANGED:
            granted = bool(event.data["granted"])
        else:
            expected[f"offer-{key.removeprefix('send-')}"] = bool(granted)
    assert len(expected) > 40 and set(expected.values()) == {True, False}
    assert {key: verdicts[key] == "queued" for key in expected} == expected
    # the messages were admitted in journal order, and the ledger ends where the journal does
    admitted_in_order = [key for key in expected if expected[key]]
    assert sorted(admitted_in_order, key=lambda k: admitted_at[k]) == admitted_in_order
    assert final is not None and final.granted == granted
