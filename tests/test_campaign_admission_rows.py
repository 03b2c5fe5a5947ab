"""How a round of admission finds the recipients it records: on SQLite by rowid, guarded by the
recipient's key (by the key alone each one cost a random page of the key's index); on PostgreSQL by
key."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select

from connectzap.core.campaigns import Action, engine
from connectzap.core.store import bulk
from connectzap.core.store.schema import campaign_recipients as recipients

from tests.test_campaigns import NUMBERS, campaign_with, grant


def _started(app, numbers: list[str]) -> str:
    for phone in numbers:
        grant(app, phone)
    made = campaign_with(app, numbers)
    app.campaigns.control(made.id, Action.START)
    return made.id


def _outcomes(app, campaign_id: str) -> dict[str, tuple[str, str | None, int]]:
    with app.db.read() as conn:
        return {r.contact_key: (r.outcome, r.message_id, r.attempt) for r in conn.execute(
            select(recipients).where(recipients.c.campaign_id == campaign_id))}


def test_a_round_records_its_recipients_by_rowid_on_sqlite_and_by_key_on_postgresql(app) -> None:
    campaign_id = _started(app, NUMBERS[:3])
    updates: list[tuple[str, Any]] = []

    def record(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        if statement.startswith("UPDATE campaign_recipients") and "message_id" in statement.split("WHERE")[0]:
            updates.append((statement, parameters))

    event.listen(app.db.engine, "before_cursor_execute", record)
    try:
        assert app.campaigns.run_once()
    finally:
        event.remove(app.db.engine, "before_cursor_execute", record)

    assert len(updates) == 1  # one statement for the round, found the first time
    statement, parameters = updates[0]
    outcomes = _outcomes(app, campaign_id)
    assert {o for o, _, _ in outcomes.values()} == {"queued"} and len(outcomes) == 3
    if app.db.is_sqlite:
        assert "rowid = ?" in statement and "contact_key = ?" in statement
        with app.db.read() as conn:
            plan = " ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters[0]))
        assert "INTEGER PRIMARY KEY" in plan and "autoindex" not in plan, plan
    else:
        assert "rowid" not in statement


def test_a_rowid_that_no_longer_names_its_recipient_is_recorded_by_key(app, monkeypatch) -> None:
    if not app.db.is_sqlite:
        pytest.skip("rowids are SQLite's")
    campaign_id = _started(app, NUMBERS[:3])
    due = engine._due

    def misplaced(*args: Any) -> list[Any]:
        rows = due(*args)
        if len(rows) != 3:  # not the round's: whether any recipient is left
            return rows
        # the first two swapped, the last one's rowid no row has: no guard holds for them
        places = [rows[1].place, rows[0].place, 10**9]
        return [row._replace(place=place) for row, place in zip(rows, places, strict=True)]

    monkeypatch.setattr(engine, "_due", misplaced)
    assert app.campaigns.run_once()
    outcomes = _outcomes(app, campaign_id)
    assert len(outcomes) == 3
    assert {o for o, _, _ in outcomes.values()} == {"queued"}
    assert {a for _, _, a in outcomes.values()} == {1}
    with app.db.read() as conn:
        queued = {r[0] for r in conn.exec_driver_sql("SELECT id FROM outbox WHERE status = 'queued'")}
    assert {m for _, m, _ in outcomes.values()} == queued  # each recipient holds its own message


def test_rowid_is_no_key_on_postgresql(app) -> None:
    if app.db.is_sqlite:
        pytest.skip("a PostgreSQL check")
    with app.db.begin() as conn, pytest.raises(ValueError, match="SQLite only"):
        bulk.update_by(app.db, conn, recipients, (bulk.ROWID,), [{bulk.ROWID: 1, "outcome": "queued"}])
