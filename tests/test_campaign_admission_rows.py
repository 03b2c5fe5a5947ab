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
from connectzap.core.store.schema import outbox

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


def test_a_key_taken_already_is_recorded_with_the_message_that_holds_it(app, monkeypatch) -> None:
    """Only a round retried after its first commit went through finds its keys taken: the recipient
    then answers for the message stored first, also when its round's writes were sent ahead in parts."""
    monkeypatch.setattr(engine, "PART", 2)  # three recipients: the last one in a second part
    campaign_id = _started(app, NUMBERS[:3])
    with app.db.read() as conn:
        last = conn.execute(select(recipients).where(recipients.c.campaign_id == campaign_id)
                            .order_by(recipients.c.line.desc()).limit(1)).one()
    key = engine.idempotency_key(campaign_id, last.line, last.contact_key, last.attempt)
    with app.db.begin() as conn:
        conn.execute(outbox.insert().values(
            id="mearlier", idempotency_key=key, request_hash="-", contact_key=last.contact_key, category="marketing",
            content_type="template", status="queued", next_attempt_at=0.0, created_at=0.0, updated_at=0.0,
            cancel_key=engine.cancel_key(campaign_id)))

    assert app.campaigns.run_once()

    outcomes = _outcomes(app, campaign_id)
    assert outcomes[last.contact_key] == ("queued", "mearlier", 1)
    with app.db.read() as conn:
        held = conn.execute(select(outbox.c.id).where(outbox.c.idempotency_key == key)).scalars().all()
        queued = set(conn.execute(select(outbox.c.id).where(outbox.c.status == "queued")).scalars())
    assert held == ["mearlier"]
    assert {m for _, m, _ in outcomes.values()} == queued and len(queued) == 3


def test_a_round_is_written_in_parts_each_sent_ahead_on_postgresql(app, monkeypatch) -> None:
    """While this process builds a part of the round, PostgreSQL writes the one before (pipeline mode);
    the contacts' consents are asked for first, read while the round is split."""
    monkeypatch.setattr(engine, "PART", 2)
    campaign_id = _started(app, NUMBERS[:5])
    writes: list[tuple[str, bool]] = []

    def record(conn: Any, _cursor: object, statement: str, *_: object) -> None:
        table = {"INSERT INTO outbox": "outbox", "UPDATE campaign_recipients AS t": "recipients",
                 "SELECT consents.contact_key": "consents"}
        kind = next((name for start, name in table.items() if statement.startswith(start)), None)
        if kind:
            driver = conn.connection.driver_connection
            writes.append((kind, not app.db.is_sqlite and driver.pgconn.pipeline_status != 0))

    event.listen(app.db.engine, "before_cursor_execute", record)
    try:
        assert app.campaigns.run_once()
    finally:
        event.remove(app.db.engine, "before_cursor_execute", record)

    assert [kind for kind, _ in writes if kind == "outbox"] == ["outbox"] * 3  # parts of 2, 2 and 1
    if not app.db.is_sqlite:
        assert writes == [("consents", True)] + [("outbox", True), ("recipients", True)] * 3
    assert {o for o, _, _ in _outcomes(app, campaign_id).values()} == {"queued"}
