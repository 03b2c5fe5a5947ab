"""WhatsApp messages (and handoffs), and SMS customers send, on the contact's HubSpot timeline:
one entry per wamid (an SMS: its Twilio id), ever.

Each message becomes a Communication (channel WHATS_APP, an SMS channel SMS; logged from CRM,
associated to the contact with HubSpot-defined type 81) or, where the portal has no Communications (configured,
or a 403), a Note (type 202). HubSpot has no direction field, so the body says which way the
message went, what it said and its wamid.

Exactly once: the created id is kept in state per wamid (a keyed hash of it), and a durable mark
written before each create lets a retry after a crash find what the interrupted attempt made
(by its timestamp and wamid) instead of logging the message twice.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from ...core.errors import FatalDeliveryError, SkippableError
from ...core.media import SMS, WHATSAPP
from . import marks
from .client import HubSpotClient
from .contacts import ContactRef, Contacts
from .settings import HubSpotSettings

if TYPE_CHECKING:
    from ...core.context import EventContext

COMMUNICATION_TO_CONTACT = 81
NOTE_TO_CONTACT = 202
ObjectKind = Literal["communication", "note"]
WHATS_APP = "WHATS_APP"
CHANNEL_TYPES = {WHATSAPP: WHATS_APP, SMS: "SMS"}
"""Our medium -> HubSpot's ``hs_communication_channel_type`` (another medium is logged as WhatsApp's)."""


@dataclass(frozen=True)
class Entry:
    """One message to log (WhatsApp unless ``medium`` says otherwise)."""

    wamid: str
    phone: str | None  # None: a customer known by business-scoped user id only
    direction: Literal["inbound", "outbound"]
    text: str
    at: datetime
    name: str | None = None
    user_id: str | None = None
    source: str | None = None
    """Where the customer came from (a Click-to-WhatsApp ad's summary), shown under the text."""
    heading: str | None = None
    """Replaces the "message received/sent" line (a handoff is no message); ``wamid`` then holds
    the entry's own id, shown last like a message's."""
    medium: str = WHATSAPP
    """Where the message went: ``sms`` is logged as an SMS Communication (``wamid`` is Twilio's id)."""

    @property
    def millis(self) -> int:
        return int(self.at.timestamp() * 1000)

    @property
    def channel_type(self) -> str:
        """The Communication's ``hs_communication_channel_type``."""
        return CHANNEL_TYPES.get(self.medium, WHATS_APP)

    def body(self) -> str:
        """The timeline text (HubSpot renders it as HTML, so the message is escaped)."""
        said = "SMS" if self.medium == SMS else "WhatsApp message"
        arrow = self.heading or (f"⬅ {said} received" if self.direction == "inbound" else f"➡ {said} sent")
        text = "<br>".join(html.escape(line) for line in self.text.splitlines()) or "(no text)"
        source = f"<p>Lead source: {html.escape(self.source)}</p>" if self.source else ""
        label = "id" if self.heading else "wamid" if self.medium == WHATSAPP else f"{self.medium} id"
        return (f"<p><strong>{html.escape(arrow)}</strong></p><p>{text}</p>{source}"
                f"<p>{label}: {html.escape(self.wamid)}</p>")


def describe_content(content: dict[str, Any] | None) -> str:
    """Readable text for outbound content as the ``accepted`` status carries it."""
    if not content:
        return ""
    kind = content.get("type")
    if kind == "text":
        return str(content.get("body", ""))
    if kind == "template":
        body = content.get("body") or []
        values = body.values() if isinstance(body, dict) else body
        params = [str(p.get("text") or p.get("fallback_value") or "") if isinstance(p, dict) else str(p)
                  for p in values]
        text = f"Template {content.get('name')} ({content.get('language')})"
        return text + (": " + ", ".join(params) if params else "")
    caption = content.get("caption") or content.get("body") or ""
    return f"[{kind}] {caption}".strip()


class Timeline:
    def __init__(self, client: HubSpotClient, contacts: Contacts, settings: HubSpotSettings) -> None:
        self.client = client
        self.contacts = contacts
        self.settings = settings
        self.communications_unavailable = settings.timeline_object == "note"

    @staticmethod
    def keys(ctx: EventContext, entry: Entry) -> tuple[str, str]:
        """The state keys: the entry is logged (done), an attempt to log it started (mark)."""
        tag = marks.hashed(ctx, entry.wamid)
        return f"timeline:{tag}", f"timeline-attempt:{tag}"

    async def log(self, ctx: EventContext, entry: Entry, contact: ContactRef | None = None) -> None:
        """Log ``entry`` once, on ``contact`` when known, else on the contact found by number or BSUID."""
        done_key, mark_key = self.keys(ctx, entry)
        if ctx.state.get(done_key):
            return
        earlier = marks.earlier_attempt(ctx, mark_key, self.settings.search_index_lag_seconds)
        if earlier is not None:
            existing = await self.find_existing(entry, earlier.get("object", "communication"))
            if existing is not None:
                ctx.state.set(done_key, {"id": existing, "object": earlier.get("object")})
                ctx.state.delete(mark_key)
                return
        contact = contact or await self.contacts.find(ctx, entry.phone, user_id=entry.user_id, name=entry.name)
        if contact is None:
            raise SkippableError("no HubSpot contact has this number or BSUID (create_contacts is off)",
                                 code="no_contact")
        kind = self.object_kind
        try:
            created = await self._create(ctx, mark_key, kind, entry, contact)
        except FatalDeliveryError as exc:
            if kind != "communication" or exc.code != "hubspot_forbidden":
                raise
            ctx.log.warning("HubSpot refused a Communication (%s); logging WhatsApp messages as notes", exc.message)
            self.communications_unavailable = True  # until restart: a portal may gain the feature
            kind = "note"
            created = await self._create(ctx, mark_key, kind, entry, contact)
        ctx.state.set(done_key, {"id": created, "object": kind})
        ctx.state.delete(mark_key)

    def _owner(self, contact: ContactRef) -> str | None:
        if self.settings.owner_id:
            return self.settings.owner_id
        return contact.owner_id if self.settings.use_contact_owner else None

    async def amend(self, ctx: EventContext, entry: Entry) -> None:
        """Rewrite the body of the entry logged for ``entry.wamid`` (the message was edited or deleted
        where it was sent). Repeating it writes the same body again, so a retry needs no mark."""
        done_key, _ = self.keys(ctx, entry)
        logged = ctx.state.get(done_key)
        if not logged:
            raise SkippableError("this message is not on the HubSpot timeline (never logged, or logged "
                                 "before connectzap)", code="not_logged")
        if logged.get("object") == "note":
            from hubspot.crm.objects.notes import SimplePublicObjectInput
            api, props = self.client.notes, {"hs_note_body": entry.body()}
        else:
            from hubspot.crm.objects.communications import SimplePublicObjectInput
            api, props = self.client.communications, {"hs_communication_body": entry.body()}
        await self.client.call("update the timeline entry", api.update, str(logged["id"]),
                               simple_public_object_input=SimplePublicObjectInput(properties=props))

    @property
    def object_kind(self) -> ObjectKind:
        return "note" if self.communications_unavailable else "communication"

    def create_request(self, kind: ObjectKind, entry: Entry, contact: ContactRef) -> dict[str, Any]:
        """The body of the create call: the entry's properties and its association to the contact."""
        if kind == "communication":
            props = {"hs_communication_channel_type": entry.channel_type, "hs_communication_logged_from": "CRM",
                     "hs_communication_body": entry.body(), "hs_timestamp": str(entry.millis)}
            type_id = COMMUNICATION_TO_CONTACT
        else:
            props = {"hs_note_body": entry.body(), "hs_timestamp": str(entry.millis)}
            type_id = NOTE_TO_CONTACT
        owner = self._owner(contact)
        if owner:
            props["hubspot_owner_id"] = owner
        associations = [{"to": {"id": contact.id},
                         "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}]
        return {"properties": props, "associations": associations}

    async def _create(self, ctx: EventContext, mark_key: str, kind: ObjectKind, entry: Entry,
                      contact: ContactRef) -> str:
        await marks.put(ctx, mark_key, {"object": kind})
        if kind == "communication":
            from hubspot.crm.objects.communications import SimplePublicObjectInputForCreate
            api = self.client.communications
        else:
            from hubspot.crm.objects.notes import SimplePublicObjectInputForCreate
            api = self.client.notes
        created = await self.client.call(f"create {kind}", api.create, creates=True,
                                         simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
                                             **self.create_request(kind, entry, contact)))
        return str(created.id)

    async def find_existing(self, entry: Entry, kind: ObjectKind) -> str | None:
        """The entry an interrupted attempt created: same timestamp, body carrying the wamid."""
        if kind == "communication":
            from hubspot.crm.objects.communications import PublicObjectSearchRequest
            api, body_prop = self.client.communication_search, "hs_communication_body"
            extra = [{"propertyName": "hs_communication_channel_type", "operator": "EQ", "value": entry.channel_type}]
        else:
            from hubspot.crm.objects.notes import PublicObjectSearchRequest
            api, body_prop, extra = self.client.note_search, "hs_note_body", []
        filters = [{"propertyName": "hs_timestamp", "operator": "EQ", "value": str(entry.millis)}, *extra]
        request = PublicObjectSearchRequest(filter_groups=[{"filters": filters}], properties=[body_prop], limit=100)
        page = await self.client.call(f"search {kind}s", api.do_search, public_object_search_request=request,
                                      search=True)
        for item in page.results or []:
            if entry.wamid in str((item.properties or {}).get(body_prop) or ""):
                return str(item.id)
        return None
