"""WhatsApp voice calls on the contact's HubSpot timeline: one Call engagement per ended call.

A call reaches connectzap in steps (connected, rang, answered, ended); the ended one
(``terminate``) carries the outcome and the duration, so it alone becomes a HubSpot Call
(``/crm/v3/objects/calls``, associated to the contact with HubSpot-defined type 194). The
created id is kept in state per call id (a keyed hash of it): a repeated step logs nothing.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from ...core.errors import SkippableError
from ...core.models import CallActivity
from . import marks
from .client import HubSpotClient
from .contacts import ContactRef, Contacts

if TYPE_CHECKING:
    from ...core.context import EventContext

CALL_TO_CONTACT = 194
# Meta's end states -> HubSpot's hs_call_status values
STATUSES = {"COMPLETED": "COMPLETED", "FAILED": "FAILED", "REJECTED": "NO_ANSWER"}


def call_request(call: CallActivity, contact: ContactRef, owner: str | None) -> dict[str, Any]:
    """The body of the create call for an ended ``call``."""
    inbound = call.direction != "BUSINESS_INITIATED"
    seconds = call.duration_seconds or 0
    props = {
        "hs_timestamp": str(int((call.start_time or call.timestamp).timestamp() * 1000)),
        "hs_call_title": "WhatsApp call " + ("from the customer" if inbound else "to the customer"),
        "hs_call_body": f"<p>WhatsApp voice call, {int(seconds)} s</p><p>call id: {html.escape(call.call_id)}</p>",
        "hs_call_direction": "INBOUND" if inbound else "OUTBOUND",
        "hs_call_duration": str(int(seconds * 1000)),
        "hs_call_status": STATUSES.get((call.status or "").upper(), "COMPLETED"),
    }
    if owner:
        props["hubspot_owner_id"] = owner
    return {"properties": props, "associations": [
        {"to": {"id": contact.id}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                              "associationTypeId": CALL_TO_CONTACT}]}]}


class CallLog:
    def __init__(self, client: HubSpotClient, contacts: Contacts, owner: Any) -> None:
        self.client = client
        self.contacts = contacts
        self.owner = owner  # ContactRef -> owner id or None (the timeline's rule)

    async def log(self, ctx: EventContext, call: CallActivity) -> None:
        if call.event != "terminate":
            return  # the ended call carries the outcome; earlier steps are on the journal and the hook
        done_key = f"call:{marks.hashed(ctx, call.call_id)}"
        if ctx.state.get(done_key):
            return
        contact = await self.contacts.find(ctx, call.contact.phone, user_id=call.contact.user_id,
                                           name=call.contact.name)
        if contact is None:
            raise SkippableError("no HubSpot contact has this number or BSUID (create_contacts is off)",
                                 code="no_contact")
        from hubspot.crm.objects.calls import SimplePublicObjectInputForCreate
        created = await self.client.call("create call", self.client.calls.create, creates=True,
                                         simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
                                             **call_request(call, contact, self.owner(contact))))
        ctx.state.set(done_key, {"id": str(created.id)})
