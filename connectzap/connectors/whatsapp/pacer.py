"""Send pacing that holds across every worker process sharing one database.

Three limits (``shared/research/whatsapp.md`` section 3):

* **Per business number**: at most ``messages_per_second`` (Meta: 80 by default, up to
  1,000; a coexistence number -- also used in the WhatsApp Business app -- a fixed 20, applied
  to the numbers configured as such and to those a coexistence webhook was seen for). The
  database keeps one "next free slot" time per number; a process leases a run of consecutive
  slots ``1/rate`` apart in one statement and sends each message at its slot, so
  several processes together never exceed the rate, and 1,000 msg/s is tens of statements a
  second, not a thousand. A little burst credit (``burst_seconds``) lets a sender that idled
  for a moment catch up.
* **Per recipient** (the pair limit, about one message every 6 s to one user): one "next
  allowed" time per (number, recipient); a 131056 from Meta pushes it out by a longer cooldown.
* **Unique recipients of business-initiated (template) messages in a rolling 24 hours** (the
  portfolio's messaging-limit tier): a recipient counts from its first template in the window.
  Counts are kept in 10-minute buckets and a bucket counts until it has entirely left the
  window, so the limit is never overshot (at worst a slot frees up to 10 minutes late).

Every ``acquire`` that arrives while a database round-trip is in flight joins the next one, so
a worker's whole batch is decided in one transaction. Recipients are stored as the contact's
keyed hash, never as a number. A message held back raises :class:`PacedError` with
``retry_after``: it waits in the queue instead of failing, and the attempt is not counted.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select

from ...core.channel import OutboundSend
from ...core.errors import PacedError
from ...core.store.database import Database
from ...core.store.schema import rate_counters

DAY = 86400.0
BUCKET = 600.0
CLEANUP_EVERY = 3600.0
PREFIX = "wa:"
LIMIT_PREFIX = "wa-limit:"  # outside PREFIX: the hourly cleanup must not forget what Meta reported
STARTING_LIMIT = 250
"""The messaging limit assumed until Meta reports one: where every business portfolio starts."""
COEXISTENCE_PREFIX = "wa-coexistence:"  # outside PREFIX too: kept for as long as the number is
COEXISTENCE_MESSAGES_PER_SECOND = 20.0
"""Meta's fixed throughput of a coexistence number (the WhatsApp Business app and the Cloud API)."""
COEXISTENCE_REFRESH_SECONDS = 60.0
"""How often a pacer looks again for numbers detected as coexistence by any process."""
MM_HOLD_PREFIX = f"{PREFIX}mm-refused:"  # under PREFIX: the hourly cleanup forgets holds a day old
MM_HOLD_REFRESH_SECONDS = 5.0
"""How often a pacer looks again for Marketing Messages API refusals another process recorded."""


def record_coexistence(db: Database, number: str, at: float) -> None:
    """Remember, for every worker, that ``number`` (a phone number id) is a coexistence number: a
    coexistence webhook (message echoes, app contacts, history) was received for it."""
    with db.begin() as conn:
        stmt = db.insert(rate_counters).values(key=f"{COEXISTENCE_PREFIX}{number}", value=1.0, updated_at=at)
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))


def detected_coexistence(conn: Any) -> set[str]:
    """The phone number ids recorded by :func:`record_coexistence`."""
    keys = conn.execute(select(rate_counters.c.key).where(rate_counters.c.key.like(f"{COEXISTENCE_PREFIX}%")))
    return {key.removeprefix(COEXISTENCE_PREFIX) for (key,) in keys}


def record_mm_refusal(db: Database, number: str, code: int, until: float, at: float) -> None:
    """Remember, for every worker, that the Marketing Messages API refused ``number`` with Meta's
    ``code`` and that its marketing is held off that API until ``until`` (wall time)."""
    with db.begin() as conn:
        stmt = db.insert(rate_counters).values(key=f"{MM_HOLD_PREFIX}{number}:{code}", value=until, updated_at=at)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["key"], set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at}))


def mm_refusals(conn: Any, t: float) -> dict[str, tuple[float, int]]:
    """Per number: (until, Meta's code) of the latest Marketing Messages API refusal still holding at ``t``."""
    rows = conn.execute(select(rate_counters.c.key, rate_counters.c.value, rate_counters.c.updated_at).where(
        rate_counters.c.key.like(f"{MM_HOLD_PREFIX}%"), rate_counters.c.value > t).order_by(rate_counters.c.updated_at))
    held: dict[str, tuple[float, int]] = {}
    for key, until, _ in rows:  # the latest refusal of a number wins (rows come oldest first)
        number, code = str(key).removeprefix(MM_HOLD_PREFIX).rsplit(":", 1)
        held[number] = (float(until), int(code))
    return held


def record_limit(db: Database, scope: str, limit: int | None, at: float) -> None:
    """Store the messaging limit Meta reported for ``scope`` at ``at`` (None = unlimited), for every
    worker. The latest observation wins: a webhook applied late from a backlog does not undo a
    newer reading of the phone number's fields, nor the other way round."""
    row = {"key": f"{LIMIT_PREFIX}{scope}", "value": -1.0 if limit is None else float(limit), "updated_at": at}
    with db.begin() as conn:
        stmt = db.insert(rate_counters).values(**row)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["key"], set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
            where=stmt.excluded.updated_at >= rate_counters.c.updated_at))


def stored_limit(conn: Any, scope: str) -> tuple[int | None, float] | None:
    """The last limit Meta reported for ``scope`` (None = unlimited) and when; None before any."""
    row = conn.execute(select(rate_counters.c.value, rate_counters.c.updated_at).where(
        rate_counters.c.key == f"{LIMIT_PREFIX}{scope}")).first()
    if row is None:
        return None
    return (None if row.value < 0 else int(row.value)), float(row.updated_at)


def reported_limit(conn: Any, scope: str) -> int | None:
    """The last limit Meta reported for ``scope`` (None = unlimited); :data:`STARTING_LIMIT` before any."""
    stored = stored_limit(conn, scope)
    return STARTING_LIMIT if stored is None else stored[0]


def recipients_today(conn: Any, scope: str, t: float) -> int:
    """Unique recipients counted against the 24 h budget of ``scope`` (the buckets ``Pacer`` adds to)."""
    base = f"{PREFIX}budget:{scope}:b:"
    keys = [f"{base}{b}" for b in range(math.floor((t - DAY) / BUCKET), math.floor(t / BUCKET) + 1)]
    total = conn.execute(select(func.sum(rate_counters.c.value)).where(rate_counters.c.key.in_(keys))).scalar()
    return int(total or 0)


@dataclass
class _Ask:
    number: str
    contact_key: str
    business_initiated: bool
    future: asyncio.Future[float]


class Pacer:
    def __init__(self, db: Database, *, default_number: str, messages_per_second: float = 80.0,
                 pair_spacing_seconds: float = 6.0, pair_cooldown_seconds: float | None = None,
                 daily_unique_recipients: int | None = None, scope: str = "portfolio",
                 burst_seconds: float = 0.1, clock: Callable[[], float] = time.time,
                 follow_meta: bool = False, coexistence_numbers: frozenset[str] = frozenset()) -> None:
        self.db = db
        self.clock = clock  # wall time shared with other processes through the database; tests pass their own
        self.default_number = default_number
        self.interval = 1.0 / messages_per_second
        self.pair_spacing = pair_spacing_seconds
        self.pair_cooldown = pair_cooldown_seconds if pair_cooldown_seconds is not None else max(
            2 * pair_spacing_seconds, 12.0)
        self.daily_limit = daily_unique_recipients
        # With no limit configured, follow the one Meta reports (phone_number_quality_update webhooks)
        self.follow_meta = follow_meta and daily_unique_recipients is None
        self.scope = scope
        self.burst = burst_seconds
        self._pending: list[_Ask] = []
        self._flusher: asyncio.Task[None] | None = None
        self._last_cleanup = 0.0
        self._local_next: dict[str, float] = {}
        self.coexistence_numbers = coexistence_numbers
        self._detected: set[str] = set()
        self._detected_read = -math.inf
        self._mm_holds: dict[str, tuple[float, int]] = {}
        self._mm_holds_read = -math.inf

    @classmethod
    def from_settings(cls, db: Database, settings: Any) -> Pacer:
        return cls(db, default_number=settings.phone_number_id, messages_per_second=settings.messages_per_second,
                   pair_spacing_seconds=settings.pair_spacing_seconds,
                   daily_unique_recipients=settings.daily_unique_recipients, scope=settings.waba_id or "portfolio",
                   follow_meta=settings.daily_unique_recipients is None,
                   coexistence_numbers=frozenset(settings.coexistence_numbers))

    def interval_for(self, number: str) -> float:
        """The time between two slots of ``number``: never under Meta's 1/20 s for a coexistence number."""
        if number in self.coexistence_numbers or number in self._detected:
            return max(self.interval, 1.0 / COEXISTENCE_MESSAGES_PER_SECOND)
        return self.interval

    # --- what the channel calls ---------------------------------------------------------------

    async def acquire(self, message: OutboundSend) -> None:
        """Wait for this message's slot, or raise :class:`PacedError` when it must wait longer."""
        loop = asyncio.get_running_loop()
        ask = _Ask(message.business_phone_number_id or self.default_number, message.contact_key,
                   message.content.is_template, loop.create_future())
        self._pending.append(ask)
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        slot = await ask.future
        # When the event loop was busy and several slots are already past, they go out spaced at up
        # to 1.25 times the rate -- not as one burst, and not shifted for good (which would lose rate).
        now = self.clock()
        at = max(slot, self._local_next.get(ask.number, 0.0), now)
        interval = self.interval_for(ask.number)
        self._local_next[ask.number] = at + (interval if at == slot else interval * 0.8)
        delay = at - now
        if delay > 0:
            await asyncio.sleep(delay)

    async def cool_down(self, contact_key: str, number: str | None = None, seconds: float | None = None) -> None:
        """Meta said 131056 (pair limit): hold this recipient back for a while; others flow on."""
        key = self._pair_key(number or self.default_number, contact_key)
        await asyncio.to_thread(self._push_out, key, self.clock() + (seconds or self.pair_cooldown))

    async def slow_down(self, number: str | None = None, seconds: float = 1.0) -> None:
        """Meta said 130429 (throughput): no slot for this number for ``seconds``."""
        await asyncio.to_thread(self._push_out, f"{PREFIX}mps:{number or self.default_number}", self.clock() + seconds)

    async def hold_marketing(self, number: str, code: int, seconds: float) -> float:
        """The Marketing Messages API refused ``number`` (Meta's ``code``): hold its marketing off that
        API for ``seconds`` in every worker (each sees it within :data:`MM_HOLD_REFRESH_SECONDS`).
        Returns the hold's end (wall time)."""
        t = self.clock()
        until = t + seconds
        self._mm_holds[number] = (until, code)
        await asyncio.to_thread(record_mm_refusal, self.db, number, code, until, t)
        return until

    async def marketing_holds(self) -> dict[str, tuple[float, int]]:
        """Per number: (until, code) of the Marketing Messages API refusals holding now, as any worker
        recorded them (read again at most every :data:`MM_HOLD_REFRESH_SECONDS`)."""
        t = self.clock()
        if t - self._mm_holds_read >= MM_HOLD_REFRESH_SECONDS:
            self._mm_holds_read = t  # before the read: concurrent callers do not all go to the database

            def read() -> dict[str, tuple[float, int]]:
                with self.db.read() as conn:
                    return mm_refusals(conn, t)
            shared = await asyncio.to_thread(read)
            for number, held in shared.items():
                if held[0] > self._mm_holds.get(number, (-math.inf, 0))[0]:
                    self._mm_holds[number] = held
        return {number: held for number, held in self._mm_holds.items() if held[0] > t}

    # --- batching ------------------------------------------------------------------------------

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the rest of the worker's batch arrive
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await asyncio.to_thread(self._decide, batch)
            except BaseException as exc:  # the database failed: every waiter hears it (and retries)
                for ask in batch:
                    if not ask.future.done():
                        ask.future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            for ask, result in zip(batch, results, strict=True):
                if ask.future.done():
                    continue
                if isinstance(result, Exception):
                    ask.future.set_exception(result)
                else:
                    ask.future.set_result(result)

    def _decide(self, batch: list[_Ask]) -> list[float | Exception]:
        results: list[float | Exception | None] = [None] * len(batch)
        live: list[int] = []
        seen: set[tuple[str, str]] = set()
        for i, ask in enumerate(batch):
            pair = (ask.number, ask.contact_key)
            if pair in seen and self.pair_spacing > 0:
                results[i] = PacedError("pair limit: another message to this recipient goes first",
                                        retry_after=self.pair_spacing)
                continue
            seen.add(pair)
            live.append(i)
        with self.db.begin() as conn:
            t = self.clock()  # after waiting for the database, so slots start from the real now
            if t - self._detected_read >= COEXISTENCE_REFRESH_SECONDS:
                self._detected, self._detected_read = detected_coexistence(conn), t
            limit = reported_limit(conn, self.scope) if self.follow_meta else self.daily_limit
            if limit is not None:
                live = self._budget(conn, t, batch, live, results, limit)
            if self.pair_spacing > 0 and live:
                live = self._pairs(conn, t, batch, live, results)
            by_number: dict[str, list[int]] = {}
            for i in live:
                by_number.setdefault(batch[i].number, []).append(i)
            for number, indexes in sorted(by_number.items()):
                interval = self.interval_for(number)
                start = self._lease(conn, t, number, len(indexes), interval)
                for n, i in enumerate(indexes):
                    results[i] = start + n * interval
            if t - self._last_cleanup > CLEANUP_EVERY:
                self._last_cleanup = t
                conn.execute(rate_counters.delete().where(rate_counters.c.key.like(f"{PREFIX}%"),
                                                          rate_counters.c.updated_at < t - DAY - 2 * BUCKET))
        return [r if r is not None else PacedError("not decided") for r in results]

    # --- the three limits ------------------------------------------------------------------

    def _greatest(self, *args: Any) -> Any:
        return func.max(*args) if self.db.is_sqlite else func.greatest(*args)

    def _lease(self, conn: Any, t: float, number: str, n: int, interval: float) -> float:
        """Reserve ``n`` consecutive slots ``interval`` apart for ``number``; return the first slot's time."""
        span = n * interval
        stmt = self.db.insert(rate_counters).values(key=f"{PREFIX}mps:{number}", value=t + span, updated_at=t)
        stmt = stmt.on_conflict_do_update(
            index_elements=["key"],
            set_={"value": self._greatest(rate_counters.c.value, t - self.burst) + span, "updated_at": t},
        ).returning(rate_counters.c.value)
        end = float(conn.execute(stmt).scalar_one())
        return end - span

    def _pair_key(self, number: str, contact_key: str) -> str:
        return f"{PREFIX}pair:{number}:{contact_key}"

    def _pairs(self, conn: Any, t: float, batch: list[_Ask], live: list[int],
               results: list[Any]) -> list[int]:
        """Claim each recipient's next slot in one statement: granted where it was free.

        A recipient's row holds only the time it is next free, not who holds it; so a grant is a
        row this statement wrote (RETURNING gives only rows inserted or updated), never a row that
        merely holds the time this statement would have written -- which another process deciding
        at the same instant wrote first."""
        granted_until = t + self.pair_spacing
        keys = {i: self._pair_key(batch[i].number, batch[i].contact_key) for i in live}
        # sorted: processes lock rows in the same order, so they cannot deadlock each other. One
        # statement with a row of parameters per recipient (executemany, sent as multi-row VALUES
        # by SQLAlchemy's insertmanyvalues): compiled once and cached, where a literal multi-row
        # VALUES was compiled anew for every batch (about a third of the pacer's CPU).
        stmt = self.db.insert(rate_counters).values(key=bindparam("k"), value=granted_until, updated_at=t)
        stmt = stmt.on_conflict_do_update(
            index_elements=["key"], set_={"value": stmt.excluded.value, "updated_at": t},
            where=rate_counters.c.value <= t,  # only a free recipient is taken
        ).returning(rate_counters.c.key)
        granted = {row[0] for row in conn.execute(stmt, [{"k": k} for k in sorted(keys.values())])}
        held = set(keys.values()) - granted
        until = dict(conn.execute(select(rate_counters.c.key, rate_counters.c.value).where(
            rate_counters.c.key.in_(held))).all()) if held else {}
        still = []
        for i in live:
            if keys[i] in granted:
                still.append(i)
            else:
                results[i] = PacedError("pair limit: this recipient got a message moments ago",
                                        retry_after=max(float(until.get(keys[i], t)) - t, 0.05))
        return still

    def _budget(self, conn: Any, t: float, batch: list[_Ask], live: list[int], results: list[Any],
                limit: int) -> list[int]:
        """Admit business-initiated messages while the rolling 24 h unique-recipient budget lasts."""
        asks = [i for i in live if batch[i].business_initiated]
        if not asks:
            return live
        base = f"{PREFIX}budget:{self.scope}:"
        lock = f"{base}lock"
        # Writing the lock row holds its row lock until commit: one budget decision at a time
        # across processes (on SQLite the transaction's write lock already serialises them).
        self.db.upsert(conn, rate_counters, {"key": lock, "value": 0.0, "updated_at": t}, ["key"])
        recipient_keys = {batch[i].contact_key: f"{base}r:{batch[i].contact_key}" for i in asks}
        counted = {row[0] for row in conn.execute(
            select(rate_counters.c.key).where(rate_counters.c.key.in_(list(recipient_keys.values())),
                                              rate_counters.c.value > t - DAY))}
        fresh = [ck for ck, key in recipient_keys.items() if key not in counted]
        if not fresh:
            return live
        now_bucket = math.floor(t / BUCKET)
        first_bucket = math.floor((t - DAY) / BUCKET)  # partly outside the window, still counted in full
        bucket_keys = {f"{base}b:{b}": b for b in range(first_bucket, now_bucket + 1)}
        buckets = {bucket_keys[row[0]]: int(row[1]) for row in conn.execute(
            select(rate_counters.c.key, rate_counters.c.value).where(rate_counters.c.key.in_(list(bucket_keys))))
            if row[1]}
        room = max(limit - sum(buckets.values()), 0)
        admitted = set(fresh[:room])
        if admitted:
            stmt = self.db.insert(rate_counters).values(key=bindparam("k"), value=t, updated_at=t)
            conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": t, "updated_at": t}),
                         [{"k": recipient_keys[ck]} for ck in sorted(admitted)])
            key = f"{base}b:{now_bucket}"
            stmt = self.db.insert(rate_counters).values(key=key, value=float(len(admitted)), updated_at=t)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["key"], set_={"value": rate_counters.c.value + len(admitted), "updated_at": t}))
        if len(admitted) == len(fresh):
            return live
        oldest = min(buckets) if buckets else now_bucket
        wait = max((oldest + 1) * BUCKET + DAY - t, 1.0)
        still = []
        for i in live:
            ck = batch[i].contact_key
            if batch[i].business_initiated and recipient_keys[ck] not in counted and ck not in admitted:
                results[i] = PacedError(f"daily limit: {limit} unique recipients in 24 hours reached",
                                        retry_after=wait)
            else:
                still.append(i)
        return still

    def _push_out(self, key: str, until: float) -> None:
        t = self.clock()
        with self.db.begin() as conn:
            stmt = self.db.insert(rate_counters).values(key=key, value=until, updated_at=t)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["key"], set_={"value": self._greatest(rate_counters.c.value, until), "updated_at": t}))
