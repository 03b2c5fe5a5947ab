"""A campaign's send window, checked again when its message is about to leave.

Admission takes a recipient only while their window is open in their own time zone
(:func:`.engine.admit`), but a message may then wait in the outbox -- a sender that was down or
behind, a messaging limit that held it -- until the window has closed. The sender asks
:func:`held_until` for each batch it claims: such a message goes back to the queue, no attempt
counted, until the window opens again, so none leaves outside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select, tuple_

from ..store.schema import campaign_recipients as recipients
from ..store.schema import campaigns
from .marketing_api import SENDER_PREFIX
from .send_window import local_time, next_open, shown

REASON = "quiet_hours"
"""What a held message shows while it waits for its recipient's window."""


def held_until(conn: Connection, rows: Iterable[Mapping[str, Any]], at: float) -> dict[str, tuple[float, str]]:
    """For the campaign messages among outbox ``rows`` whose recipient's send window is closed at
    ``at``: message id -> (when it opens, why it waits). One query for the campaigns' windows, and
    one for their recipients' zones only when a campaign has a window."""
    rows = [row for row in rows if (row["plugin"] or "").startswith(SENDER_PREFIX)]
    if not rows:
        return {}
    ids = {row["plugin"][len(SENDER_PREFIX):] for row in rows}
    windows = {r.id: (r.window_start, r.window_end) for r in conn.execute(
        select(campaigns.c.id, campaigns.c.window_start, campaigns.c.window_end)
        .where(campaigns.c.id.in_(ids), campaigns.c.window_start.is_not(None), campaigns.c.window_end.is_not(None)))}
    windowed = [(row, row["plugin"][len(SENDER_PREFIX):]) for row in rows]
    windowed = [(row, campaign) for row, campaign in windowed if campaign in windows]
    if not windowed:
        return {}
    pairs = {(campaign, row["contact_key"]) for row, campaign in windowed}
    zones = {(r.campaign_id, r.contact_key): tuple((r.zones or "").split()) for r in conn.execute(
        select(recipients.c.campaign_id, recipients.c.contact_key, recipients.c.zones)
        .where(tuple_(recipients.c.campaign_id, recipients.c.contact_key).in_(sorted(pairs))))}
    held = {}
    for row, campaign in windowed:
        start, end = windows[campaign]
        where = zones.get((campaign, row["contact_key"]), ())
        opens = next_open(where, at, start, end)
        if opens > at:
            held[row["id"]] = (opens, f"the recipient's send window ({shown(start, end)}, their time) is closed; "
                                      f"the message waits until it opens at {local_time(where, opens)}")
    return held
