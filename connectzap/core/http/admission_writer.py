"""Group commit for ``POST /v1/messages``: concurrent single-message requests share one gate transaction.

A request per message committing its own transaction capped REST admission at a few hundred per
second (one fsync or SQLite write lock each). Here every request that arrives while a transaction
commits goes through the gate together in the next one (:mod:`.group_commit`), with exactly the
checks each would get alone: a key repeated within a group answers like a key repeated after a
commit (the first message, ``duplicate``; a different body under it is a conflict), and each
request gets its own decision. A group whose transaction fails is retried one request at a time,
with the same keys, so nothing is admitted twice and one failing request fails only itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.concurrency import run_in_threadpool

from .. import gate
from ..templates import BusinessAccounts
from .group_commit import GroupCommit

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ..store.database import Database


class AdmissionWriter(GroupCommit[gate.Admission, gate.Decision]):
    """Admits queued messages (REST, strict keys) in shared transactions."""

    what = "admission"

    def __init__(self, db: Database, secret: bytes, *, max_group_items: int = 1000,
                 accounts: BusinessAccounts | None = None) -> None:
        super().__init__(db, max_group_items=max_group_items)
        self.secret = secret
        self.accounts = accounts  # which business account's templates each number sends

    def _write(self, conn: Connection, items: list[gate.Admission]) -> list[gate.Decision]:
        # Conflicts are reported per message (the request answers 409), never raised: a raise
        # would roll back the whole group for one request's mistake.
        return gate.admit_many(self.db, conn, self.secret, items, strict_key=True, report_conflicts=True,
                               accounts=self.accounts)

    async def admit(self, admission: gate.Admission) -> gate.Decision:
        """The gate's decision on one message, committed. Without the writer's task (an app whose
        lifespan is not running) the message gets a transaction of its own."""
        if self.running:
            return (await self.submit([admission]))[0]
        return (await run_in_threadpool(self._alone, admission))[0]

    def _alone(self, admission: gate.Admission) -> list[gate.Decision]:
        with self.db.begin() as conn:
            return self._write(conn, [admission])
