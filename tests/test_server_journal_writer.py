"""Group commit: deliveries that queue up while a transaction commits share the next one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from server_support import journaled, wait_until
from sqlalchemy import text

from connectzap.core.errors import RetriableError
from connectzap.core.http.journal_writer import JournalWriter
from connectzap.core.models import CancelRequest, Event, EventKind


def event(key: str) -> Event:
    return Event.of(EventKind.CANCEL, CancelRequest(cancel_key=key), source="test", dedupe_key=key)


class Unwritable(Event):
    """An event that cannot be serialised: its transaction fails."""

    def model_dump_json(self, **kwargs: Any) -> str:
        raise RuntimeError("cannot serialise")


async def test_deliveries_queued_behind_a_commit_share_one_transaction(app):
    writer = JournalWriter(app.db)
    writer.start()
    try:
        with app.db.engine.connect() as blocker:
            with blocker.begin():  # holds the write lock, so the writer's first commit waits
                if not app.db.is_sqlite:
                    blocker.execute(text("LOCK TABLE events IN EXCLUSIVE MODE"))
                first = asyncio.create_task(writer.submit([event("first")]))
                await asyncio.sleep(0)  # the task runs up to its wait: it is queued
                await wait_until(lambda: writer.waiting == 0 and not first.done())  # taken, blocked on the lock
                rest = [asyncio.create_task(writer.submit([event(f"e{i}"), event("shared")])) for i in range(10)]
                await wait_until(lambda: writer.waiting == 10)
            results = await asyncio.gather(first, *rest)
    finally:
        await writer.aclose()
    assert writer.batches == 2 and writer.journaled == 21
    assert [r.duplicate for r in results[0]] == [False]
    # Each request gets its own results back; "shared" is fresh only for the first request that had it.
    assert [[r.duplicate for r in answer] for answer in results[1:]] == [[False, False]] + [[False, True]] * 9
    assert journaled(app, "test") == 12


async def test_a_failing_delivery_does_not_fail_the_others_in_its_batch(app):
    writer = JournalWriter(app.db)
    bad = Unwritable.model_validate(event("bad").model_dump())
    writer.start()
    try:
        with app.db.engine.connect() as blocker:
            with blocker.begin():
                if not app.db.is_sqlite:
                    blocker.execute(text("LOCK TABLE events IN EXCLUSIVE MODE"))
                first = asyncio.create_task(writer.submit([event("before")]))
                await asyncio.sleep(0)
                await wait_until(lambda: writer.waiting == 0 and not first.done())
                good = asyncio.create_task(writer.submit([event("good")]))
                failing = asyncio.create_task(writer.submit([bad]))
                await wait_until(lambda: writer.waiting == 2)
        await first
        assert (await good)[0].duplicate is False
        with pytest.raises(RuntimeError, match="cannot serialise"):
            await failing
    finally:
        await writer.aclose()
    assert journaled(app, "test") == 2


async def test_a_writer_that_is_not_running_refuses_instead_of_hanging(app):
    writer = JournalWriter(app.db)
    with pytest.raises(RetriableError, match="not running"):
        await writer.submit([event("early")])
    writer.start()
    assert (await writer.submit([event("on-time")]))[0].duplicate is False
    await writer.aclose()
    with pytest.raises(RetriableError):
        await writer.submit([event("late")])
    assert journaled(app, "test") == 1
