"""A campaign's rate, kept as its messages leave.

Admission gives each message of a campaign with a rate its own send time, one spacing after the
one before (``not_before``; the campaign's ``next_slot_at`` is the next free one). A message that
leaves within :data:`TOLERANCE` of its send time keeps to the rate. One that leaves later -- the
sender was down or behind, or the message waited for something else (a paused template, the
messaging limit, a retry) -- no longer has a send time of its own: sending all such messages at
once would send at the number's throughput, not at the campaign's rate. The sender gives them
new send times after the last one given out (:func:`give_out`), in one step per campaign and
batch, and each waits for its own (reason :data:`REASON`).

So whatever happens, two of a campaign's messages leave at least one spacing apart, give or take
:data:`TOLERANCE`: in any period of ``p`` seconds it sends at most ``(p + TOLERANCE) / spacing + 1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from ..store.database import Database
from ..store.schema import campaigns
from ..wording import counted

REASON = "campaign_rate"
"""What a message waiting for its new send time shows."""
TOLERANCE = 2.0
"""Seconds a message may leave after its send time and still count as on time (a sender's poll
and claim take a fraction of this)."""


def send_time(row: Mapping[str, Any]) -> float:
    """The send time outbox ``row`` was given: its ``not_before``, or when it was admitted."""
    at: float = row["not_before"] if row["not_before"] is not None else row["created_at"]
    return at


def on_time(row: Mapping[str, Any], at: float) -> bool:
    """Whether ``row`` leaving at ``at`` keeps to the send time it was given."""
    return at - send_time(row) <= TOLERANCE


def spaced(next_free: float | None, at: float, count: int, spacing: float) -> list[float]:
    """``count`` send times, ``spacing`` apart, from the next free one (not before ``at``)."""
    first = max(at, next_free if next_free is not None else at)
    return [first + n * spacing for n in range(count)]


def give_out(db: Database, conn: Connection, campaign_id: str, count: int, spacing: float,
             at: float) -> list[float] | None:
    """``count`` new send times for the campaign's late messages, taken from its next free one, or
    None when another transaction holds the campaign's row (PostgreSQL: an engine round or a
    pause; the sender never waits for it -- those messages try again a moment later)."""
    row = conn.execute(db.for_update(select(campaigns.c.next_slot_at).where(campaigns.c.id == campaign_id))).first()
    if row is None:
        return None
    times = spaced(row.next_slot_at, at, count, spacing)
    conn.execute(campaigns.update().where(campaigns.c.id == campaign_id).values(next_slot_at=times[-1] + spacing))
    return times


def why_waiting(rate_per_minute: float, until: float) -> str:
    return (f"the campaign sends {counted(rate_per_minute, 'message')} a minute; this one leaves at "
            f"{datetime.fromtimestamp(until, UTC):%Y-%m-%d %H:%M:%S} UTC")
