"""Durable "about to create" marks, for the crash window between a create call and the commit.

A delivery's ``ctx.state`` is committed only when the delivery succeeds. A create that reached
HubSpot but whose delivery then failed (a crash, a timeout, a later 429) would leave no trace,
and the retry would create a second record. So before each create we write a mark in its own
transaction; a retry that finds the mark first looks for what the earlier attempt may have made
(after HubSpot's search index has caught up), and the successful delivery deletes the mark.
Keys are keyed hashes: no phone number or wamid is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import TYPE_CHECKING, Any

from ...core.errors import RetriableDeliveryError

if TYPE_CHECKING:
    from ...core.context import EventContext


def hashed(ctx: EventContext, value: str) -> str:
    """A keyed hash of ``value`` (a wamid), safe to keep at rest."""
    return hmac.new(ctx.app.secret, value.encode(), hashlib.sha256).hexdigest()[:32]


async def put(ctx: EventContext, key: str, value: dict[str, Any]) -> None:
    """Write ``key`` for this plugin now, outside the delivery's transaction."""
    state = ctx.app.plugin_state(ctx.plugin)  # commits at once, unlike the buffered ctx.state
    await asyncio.to_thread(state.set, key, {**value, "at": time.time()})


def earlier_attempt(ctx: EventContext, key: str, lag: float) -> dict[str, Any] | None:
    """The mark a previous attempt left, once the search index had time to show its work.

    Raises :class:`RetriableDeliveryError` while the mark is younger than ``lag`` seconds.
    """
    mark = ctx.state.get(key)
    if not mark:
        return None
    wait = lag - (time.time() - float(mark.get("at", 0)))
    if wait > 0:
        raise RetriableDeliveryError("an earlier attempt may have created this record; waiting for HubSpot's "
                                     "search index before checking", retry_after=wait, code="hubspot_index_lag")
    return dict(mark)
