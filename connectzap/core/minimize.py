"""Data minimisation at the edge: what an event may carry into the journal.

An event waits in the journal until a worker dispatches it, and a backlog may wait a long time
(workers down, statuses arriving faster than they are applied). So each event kind keeps only
what its work needs; everything else is dropped before the event is stored. The per-kind review
is written down in docs/privacy.md; keep the two in step.

* ``message_status`` from outside (a webhook, a channel): the wamid, the status, its errors,
  pricing and conversation. The recipient's number is replaced by its keyed hash
  (``contact_key``), and so is a business-scoped user id (``recipient_user_id``) -- the outbox
  row already knows whom the message went to. The one exception
  is a failure that says the recipient opted out: recording that opt-out and telling the CRM
  hooks needs the number, so such a status keeps it until it is dispatched (then the payload is
  erased like any other).
* ``message_status`` of a message the business sent from the WhatsApp Business app (``sent_from``,
  a coexistence echo): it is the only record of that message, so it keeps its recipient and what
  was sent until it is dispatched -- the core records the message under the keyed hash, the CRM
  connectors log it on the contact's timeline -- and is then erased like any other payload.
* every other kind: its connector already keeps only what its mapping uses (see the review).
"""

from __future__ import annotations

from typing import Any

from .bsuids import bsuid_key
from .models import SENT_FROM_BUSINESS_APP, DeliveryOutcome, Event, EventKind
from .phones import contact_key

_STATUS_NUMBER_FIELDS = ("recipient", "recipient_wa_id", "recipient_user_id")
"""Where a status may name its recipient: the number (``recipient_wa_id`` is Meta's digits-only form)
or the business-scoped user id, which is kept no more than a number."""


def for_journal(events: list[Event], secret: bytes) -> list[Event]:
    """``events`` as they may be stored: each with only what its work needs (see the module doc)."""
    return [_minimal(event, secret) for event in events]


def _minimal(event: Event, secret: bytes) -> Event:
    if event.kind != EventKind.MESSAGE_STATUS:
        return event
    data = event.data
    if data.get("sent_from") == SENT_FROM_BUSINESS_APP:
        return event  # an echo: its recipient is needed to record and log it (see the module doc)
    if not any(data.get(name) for name in _STATUS_NUMBER_FIELDS):
        return event
    return event.model_copy(update={"data": _status_without_number(data, secret)})


def _status_without_number(data: dict[str, Any], secret: bytes) -> dict[str, Any]:
    kept = {k: v for k, v in data.items() if k not in _STATUS_NUMBER_FIELDS}
    phone, user_id = data.get("recipient"), data.get("recipient_user_id")
    if (phone or user_id) and not kept.get("contact_key"):
        # A BSUID's own hash: the edge has no database to see a phone it is linked to.
        kept["contact_key"] = contact_key(phone, secret) if phone else bsuid_key(str(user_id), secret)
    if data.get("outcome") == DeliveryOutcome.OPTED_OUT.value:
        # the opt-out is recorded and mirrored by number or BSUID (see the module doc)
        kept.update({name: value for name, value in (("recipient", phone), ("recipient_user_id", user_id)) if value})
    return kept
