"""Group commit for the webhook edge: many concurrent deliveries, one journal transaction.

Each webhook request hands its parsed events to :meth:`JournalWriter.submit` and waits until the
transaction holding them committed (:mod:`.group_commit`). A delivery whose own transaction fails
gets the exception: the edge answers 503 and the sender delivers again later -- nothing
acknowledged is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..models import Event
from ..store import journal
from ..store.journal import Journaled
from .group_commit import GroupCommit

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ..store.database import Database

class JournalWriter(GroupCommit[Event, Journaled]):
    """Journals queued deliveries in shared transactions. Start and stop it inside the event loop."""

    what = "journal"

    def __init__(self, db: Database, *, max_batch_events: int = 2000) -> None:
        super().__init__(db, max_group_items=max_batch_events)

    @property
    def journaled(self) -> int:
        """Events journaled so far."""
        return self.written

    def _write(self, conn: Connection, items: list[Event]) -> list[Journaled]:
        return journal.append(self.db, conn, items)
