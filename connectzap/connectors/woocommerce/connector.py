"""The WooCommerce connector: signed webhooks in, private order notes out.

Ingress (per shop, ``/webhooks/woocommerce[/{shop}]``):

* the creation ping (form body ``webhook_id=N``, unsigned) is answered 200 and nothing else;
* everything else needs ``X-WC-Webhook-Signature`` (base64 HMAC-SHA256 of the raw body);
* ``order.created`` / ``order.updated`` become order events carrying the checkout opt-in as
  consent changes; ``action.woocommerce_order_status_<status>`` names only an order id, so it
  becomes a *partial* order event that the plugin module completes with a REST fetch;
  ``customer.created`` becomes consent events when the customer ticked the opt-in (and nothing
  otherwise); other topics are acknowledged and ignored, so WooCommerce never disables the hook.

Reply sync: a customer's WhatsApp message shortly after their latest order, and a failed
delivery of an order notification, are added to the order as private notes. Contacts of the
WhatsApp Business app, its chat history and calls are skipped with their reason.
"""

from __future__ import annotations

import asyncio
import json
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import datetime
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from ...core.media import WHATSAPP
from ...core.errors import PayloadError, SignatureError, SkippableError
from ...core.models import (CallActivity, CampaignFinished, Contact, ContactChange, Event, EventKind, Handoff,
                            InboundMessage, MessageStatus, Order, PastMessage, StatusValue)
from ...core.campaigns.write_back import Outcome, unwritten, write_back
from ...core.connector import AudienceMember, AudienceQuery, OperatorAction, OutboundCall
from ...core.messages import Outgoing
from ...core.replies import ReplyRequest
from ..base import Connector, WebhookRequest, WebhookResponse
from . import audience, cod, customer_notes, replies, review_requests
from .notices import ShopNotice
from .mapping import SOURCE, consents_from, customer_of, gmt, order_event, ordering_key
from .reconcile import reconcile_all, reconcile_forever
from .rest import ShopClient
from .settings import ShopSettings, WooCommerceSettings
from .signatures import verify_woocommerce

if TYPE_CHECKING:
    from ...core.context import EventContext

_PING = re.compile(rb"^webhook_id=\d+$")
_STATUS_ACTION = "woocommerce_order_status_"


class WooCommerceConnector(Connector):
    name = "woocommerce"
    title = "WooCommerce"
    settings_model = WooCommerceSettings
    routes = ("/webhooks/woocommerce", "/webhooks/woocommerce/{shop}")
    # Only the signature (and the topic) matter; without a delivery id a redelivery is recognised by
    # its body's hash, and the others are informational.
    optional_headers = ("x-wc-webhook-delivery-id", "x-wc-webhook-id", "x-wc-webhook-resource",
                        "x-wc-webhook-event", "x-wc-webhook-source")
    methods = ("POST",)
    audience_sources: ClassVar[tuple[str, ...]] = (audience.SOURCE,)
    payload_models: ClassVar[Mapping[EventKind, type[BaseModel]]] = {
        EventKind.RESOLVE: ShopNotice}

    settings: WooCommerceSettings

    def __init__(self, settings: WooCommerceSettings, app: Any) -> None:
        super().__init__(settings, app)
        self._clients: dict[str, ShopClient] = {}
        self.cod = cod.CashOnDelivery(app, settings.shops, self.client)

    # --- shops -------------------------------------------------------------------------

    async def background(self, stop: asyncio.Event) -> None:
        """Reconcile every shop periodically (``reconcile_interval_minutes``; 0 = off)."""
        await reconcile_forever(self.app, stop)

    def operator_actions(self) -> list[OperatorAction]:
        """The console's "Run reconcile now": ``connectzap woocommerce reconcile --no-wait`` (the
        serving workers handle what it journals). Offered when a shop has REST keys."""
        if not any(shop.has_rest_keys for shop in self.settings.shops.values()):
            return []
        return [OperatorAction("reconcile", "Run reconcile now",
                               "Fetch the orders changed since the last one seen and journal the changes "
                               "whose webhooks never arrived.", self._reconcile_now)]

    def _reconcile_now(self) -> str:
        return "; ".join(result.summary() for result in reconcile_all(self.app))

    # --- campaigns: audiences by order history, outcomes back on the customers ----------------

    def audience(self, query: AudienceQuery) -> AsyncIterator[AudienceMember]:
        found = audience.query_filter(query, sorted(self.settings.shops), self.settings.default_shop())
        return audience.ShopAudience(self.client(found.shop), found).members(query.fields)

    async def sync_campaign_finished(self, campaign: CampaignFinished, ctx: EventContext) -> None:
        async def write(batch: list[Outcome]) -> None:
            await audience.write_batch(self.client, campaign.name, batch)

        await write_back(ctx, campaign, audience.SOURCE, audience.WRITE_BATCH, write)

    def _rehearse_campaign(self, campaign: CampaignFinished, ctx: EventContext) -> list[OutboundCall]:
        """The batch updates the write-back would send now (``connectzap simulate``)."""
        return [OutboundCall("POST", ShopClient.url_for(self.shop(shop), f"{endpoint}/batch"), {"update": updates},
                             note="write the campaign's outcome to the shop's records as meta data")
                for batch in unwritten(ctx, campaign, audience.SOURCE, audience.WRITE_BATCH)
                for (shop, endpoint), updates in audience.updates_by_shop(campaign.name, batch).items()]

    # --- fallback: the shop's rule for messages about its orders -------------------------------

    def fallback_media(self, outgoing: Outgoing) -> list[str] | None:
        """A message about one of a shop's orders falls back on the shop's ``fallback``; a
        cash-on-delivery question on its ``cod.fallback`` only (a tap is its answer)."""
        origin = outgoing.origin or {}
        shop = self.settings.shops.get(origin.get("shop", ""))
        if shop is None:
            return None
        if origin.get("flow") == cod.FLOW:
            return shop.cod.fallback
        return shop.fallback

    def shop_name(self, request: WebhookRequest) -> str | None:
        named = request.path_params.get("shop")
        if named:
            return named if named in self.settings.shops else None
        return self.settings.default_shop()

    def shop(self, name: str) -> ShopSettings:
        return self.settings.shops[name]

    def client(self, name: str) -> ShopClient:
        if name not in self._clients:
            self._clients[name] = ShopClient(name, self.settings.shops[name])
        return self._clients[name]

    # --- ingress -----------------------------------------------------------------------

    def handshake(self, request: WebhookRequest) -> WebhookResponse | None:
        if self.shop_name(request) is None:
            return WebhookResponse(status=404, body={"error": "unknown_shop",
                                                     "detail": "no such shop in [connectors.woocommerce.shops]"})
        if request.header("x-wc-webhook-signature") is None and _PING.match(request.body.strip()):
            return WebhookResponse(status=200, body={"ok": True})  # creation ping: WooCommerce wants exactly 200
        return None

    def verify_request(self, request: WebhookRequest) -> None:
        name = self.shop_name(request)
        if name is None:
            raise SignatureError("unknown shop")
        verify_woocommerce(request.body, request.header("x-wc-webhook-signature"), self.shop(name).secrets)

    def parse(self, request: WebhookRequest) -> list[Event]:
        name = self.shop_name(request)
        assert name is not None  # handshake answered unknown shops
        topic = (request.header("x-wc-webhook-topic") or "").strip()
        if not topic:
            raise PayloadError("X-WC-Webhook-Topic header is missing", field="X-WC-Webhook-Topic")
        delivery = request.header("x-wc-webhook-delivery-id") or "body-" + hashlib.sha256(request.body).hexdigest()
        dedupe = f"{name}:{delivery}"
        data = _json(request.body)
        if topic in ("order.created", "order.updated"):
            kind = EventKind.ORDER_CREATED if topic == "order.created" else EventKind.ORDER_UPDATED
            return [self.order_event(name, data, kind, dedupe)]
        if topic.startswith("action."):
            return self._action_events(name, data, dedupe)
        if topic == "customer.created":
            return self._customer_events(name, data, dedupe)
        return []  # acknowledged: a non-2xx answer would count towards WooCommerce disabling the webhook

    def order_event(self, name: str, data: Any, kind: EventKind, dedupe: str) -> Event:
        """One REST v3 order as an event (webhooks and reconcile share this)."""
        return order_event(name, self.shop(name), data, kind, dedupe)

    def _action_events(self, name: str, data: Any, dedupe: str) -> list[Event]:
        if not isinstance(data, dict) or not isinstance(data.get("action"), str):
            raise PayloadError("action webhook has no action", field="action")
        action, arg = data["action"], data.get("arg")
        if action == customer_notes.ACTION:
            return [customer_notes.notice_event(name, arg, dedupe)] if self.shop(name).send_customer_notes else []
        if not action.startswith(_STATUS_ACTION) or not isinstance(arg, (int, str)) or not str(arg).isdigit():
            return []
        status = action.removeprefix(_STATUS_ACTION)
        # Only the id is known; the plugin module fetches the order and journals it in full.
        order = Order(id=str(arg), status=status, shop=name, partial=True)
        return [Event.of(EventKind.ORDER_UPDATED, order, source=SOURCE, dedupe_key=dedupe,
                         ordering_key=ordering_key(name, order.id))]

    def _customer_events(self, name: str, data: Any, dedupe: str) -> list[Event]:
        if not isinstance(data, dict) or data.get("id") in (None, ""):
            raise PayloadError("customer payload has no id", field="id")
        contact = customer_of(data)
        changes = consents_from(data, contact, name, self.shop(name), what=f"customer {data['id']} sign-up",
                                at=gmt(data.get("date_created_gmt")))
        return [Event.of(EventKind.CONSENT_CHANGED, change, source=SOURCE,
                         dedupe_key=f"{dedupe}:{change.category.value}" + (
                             "" if change.medium == WHATSAPP else f":{change.medium}")) for change in changes]

    # --- notes to the customer ------------------------------------------------------------

    def delivery_targets(self, kind: str) -> dict[str, Callable[[Any, EventContext], Awaitable[Any]]]:
        if kind == EventKind.RESOLVE.value:
            return {f"connector:{self.name}": self._resolve}
        return super().delivery_targets(kind)

    async def _resolve(self, notice: Any, ctx: EventContext) -> None:
        if ctx.source != self.name or not isinstance(notice, ShopNotice):
            return  # another connector's thin event
        if isinstance(notice.root, review_requests.ReviewDue):
            await self._settle_review(notice.root, ctx)
        elif isinstance(notice.root, cod.CodDue):
            await self.cod.due(notice.root, ctx)
        else:
            await self._complete_note(notice.root, ctx)

    async def _settle_review(self, notice: review_requests.ReviewDue, ctx: EventContext) -> None:
        """A review request fell due: read the order again, send or give up, and note it on the order."""
        if notice.shop not in self.settings.shops:
            raise SkippableError(f"shop {notice.shop} is no longer configured", code="unknown_shop")
        if ctx.simulating:
            ctx.would(OutboundCall("GET", ShopClient.url_for(self.shop(notice.shop), f"orders/{notice.order}"),
                                   note="read the order again, then send the review request or note why not"))
            return
        settled = await review_requests.settle(self.app, self.client(notice.shop), notice,
                                               self.settings.review_requests)
        review_requests.record(self.app, notice, settled)
        noted = replies.noted_key(f"{notice.shop}:{notice.order}:{notice.round}", "review")
        if settled.note is not None and not ctx.state.get(noted):
            await self._add_note(replies.Note(notice.shop, notice.order, settled.note, noted), ctx)

    async def _complete_note(self, notice: customer_notes.CustomerNote, ctx: EventContext) -> None:
        """Fetch the order and its customer notes; journal the note as a ``reply`` (or note on the
        order why it cannot go)."""
        client = self.client(notice.shop)
        if ctx.simulating:
            ctx.would(OutboundCall("GET", ShopClient.url_for(self.shop(notice.shop), f"orders/{notice.order}"),
                                   note="fetch the order (the customer's number), then send the note on WhatsApp"))
            return
        order = await asyncio.to_thread(client.get_order, notice.order)
        notes = await asyncio.to_thread(client.customer_notes, notice.order)
        key = customer_notes.note_key(notice, notes)
        reply = customer_notes.reply_of(notice, order, key)
        if reply is None:
            noted = replies.noted_key(key, "no-number")
            if not ctx.state.get(noted):
                await self._add_note(replies.Note(notice.shop, notice.order, customer_notes.NO_NUMBER_NOTE, noted), ctx)
            raise SkippableError(f"order {notice.order} has no valid WhatsApp number", code="no_phone")
        # Journaled in its own transaction; its dedupe key (the note's id) makes a retry harmless.
        await asyncio.to_thread(self.app.ingest, [Event.of(EventKind.REPLY, reply, source=self.name, dedupe_key=key)])

    async def sync_reply(self, reply: ReplyRequest, ctx: EventContext) -> None:
        origin = reply.origin or {}
        if origin.get("source") != self.name or origin.get("shop") not in self.settings.shops:
            return
        noted = replies.noted_key(ctx.dedupe_key, "reply")
        if ctx.state.get(noted) or not self.shop(origin["shop"]).has_rest_keys:
            return
        admitted = await asyncio.to_thread(self.app.messages, source_event_id=ctx.event_id, limit=1)
        text = customer_notes.outcome_note(admitted[0] if admitted else None)
        await self._add_note(replies.Note(origin["shop"], origin["order"], text, noted), ctx)

    # --- reply sync ----------------------------------------------------------------------

    async def sync_order_created(self, order: Order, ctx: EventContext) -> None:
        """Ask a cash-on-delivery customer to confirm (when the shop's ``cod`` section says so)."""
        await self.cod.ask(order, ctx)

    async def sync_inbound_message(self, message: InboundMessage, ctx: EventContext) -> None:
        tap = cod.tap_of(message)
        if tap is not None:  # a Confirm / Cancel button: its own order note, not the reply's
            await self.cod.answer(tap, message, ctx)
            return
        note = await self._inbound_note(message, ctx)
        if note is not None:
            await self._add_note(note, ctx)

    async def sync_message_status(self, status: MessageStatus, ctx: EventContext) -> None:
        note = await self._failure_note(status, ctx)
        if note is not None:
            await self._add_note(note, ctx)

    # What an order note is not for: skipped with the reason, so `connectzap events` says why.

    async def sync_contact_changed(self, change: ContactChange, ctx: EventContext) -> None:
        raise SkippableError("a contact saved in the WhatsApp Business app changes no order; WooCommerce "
                             "customers come from checkout", code="not_an_order_change")

    async def sync_past_message(self, message: PastMessage, ctx: EventContext) -> None:
        raise SkippableError("the WhatsApp Business app's chat history is not added to orders: only live "
                             "replies after an order become notes", code="history_not_noted")

    async def sync_call(self, call: CallActivity, ctx: EventContext) -> None:
        raise SkippableError("WhatsApp calls are not noted on orders (a CRM connector logs them)",
                             code="calls_not_noted")

    async def sync_handoff(self, handoff: Handoff, ctx: EventContext) -> None:
        note = await self._handoff_note(handoff, ctx)
        if note is not None:
            await self._add_note(note, ctx)

    async def rehearse(self, target: str, kind: str, payload: Any, ctx: EventContext) -> list[OutboundCall]:
        if kind == "campaign_finished":
            return await asyncio.to_thread(self._rehearse_campaign, payload, ctx)
        if kind == "order_created":
            return self.cod.rehearse_ask(payload)
        if kind == "inbound_message" and cod.tap_of(payload) is not None:
            return [OutboundCall(None, None, note="a cash-on-delivery answer: the order's status and a private note "
                                                  "(the shop is read first)")]
        if kind == "inbound_message":
            note = await self._inbound_note(payload, ctx)
        elif kind == "message_status":
            note = await self._failure_note(payload, ctx)
        elif kind == "handoff":
            note = await self._handoff_note(payload, ctx)
        else:
            note = None
        if note is None:
            return []
        endpoint, body = ShopClient.note_request(note.order, note.text)
        return [OutboundCall("POST", ShopClient.url_for(self.shop(note.shop), endpoint), body,
                             note=f"a private note on order {note.order} of shop {note.shop}")]

    async def _inbound_note(self, message: InboundMessage, ctx: EventContext) -> replies.Note | None:
        """The note a customer's WhatsApp message makes on their latest order, if any."""
        return await self._note_on_latest_order(message.contact, message.timestamp, replies.inbound_note(message),
                                                replies.noted_key(message.wamid), ctx)

    async def _handoff_note(self, handoff: Handoff, ctx: EventContext) -> replies.Note | None:
        """The note a conversation handed to a person (or back) makes on the customer's latest order."""
        return await self._note_on_latest_order(handoff.contact, handoff.at, replies.handoff_note(handoff),
                                                replies.noted_key(ctx.dedupe_key, "handoff"), ctx)

    async def _note_on_latest_order(self, contact: Contact, at: datetime, text: str, noted: str,
                                    ctx: EventContext) -> replies.Note | None:
        # A customer known by BSUID only finds the orders of the number their BSUID is linked to
        # (orders are indexed by number); an unlinked BSUID finds none: an order is never guessed.
        who = contact.phone or contact.user_id
        if who is None or ctx.state.get(noted):
            return None
        contact_key = ctx.contact_key(who)
        target = await asyncio.to_thread(replies.latest_order, self.app, contact_key) if contact_key else None
        if target is None or target["shop"] not in self.settings.shops:
            return None
        shop = self.shop(target["shop"])
        if not shop.has_rest_keys or not replies.within_window(target, at, shop.notes_window_hours):
            return None
        return replies.Note(target["shop"], target["order"], text, noted)

    async def _failure_note(self, status: MessageStatus, ctx: EventContext) -> replies.Note | None:
        """The note a failed order notification makes on its order, if any."""
        # A message that failed unconfirmed may never have had a wamid: its outbox id names it then.
        noted = replies.noted_key(status.wamid or f"outbox:{status.outbox_id}", "failed")
        if status.status != StatusValue.FAILED or ctx.state.get(noted):
            return None
        origin = await asyncio.to_thread(replies.notification_origin, self.app, status)
        if origin is None or origin.shop not in self.settings.shops:
            return None
        shop = self.shop(origin.shop)
        if not shop.note_failures or not shop.has_rest_keys:
            return None
        return replies.Note(origin.shop, origin.order, replies.failure_note(status, origin),
                            noted)

    async def _add_note(self, note: replies.Note, ctx: EventContext) -> None:
        await asyncio.to_thread(self.client(note.shop).add_note, note.order, note.text)
        ctx.state.set(note.state_key, {"shop": note.shop, "order": note.order})


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PayloadError("body is not JSON", field="body") from None

