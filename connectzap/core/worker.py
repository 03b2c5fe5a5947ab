"""A worker: the dispatcher, the sender lanes and the housekeeping chores, run together.

``serve`` runs one in process; ``connectzap worker`` runs more, on this or other machines.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from typing import TYPE_CHECKING, Any

from . import arbitration, conversations
from .bookkeeping import Bookkeeping
from .dispatcher import Dispatcher
from .hooks import delivery_targets
from .sender import Sender
from .store import journal, outbox, plugin_state
from .store.database import now
from .store.schema import workers

if TYPE_CHECKING:
    from .app import Connectzap

log = logging.getLogger("connectzap.worker")
CAMPAIGN_ROUND_SECONDS = 1.0
LANE_CHECK_SECONDS = 1.0
"""How often the worker matches its send lanes to the count the sender wants (:mod:`.lanes`)."""


class Worker:
    """One worker: a dispatcher loop and sender loops sharing an engine."""

    def __init__(self, app: Connectzap, *, worker_id: str | None = None) -> None:
        self.app = app
        self.db = app.db
        self.cfg = app.settings.workers
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.bookkeeping = Bookkeeping(app.db, app.secret, self.has_targets, lambda: app.business_accounts,
                                       app.settings.replies, app.settings.fallback.codes,
                                       app.settings.privacy.retention_hours * 3600, app.configured)
        self.dispatcher = Dispatcher(app, self.id, self.bookkeeping)
        self.sender = Sender(app, self.id, self.bookkeeping, self.has_targets)

    def has_targets(self, kind: str) -> bool:
        return bool(delivery_targets(kind, self.app.connectors.values()))

    def dispatch_lanes(self) -> int:
        """How many dispatch loops :meth:`run` keeps going (``workers.dispatch_lanes``; unset: 2 on
        PostgreSQL, where one loop's claim overlaps the other's hooks and commits, 1 on SQLite)."""
        if self.cfg.dispatch_lanes is not None:
            return self.cfg.dispatch_lanes
        return 1 if self.db.is_sqlite else 2

    async def dispatch_once(self) -> int:
        """Handle one claimed batch of events."""
        return await self.dispatcher.dispatch_once()

    async def send_once(self) -> int:
        """Send one claimed batch of messages."""
        return await self.sender.send_once()

    async def recover_once(self) -> int:
        """Settle messages a dead worker left mid-send."""
        return await self.sender.recover_once()

    async def campaigns_once(self) -> int:
        """One round of the campaign engine: start, follow, admit, finish."""
        return await asyncio.to_thread(self.app.campaigns.run_once)

    async def _campaigns_step(self) -> int:
        """The campaign engine in the worker loop: at most one round a second however busy it is
        (admission hands the work to the sender, which does the pacing)."""
        await self.campaigns_once()
        await asyncio.sleep(CAMPAIGN_ROUND_SECONDS)
        return 0

    # --- housekeeping and loops ------------------------------------------------------------

    def housekeeping(self) -> None:
        """Erase expired payloads, beat the heart, and (SQLite) checkpoint the WAL so erased data
        does not stay in it (docs/privacy.md). Runs at start, every few seconds, and on leaving."""
        self._housekeep()
        self.db.checkpoint()

    def _housekeep(self) -> None:
        with self.db.begin() as conn:
            journal.erase_expired(conn)
            outbox.erase_expired(conn)
            conversations.erase_expired(conn)
            plugin_state.erase_expired(conn)
            arbitration.expire_held(conn, self.app.settings.automation.stale_after_minutes * 60)
            t = now()
            beat = conn.execute(workers.update().where(workers.c.id == self.id).values(heartbeat_at=t))
            if not beat.rowcount:
                conn.execute(workers.insert().values(id=self.id, kind="worker", pid=os.getpid(), started_at=t,
                                                     heartbeat_at=t))

    def _goodbye(self) -> None:
        with self.db.begin() as conn:
            conn.execute(workers.delete().where(workers.c.id == self.id))
        self.db.checkpoint()

    async def run_until_idle(self, max_rounds: int = 1000) -> None:
        """Work until nothing is due (tests, ``simulate``). Retries scheduled later are left alone."""
        for _ in range(max_rounds):
            done = await self.dispatch_once()
            done += await self.send_once()
            done += await self.recover_once()
            done += await self.campaigns_once()
            if done == 0:
                return
        raise RuntimeError("run_until_idle: still busy after max_rounds")

    async def run(self, stop: asyncio.Event, *, dispatch: bool = True, send: bool = True) -> None:
        """Run until ``stop`` is set; then finish what is in hand (graceful drain) and leave."""
        await asyncio.to_thread(self.housekeeping)

        async def loop(step: Any, full: Any = lambda: self.cfg.batch_size, more: Any = lambda: True) -> None:
            while not stop.is_set() and more():
                try:
                    busy = await step()
                except Exception:
                    log.exception("worker step failed; retrying")
                    busy = 0
                if busy < full():
                    # Caught up: let work gather until the next poll instead of taking the write
                    # lock again for one or two rows (on SQLite each claim is a write transaction).
                    try:
                        await asyncio.wait_for(stop.wait(), self.cfg.poll_interval_seconds)
                    except TimeoutError:
                        pass

        lanes: list[asyncio.Task[None]] = []

        def lane(index: int) -> asyncio.Task[None]:
            # a lane past the wanted count ends after its round (the count follows the latency)
            return asyncio.create_task(loop(self.send_once, self.sender.claim_size,
                                            lambda: index < self.sender.lanes()))

        async def size_lanes() -> int:
            """Start lanes up to the count the sender wants; a finished lane's place is taken again."""
            for index in range(self.sender.lanes()):
                if index >= len(lanes):
                    lanes.append(lane(index))
                elif lanes[index].done():
                    lanes[index] = lane(index)
            await asyncio.sleep(LANE_CHECK_SECONDS)
            return 0

        async def chores() -> int:
            await asyncio.to_thread(self.housekeeping)
            await self.recover_once()
            await asyncio.sleep(5)
            return 1

        tasks = []
        if dispatch:
            tasks += [asyncio.create_task(loop(self.dispatch_once)) for _ in range(self.dispatch_lanes())]
        if send:
            tasks.append(asyncio.create_task(loop(size_lanes, full=lambda: 0)))
        if dispatch:
            tasks += [asyncio.create_task(c.background(stop)) for c in self.app.connectors.values()]
            tasks.append(asyncio.create_task(loop(self._campaigns_step)))
        tasks.append(asyncio.create_task(loop(chores)))
        await stop.wait()
        tasks[-1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*lanes, return_exceptions=True)  # each finishes the round in hand
        await asyncio.to_thread(self._goodbye)


