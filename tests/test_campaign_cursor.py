"""A campaign's cursor (migration 0032): each round of admission starts after the last recipient the
previous round read, instead of stepping from the campaign's start over an index entry for every
recipient admitted before (PostgreSQL keeps those until it vacuums). Recipients made to wait again
move the cursor back before them, so none is ever left behind it. The count of recipients waiting
in the outbox starts likewise at the first of them (migration 0033)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select, update

from connectzap.core.campaigns import Action, engine
from connectzap.core.clock import use_clock
from connectzap.core.store.schema import campaign_recipients as recipients
from connectzap.core.store.schema import campaigns, outbox
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


@contextmanager
def _statements(app, starting: str, holding: str) -> Iterator[list[tuple[str, Any]]]:
    """The statements run inside the block that start with ``starting`` and hold ``holding``."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        if statement.lstrip().startswith(starting) and holding in statement:
            seen.append((statement, parameters))

    event.listen(app.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(app.db.engine, "before_cursor_execute", record)


def _assert_searched_from_a_mark(app, statements: list[tuple[str, Any]]) -> None:
    """Each statement reads ``ix_campaign_recipients_due`` from a (due time, line) mark: the mark bounds
    the index search itself, not a filter over what it read."""
    assert statements
    with app.db.begin() as conn:
        for statement, parameters in statements:
            plan = _plan(conn, statement, parameters)
            assert "ix_campaign_recipients_due" in plan, plan
            bound = "(due_at,line)>(?,?)" if conn.dialect.name == "sqlite" else "ROW(due_at, line) >"
            assert bound in plan.replace("campaign_recipients.", ""), plan


def test_each_round_starts_in_the_index_after_the_last_recipient_read(app, monkeypatch) -> None:
    monkeypatch.setattr(engine, "BATCH", 3)
    for phone in NUMBERS[:7]:
        grant(app, phone)
    made = campaign_with(app, NUMBERS[:7])
    app.campaigns.control(made.id, Action.START)
    assert _cursor(app, made.id) == (-1, -1)
    with _statements(app, "SELECT", "campaign_recipients.due_at <=") as due:
        assert app.campaigns.run_once()
        with app.db.read() as conn:
            lines = sorted(r[0] for r in conn.execute(select(recipients.c.line).where(
                recipients.c.campaign_id == made.id, recipients.c.outcome == "queued")))
        assert len(lines) == 3
        assert _cursor(app, made.id) == (0.0, lines[-1])
        assert app.campaigns.run_once()
    assert _outcomes(app, made.id) == [("pending", 0)] + [("queued", 1)] * 6
    _assert_searched_from_a_mark(app, due)


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


# --- the count of recipients in the outbox starts at the first of them (migration 0033) -----------------

def _mark(app, campaign_id: str) -> tuple[float, int]:
    with app.db.read() as conn:
        row = conn.execute(select(campaigns.c.queued_from_due_at, campaigns.c.queued_from_line)
                           .where(campaigns.c.id == campaign_id)).one()
    return row.queued_from_due_at, row.queued_from_line


def _lines(app, campaign_id: str, outcome: str) -> list[int]:
    with app.db.read() as conn:
        return sorted(r[0] for r in conn.execute(select(recipients.c.line).where(
            recipients.c.campaign_id == campaign_id, recipients.c.outcome == outcome)))


def _message_becomes(app, campaign_id: str, line: int, status: str) -> None:
    """The outbox changes the status of the message of the recipient on ``line`` (as the sender would)."""
    with app.db.begin() as conn:
        message = conn.execute(select(recipients.c.message_id).where(
            recipients.c.campaign_id == campaign_id, recipients.c.line == line)).scalar_one()
        conn.execute(update(outbox).where(outbox.c.id == message).values(status=status, updated_at=engine.now() + 1))


def test_the_count_in_the_outbox_starts_at_the_first_recipient_there(app, monkeypatch) -> None:
    monkeypatch.setattr(engine, "BATCH", 2)
    for phone in NUMBERS[:5]:
        grant(app, phone)
    made = campaign_with(app, NUMBERS[:5])
    app.campaigns.control(made.id, Action.START)
    with _statements(app, "SELECT count(*)", "FROM campaign_recipients") as counts:
        assert app.campaigns.run_once()
        first, second = _lines(app, made.id, "queued")
        _message_becomes(app, made.id, first, "sent")
        assert app.campaigns.run_once()  # the first is followed out of the outbox; two more come in
        assert _lines(app, made.id, "queued") == [second, second + 1, second + 2]
        assert app.campaigns.run_once()
        assert _mark(app, made.id) == (0.0, second)  # the first one still in the outbox
    _assert_searched_from_a_mark(app, counts)


def test_a_recipient_back_in_the_outbox_before_the_mark_is_counted(app, monkeypatch) -> None:
    monkeypatch.setattr(engine, "BATCH", 1)
    monkeypatch.setattr(engine, "IN_FLIGHT", 3)
    for phone in NUMBERS[:4]:
        grant(app, phone)
    made = campaign_with(app, NUMBERS[:4])
    app.campaigns.control(made.id, Action.START)
    assert app.campaigns.run_once()
    [a] = _lines(app, made.id, "queued")
    _message_becomes(app, made.id, a, "sent")
    assert app.campaigns.run_once()  # a followed out; b admitted
    assert app.campaigns.run_once()  # c admitted; the count's mark now at b, after a
    assert _lines(app, made.id, "sent") == [a]
    b, c = _lines(app, made.id, "queued")
    assert _mark(app, made.id) == (0.0, b)
    _message_becomes(app, made.id, a, "unknown")  # handed over, then a crash: a waits in the outbox again
    app.campaigns.run_once()
    assert _lines(app, made.id, "queued") == [a, b, c]  # three wait: the cap, so d is not admitted
    assert _lines(app, made.id, "pending") == [c + 1]
