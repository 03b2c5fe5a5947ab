"""Data minimisation at the edge: what an event may carry into the journal.

An event waits in the journal until a worker dispatches it, and a backlog may wait a long time
(workers down, statuses arriving faster than they are applied). So each event kind keeps only
what its work needs; everything else is dropped before the event is stored. The per-kind review
is written down in docs/privacy.md; keep the two in step.

* ``message_status`` from outside (a webhook, a channel): the wamid, the status, its errors,
  pricing and conversation. The recipient's number is replaced by its keyed hash
  (``contact_key``) -- the outbox row already knows whom the message went to. The one exception
  is a failure that says the recipient opted out: recording that opt-out and telling the CRM
  hooks needs the number, so such a status keeps it until it is dispatched (then the payload is
  erased like any other).
* every other kind: its connector already keeps only what its mapping uses (see the review).
"""

from __future__ import annotations

from typing import Any

from .models import DeliveryOutcome, Event, EventKind
from .phones import contact_key

_STATUS_NUMBER_FIELDS = ("recipient", "recipient_wa_id")
"""Where a status may name its recipient's number (``recipient_wa_id`` is Meta's digits-only form)."""


def for_journal(events: list[Event], secret: bytes) -> list[Event]:
    """``events`` as they may be stored: each with only what its work needs (see the module doc)."""
    return [_minimal(event, secret) for event in events]


def _minimal(event: Event, secret: bytes) -> Event:
    if event.kind != EventKind.MESSAGE_STATUS:
        return event
    data = event.data
    if not any(data.get(name) for name in _STATUS_NUMBER_FIELDS):
        return event
    return event.model_copy(update={"data": _status_without_number(data, secret)})


def _status_without_number(data: dict[str, Any], secret: bytes) -> dict[str, Any]:
    kept = {k: v for k, v in data.items() if k not in _STATUS_NUMBER_FIELDS}
    phone = data.get("recipient")
    if phone and not kept.get("contact_key"):
        kept["contact_key"] = contact_key(phone, secret)
    if phone and data.get("outcome") == DeliveryOutcome.OPTED_OUT.value:
        kept["recipient"] = phone  # the opt-out is recorded and mirrored by number (see the module doc)
    return kept
