"""Group commit: many concurrent requests, one transaction.

Each request hands its items to :meth:`GroupCommit.submit` and waits. A single writer task takes
everything that queued up while the previous transaction was committing and writes it in one
transaction on a dedicated database thread; only when that transaction committed are the waiting
requests answered. Under load the groups grow by themselves, so the cost of a commit (an fsync on
PostgreSQL, the write lock on SQLite) is shared by every request in the group; at low load a group
is one request and nothing waits for company. Requests queue on the event loop itself, so the only
hand-over between threads is one per group.

A group that fails is retried one request at a time in its own transaction (the failed one rolled
back, so nothing of it stands), so one bad request cannot fail the others; a request whose own
transaction fails gets the exception. Subclasses say what one transaction writes (:meth:`_write`):
the webhook edge journals events (:mod:`.journal_writer`), ``POST /v1/messages`` admits messages
through the gate (:mod:`.admission_writer`).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from ..errors import RetriableError

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ..store.database import Database

log = logging.getLogger("connectzap.group_commit")

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass
class _Pending(Generic[ItemT, ResultT]):
    items: list[ItemT]
    future: asyncio.Future[list[ResultT]]


@dataclass
class _Outcome(Generic[ResultT]):
    results: list[ResultT] | None = None
    error: BaseException | None = None


class GroupCommit(Generic[ItemT, ResultT]):
    """Writes queued requests in shared transactions. Start and stop it inside the event loop."""

    what = "group commit"
    """Names the writer in its thread, its task and its errors."""

    def __init__(self, db: Database, *, max_group_items: int = 2000) -> None:
        self.db = db
        self.max_group_items = max_group_items
        self._pending: list[_Pending[ItemT, ResultT]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._conn: Connection | None = None
        self._closing = False
        self.batches = 0
        """Transactions committed."""
        self.written = 0
        """Items written by them."""

    def _write(self, conn: Connection, items: list[ItemT]) -> list[ResultT]:
        """Write ``items`` inside ``conn``'s transaction; one result per item, in order."""
        raise NotImplementedError

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer task on the running event loop."""
        if self.running:
            return
        self._closing = False
        self._wakeup = asyncio.Event()
        name = f"connectzap-{self.what.replace(' ', '-')}"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=name)

    async def aclose(self) -> None:
        """Write everything already submitted, then stop."""
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
        """Submissions queued and not yet taken into a group."""
        return len(self._pending)

    # --- the request side ----------------------------------------------------------------

    async def submit(self, items: list[ItemT]) -> list[ResultT]:
        """Write ``items`` durably; returns once the transaction holding them committed.

        Raises :class:`RetriableError` (answered 503) when the writer is not running.
        """
        if not items:
            return []
        if not self.running:
            raise RetriableError(f"the {self.what} writer is not running (shutting down, or the app's lifespan "
                                 "was not started)", retry_after=5)
        future: asyncio.Future[list[ResultT]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(items, future))
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
            group = self._take()
            outcomes = await loop.run_in_executor(self._executor, self._commit, group)
            for pending, outcome in zip(group, outcomes, strict=True):
                if pending.future.done():  # the client went away; its items are written all the same
                    continue
                if outcome.error is not None:
                    pending.future.set_exception(outcome.error)
                else:
                    pending.future.set_result(outcome.results or [])

    def _take(self) -> list[_Pending[ItemT, ResultT]]:
        """Everything that queued up while the last transaction ran (up to the group limit)."""
        size = 0
        for count, pending in enumerate(self._pending):
            size += len(pending.items)
            if size > self.max_group_items and count:
                group, self._pending = self._pending[:count], self._pending[count:]
                return group
        group, self._pending = self._pending, []
        return group

    # --- on the database thread --------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.db.engine.connect()
        return self._conn

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _transaction(self, items: list[ItemT]) -> list[ResultT]:
        conn = self._connection()
        try:
            with self.db.writing(), conn.begin():
                results = self._write(conn, items)
        except Exception:
            # The connection may be broken; the next transaction gets a fresh one.
            self._conn = None
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # noqa: BLE001 - already failing; the original error is what matters
                pass
            raise
        self.batches += 1
        self.written += len(items)
        return results

    def _commit(self, group: list[_Pending[ItemT, ResultT]]) -> list[_Outcome[ResultT]]:
        everything = [item for p in group for item in p.items]
        try:
            results = self._transaction(everything)
        except Exception as exc:
            if len(group) == 1:
                log.exception("%s writer: a transaction failed", self.what)
                return [_Outcome(error=exc)]
            return [self._commit_one(p) for p in group]
        outcomes = []
        start = 0
        for pending in group:
            outcomes.append(_Outcome(results=results[start:start + len(pending.items)]))
            start += len(pending.items)
        return outcomes

    def _commit_one(self, pending: _Pending[ItemT, ResultT]) -> _Outcome[ResultT]:
        try:
            return _Outcome(results=self._transaction(pending.items))
        except Exception as exc:
            log.exception("%s writer: a transaction failed", self.what)
            return _Outcome(error=exc)
