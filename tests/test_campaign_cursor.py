"""A campaign's cursor (migration 0032): each round of admission starts after the last recipient the
previous round read, instead of stepping from the campaign's start over an index entry for every
recipient admitted before (PostgreSQL keeps those until it vacuums). Recipients made to wait again
move the cursor back before them, so none is ever left behind it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select, update

from connectzap.core.campaigns import Action, engine
from connectzap.core.clock import use_clock
from connectzap.core.store.schema import campaign_recipients as recipients
from connectzap.core.store.schema import campaigns
from connectzap.testing import FakeWhatsApp, run

from tests.test_campaign_limits import Clock
from tests.test_campaigns import NUMBERS, campaign_with, grant

FAR = 10 * 365 * 86400.0
"""A cursor this far ahead stands for any cursor a recipient made to wait again would sort before."""


def _cursor(app, campaign_id: str) -> tuple[float, int]:
    with app.db.read() as conn:
        row = conn.execute(select(campaigns.c.cursor_due_at, campaigns.c.cursor_line)
                           .where(campaigns.c.id == campaign_id)).one()
    return row.cursor_due_at, row.cursor_line


def _set_cursor(app, campaign_id: str, due_at: float) -> None:
    with app.db.begin() as conn:
        conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(cursor_due_at=due_at))


def _outcomes(app, campaign_id: str) -> list[tuple[str, int]]:
    with app.db.read() as conn:
        return sorted((r.outcome, r.attempt) for r in conn.execute(
            select(recipients.c.outcome, recipients.c.attempt).where(recipients.c.campaign_id == campaign_id)))


def _plan(conn: Any, statement: str, parameters: Any) -> str:
    if conn.dialect.name == "sqlite":
        return " ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a small table: read whole otherwise
    return " ".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))


def test_each_round_starts_in_the_index_after_the_last_recipient_read(app, monkeypatch) -> None:
    monkeypatch.setattr(engine, "BATCH", 3)
    for phone in NUMBERS[:7]:
        grant(app, phone)
    made = campaign_with(app, NUMBERS[:7])
    app.campaigns.control(made.id, Action.START)
    assert _cursor(app, made.id) == (-1, -1)
    due: list[tuple[str, Any]] = []

    def record(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        if statement.lstrip().startswith("SELECT") and "campaign_recipients.due_at <=" in statement:
            due.append((statement, parameters))

    event.listen(app.db.engine, "before_cursor_execute", record)
    try:
        assert app.campaigns.run_once()
        with app.db.read() as conn:
            lines = sorted(r[0] for r in conn.execute(select(recipients.c.line).where(
                recipients.c.campaign_id == made.id, recipients.c.outcome == "queued")))
        assert len(lines) == 3
        assert _cursor(app, made.id) == (0.0, lines[-1])
        assert app.campaigns.run_once()
    finally:
        event.remove(app.db.engine, "before_cursor_execute", record)
    assert _outcomes(app, made.id) == [("pending", 0)] + [("queued", 1)] * 6
    assert due
    with app.db.begin() as conn:
        for statement, parameters in due:
            plan = _plan(conn, statement, parameters)
            assert "ix_campaign_recipients_due" in plan, plan
            # the cursor bounds the index search itself, not a filter over what it read
            bound = "(due_at,line)>(?,?)" if conn.dialect.name == "sqlite" else "ROW(due_at, line) >"
            assert bound in plan.replace("campaign_recipients.", ""), plan


def test_recipients_taken_back_by_a_pause_are_admitted_again_whatever_the_cursor(app) -> None:
    for phone in NUMBERS[:2]:
        grant(app, phone)
    made = campaign_with(app, NUMBERS[:2])
    app.campaigns.control(made.id, Action.START)
    assert app.campaigns.run_once()
    assert _outcomes(app, made.id) == [("queued", 1)] * 2
    _set_cursor(app, made.id, engine.now() + FAR)  # as if a round had read recipients due far later
    app.campaigns.control(made.id, Action.PAUSE)
    assert _outcomes(app, made.id) == [("pending", 1)] * 2
    assert _cursor(app, made.id)[0] <= engine.now()
    app.campaigns.control(made.id, Action.RESUME)
    assert app.campaigns.run_once()
    assert _outcomes(app, made.id) == [("queued", 2)] * 2
    assert app.campaigns.get(made.id).state == "running"


def test_a_recipient_deferred_by_its_per_user_limit_is_admitted_again_whatever_the_cursor(app) -> None:
    fake = FakeWhatsApp()
    app.use_channel(fake)
    grant(app, NUMBERS[0])
    clock = Clock(datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    with use_clock(clock):
        made = campaign_with(app, NUMBERS[:1])
        fake.fail_next("marketing_limited", times=1)
        app.campaigns.control(made.id, Action.START)
        assert app.campaigns.run_once()  # admitted, not sent yet
        _set_cursor(app, made.id, clock() + FAR)
        run(app)
        assert len(fake.attempts) == 1
        assert _outcomes(app, made.id) == [("deferred", 1)]
        assert _cursor(app, made.id) == (clock() + engine.BACKOFFS[0], -1)
        clock.t += engine.BACKOFFS[0]
        run(app)
        assert len(fake.attempts) == 2
        assert app.campaigns.results(made.id)[0]["outcome"] in ("sent", "delivered")


@pytest.mark.parametrize("consented", [True, False], ids=["the last admitted", "the last refused"])
def test_a_campaign_finishes_once_nobody_waits_behind_the_cursor_or_in_the_outbox(app, consented) -> None:
    fake = FakeWhatsApp()
    app.use_channel(fake)
    grant(app, NUMBERS[0], granted=consented)
    made = campaign_with(app, NUMBERS[:1])
    app.campaigns.control(made.id, Action.START)
    run(app)
    assert app.campaigns.get(made.id).state == "finished"
    [(outcome, attempt)] = _outcomes(app, made.id)
    assert attempt == 1
    assert outcome in (("sent", "delivered") if consented else ("refused",))
