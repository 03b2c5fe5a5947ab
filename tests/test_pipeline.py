"""Writes sent ahead (``core/store/pipeline.py``): in the caller's transaction, counted once settled,
seen by any statement run after them, raising their errors -- and on PostgreSQL really sent without
waiting for the server."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from connectzap.core.store import bulk, pipeline

NOTES = sa.Table("pipeline_notes", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("body", sa.String(40), nullable=False))


@pytest.fixture
def db(app):
    NOTES.create(app.db.engine, checkfirst=True)
    yield app.db
    NOTES.drop(app.db.engine)


def _rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": i, "body": f"note {i}"} for i in range(start, start + n)]


def _count(db) -> int:
    with db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(NOTES)).scalar_one()


def test_writes_count_what_they_did_and_commit_with_their_transaction(db) -> None:
    with db.begin() as conn, pipeline.writes(conn) as writes:
        first = bulk.send_insert_new(writes, conn, NOTES, _rows(5), "id")
        again = bulk.send_insert_new(writes, conn, NOTES, _rows(5, start=3), "id")  # 3 and 4 are taken
        changed = bulk.send_update_by(writes, conn, NOTES, ("id",), [{"id": 1, "body": "changed"},
                                                                      {"id": 99, "body": "nobody"}])
    assert (first.rowcount, again.rowcount, changed.rowcount) == (5, 3, 1)
    assert _count(db) == 8
    with db.read() as conn:
        assert conn.execute(sa.select(NOTES.c.body).where(NOTES.c.id == 1)).scalar_one() == "changed"


def test_a_statement_run_meanwhile_sees_the_writes_sent_before_it(db) -> None:
    with db.begin() as conn, pipeline.writes(conn) as writes:
        bulk.send_insert_new(writes, conn, NOTES, _rows(4), "id")
        seen = conn.execute(sa.select(sa.func.count()).select_from(NOTES)).scalar_one()
        bulk.send_insert_new(writes, conn, NOTES, _rows(2, start=4), "id")
        later = conn.execute(sa.select(NOTES.c.id).order_by(NOTES.c.id)).scalars().all()
    assert seen == 4
    assert later == list(range(6))


def test_an_error_raises_and_rolls_back_everything_of_the_transaction(db) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        with db.begin() as conn, pipeline.writes(conn) as writes:
            bulk.send_insert_new(writes, conn, NOTES, _rows(3), "id")
            writes.execute(*_plain_insert(conn, 1))  # no ON CONFLICT: the key is taken
            bulk.send_insert_new(writes, conn, NOTES, _rows(3, start=10), "id")
    assert _count(db) == 0
    bulk_then = _rows(2)
    with db.begin() as conn:  # the connection went back to the pool usable
        assert bulk.insert_new(db, conn, NOTES, bulk_then, "id") == 2


def test_an_error_of_this_process_rolls_the_sent_writes_back(db) -> None:
    with pytest.raises(RuntimeError, match="midway"):
        with db.begin() as conn, pipeline.writes(conn) as writes:
            bulk.send_insert_new(writes, conn, NOTES, _rows(3), "id")
            raise RuntimeError("midway")
    assert _count(db) == 0


def test_listeners_see_the_statements_sent(db) -> None:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement.split()[0])

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.begin() as conn, pipeline.writes(conn) as writes:
            bulk.send_insert_new(writes, conn, NOTES, _rows(2), "id")
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert "INSERT" in seen


def test_on_postgresql_a_write_is_sent_without_waiting_for_the_server(db) -> None:
    """The write waits on a lock another connection holds, and this test goes on meanwhile: it sees
    the server's backend waiting for that lock, then lets go of it, and the write goes through.
    (Were ``execute`` waiting for the server, it would only return once the lock timeout ended the
    write with an error.)"""
    if db.is_sqlite:
        pytest.skip("SQLite runs each write at once")
    with db.engine.connect() as holder, db.begin() as conn:
        holder.exec_driver_sql("LOCK TABLE pipeline_notes IN EXCLUSIVE MODE")
        conn.exec_driver_sql("SET LOCAL lock_timeout = '30s'")
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with pipeline.writes(conn) as writes:
            sent = bulk.send_insert_new(writes, conn, NOTES, _rows(3), "id")
            waits = None
            for _ in range(200):
                waits = holder.exec_driver_sql("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                               (backend,)).scalar_one()
                if waits == "Lock":
                    break
                time.sleep(0.05)
            holder.rollback()  # lets go of the lock
        assert waits == "Lock"
        assert sent.rowcount == 3
    assert _count(db) == 3


def _plain_insert(conn, key: int) -> tuple[str, Any]:
    if conn.dialect.name == "sqlite":
        return "INSERT INTO pipeline_notes (id, body) VALUES (?, ?)", (key, "again")
    return "INSERT INTO pipeline_notes (id, body) VALUES (%s, %s)", (key, "again")


def test_a_query_sent_ahead_answers_after_the_writes_sent_before_it(db) -> None:
    count = sa.select(sa.func.count()).select_from(NOTES)
    with db.begin() as conn, pipeline.writes(conn) as writes:
        bulk.send_insert_new(writes, conn, NOTES, _rows(3), "id")
        first = writes.query(count)
        bulk.send_insert_new(writes, conn, NOTES, _rows(2, start=3), "id")
        second = writes.query(sa.select(NOTES.c.id).where(NOTES.c.id.in_([1, 4, 7])).order_by(NOTES.c.id))
        assert first.rows() == [(3,)]
        assert second.rows() == [(1,), (4,)]
