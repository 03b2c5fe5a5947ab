"""The durable store: idempotent migrations, SQLite pragmas, and claims shared safely by several workers."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import inspect, select

from connectzap import Category, ConsentChange, Connectzap, Event, EventKind, Order, Outgoing, TemplateContent, hookimpl
from connectzap.core.channel import BaseChannel, OutboundSend
from connectzap.core.plugins import pm
from connectzap.core.store import outbox
from connectzap.core.store.database import WAL_AUTOCHECKPOINT_PAGES
from connectzap.core.store.schema import events, metadata
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

PHONE = "+4915112345678"
ORDERS = 120


def test_migrations_run_twice_and_match_the_schema(app: Connectzap) -> None:
    app.db.migrate()
    app.db.migrate()
    tables = set(inspect(app.db.engine).get_table_names())
    assert set(metadata.tables) <= tables and "alembic_version" in tables


def _migrate_at_once(url: str, barrier: Any, results: Any) -> None:
    """One process starting up: its own engine, then the migration, as soon as all are ready."""
    from connectzap.core.store.database import Database
    db = Database(url)
    barrier.wait(timeout=120)
    try:
        db.migrate()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 -- the test reports what each process ran into
        results.put(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        db.dispose()


@pytest.mark.slow
def test_processes_starting_together_on_a_fresh_database_all_migrate_it(backend: str, tmp_path: Any) -> None:
    """serve and workers started at the same moment (systemd starts both units at boot) on an empty
    database: every one of them comes up, and the schema is there once."""
    import multiprocessing

    from sqlalchemy import create_engine, func, text

    from connectzap.testing.apps import _postgres_schema_url, drop_postgres_schema
    from conftest import PG_URL
    url = _postgres_schema_url(PG_URL) if backend == "postgres" and PG_URL else f"sqlite:///{tmp_path / 'fresh.db'}"
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(3), spawn.Queue()
    processes = [spawn.Process(target=_migrate_at_once, args=(url, barrier, results)) for _ in range(3)]
    try:
        for process in processes:
            process.start()
        outcomes = sorted(results.get(timeout=180) for _ in processes)
        for process in processes:
            process.join(timeout=60)
        assert outcomes == ["ok", "ok", "ok"]
        engine = create_engine(url)
        with engine.connect() as conn:
            assert set(metadata.tables) <= set(inspect(conn).get_table_names())
            assert conn.execute(select(func.count()).select_from(text("alembic_version"))).scalar_one() == 1
        engine.dispose()
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        drop_postgres_schema(url)


def downgrade(app: Connectzap, revision: str) -> None:
    """Take the schema back to ``revision`` (a migration test then writes rows as it stored them)."""
    from alembic import command
    from alembic.config import Config

    from connectzap.core.store.database import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with app.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_migration_0002_gives_old_order_notifications_their_origin(app: Connectzap) -> None:
    """Before 0002, a notification was known by its key; after it, by its origin -- for old rows too."""
    from connectzap.core.store import outbox as outbox_store
    from connectzap.core.store.schema import outbox

    downgrade(app, "0001")
    base = {"request_hash": "", "contact_key": "k", "category": "utility", "content_type": "template",
            "status": "failed", "next_attempt_at": 0.0, "attempts": 1, "created_at": 0.0, "updated_at": 0.0}
    keys = {"m1": "order_notifications:woocommerce:main:1042:completed",   # a customer notification
            "m2": "order_notifications:owner:woocommerce:main:1042",       # the owner's: no order note
            "m3": "api:order_notifications:woocommerce:main:1:x"}          # someone else's key
    with app.db.engine.begin() as conn:  # rows as 0001 stored them: no origin column yet
        conn.execute(outbox.insert(), [{**base, "id": i, "idempotency_key": k} for i, k in keys.items()])
    app.db.migrate()
    with app.db.read() as conn:
        origins = {i: outbox_store.origin_of(outbox_store.get(conn, i) or {}) for i in keys}
    assert origins == {"m1": {"source": "woocommerce", "shop": "main", "order": "1042", "status": "completed"},
                       "m2": {}, "m3": {}}


def test_sqlite_pragmas(make: Callable[..., Connectzap], backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite only")
    app = make()
    worker = Worker(app)
    # Several connections open at once, so each is a separate SQLite connection from the pool: the
    # pragmas are per connection, and the worker's dispatcher and sender take theirs from the same pool.
    with app.db.read() as first, app.db.read() as second, worker.db.begin() as writing:
        connections = [first, second, writing]
        assert len({id(c.connection.dbapi_connection) for c in connections}) == 3
        for conn in connections:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1  # erased data leaves no trace
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == WAL_AUTOCHECKPOINT_PAGES > 1000


def test_journal_skips_duplicates_within_and_across_batches(app: Connectzap) -> None:
    order = Order(id="1", status="processing")
    event = Event.of(EventKind.ORDER_CREATED, order, source="shop", dedupe_key="o-1")
    first = app.ingest([event, event])
    assert [r.duplicate for r in first] == [False, True]
    assert app.ingest([event])[0].duplicate
    other_source = Event.of(EventKind.ORDER_CREATED, order, source="crm", dedupe_key="o-1")
    assert not app.ingest([other_source])[0].duplicate
    with app.db.read() as conn:
        assert len(conn.execute(select(events.c.id)).all()) == 2


class SharedChannel(BaseChannel):
    """One channel both workers send through, counting every send per message."""

    name = "shared"

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    async def send(self, message: OutboundSend) -> str:
        self.sent[message.outbox_id] += 1
        await asyncio.sleep(0.001)  # let the other worker run in between
        return f"wamid.{secrets.token_hex(6)}"

    async def reconcile(self, outbox_id: str) -> Any:
        return None

    async def aclose(self) -> None:
        return None


class CountingPlugin:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    @hookimpl
    def on_order_created(self, order: Order, ctx: Any) -> None:
        self.calls[order.id] += 1
        assert order.customer is not None
        ctx.send(order.customer, TemplateContent(name="confirm", language="en", body=[order.id]))


@pytest.fixture
def counting_plugin() -> Iterator[CountingPlugin]:
    plugin = CountingPlugin()
    pm.register(plugin, name="store_counting_plugin")
    yield plugin
    pm.unregister(name="store_counting_plugin")


@pytest.mark.slow
async def test_two_workers_never_take_the_same_event_or_message(make: Callable[..., Connectzap],
                                                                counting_plugin: CountingPlugin) -> None:
    channel = SharedChannel()
    first = make(channel=channel, workers={"batch_size": 5})
    # A second engine (its own connection pool) on the same database: another worker process.
    second = Connectzap(first.settings, channel=channel).start()
    try:
        seed_template(first, "confirm", "Order {{1}} confirmed")
        first.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="t",
                                        proof="box"))
        first.ingest([Event(kind=EventKind.ORDER_CREATED, source="shop", dedupe_key=f"o-{n}",
                            data={"id": str(n), "status": "processing", "customer": {"phone": PHONE}})
                      for n in range(ORDERS)])
        workers = [Worker(first, worker_id="w1"), Worker(second, worker_id="w2")]

        async def work(worker: Worker) -> int:
            busy = 0
            for _ in range(400):
                done = await worker.dispatch_once() + await worker.send_once()
                busy += done
                if not done:
                    return busy
            raise AssertionError("never idle")

        shares = await asyncio.gather(*(work(w) for w in workers))
        assert all(shares), shares  # both took part
        assert counting_plugin.calls == Counter({str(n): 1 for n in range(ORDERS)})
        assert len(channel.sent) == ORDERS and set(channel.sent.values()) == {1}
        with first.db.read() as conn:
            assert outbox.counts(conn) == {"accepted": ORDERS}
    finally:
        second.close()


def test_a_crash_verdict_never_overwrites_a_status_that_settled_the_message(app: Connectzap) -> None:
    """Recovery reads a dead worker's ``sending`` rows, asks the channel, then writes its verdict; a
    status webhook applied in between (the message did go out) wins over the verdict."""
    seed_template(app, "order_confirmation", "Hi {{1}}")
    app.set_consent(ConsentChange(phone="+4915112345678", category=Category.UTILITY, granted=True, source="t"))
    ids = [app.send(Outgoing(to="+4915112345678", content=TemplateContent(name="order_confirmation", language="en",
                                                                          body=[str(i)]))).id for i in range(3)]
    with app.db.begin() as conn:
        assert len(outbox.claim(app.db, conn, "dead-worker", 10, 0.0)) == 3  # now ``sending``
        for message_id in ids[:2]:  # the webhooks arrive: they were sent after all
            assert outbox.apply_status(conn, f"wamid.{message_id}", "delivered", outbox_id=message_id) is not None
        outbox.mark_unknown(conn, ids[0], reason="crashed_mid_send")
        outbox.requeue_now(conn, ids[1])
        outbox.mark_unknown(conn, ids[2], reason="crashed_mid_send")  # no status came: the verdict holds
        assert [outbox.get(conn, i)["status"] for i in ids] == ["delivered", "delivered", "unknown"]  # type: ignore[index]


def test_events_never_carry_an_empty_error_text(app: Connectzap) -> None:
    """A delivery that has not run yet is not an error: the event's ``last_error`` stays NULL while
    it waits and once it is done (it was '' before); a real failure's text is kept while pending."""
    from connectzap.core.store import journal

    def last_error(event_id: int) -> object:
        with app.db.read() as conn:
            return conn.execute(select(events.c.status, events.c.last_error).where(events.c.id == event_id)).one()

    lead = {"id": "1", "contact": {"phone": "+4915112345678"}}
    with app.db.begin() as conn:
        quiet, failing = (j.event_id for j in journal.append(app.db, conn, [
            Event(kind=EventKind.LEAD, source="t", dedupe_key=key, data=lead) for key in ("quiet", "failing")]))
        assert quiet is not None and failing is not None
        journal.ensure_many(app.db, conn, {quiet: ["a", "b"], failing: ["a", "b"]})
        for event_id in (quiet, failing):
            journal.finish_delivery(conn, event_id, "a")
        journal.fail_delivery(conn, failing, "b", "RuntimeError: CRM down", retry_at=0.0)
        assert journal.settle_many(conn, [quiet, failing], 3600) == {quiet: "pending", failing: "pending"}
    assert tuple(last_error(quiet)) == ("pending", None)
    assert tuple(last_error(failing)) == ("pending", "b: RuntimeError: CRM down")
    with app.db.begin() as conn:
        journal.finish_delivery(conn, quiet, "b")
        assert journal.settle(conn, quiet, 3600) == "done"
    assert tuple(last_error(quiet)) == ("done", None)


def test_migration_0006_clears_the_empty_error_texts_of_old_events(app: Connectzap) -> None:
    """Rows the journal wrote before it kept NULL: '' becomes NULL, done or pending; real texts stay."""
    downgrade(app, "0005")
    base = {"source": "t", "kind": "lead", "attempts": 1, "next_attempt_at": 0.0, "received_at": 0.0}
    rows = {"old-done": ("done", ""), "old-pending": ("pending", ""), "failed": ("pending", "b: RuntimeError: down"),
            "dead": ("dead", "a: ValueError: bad"), "new-done": ("done", None)}
    with app.db.engine.begin() as conn:  # as the journal wrote them before the fix
        conn.execute(events.insert(), [{**base, "dedupe_key": key, "status": status, "last_error": error}
                                       for key, (status, error) in rows.items()])
    app.db.migrate()
    with app.db.read() as conn:
        now = dict(conn.execute(select(events.c.dedupe_key, events.c.last_error)).all())
    assert now == {"old-done": None, "old-pending": None, "failed": "b: RuntimeError: down",
                   "dead": "a: ValueError: bad", "new-done": None}


def test_housekeeping_erases_expired_payloads_by_index_not_by_scanning_every_row(app: Connectzap) -> None:
    """Migration 0009: the erasure every worker runs every few seconds finds the rows to erase
    through a partial index on ``erase_after``, in the journal and in the outbox; downgrading drops
    the indexes and the next start brings them back."""
    from sqlalchemy import event as sql_events

    from connectzap.core.store import journal, outbox as outbox_store

    def indexed() -> set[str]:
        found = inspect(app.db.engine)
        return {ix["name"] for table in ("events", "outbox") for ix in found.get_indexes(table)
                if ix["name"] in ("ix_events_erase", "ix_outbox_erase")}

    assert indexed() == {"ix_events_erase", "ix_outbox_erase"}
    if app.db.is_sqlite:
        sent: list[tuple[str, Any]] = []
        with app.db.engine.connect() as conn:
            def listener(*args: Any) -> None:
                if args[2].startswith("UPDATE"):  # the erasures (not the transaction's own statements)
                    sent.append((args[2], args[3]))

            sql_events.listen(app.db.engine, "before_cursor_execute", listener)
            journal.erase_expired(conn)
            outbox_store.erase_expired(conn)
            sql_events.remove(app.db.engine, "before_cursor_execute", listener)
            plans = [" ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                       params).all())
                     for statement, params in sent]
        assert len(plans) == 2 and "INDEX ix_events_erase" in plans[0] and "INDEX ix_outbox_erase" in plans[1], plans
    downgrade(app, "0008")
    assert indexed() == set()
    app.db.migrate()
    assert indexed() == {"ix_events_erase", "ix_outbox_erase"}


def test_migration_0014_keys_templates_by_account_and_keeps_the_old_ones(app: Connectzap) -> None:
    """Before 0014 a template was known by name and language; after it by its account too. Old rows
    keep their WABA, or become of no particular account, so one account looks them up as before."""
    from connectzap.core import templates as cache
    from connectzap.core.store.schema import templates

    downgrade(app, "0013")
    base = {"status": "APPROVED", "category": "UTILITY", "parameter_format": "POSITIONAL", "components": "[]",
            "updated_at": 0.0}
    with app.db.engine.begin() as conn:  # rows as 0013 stored them: waba_id nullable, not in the key
        conn.execute(templates.insert(), [{**base, "name": "order_shipped", "language": "en", "waba_id": "77"},
                                          {**base, "name": "order_ready", "language": "en", "waba_id": None}])
    app.db.migrate()
    with app.db.begin() as conn:
        cache.put(app.db, conn, cache.get(conn, "order_shipped", "en").model_copy(update={"waba_id": "88"}))
        found = {(t.name, t.waba_id) for t in cache.all_templates(conn)}
        assert found == {("order_shipped", "77"), ("order_shipped", "88"), ("order_ready", None)}
        assert cache.get(conn, "order_ready", "en", "77") is not None  # of no particular account: any may send it
        assert cache.get(conn, "order_shipped", "en", "99") is None
    downgrade(app, "0013")  # back: one row per name and language again
    with app.db.engine.connect() as conn:
        rows = sorted((r.name, r.waba_id) for r in conn.execute(templates.select().with_only_columns(
            templates.c.name, templates.c.waba_id)))
    assert rows == [("order_ready", None), ("order_shipped", "77")]
    app.db.migrate()


def test_migration_0015_keeps_plugin_state_and_forgets_only_what_was_set_to_be_forgotten(app: Connectzap) -> None:
    """0015 adds plugin_state.forget_at: rows from before keep their values (no deadline); a value set
    with ``forget_at`` is unseen after it and deleted by the housekeeping, other rows stay."""
    from sqlalchemy import text

    from connectzap.core import clock
    from connectzap.core.worker import Worker

    downgrade(app, "0014")
    with app.db.engine.begin() as conn:
        conn.execute(text("INSERT INTO plugin_state (plugin, key, value, updated_at) "
                          "VALUES ('p', 'cursor', '41', 0)"))
    app.db.migrate()
    state = app.plugin_state("p")
    later = clock.now() + 61
    state.set("waiting", {"event": 1}, forget_at=later - 1)
    assert state.get("waiting") == {"event": 1} and state.get("cursor") == 41
    with clock.use_clock(lambda: later):
        assert state.get("waiting") is None
        Worker(app).housekeeping()
    with app.db.read() as conn:
        assert conn.execute(text("SELECT key, forget_at FROM plugin_state WHERE plugin = 'p'")).all() == [
            ("cursor", None)]
    state.set("cursor", 42, forget_at=later - 1)
    state.set("cursor", 43)                          # set again without a deadline: kept
    with clock.use_clock(lambda: later):
        Worker(app).housekeeping()
    assert state.get("cursor") == 43


def test_plugin_state_is_looked_up_by_key_alone_through_its_own_index(app: Connectzap) -> None:
    """Migration 0027: the per-customer times (``contact_times``) are looked up by key without the
    plugin -- in the check of a new BSUID's first link -- and the primary key (plugin, key) cannot
    serve that; ``ix_plugin_state_key`` does, on both databases. Downgraded, the plan loses it."""
    from sqlalchemy import event as sql_events

    from connectzap.core import identities

    sent: list[tuple[str, Any]] = []

    def listener(*args: Any) -> None:
        sent.append((args[2], args[3]))

    def plan_of_first_link_check() -> str:
        sent.clear()
        with app.db.begin() as conn:
            sql_events.listen(app.db.engine, "before_cursor_execute", listener)
            try:
                identities.plain_first_links(conn, app.secret, {"b" * 32: "c" * 32})
            finally:
                sql_events.remove(app.db.engine, "before_cursor_execute", listener)
            statement, params = next((s, p) for s, p in sent if "plugin_state" in s)
            if app.db.is_sqlite:
                return " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                         params).all())
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # an empty table: say what it could use
            return " ".join(str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + statement, params).all())

    assert "ix_plugin_state_key" in plan_of_first_link_check()
    downgrade(app, "0026")
    assert "ix_plugin_state_key" not in plan_of_first_link_check()
    app.db.migrate()
    assert "ix_plugin_state_key" in plan_of_first_link_check()
