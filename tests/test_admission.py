"""Admission under concurrency: one key gives one message even when two transactions race for it,
and SQLite writers in one process take turns instead of starving each other."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text

from connectzap import Category, ConsentChange, Outgoing, TemplateContent
from connectzap.core import gate
from connectzap.core.errors import ConflictError
from connectzap.core.store.database import FairLock
from connectzap.core.store.schema import outbox
from connectzap.testing import seed_template

PHONE = "+4915112345678"


def prepare(app: Any) -> None:
    seed_template(app, "shipped", "Order {{1}} shipped")
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="t", proof="p"))


def shipped(order: str) -> Outgoing:
    return Outgoing(to=PHONE, content=TemplateContent(name="shipped", language="en", body=[order]))


def wait_for(condition: Callable[[], bool], what: str, *, while_alive: threading.Thread) -> None:
    """Poll ``condition`` for as long as ``while_alive`` -- the thread that must bring it about -- runs.
    No deadline: a slow machine only makes this slower; a thread that ends without it is the failure."""
    while not condition():
        if not while_alive.is_alive():
            raise AssertionError(f"{what}: never happened ({while_alive.name} ended first)")
        time.sleep(0.01)


def second_is_waiting(app: Any) -> Callable[[], bool]:
    """True once the second admission is blocked behind the first transaction."""
    if app.db.is_sqlite:
        return lambda: len(app.db._writers._queue) == 1
    def blocked_on_a_lock() -> bool:
        with app.db.engine.connect() as conn:
            return bool(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                          "AND datname = current_database()")).scalar_one())
    return blocked_on_a_lock


def race(app: Any, first: Outgoing, second: Outgoing, *, strict: bool) -> dict[str, Any]:
    """Admit ``first`` under key k in a transaction held open until ``second``, admitted under the same
    key by another thread, is waiting for it; then commit and let the second finish."""
    results: dict[str, Any] = {}
    admitted = threading.Event()
    release = threading.Event()

    def hold_first() -> None:
        try:
            with app.db.begin() as conn:
                results["first"] = gate.admit(app.db, conn, app.secret, first, idempotency_key="api:k")
                admitted.set()
                release.wait()
        finally:
            admitted.set()  # even when it failed: the second must not wait for ever

    def then_second() -> None:
        admitted.wait()
        if "first" not in results:
            return
        try:
            results["second"] = app.send(second, idempotency_key="k", strict_key=strict)
        except ConflictError as exc:
            results["second"] = exc

    holder = threading.Thread(target=hold_first, name="the first admission")
    follower = threading.Thread(target=then_second, name="the second admission")
    for thread in (holder, follower):
        thread.start()
    try:
        wait_for(admitted.is_set, "the first admission", while_alive=holder)
        wait_for(second_is_waiting(app), "the second admission waiting for the first", while_alive=follower)
    finally:
        release.set()
        for thread in (holder, follower):
            thread.join()
    return results


def rows_for_key(app: Any) -> int:
    with app.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(outbox)
                                .where(outbox.c.idempotency_key == "api:k")).scalar_one())


def test_two_transactions_admitting_one_key_get_one_message(app):  # type: ignore[no-untyped-def]
    # On PostgreSQL the second transaction did not see the first's uncommitted row, so its insert
    # meets the unique key: it must answer with the first message, not fail.
    prepare(app)
    results = race(app, shipped("1"), shipped("1"), strict=True)
    assert results["second"].id == results["first"].id
    assert results["second"].duplicate and not results["first"].duplicate
    assert rows_for_key(app) == 1


def test_a_racing_key_reused_for_another_message_is_a_conflict(app):  # type: ignore[no-untyped-def]
    prepare(app)
    results = race(app, shipped("1"), shipped("2"), strict=True)
    assert isinstance(results["second"], ConflictError)
    assert rows_for_key(app) == 1


def test_a_repeated_key_within_one_batch_is_one_message(app):  # type: ignore[no-untyped-def]
    prepare(app)
    keyed = shipped("1").model_copy(update={"idempotency_key": "k"})
    first, again, other = app.send_many([keyed, keyed, shipped("2")])
    assert again.id == first.id and again.duplicate and not first.duplicate
    assert other.id != first.id
    assert len(app.messages(limit=10)) == 2


def test_the_strict_key_check_covers_repeats_within_one_batch(app):  # type: ignore[no-untyped-def]
    prepare(app)
    admissions = [gate.Admission(shipped("1"), "api:k"), gate.Admission(shipped("2"), "api:k")]
    with pytest.raises(ConflictError), app.db.begin() as conn:
        gate.admit_many(app.db, conn, app.secret, admissions, strict_key=True)
    assert app.messages(limit=10) == []  # the whole batch was rolled back


def test_clean_parameters_are_kept_as_they_are_and_messy_ones_are_cleaned():
    clean = TemplateContent(name="shipped", language="en", body=["Order 1"])
    assert gate.clean_template(clean) is clean
    messy = TemplateContent(name="shipped", language="en", body=["Order\n\t1"],
                            header={"type": "text", "text": " a     b "},
                            buttons=[{"sub_type": "quick_reply", "index": 0, "payload": "x\ny"}])
    cleaned = gate.clean_template(messy)
    assert cleaned.body[0].text == "Order 1"  # type: ignore[index, union-attr]
    assert cleaned.header is not None and cleaned.header.text == "a b"
    assert cleaned.buttons[0].payload == "x y"


# --- the in-process writer lock --------------------------------------------------------------

def test_fair_lock_hands_over_in_the_order_asked():
    lock = FairLock()
    order: list[int] = []
    lock.__enter__()
    threads = []
    for n in range(5):
        thread = threading.Thread(target=lambda n=n: (lock.__enter__(), order.append(n), lock.__exit__()),
                                  name=f"writer {n}")
        thread.start()
        wait_for(lambda n=n: len(lock._queue) == n + 1, f"thread {n} to queue", while_alive=thread)
        threads.append(thread)
    lock.__exit__()
    for thread in threads:
        thread.join()
    assert order == [0, 1, 2, 3, 4]


def test_a_writer_that_begins_again_at_once_does_not_starve_a_waiting_one():
    lock = FairLock()
    turns = 0
    stop = threading.Event()

    def greedy() -> None:  # a bulk admission: commit, begin again, commit, ...
        nonlocal turns
        while not stop.is_set():
            with lock:
                turns += 1
                time.sleep(0.001)

    thread = threading.Thread(target=greedy, name="the greedy writer")
    thread.start()
    try:
        waited = []
        for _ in range(20):
            start = turns
            wait_for(lambda start=start: turns > start + 1, "the greedy writer to take turns", while_alive=thread)
            asked_at = turns
            with lock:
                waited.append(turns - asked_at)
    finally:
        stop.set()
        thread.join()
    assert max(waited) <= 1  # at most the turn that was running when we asked


def test_fair_lock_is_reentrant_for_its_holder():
    lock = FairLock()
    with lock, lock:
        pass
    acquired = threading.Event()
    thread = threading.Thread(target=lambda: (lock.__enter__(), acquired.set(), lock.__exit__()))
    thread.start()
    thread.join()  # never returns if the nested exits left the lock held
    assert acquired.is_set()
