"""A campaign's send window, checked again when its message is about to leave.

Admission takes a recipient only while their window is open in their own time zone
(:func:`.engine.admit`), but a message may then wait in the outbox -- a sender that was down or
behind, a messaging limit that held it -- until the window has closed. The sender asks
:func:`held_until` for each batch it claims and gives such a message back to its campaign
(:func:`..store.outbox.give_back`, reason :data:`REASON`): the campaign admits the recipient again
when the window opens (:func:`.engine.follow`), through the gate and at the campaign's rate. So
none leaves outside its window, and messages waiting for a window do not fill the outbox while
recipients elsewhere, whose windows are open, wait to be admitted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select, tuple_

from ..store.schema import campaign_recipients as recipients
from .send_rules import SendRules, campaign_of
from .send_window import local_time, next_open, shown

REASON = "quiet_hours"
"""What a message given back for its recipient's window shows."""


def held_until(conn: Connection, rows: Iterable[Mapping[str, Any]], rules: Mapping[str, SendRules],
               at: float) -> dict[str, tuple[float, str]]:
    """For the campaign messages among outbox ``rows`` whose recipient's send window is closed at
    ``at``: message id -> (when it opens, why it may not leave now). One query for their
    recipients' zones, and only when a campaign among them has a window (``rules``: by campaign)."""
    windowed = [(row, window) for row in rows
                if (campaign := campaign_of(row)) is not None and (own := rules.get(campaign)) is not None
                and (window := own.window) is not None]
    if not windowed:
        return {}
    pairs = {(campaign_of(row), row["contact_key"]) for row, _ in windowed}
    zones = {(r.campaign_id, r.contact_key): tuple((r.zones or "").split()) for r in conn.execute(
        select(recipients.c.campaign_id, recipients.c.contact_key, recipients.c.zones)
        .where(tuple_(recipients.c.campaign_id, recipients.c.contact_key).in_(sorted(pairs))))}
    held = {}
    for row, (start, end) in windowed:
        where = zones.get((campaign_of(row), row["contact_key"]), ())
        opens = next_open(where, at, start, end)
        if opens > at:
            held[row["id"]] = (opens, f"the recipient's send window ({shown(start, end)}, their time) is closed; "
                                      f"the campaign sends to them again when it opens at {local_time(where, opens)}")
    return held
