"""Group commit for the webhook edge: many concurrent deliveries, one transaction.

Each webhook request hands its parsed events to :meth:`JournalWriter.submit` and waits. A
single writer task takes everything that queued up while the previous transaction was
committing and journals it in one transaction on a dedicated database thread; only when that
transaction committed are the waiting requests answered. Under load the batches grow by
themselves, so the cost of a commit (an fsync on PostgreSQL, the write lock on SQLite) is shared
by every delivery in the batch; at low load a batch is one request and nothing waits for company.
Requests queue on the event loop itself, so the only hand-over between threads is one per batch.

A batch that fails is retried one request at a time, so one bad delivery cannot fail the
others; a request whose own transaction fails gets the exception (the edge answers 503 and the
sender delivers again later -- nothing acknowledged is lost).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import RetriableError
from ..models import Event
from ..store import journal
from ..store.journal import Journaled

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ..store.database import Database

log = logging.getLogger("connectzap.journal_writer")


@dataclass
class _Pending:
    events: list[Event]
    future: asyncio.Future[list[Journaled]]


@dataclass
class _Outcome:
    results: list[Journaled] | None = None
    error: BaseException | None = None


class JournalWriter:
    """Journals queued deliveries in shared transactions. Start and stop it inside the event loop."""

    def __init__(self, db: Database, *, max_batch_events: int = 2000) -> None:
        self.db = db
        self.max_batch_events = max_batch_events
        self._pending: list[_Pending] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._conn: Connection | None = None
        self._closing = False
        self.batches = 0
        self.journaled = 0

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer task on the running event loop."""
        if self.running:
            return
        self._closing = False
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="connectzap-journal")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="connectzap-journal-writer")

    async def aclose(self) -> None:
        """Journal everything already submitted, then stop."""
        if self._task is None:
            return
        self._closing = True
        assert self._wakeup is not None and self._executor is not None
        self._wakeup.set()
        await self._task
        self._task = None
        executor, self._executor = self._executor, None
        await asyncio.get_running_loop().run_in_executor(executor, self._close_connection)
        executor.shutdown(wait=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    @property
    def waiting(self) -> int:
        """Submissions queued and not yet taken into a batch."""
        return len(self._pending)

    # --- the request side ----------------------------------------------------------------

    async def submit(self, events: list[Event]) -> list[Journaled]:
        """Journal ``events`` durably; returns once the transaction holding them committed.

        Raises :class:`RetriableError` (the edge answers 503) when the writer is not running.
        """
        if not events:
            return []
        if not self.running:
            raise RetriableError("the journal writer is not running (shutting down, or the app's lifespan "
                                 "was not started)", retry_after=5)
        future: asyncio.Future[list[Journaled]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(events, future))
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    # --- the writer task -------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                await self._wakeup.wait()
                self._wakeup.clear()
                continue
            batch = self._take()
            outcomes = await loop.run_in_executor(self._executor, self._commit, batch)
            for pending, outcome in zip(batch, outcomes, strict=True):
                if pending.future.done():  # the client went away; its events are journaled all the same
                    continue
                if outcome.error is not None:
                    pending.future.set_exception(outcome.error)
                else:
                    pending.future.set_result(outcome.results or [])

    def _take(self) -> list[_Pending]:
        """Everything that queued up while the last transaction ran (up to the batch limit)."""
        size = 0
        for count, pending in enumerate(self._pending):
            size += len(pending.events)
            if size > self.max_batch_events and count:
                batch, self._pending = self._pending[:count], self._pending[count:]
                return batch
        batch, self._pending = self._pending, []
        return batch

    # --- on the database thread --------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.db.engine.connect()
        return self._conn

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _append(self, events: list[Event]) -> list[Journaled]:
        conn = self._connection()
        try:
            with self.db.writing(), conn.begin():
                return journal.append(self.db, conn, events)
        except Exception:
            # The connection may be broken; the next transaction gets a fresh one.
            self._conn = None
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # noqa: BLE001 - already failing; the original error is what matters
                pass
            raise

    def _commit(self, batch: list[_Pending]) -> list[_Outcome]:
        everything = [e for p in batch for e in p.events]
        try:
            results = self._append(everything)
        except Exception as exc:
            if len(batch) == 1:
                log.exception("journal write failed")
                return [_Outcome(error=exc)]
            return [self._commit_one(p) for p in batch]
        self.batches += 1
        self.journaled += len(everything)
        outcomes = []
        start = 0
        for pending in batch:
            outcomes.append(_Outcome(results=results[start:start + len(pending.events)]))
            start += len(pending.events)
        return outcomes

    def _commit_one(self, pending: _Pending) -> _Outcome:
        try:
            results = self._append(pending.events)
        except Exception as exc:
            log.exception("journal write failed")
            return _Outcome(error=exc)
        self.batches += 1
        self.journaled += len(pending.events)
        return _Outcome(results=results)
