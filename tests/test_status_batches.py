"""Status reports applied in batches give exactly what applying them one by one gives; on
PostgreSQL a status applied while another worker applies one of the same message never moves it
backwards (the read-modify-write holds the row)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, select, text

from connectzap import Category, Connectzap, ConsentChange, Outgoing, TemplateContent
from connectzap.core.store import outbox
from connectzap.core.store.schema import outbox as outbox_table
from connectzap.testing import seed_template
from conftest import NO_PG_REASON, PG_URL

MESSAGES = 4
KEPT = ("id", "status", "wamid", "error_code", "error_details", "reason", "claimed_by", "recipient", "content")


def admitted(app: Connectzap, count: int) -> list[str]:
    seed_template(app, "order_confirmation", "Hi {{1}}")
    phones = [f"+491511234{n:04d}" for n in range(count)]
    for phone in phones:
        app.set_consent(ConsentChange(phone=phone, category=Category.UTILITY, granted=True, source="t"))
    return [d.id for d in app.send_many([Outgoing(to=phone, content=TemplateContent(
        name="order_confirmation", language="en", body=[str(n)])) for n, phone in enumerate(phones)])]


starts = st.lists(st.tuples(st.sampled_from(["queued", "sending", "unknown", "accepted", "sent", "failed"]),
                            st.booleans()), min_size=MESSAGES, max_size=MESSAGES)
reports = st.lists(st.tuples(
    st.integers(0, MESSAGES),  # MESSAGES: a wamid that is nobody's
    st.sampled_from(["sent", "delivered", "read", "played", "failed"]),
    st.sampled_from([None, "131026"]),
    st.booleans(),  # the report names our own id too (biz_opaque_callback_data)
), max_size=14)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=starts, steps=reports)
def test_a_batch_of_statuses_ends_where_one_by_one_ends(app: Connectzap, start: list[tuple[str, bool]],
                                                        steps: list[tuple[int, str, str | None, bool]]) -> None:
    ids = getattr(app, "_status_test_ids", None) or admitted(app, MESSAGES)
    app._status_test_ids = ids  # type: ignore[attr-defined]  # admitted once for every example
    batch = [outbox.StatusReport(f"wamid.{n}", status, code, "error details" if code else None,
                                 ids[n] if n < MESSAGES and by_id else None, "template_paused" if code else None)
             for n, status, code, by_id in steps]

    def run(apply: Any) -> tuple[list[Any], list[dict[str, Any]]]:
        with app.db.engine.connect() as conn, conn.begin() as tx:
            for message_id, (status, knows_wamid) in zip(ids, start, strict=True):
                conn.execute(outbox_table.update().where(outbox_table.c.id == message_id).values(
                    status=status, wamid=f"wamid.{ids.index(message_id)}" if knows_wamid else None,
                    error_code=None, error_details=None))
            befores = apply(conn)
            rows = [{k: row[k] for k in KEPT} for row in (dict(r._mapping) for r in conn.execute(
                select(outbox_table).where(outbox_table.c.id.in_(ids)).order_by(outbox_table.c.id)))]
            tx.rollback()
        return [b and {k: b[k] for k in KEPT} for b in befores], rows

    def one_by_one(conn: Connection) -> list[Any]:
        return [outbox.apply_status(conn, r.wamid, r.status, r.error_code, r.error_details, r.outbox_id, r.reason)
                for r in batch]

    assert run(lambda conn: outbox.apply_statuses(conn, batch)) == run(one_by_one)


def test_a_batch_applies_the_documented_rule(app: Connectzap) -> None:
    """Not only equal to one by one: the rule itself (never backwards; delivered outranks failed
    whichever comes first; an unknown wamid found by our own id learns its wamid)."""
    a, b, c = admitted(app, 3)
    with app.db.begin() as conn:
        befores = outbox.apply_statuses(conn, [
            outbox.StatusReport("wamid.a", "read", outbox_id=a), outbox.StatusReport("wamid.a", "sent"),
            outbox.StatusReport("wamid.b", "failed", "131026", "undeliverable", outbox_id=b),
            outbox.StatusReport("wamid.b", "delivered"),
            outbox.StatusReport("wamid.x", "read")])
        rows = {r.id: r for r in conn.execute(select(outbox_table))}
    assert [x and x["status"] for x in befores] == ["queued", "read", "queued", "failed", None]
    assert (rows[a].status, rows[a].wamid) == ("read", "wamid.a")
    assert (rows[b].status, rows[b].error_code, rows[b].error_details) == ("delivered", "131026", "undeliverable")
    assert rows[c].status == "queued"


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason=NO_PG_REASON)
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_concurrent_statuses_of_one_message_never_move_it_back(app: Connectzap) -> None:
    """Worker A applies ``read`` and has not committed; worker B applies ``delivered`` of the same
    message meanwhile. B must wait and then see ``read`` -- without the row lock it read ``queued``,
    waited only at its UPDATE, and wrote ``delivered`` over ``read`` once A committed."""
    (message_id,) = admitted(app, 1)
    report = outbox.StatusReport("wamid.1", "read", outbox_id=message_id)
    with app.db.begin() as conn:  # the message is known by its wamid
        outbox.apply_statuses(conn, [outbox.StatusReport("wamid.1", "sent", outbox_id=message_id)])
    first = app.db.engine.connect()
    first_tx = first.begin()
    outbox.apply_statuses(first, [report])
    pids: list[int] = []

    def second() -> None:
        with app.db.begin() as conn:
            pids.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            outbox.apply_statuses(conn, [outbox.StatusReport("wamid.1", "delivered")])

    thread = threading.Thread(target=second)
    thread.start()
    deadline = time.monotonic() + 30
    while not (pids and waiting_for_a_lock(app, pids[0])):  # B is blocked on A's row before A commits
        assert time.monotonic() < deadline, "the second worker never waited for the first"
        time.sleep(0.02)
    first_tx.commit()
    first.close()
    thread.join(30)
    assert app.message(message_id)["status"] == "read"


def waiting_for_a_lock(app: Connectzap, pid: int) -> bool:
    with app.db.read() as conn:  # a new transaction each time: pg_stat_activity is a snapshot per transaction
        return bool(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p "
                                      "AND wait_event_type = 'Lock'"), {"p": pid}).scalar_one())


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.sampled_from(["queued", "sending", "unknown", "accepted", "sent", "refused"]),
       statuses=st.lists(st.sampled_from(["sent", "delivered", "read", "played", "failed"]), unique=True),
       seed=st.randoms(use_true_random=False))
def test_where_a_message_ends_does_not_depend_on_the_order_its_statuses_came_in(
        app: Connectzap, start: str, statuses: list[str], seed: Any) -> None:
    """Why status events need no ordering key: applied in any order, a message's statuses leave it
    in the same status (one a message can get once each: Meta's webhooks are deduplicated by
    wamid and status). Only that each is applied atomically matters -- the row lock above."""
    ids = getattr(app, "_status_test_ids", None) or admitted(app, 1)
    app._status_test_ids = ids  # type: ignore[attr-defined]  # admitted once for every example
    shuffled = list(statuses)
    seed.shuffle(shuffled)

    def final(order: list[str]) -> str:
        with app.db.engine.connect() as conn, conn.begin() as tx:
            conn.execute(outbox_table.update().where(outbox_table.c.id == ids[0]).values(status=start, wamid="w"))
            for status in order:  # one call each, as separate batches would
                code = "131026" if status == "failed" else None
                outbox.apply_statuses(conn, [outbox.StatusReport("w", status, code)])
            row = conn.execute(select(outbox_table.c.status, outbox_table.c.error_code)
                               .where(outbox_table.c.id == ids[0])).one()
            tx.rollback()
        return f"{row.status} {row.error_code}"

    assert final(shuffled) == final(statuses)
