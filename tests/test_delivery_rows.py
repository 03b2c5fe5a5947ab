"""Creating a batch's delivery rows (journal.ensure_and_read): every (event, target) row once, answered
as stored, whether some existed already or not; on PostgreSQL as one array per column, so the
statement's text does not grow with the batch (psycopg parses a statement of more than 50
parameters again on every execution)."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event

from connectzap.core.store import journal
from connectzap.core.store.schema import deliveries

TARGETS = ["core", "optin", "auto_replies", "connector:hubspot", "lead_welcome"]
batches = st.dictionaries(st.integers(1, 40), st.lists(st.sampled_from(TARGETS), min_size=1, unique=True),
                          min_size=1, max_size=12)
earlier = st.dictionaries(st.integers(1, 40), st.lists(st.sampled_from(TARGETS), min_size=1, unique=True),
                          max_size=6)


def test_each_delivery_row_is_created_once_and_answered_as_stored(make: Any) -> None:
    app = make()
    fresh = itertools.count(0, 100)  # each example its own event ids: the database is shared

    @settings(max_examples=40, deadline=None)
    @given(batch=batches, existing=earlier)
    def check(batch: dict[int, list[str]], existing: dict[int, list[str]]) -> None:
        base = next(fresh)
        batch = {base + k: v for k, v in batch.items()}
        existing = {base + k: v for k, v in existing.items()}
        with app.db.begin() as conn:
            journal.ensure_many(app.db, conn, existing)
            got = journal.ensure_and_read(app.db, conn, batch)
            stored = journal.deliveries_of_many(conn, list(batch))
        for event_id, targets in batch.items():
            rows = got[event_id]
            # every asked-for target's row once, as stored (rows of other targets an event had before
            # come along when any asked-for row existed already: the read-back path)
            assert sorted(r["target"] for r in rows if r["target"] in targets) == sorted(targets)
            assert all(r in stored[event_id] for r in rows)
            assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
            assert all(r["status"] == "pending" and r["attempts"] == 0 for r in rows)

    check()


def test_on_postgresql_the_insert_is_one_statement_text_whatever_the_batch(make: Any) -> None:
    app = make()
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO deliveries"):
            sent.append(statement)

    sa_event.listen(app.db.engine, "before_cursor_execute", record)
    ids = itertools.count(1)
    with app.db.begin() as conn:
        for size in (1, 30, 400):
            got = journal.ensure_and_read(app.db, conn, {next(ids): list(TARGETS) for _ in range(size)})
            assert sum(map(len, got.values())) == size * len(TARGETS)
    sa_event.remove(app.db.engine, "before_cursor_execute", record)
    if not app.db.is_sqlite:  # (SQLite's rows go in pages of SQLAlchemy's own size, as before)
        assert len(sent) == 3 and len(set(sent)) == 1


finishes = st.lists(st.tuples(st.integers(1, 12), st.sampled_from(TARGETS), st.one_of(
    st.none(), st.integers(), st.text(max_size=20), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))),
    max_size=20)


def test_finishing_deliveries_marks_exactly_the_named_ones_done_once(make: Any) -> None:
    """journal.finish_each: every named (event, target) row is done with its result, one attempt more
    and no error; every other row is untouched -- on PostgreSQL as arrays, on SQLite row by row."""
    app = make()
    fresh = itertools.count(0, 100)
    sent: list[str] = []
    sa_event.listen(app.db.engine, "before_cursor_execute",
                    lambda _c, _k, statement, *_: sent.append(statement) if "deliveries" in statement else None)

    @settings(max_examples=40, deadline=None)
    @given(done=finishes)
    def check(done: list[tuple[int, str, Any]]) -> None:
        base = next(fresh)
        done = [(base + e, target, result) for e, target, result in done]
        with app.db.begin() as conn:
            journal.ensure_many(app.db, conn, {base + e: list(TARGETS) for e in range(1, 13)})
            conn.execute(deliveries.update().where(deliveries.c.event_id > base, deliveries.c.event_id <= base + 12)
                         .values(attempts=2, last_error="earlier"))
            journal.finish_each(conn, done)
            rows = journal.deliveries_of_many(conn, [base + e for e in range(1, 13)])
        finished: dict[tuple[int, str], list[Any]] = {}
        for event_id, target, result in done:
            finished.setdefault((event_id, target), []).append(result)
        for event_id, stored in rows.items():
            for row in stored:
                results = finished.get((event_id, row["target"]))
                if results is None:
                    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 2, "earlier")
                    continue
                assert row["status"] == "done" and row["last_error"] is None
                assert row["attempts"] == 2 + len(results)  # a pair named twice counts twice, as before
                assert json.loads(row["result"]) == json.loads(json.dumps(results[-1], default=str))

    check()
    if not app.db.is_sqlite:  # one statement text for every wave's size
        assert len({s for s in sent if s.startswith("UPDATE deliveries AS d")}) == 1
