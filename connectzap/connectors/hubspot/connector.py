"""The HubSpot connector: leads in, WhatsApp chats and consent back out.

* Webhook edge (``POST /webhooks/hubspot``): verify, then journal thin ``resolve`` events.
* ``resolve`` delivery (later, retried on its own): fetch the contact, journal a ``lead`` event
  carrying the consents its properties state (or, for a consent property change, the consent
  changes alone).
* Agents' replies: a note on a contact that starts with ``agent_reply_prefix`` is sent to the
  contact (:mod:`.agent_replies`), and what became of it goes on the timeline.
* Reply sync: inbound messages and ``accepted`` outbound messages go on the contact's timeline;
  consent changes made in connectzap are mirrored to the contact's consent properties.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel
from sqlalchemy import select

from ...core.bsuids import is_bsuid
from ...core.errors import SkippableError
from ...core.models import (CHANGED_IN_APP, Contact, SENT_FROM_BUSINESS_APP, CallActivity, ConsentChange, ContactAction,
                             ContactChange, Event, EventKind, Handoff, InboundMessage, MessageStatus, PastMessage,
                             StatusValue)
from ...core.connector import AudienceMember, AudienceQuery, OutboundCall
from ...core.models import CampaignFinished
from ...core.store.schema import events
from ...core.wording import counted
from ..base import Connector, ConnectorSettings, WebhookRequest
from ...core.replies import ReplyRequest
from . import agent_replies, audience, webhooks, workflow_sends
from .campaign_results import CampaignResults
from .campaign_timeline import CampaignTimeline
from .calls import CallLog
from .client import HubSpotClient
from .consent_sync import ConsentMirror, known_contact
from .contacts import ContactRef, Contacts
from .settings import HubSpotSettings
from .timeline import Entry, Timeline, describe_content

if TYPE_CHECKING:
    from ...core.app import Connectzap
    from ...core.context import EventContext


class HubSpotConnector(Connector):
    name: ClassVar[str] = "hubspot"
    title: ClassVar[str] = "HubSpot"
    settings_model: ClassVar[type[ConnectorSettings]] = HubSpotSettings
    routes: ClassVar[tuple[str, ...]] = ("/webhooks/hubspot",)
    payload_models: ClassVar[Mapping[EventKind, type[BaseModel]]] = {EventKind.RESOLVE: webhooks.ContactNotice}
    audience_sources: ClassVar[tuple[str, ...]] = (audience.SOURCE,)
    settings: HubSpotSettings

    def __init__(self, settings: ConnectorSettings, app: Connectzap) -> None:
        super().__init__(settings, app)
        self.client = HubSpotClient(self.settings)
        self.contacts = Contacts(self.client, self.settings)
        self.timeline = Timeline(self.client, self.contacts, self.settings)
        self.call_log = CallLog(self.client, self.contacts, self.timeline._owner,
                                self.settings.search_index_lag_seconds)
        self.consent_mirror = ConsentMirror(self.contacts, self.settings)
        self.list_audience = audience.ListAudience(self.client, self.contacts, self.settings)
        self.campaign_results = CampaignResults(self.client, self.contacts)
        self.campaign_timeline = CampaignTimeline(self.client, self.settings.search_index_lag_seconds)

    # --- campaigns: audiences from lists, outcomes back on the contacts ----------------------

    def audience(self, query: AudienceQuery) -> AsyncIterator[AudienceMember]:
        return self.list_audience.members(query)

    async def sync_campaign_finished(self, campaign: CampaignFinished, ctx: EventContext) -> None:
        await self.campaign_results.write(campaign, ctx)
        if self.settings.campaign_timeline:
            await self.campaign_timeline.write(campaign, ctx)

    # --- ingress -------------------------------------------------------------------------

    def verify_request(self, request: WebhookRequest) -> None:
        webhooks.verify(self.settings, request)

    def parse(self, request: WebhookRequest) -> list[Event]:
        return webhooks.parse(self.settings, request)

    # --- completing thin events --------------------------------------------------------------

    def delivery_targets(self, kind: str) -> dict[str, Callable[[Any, EventContext], Awaitable[Any]]]:
        if kind == EventKind.RESOLVE.value:
            return {f"connector:{self.name}": self._resolve_delivery}
        if kind == EventKind.SEND.value and self.settings.workflow_sends and self.settings.timeline:
            return {f"connector:{self.name}": self._workflow_send_outcome}
        return super().delivery_targets(kind)

    async def _workflow_send_outcome(self, outgoing: Any, ctx: EventContext) -> None:
        """A workflow send the gate refused goes on the contact's timeline with the reason (an admitted
        one appears there as the message itself, once WhatsApp accepted it)."""
        if ctx.source != self.name:
            return
        admitted = await asyncio.to_thread(self.app.messages, source_event_id=ctx.event_id, limit=1)
        if not admitted or admitted[0]["status"] != "refused" or outgoing is None:
            return
        await self.timeline.log(ctx, Entry(wamid=f"refused:{ctx.dedupe_key}", phone=outgoing.to.phone,
                                           direction="outbound", text=workflow_sends.refusal_text(admitted[0]),
                                           at=datetime.now(UTC), heading="⛔ WhatsApp message not sent"))

    async def _resolve_delivery(self, _payload: Any, ctx: EventContext) -> None:
        if ctx.source != self.name:
            return  # another connector's thin event
        data = await asyncio.to_thread(self._event_data, ctx.event_id)
        resolved = await self.resolve(data, ctx)
        # Journaled in its own transaction; the dedupe keys make a retried delivery harmless.
        await asyncio.to_thread(self.app.ingest, resolved)

    def _event_data(self, event_id: int) -> dict[str, Any]:
        with self.app.db.read() as conn:
            payload: str = conn.execute(select(events.c.payload).where(events.c.id == event_id)).scalar_one()
        return Event.model_validate_json(payload).data

    async def resolve(self, data: dict[str, Any], ctx: EventContext) -> list[Event]:
        """Fetch the contact a webhook named; return the lead (or consent) events it makes."""
        portal, object_id = str(data["portal_id"]), str(data["object_id"])
        if data.get("purpose") == "reply":
            return await self._agent_reply(portal, object_id, ctx)
        contact = await self.contacts.fetch(object_id)
        if contact is None:
            raise SkippableError(f"HubSpot contact {object_id} no longer exists", code="not_found")
        phone = self.contacts.phone_of(contact["properties"])
        if phone is None:
            raise SkippableError(f"HubSpot contact {object_id} has no valid WhatsApp number in "
                                 f"{', '.join(self.settings.phone_properties)}", code="no_phone")
        props = contact["properties"]
        self.contacts.remember(ctx, phone, ContactRef(object_id, props.get("hubspot_owner_id") or None))
        consents = self.contacts.consents_of(contact, portal, phone, datetime.now(UTC))
        base = ctx.dedupe_key  # already (portal, trigger, object, time, property)
        if data.get("purpose") == "consent":
            return [Event.of(EventKind.CONSENT_CHANGED, change, source=self.name,
                             dedupe_key=f"{base}:consent:{change.category.value}") for change in consents]
        if data.get("purpose") == "send":
            return [workflow_sends.send_event(self.settings, data, contact, phone, consents, base,
                                              webhooks.ordering_key(portal, object_id))]
        lead = self.contacts.lead_of(contact, portal, phone)
        return [Event.of(EventKind.LEAD, lead, source=self.name, dedupe_key=f"{base}:lead", consents=consents,
                         ordering_key=webhooks.ordering_key(portal, object_id))]

    # --- agents' replies written in HubSpot -----------------------------------------------------

    async def _agent_reply(self, portal: str, note_id: str, ctx: EventContext) -> list[Event]:
        """Fetch a new note and, when it is a WhatsApp reply on one contact with a number, the
        ``reply`` event that sends it (keyed by the note: one message however often it comes)."""
        note = await agent_replies.fetch_note(self.client, note_id)
        if note is None:
            raise SkippableError(f"HubSpot note {note_id} no longer exists", code="not_found")
        text = agent_replies.reply_text(self.settings, note.body)
        if text is None:
            return []  # an ordinary note
        if len(note.contact_ids) != 1:
            for contact_id in note.contact_ids:
                await self._reply_refused(ctx, note.id, contact_id,
                                          agent_replies.SEVERAL_CONTACTS.format(count=len(note.contact_ids)))
            raise SkippableError(f"HubSpot note {note.id} is on {len(note.contact_ids)} contacts, not one",
                                 code="not_one_contact")
        contact_id = note.contact_ids[0]
        if len(text) > agent_replies.MAX_TEXT:
            await self._reply_refused(ctx, note.id, contact_id, agent_replies.TOO_LONG.format(length=len(text)))
            raise SkippableError(f"HubSpot note {note.id} is longer than a WhatsApp message", code="too_long")
        contact = await self.contacts.fetch(contact_id)
        if contact is None:
            raise SkippableError(f"HubSpot contact {contact_id} no longer exists", code="not_found")
        props = contact["properties"]
        phone = self.contacts.phone_of(props)
        # A customer who hides their number is reached by the BSUID the contact holds.
        user_id = None if phone else str(props.get(self.settings.bsuid_property) or "").strip()
        if not phone and not is_bsuid(user_id):
            await self._reply_refused(ctx, note.id, contact_id, agent_replies.NO_NUMBER.format(
                properties=", ".join([*self.settings.phone_properties, self.settings.bsuid_property])))
            raise SkippableError(f"HubSpot contact {contact_id} has no valid WhatsApp number or BSUID",
                                 code="no_phone")
        consents = []
        if phone:
            self.contacts.remember(ctx, phone, ContactRef(contact_id, props.get("hubspot_owner_id") or None))
            consents = self.contacts.consents_of(contact, portal, phone, datetime.now(UTC))
        reply = agent_replies.reply_of(self.settings, portal, note, text, contact_id, contact,
                                       Contact(phone=phone, user_id=user_id or None))
        return [Event.of(EventKind.REPLY, reply, source=self.name, dedupe_key=f"{portal}:note:{note.id}:reply",
                         consents=consents, ordering_key=webhooks.ordering_key(portal, contact_id))]

    async def _reply_refused(self, ctx: EventContext, note_id: str, contact_id: str, text: str) -> None:
        await self._reply_outcome(ctx, note_id, contact_id, None, agent_replies.NOT_SENT, text)

    async def _reply_outcome(self, ctx: EventContext, note_id: str, contact_id: str, phone: str | None,
                             heading: str, text: str) -> None:
        """One timeline entry per note and contact: what became of the reply."""
        if self.settings.timeline:
            entry = Entry(wamid=f"reply:{note_id}:{contact_id}", phone=phone, direction="outbound", text=text,
                          at=datetime.now(UTC), heading=heading)
            await self.timeline.log(ctx, entry, contact=ContactRef(contact_id))

    async def sync_reply(self, reply: ReplyRequest, ctx: EventContext) -> None:
        """What became of an agent's reply written in HubSpot, on the contact's timeline."""
        origin = reply.origin or {}
        if origin.get("source") != self.name or not origin.get("contact") or not origin.get("note"):
            return
        admitted = await asyncio.to_thread(self.app.messages, source_event_id=ctx.event_id, limit=1)
        heading, text = agent_replies.outcome(admitted[0] if admitted else None)
        await self._reply_outcome(ctx, origin["note"], origin["contact"], reply.to.phone, heading, text)

    # --- reply sync -------------------------------------------------------------------------------

    def _inbound_entry(self, message: InboundMessage) -> Entry | None:
        user_id = message.contact.user_id if is_bsuid(message.contact.user_id) else None
        if not self.settings.timeline or not (message.contact.phone or user_id):
            return None
        text = message.text or (f"[{message.type}]" if message.type != "text" else "")
        if message.media_types:  # an MMS: its attachments by type only (never fetched)
            text = "\n".join([*([message.text] if message.text else []),
                              f"[{counted(len(message.media_types), 'attachment')}: {', '.join(message.media_types)}]"])
        return Entry(wamid=message.wamid, phone=message.contact.phone, direction="inbound", text=text,
                     at=message.timestamp, name=message.contact.name, user_id=user_id,
                     source=message.referral.summary() if message.referral else None, medium=message.medium)

    def _outbound_entry(self, status: MessageStatus) -> Entry | None:
        # Only connectzap's own "accepted" carries what was sent; later statuses change nothing here.
        if not self.settings.timeline or status.status != StatusValue.ACCEPTED \
                or not (status.recipient or status.recipient_user_id) or not status.wamid:
            return None
        return Entry(wamid=status.wamid, phone=status.recipient, direction="outbound",
                     text=describe_content(status.content), at=status.timestamp, user_id=status.recipient_user_id,
                     medium=status.medium)

    @staticmethod
    def _changed_entry(status: MessageStatus) -> Entry:
        """The timeline entry of a message the business edited or deleted in the WhatsApp Business app."""
        if status.status == "revoked":
            text = "(deleted in the WhatsApp Business app)"
        else:
            text = f"{describe_content(status.content)}\n(edited in the WhatsApp Business app)".lstrip()
        return Entry(wamid=status.wamid, phone=status.recipient, direction="outbound", text=text,
                     at=status.timestamp, user_id=status.recipient_user_id)

    def _past_entry(self, message: PastMessage) -> Entry | None:
        # the coexistence chat history: logged like the live conversation, once per wamid
        if not self.settings.timeline or not message.contact.phone:
            return None
        text = message.text or f"[{message.type}]"
        return Entry(wamid=message.wamid, phone=message.contact.phone, direction=message.direction, text=text,
                     at=message.timestamp)

    async def sync_past_message(self, message: PastMessage, ctx: EventContext) -> None:
        entry = self._past_entry(message)
        if entry is not None:
            await self.timeline.log(ctx, entry)

    async def sync_contact_changed(self, change: ContactChange, ctx: EventContext) -> None:
        """A contact saved in the WhatsApp Business app (coexistence): with ``create_contacts`` on, one
        HubSpot does not have yet is created with the name the business gave it. Existing contacts are
        left as they are, and a removal from the app's address book deletes nothing in HubSpot."""
        if change.action != ContactAction.SAVED:
            raise SkippableError("a contact removed from the WhatsApp Business app stays in HubSpot",
                                 code="not_mirrored")
        if not self.settings.create_contacts:
            raise SkippableError("create_contacts is off: contacts of the WhatsApp Business app are not "
                                 "added to HubSpot", code="create_contacts_off")
        await self.contacts.find(ctx, change.phone, user_id=change.user_id, name=change.full_name)

    async def sync_inbound_message(self, message: InboundMessage, ctx: EventContext) -> None:
        entry = self._inbound_entry(message)
        if entry is not None:
            await self.timeline.log(ctx, entry)
        if message.referral is not None and self.settings.ad_source_property:
            await self.contacts.note_ad_source(ctx, message)

    async def sync_message_status(self, status: MessageStatus, ctx: EventContext) -> None:
        if status.status in CHANGED_IN_APP and status.sent_from == SENT_FROM_BUSINESS_APP:
            if self.settings.timeline:
                await self.timeline.amend(ctx, self._changed_entry(status))
            return
        entry = self._outbound_entry(status)
        if entry is not None:
            await self.timeline.log(ctx, entry)

    async def sync_handoff(self, handoff: Handoff, ctx: EventContext) -> None:
        """A conversation handed to a person (or back to the bot): a Communication on the timeline."""
        user_id = handoff.contact.user_id if is_bsuid(handoff.contact.user_id) else None
        if not self.settings.timeline or not (handoff.contact.phone or user_id):
            return
        if handoff.to == "human":
            heading = "👤 WhatsApp conversation handed to a person"
            until = f"until {handoff.until:%Y-%m-%d %H:%M} UTC" if handoff.until else "until released"
            text = f"{handoff.reason or 'no reason given'} ({until}; by {handoff.by or 'connectzap'})"
        else:
            heading = "🤖 WhatsApp conversation back to automatic answers"
            text = f"released by {handoff.by or 'connectzap'}"
        await self.timeline.log(ctx, Entry(wamid=f"handoff:{ctx.dedupe_key}", phone=handoff.contact.phone,
                                           direction="inbound", text=text, at=handoff.at, name=handoff.contact.name,
                                           user_id=user_id, heading=heading))

    async def sync_call(self, call: CallActivity, ctx: EventContext) -> None:
        if self.settings.timeline:
            await self.call_log.log(ctx, call)

    async def sync_consent_changed(self, change: ConsentChange, ctx: EventContext) -> None:
        await self.consent_mirror.mirror(change, ctx)

    # --- simulation ---------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.settings.api_base_url.rstrip('/')}/crm/v3/objects/{path}"

    async def rehearse(self, target: str, kind: str, payload: Any, ctx: EventContext) -> list[OutboundCall]:
        if kind == EventKind.CAMPAIGN_FINISHED.value:
            return await asyncio.to_thread(self.campaign_results.rehearse, payload, ctx,
                                           self._url("contacts/batch/update"))
        if kind == EventKind.RESOLVE.value:
            if ctx.source != self.name:
                return []
            data = await asyncio.to_thread(self._event_data, ctx.event_id)
            if data.get("purpose") == "reply":
                return [OutboundCall("GET", self._url(f"notes/{data['object_id']}?properties=hs_note_body"
                                                      "&associations=contacts"),
                                     note="fetch the note; when it starts with the reply prefix, fetch its contact "
                                          "and send the reply (a simulation reads nothing from HubSpot)")]
            fields = ",".join(self.settings.fetched_properties())
            return [OutboundCall("GET", self._url(f"contacts/{data['object_id']}?properties={fields}"),
                                 note="fetch the contact, then journal the lead or consent events it states "
                                      "(a simulation reads nothing from HubSpot and stops here)")]
        if kind == EventKind.CONSENT_CHANGED.value:
            planned = await asyncio.to_thread(self.consent_mirror.pending, payload, ctx)
            if planned is None:
                return []
            if payload.phone or payload.user_id:
                contact, calls = self._rehearse_find(ctx, payload.phone, None, payload.user_id)
            else:  # named by its key only: the contact known under it, else the delivery skips it
                known = known_contact(ctx, str(payload.contact_key))
                if known is None:
                    return []
                contact, calls = known, []
            return [*calls, OutboundCall("PATCH", self._url(f"contacts/{contact.id}"), {"properties": planned[0]},
                                         note="mirror the consent ledger to the contact's properties")]
        entry = self._inbound_entry(payload) if kind == EventKind.INBOUND_MESSAGE.value \
            else self._outbound_entry(payload) if kind == EventKind.MESSAGE_STATUS.value \
            else self._past_entry(payload) if kind == EventKind.PAST_MESSAGE.value else None
        if entry is None or ctx.state.get(self.timeline.keys(ctx, entry)[0]):
            return []
        contact, calls = self._rehearse_find(ctx, entry.phone, entry.name, entry.user_id)
        kind_name = self.timeline.object_kind
        return [*calls, OutboundCall("POST", self._url(f"{kind_name}s"),
                                     self.timeline.create_request(kind_name, entry, contact),
                                     note=f"log the message on the contact's timeline as a {kind_name}")]

    def _rehearse_find(self, ctx: EventContext, phone: str | None, name: str | None,
                       user_id: str | None = None) -> tuple[ContactRef, list[OutboundCall]]:
        """The contact a delivery would use, and the calls finding it would take."""
        who = phone or user_id
        key = ctx.contact_key(who) if who else None
        cached = known_contact(ctx, key) if key else None
        if cached:
            return cached, []
        request = self.contacts.search_request(phone) if phone else self.contacts.bsuid_search_request(str(user_id))
        body = {"filterGroups": request["filter_groups"], "properties": request["properties"],
                "sorts": request["sorts"], "limit": request["limit"]}
        calls = [OutboundCall("POST", self._url("contacts/search"), body,
                              note="find the contact by number" if phone else "find the contact by BSUID")]
        if self.settings.create_contacts:
            calls.append(OutboundCall("POST", self._url("contacts"),
                                      {"properties": self.contacts.new_contact_properties(
                                          phone, name, user_id=None if phone else user_id),
                                       "associations": []},
                                      note="only when the search finds no contact (create_contacts)"))
        else:
            calls[0] = replace(calls[0], note="find the contact by number; if none has it, nothing is written "
                                              "(create_contacts is off)")
        return ContactRef("<id found by the search>"), calls
