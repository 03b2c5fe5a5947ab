"""POST /v1/messages with group commit: concurrent single-message requests share one gate
transaction, and each still gets exactly the answer it would get alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from server_support import AUTH, PHONE, api_engine, serving, wait_until
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError

from connectzap.core import gate
from connectzap.core.http.admission_writer import AdmissionWriter
from connectzap.core.messages import Outgoing
from connectzap.core.models import Category, ConsentChange
from connectzap.core.store import outbox as outbox_store
from connectzap.core.store.schema import outbox
from connectzap.testing import seed_template


def order(number: str, key: str | None = None) -> Outgoing:
    return Outgoing.model_validate({"to": PHONE, "content": {"type": "template", "name": "order_confirmation",
                                                             "language": "en", "body": ["Ana", number]}}
                                   | ({"idempotency_key": key} if key else {}))


def ready(engine: Any) -> Any:
    seed_template(engine, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    engine.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="checkout",
                                     proof="ticked 'send me order updates'"))
    return engine


def stored(engine: Any) -> list[str]:
    with engine.db.read() as conn:
        return [r[0] for r in conn.execute(select(outbox.c.idempotency_key).where(outbox.c.status != "refused"))]


async def queued_behind_a_commit(engine: Any, writer: AdmissionWriter,
                                 admissions: list[gate.Admission]) -> list[Any]:
    """Admit one message while the write lock is held, queue ``admissions`` behind it (one request
    each), then release: they go through the gate together. Returns each request's outcome."""
    with engine.db.engine.connect() as blocker:
        with blocker.begin():
            if not engine.db.is_sqlite:
                blocker.execute(text("LOCK TABLE outbox IN EXCLUSIVE MODE"))
            first = asyncio.create_task(writer.admit(engine.admission(order("first", "first"))))
            await asyncio.sleep(0)
            await wait_until(lambda: writer.waiting == 0 and not first.done())  # taken, blocked on the lock
            rest = [asyncio.create_task(writer.admit(a)) for a in admissions]
            await wait_until(lambda: writer.waiting == len(admissions))
    return await asyncio.gather(first, *rest, return_exceptions=True)


async def test_requests_queued_behind_a_commit_share_one_transaction_and_keep_their_own_answers(app):
    engine = ready(app)
    writer = AdmissionWriter(engine.db, engine.secret)
    writer.start()
    admissions = ([engine.admission(order(str(n), f"k{n}")) for n in range(5)]
                  + [engine.admission(order("same"), idempotency_key="twice")] * 2  # a client retrying at once
                  + [engine.admission(order("other"), idempotency_key="twice")]  # the key, another message
                  + [engine.admission(order("no key")) for _ in range(2)]  # no key: two messages
                  + [engine.admission(order("0", "k0"))])  # repeats the group's first message
    try:
        outcomes = await queued_behind_a_commit(engine, writer, admissions)
    finally:
        await writer.aclose()
    assert writer.batches == 2 and writer.written == 1 + len(admissions)
    first, *rest = outcomes
    assert first.status == "queued" and not first.duplicate
    assert [(d.status, d.duplicate) for d in rest[:5]] == [("queued", False)] * 5
    assert len({d.id for d in rest[:5]}) == 5
    once, again, other = rest[5:8]
    assert (once.duplicate, again.duplicate, again.id) == (False, True, once.id)
    assert other.status == gate.CONFLICT and other.id == once.id
    assert rest[8].id != rest[9].id and not rest[9].duplicate
    assert rest[10].id == rest[0].id and rest[10].duplicate
    assert sorted(stored(engine)) == sorted({"api:first", *(f"api:k{n}" for n in range(5)), "api:twice",
                                             admissions[8].idempotency_key, admissions[9].idempotency_key})


async def test_a_failing_request_fails_alone_and_nothing_of_the_failed_group_stands_twice(app, monkeypatch):
    engine = ready(app)
    writer = AdmissionWriter(engine.db, engine.secret)
    real_add_many = outbox_store.add_many
    calls: list[list[str]] = []

    def add_many(db: Any, conn: Any, rows: list[dict[str, Any]]) -> Any:
        keys = [row["idempotency_key"] for row in rows]
        calls.append(keys)
        inserted = real_add_many(db, conn, rows)  # written, then the transaction fails and rolls back
        if "api:poison" in keys:
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        return inserted

    monkeypatch.setattr(outbox_store, "add_many", add_many)
    writer.start()
    admissions = [engine.admission(order(str(n), f"k{n}")) for n in range(4)] + [
        engine.admission(order("poison", "poison")), engine.admission(order("no key"))]
    try:
        outcomes = await queued_behind_a_commit(engine, writer, admissions)
    finally:
        await writer.aclose()
    first, *rest = outcomes
    assert isinstance(rest[4], OperationalError)  # the failing request gets its own error ...
    assert [d.status for d in (first, *rest[:4], rest[5])] == ["queued"] * 6  # ... the others their decisions
    assert not any(d.duplicate for d in (first, *rest[:4], rest[5]))
    assert len(calls) == 2 + len(admissions)  # the first alone, the group (rolled back), then one by one
    keys = stored(engine)
    assert sorted(keys) == sorted({"api:first", *(f"api:k{n}" for n in range(4)), admissions[5].idempotency_key})
    assert len(keys) == len(set(keys))


async def test_a_group_retried_after_its_commit_answer_was_lost_admits_nothing_twice(app, monkeypatch):
    """The commit went through but its answer did not arrive (a dropped connection): the retry one
    by one finds each message already there -- with the same key, including the generated ones."""
    engine = ready(app)
    writer = AdmissionWriter(engine.db, engine.secret)
    real = writer._transaction
    lost = {"once": False}

    def transaction(items: list[gate.Admission]) -> list[gate.Decision]:
        results = real(items)
        if len(items) > 1 and not lost["once"]:
            lost["once"] = True
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        return results

    monkeypatch.setattr(writer, "_transaction", transaction)
    writer.start()
    admissions = [engine.admission(order(str(n), f"k{n}")) for n in range(3)] + [
        engine.admission(order("no key a")), engine.admission(order("no key b"))]
    try:
        first, *rest = await queued_behind_a_commit(engine, writer, admissions)
    finally:
        await writer.aclose()
    assert lost["once"]
    assert all(d.status == "queued" for d in rest), rest  # answered as the retry found them, no conflict
    keys = stored(engine)
    assert len(keys) == 1 + len(admissions) == len(set(keys))
    with engine.db.read() as conn:
        ids = {r[0] for r in conn.execute(select(outbox.c.id))}
    assert {d.id for d in rest} <= ids


async def test_concurrent_http_requests_each_get_their_own_answer(make):
    engine = ready(api_engine(make))
    async with serving(engine) as client:
        def post(n: str, key: str | None) -> Any:
            return client.post("/v1/messages", headers=AUTH | ({"Idempotency-Key": key} if key else {}),
                               json=order(n).model_dump(mode="json", exclude_none=True))

        answers = await asyncio.gather(*(post(str(n), f"c{n}") for n in range(24)),
                                       *(post("same", "shared") for _ in range(4)),
                                       post("different", "shared"),
                                       *(post(f"free {n}", None) for n in range(3)))
    statuses = [a.status_code for a in answers]
    assert statuses[:24] == [202] * 24 and statuses[29:] == [202] * 3
    shared = [a.json() for a in answers[24:28]]
    assert len({s["id"] for s in shared}) == 1 and sorted(s["duplicate"] for s in shared) == [False, True, True, True]
    # The different body under the shared key: 409 if it came after the first, or it is the first.
    assert statuses[28] == 409 or not answers[28].json()["duplicate"]
    with engine.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 24 + 1 + 3
    assert engine.db  # the app's writer is closed with its lifespan


@pytest.mark.parametrize("running", [False])
async def test_without_the_lifespan_a_request_gets_a_transaction_of_its_own(app, running):
    engine = ready(app)
    writer = AdmissionWriter(engine.db, engine.secret)
    decision = await writer.admit(engine.admission(order("1", "alone")))
    assert decision.status == "queued" and writer.batches == 0 and writer.running is running
    assert stored(engine) == ["api:alone"]


def test_a_consented_template_campaign_reads_no_windows_but_a_free_form_message_does(app):
    """The 24-hour window facts are loaded only when a verdict needs them."""

    engine = ready(app)
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine.db.engine, "before_cursor_execute", record)
    try:
        decisions = engine.send_many([order(str(n), f"w{n}") for n in range(3)])
        assert [d.status for d in decisions] == ["queued"] * 3
        assert not [s for s in seen if "FROM windows" in s]
        free = Outgoing.model_validate({"to": PHONE, "content": {"type": "text", "body": "hello"}})
        assert engine.send(free).reason == "window_closed"
        assert [s for s in seen if "FROM windows" in s]
    finally:
        event.remove(engine.db.engine, "before_cursor_execute", record)


def test_a_postgresql_connection_that_broke_fails_one_transaction_and_the_next_gets_a_fresh_one(app):
    """Without a pre-ping per checkout: a disconnect invalidates the pool, so only the transaction
    that met the broken connection fails (answered 503, retried), not every later one."""
    if app.db.is_sqlite:
        pytest.skip("PostgreSQL connections only")
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = ready(app)
    engine.db.engine.dispose()
    with engine.db.read() as conn:  # the pool's only connection from now on
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    outside = create_engine(engine.db.engine.url, poolclass=NullPool)
    with outside.connect() as killer:
        assert killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    outside.dispose()
    with pytest.raises(OperationalError):
        engine.send(order("broken", "broken"))
    assert engine.send(order("fresh", "fresh")).status == "queued"
    assert stored(engine) == ["api:fresh"]
