"""The relay's sending limit (``messages_per_second``): each message gets the next free slot, spaced
``1 / rate`` apart. A slot further away than ``max_wait`` seconds is not taken: the message goes back
to the queue (:class:`~connectzap.core.errors.PacedError`) instead of holding a sender lane while it
waits.

:class:`SharedSendRate` keeps the next free slot in the database (``rate_counters``, like WhatsApp's
pacer), so every worker process on one database shares the one limit: a slot is taken by one
conditional upsert, which moves the next free slot on only when it is at most ``max_wait`` away.
:class:`SendRate` keeps it in the process (a channel built without a database: tests, scripts).
"""

from __future__ import annotations

from sqlalchemy import func, select

from ...core.errors import PacedError
from ...core.store.database import Database
from ...core.store.schema import rate_counters


def _paced(wait: float) -> PacedError:
    return PacedError("the SMTP relay's sending limit ([connectors.email] messages_per_second)",
                      code="email_rate", retry_after=wait)


class SendRate:
    def __init__(self, messages_per_second: float, max_wait: float = 2.0) -> None:
        self.interval = 1.0 / messages_per_second
        self.max_wait = max_wait
        self._next = float("-inf")

    def reserve(self, now: float) -> float:
        """Seconds to wait before sending, the slot taken; raises :class:`PacedError` (nothing taken)
        when the next slot is more than ``max_wait`` away."""
        slot = max(now, self._next)
        wait = slot - now
        if wait > self.max_wait:
            raise _paced(wait)
        self._next = slot + self.interval
        return wait


class SharedSendRate:
    def __init__(self, db: Database, key: str, messages_per_second: float, max_wait: float = 2.0) -> None:
        self.db = db
        self.key = f"email:mps:{key}"[:128]
        self.interval = 1.0 / messages_per_second
        self.max_wait = max_wait

    def reserve(self, now: float) -> float:
        """As :meth:`SendRate.reserve`, for every process on the database together; ``now`` is wall
        time (the processes compare it). Blocking: one statement, or two when refused."""
        db, table = self.db, rate_counters
        greatest = func.max if db.is_sqlite else func.greatest
        stmt = db.insert(table).values(key=self.key, value=now + self.interval, updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["key"], set_={"value": greatest(table.c.value, now) + self.interval, "updated_at": now},
            where=table.c.value <= now + self.max_wait,  # a slot too far away is not taken
        ).returning(table.c.value)
        with db.begin() as conn:
            taken = conn.execute(stmt).scalar()
            if taken is None:
                free = conn.execute(select(table.c.value).where(table.c.key == self.key)).scalar()
                raise _paced(max(float(free if free is not None else now) - now, 0.05))
        return max(float(taken) - self.interval - now, 0.0)
