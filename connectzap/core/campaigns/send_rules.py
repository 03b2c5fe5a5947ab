"""What a campaign asks of its messages as a sender claims them, read once per claimed batch.

A campaign's outbox rows name it as their sender (the ``plugin`` column: ``campaign:<id>``). For
the campaigns among a claimed batch the sender needs their send window (:mod:`.quiet_hours`),
their rate (:mod:`.rate`) and their Marketing Messages API choice (:mod:`.marketing_api`): one
query reads all three, and none runs for a batch without a campaign's message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from sqlalchemy import Connection, select

from ..store.schema import campaigns
from .marketing_api import preference

SENDER_PREFIX = "campaign:"
"""How a campaign's outbox rows name their sender (the ``plugin`` column): ``campaign:<id>``."""


class SendRules(NamedTuple):
    """One campaign's rules at send time."""

    window: tuple[int, int] | None
    """Its send window (minutes after local midnight), None when it has none."""
    spacing: float
    """Seconds between two of its messages (its rate); 0 when it has no rate."""
    marketing_api: bool | None
    """What the channel is told: use (True) or avoid (False) the Marketing Messages API, or None."""


def campaign_of(row: Mapping[str, Any]) -> str | None:
    """The campaign that sent outbox ``row``, or None when no campaign did."""
    sender = row.get("plugin") or ""
    return sender[len(SENDER_PREFIX):] if sender.startswith(SENDER_PREFIX) else None


def rules_for(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> dict[str, SendRules]:
    """Campaign id -> its :class:`SendRules`, for the campaigns that sent outbox ``rows``."""
    ids = {campaign for row in rows if (campaign := campaign_of(row)) is not None}
    if not ids:
        return {}
    found = conn.execute(select(campaigns.c.id, campaigns.c.window_start, campaigns.c.window_end,
                                campaigns.c.rate_per_minute, campaigns.c.marketing_api)
                         .where(campaigns.c.id.in_(sorted(ids))))
    return {r.id: SendRules(window=(r.window_start, r.window_end) if r.window_start is not None
                            and r.window_end is not None else None,
                            spacing=60.0 / r.rate_per_minute if r.rate_per_minute else 0.0,
                            marketing_api=preference(r.marketing_api))
            for r in found}
