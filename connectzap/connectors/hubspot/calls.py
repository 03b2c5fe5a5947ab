"""WhatsApp voice calls on the contact's HubSpot timeline: one Call engagement per ended call.

A call reaches connectzap in steps (connected, rang, answered, ended); the ended one
(``terminate``) carries the outcome and the duration, so it alone becomes a HubSpot Call
(``/crm/v3/objects/calls``, associated to the contact with HubSpot-defined type 194). The
created id is kept in state per call id (a keyed hash of it): a repeated step logs nothing.

Exactly once across crashes, as for messages (:mod:`.marks`): a durable mark is written before the
create; a retry that finds it searches HubSpot for the Call the interrupted attempt made (same
``hs_timestamp``, body carrying the call id) before creating one.
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
        "hs_timestamp": call_timestamp(call),
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


def call_timestamp(call: CallActivity) -> str:
    """``hs_timestamp`` of the Call logged for ``call`` (milliseconds): its start, else the webhook's time."""
    return str(int((call.start_time or call.timestamp).timestamp() * 1000))


class CallLog:
    def __init__(self, client: HubSpotClient, contacts: Contacts, owner: Any, search_index_lag: float) -> None:
        self.client = client
        self.contacts = contacts
        self.owner = owner  # ContactRef -> owner id or None (the timeline's rule)
        self.search_index_lag = search_index_lag

    async def log(self, ctx: EventContext, call: CallActivity) -> None:
        if call.event != "terminate":
            return  # the ended call carries the outcome; earlier steps are on the journal and the hook
        tag = marks.hashed(ctx, call.call_id)
        done_key, mark_key = f"call:{tag}", f"call-attempt:{tag}"
        if ctx.state.get(done_key):
            return
        if marks.earlier_attempt(ctx, mark_key, self.search_index_lag) is not None:
            existing = await self.find_existing(call)
            if existing is not None:
                ctx.state.set(done_key, {"id": existing})
                ctx.state.delete(mark_key)
                return
        contact = await self.contacts.find(ctx, call.contact.phone, user_id=call.contact.user_id,
                                           name=call.contact.name)
        if contact is None:
            raise SkippableError("no HubSpot contact has this number or BSUID (create_contacts is off)",
                                 code="no_contact")
        from hubspot.crm.objects.calls import SimplePublicObjectInputForCreate
        await marks.put(ctx, mark_key, {})
        created = await self.client.call("create call", self.client.calls.create, creates=True,
                                         simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
                                             **call_request(call, contact, self.owner(contact))))
        ctx.state.set(done_key, {"id": str(created.id)})
        ctx.state.delete(mark_key)

    async def find_existing(self, call: CallActivity) -> str | None:
        """The Call an interrupted attempt created: same timestamp, body carrying the call id."""
        from hubspot.crm.objects.calls import PublicObjectSearchRequest
        filters = [{"propertyName": "hs_timestamp", "operator": "EQ", "value": call_timestamp(call)}]
        request = PublicObjectSearchRequest(filter_groups=[{"filters": filters}], properties=["hs_call_body"],
                                            limit=100)
        page = await self.client.call("search calls", self.client.call_search.do_search,
                                      public_object_search_request=request, search=True)
        wanted = html.escape(call.call_id)
        for item in page.results or []:
            if wanted in str((item.properties or {}).get("hs_call_body") or ""):
                return str(item.id)
        return None
