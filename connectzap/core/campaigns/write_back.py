"""Writing a finished campaign's outcomes back to the records its audience came from.

A connector's ``sync_campaign_finished`` hands :func:`write_back` a function that writes one batch
(e.g. a CRM's batch update of up to 100 records). Each batch written is marked at once in the
connector's durable state, outside the delivery's transaction: a delivery retried after a failure
(or the same hook replayed) skips the batches already written and writes nothing twice. A crash
between a batch's write and its mark repeats that one batch -- harmless for a property or meta
value set to the same thing again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..context import EventContext
    from ..models import CampaignFinished


@dataclass(frozen=True)
class Outcome:
    """One recipient's result, addressed by its record in the source (never a number)."""

    ref: str
    outcome: str
    reason: str | None

    @property
    def text(self) -> str:
        """``delivered``, ``refused (no_consent)``, ``failed (131049)``: what a CRM field shows."""
        return f"{self.outcome} ({self.reason})" if self.reason else self.outcome


def _key(campaign_id: str, first_line: int, what: str) -> str:
    return f"campaign_{what}:{campaign_id}:{first_line}"  # batches start at fixed lines: stable keys


async def write_back(ctx: EventContext, campaign: CampaignFinished, source: str, batch_size: int,
                     write: Callable[[list[Outcome]], Awaitable[None]], what: str = "written") -> int:
    """Call ``write`` for each batch of the campaign's recipients read from ``source`` not yet
    written; returns how many batches it wrote now. Campaigns of another source are left alone.
    ``what`` names the kind of write-back: each kind marks its own batches (a connector may write
    the outcomes to a field and as a timeline entry)."""
    if campaign.audience_source != source:
        return 0
    marks = ctx.app.plugin_state(ctx.plugin)  # commits at once, unlike the buffered ctx.state
    after, written = 0, 0
    while True:
        rows = await asyncio.to_thread(ctx.app.campaigns.source_outcomes, campaign.id, after_line=after,
                                       limit=batch_size)
        if not rows:
            return written
        key = _key(campaign.id, rows[0][0], what)
        if not await asyncio.to_thread(marks.get, key):
            await write([Outcome(ref, outcome, reason) for _line, ref, outcome, reason in rows])
            await asyncio.to_thread(marks.set, key, True)
            written += 1
        after = rows[-1][0]


def unwritten(ctx: EventContext, campaign: CampaignFinished, source: str, batch_size: int,
              what: str = "written") -> Iterator[list[Outcome]]:
    """The batches :func:`write_back` would write now, without writing or marking anything (for a
    connector's ``rehearse`` in ``connectzap simulate``). Blocking: reads the database."""
    if campaign.audience_source != source:
        return
    marks = ctx.app.plugin_state(ctx.plugin)
    after = 0
    while rows := ctx.app.campaigns.source_outcomes(campaign.id, after_line=after, limit=batch_size):
        if not marks.get(_key(campaign.id, rows[0][0], what)):
            yield [Outcome(ref, outcome, reason) for _line, ref, outcome, reason in rows]
        after = rows[-1][0]
