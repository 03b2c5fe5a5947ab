"""Group commit for the webhook edge: many concurrent deliveries, one transaction.

Each webhook request hands its parsed events to :meth:`JournalWriter.submit` and waits. One
writer thread takes everything that queued up while the previous transaction was committing,
journals it in a single transaction and only then answers every waiting request. Under load
the batches grow by themselves, so the cost of a commit (an fsync on PostgreSQL, the write lock
on SQLite) is shared by all the deliveries in the batch; at low load a batch is one request and
nothing waits for company.

A batch that fails is retried one request at a time, so one bad delivery cannot fail the
others; a request whose own transaction fails gets the exception (the edge answers 503 and the
sender delivers again later -- nothing acknowledged is lost).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
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
    loop: asyncio.AbstractEventLoop


_STOP = object()


class JournalWriter:
    """A single writer thread that journals queued deliveries in shared transactions."""

    def __init__(self, db: Database, *, max_batch_events: int = 2000) -> None:
        self.db = db
        self.max_batch_events = max_batch_events
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._closed = False
        self.batches = 0
        self.journaled = 0

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            self._closed = False
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="connectzap-journal-writer", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Journal everything already submitted, then stop the thread (blocks until it has)."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()
        # A request that slipped in behind the stop marker is told to come back, not left waiting.
        late: list[_Pending] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Pending):
                late.append(item)
        if late:
            gone = RetriableError("the service is shutting down", retry_after=5)
            self._answer(late, [None] * len(late), [gone] * len(late))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def waiting(self) -> int:
        """Submissions queued and not yet taken into a batch."""
        return self._queue.qsize()

    # --- the request side ----------------------------------------------------------------

    async def submit(self, events: list[Event]) -> list[Journaled]:
        """Journal ``events`` durably; returns once the transaction holding them committed.

        Raises :class:`RetriableError` (the edge answers 503) when the writer is not running.
        """
        if not events:
            return []
        if self._closed or not self.running:
            raise RetriableError("the journal writer is not running (shutting down, or the app's lifespan "
                                 "was not started)", retry_after=5)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Journaled]] = loop.create_future()
        self._queue.put(_Pending(events, future, loop))
        return await future

    # --- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            batch: list[_Pending] = []
            if first is _STOP:
                stopping = True
            else:
                batch.append(first)  # type: ignore[arg-type]
            size = sum(len(p.events) for p in batch)
            # Take whatever queued up while we were busy: that is the group in group commit.
            while size < self.max_batch_events:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    continue
                batch.append(item)  # type: ignore[arg-type]
                size += len(item.events)  # type: ignore[union-attr]
            if batch:
                self._commit(batch)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.db.engine.connect()
        return self._conn

    def _append(self, events: list[Event]) -> list[Journaled]:
        conn = self._connection()
        try:
            with conn.begin():
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

    def _commit(self, batch: list[_Pending]) -> None:
        everything = [e for p in batch for e in p.events]
        try:
            results = self._append(everything)
        except Exception as exc:  # noqa: BLE001 - fall back to one transaction per request
            if len(batch) == 1:
                log.exception("journal write failed")
                self._answer(batch, [None], [exc])
                return
            answers: list[list[Journaled] | None] = []
            errors: list[BaseException | None] = []
            for pending in batch:
                try:
                    answers.append(self._append(pending.events))
                    errors.append(None)
                except Exception as error:  # noqa: BLE001
                    log.exception("journal write failed")
                    answers.append(None)
                    errors.append(error)
            self._answer(batch, answers, errors)
            return
        self.batches += 1
        self.journaled += len(everything)
        split: list[list[Journaled] | None] = []
        start = 0
        for pending in batch:
            split.append(results[start:start + len(pending.events)])
            start += len(pending.events)
        self._answer(batch, split, [None] * len(batch))

    @staticmethod
    def _answer(batch: list[_Pending], answers: list[list[Journaled] | None],
                errors: list[BaseException | None]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, list[Journaled] | None,
                                                           BaseException | None]]] = {}
        for pending, answer, error in zip(batch, answers, errors, strict=True):
            by_loop.setdefault(pending.loop, []).append((pending, answer, error))
        for loop, items in by_loop.items():
            # One wake-up of the event loop per batch, not one per request.
            try:
                loop.call_soon_threadsafe(_resolve, items)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass


def _resolve(items: list[tuple[_Pending, list[Journaled] | None, BaseException | None]]) -> None:
    for pending, answer, error in items:
        if pending.future.done():  # the client went away; the events are journaled all the same
            continue
        if error is not None:
            pending.future.set_exception(error)
        else:
            pending.future.set_result(answer or [])

