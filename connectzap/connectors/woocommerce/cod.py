"""Cash-on-delivery confirmation: the customer confirms or cancels a COD order with one tap.

Order of events for one order (state under ``cod:{shop}:{order}`` in the connector's plugin state):

1. ``order.created`` of a COD order (payment method, minimum total, an awaiting status, a valid
   number) proposes the template with two quick replies and journals two timer events (reminder,
   timeout) due later -- the journal's ``due_at``, so they survive restarts. Consent is the gate's
   decision, as for every send; a timer whose question was refused or failed does nothing.
2. A tap is honoured only when its payload carries the keyed token of its shop, order and answer
   (so no payload can be made up for another order) *and* it comes from the number the order was
   asked on. It sets the configured status through the REST API and adds a private order note,
   once: the first answer closes the record, and every later tap, replayed webhook or timer
   finds it closed and changes nothing (a tap gets the order's current status in reply).
3. A tap or timer acts only while the order is still in an awaiting status: an order the shop
   moved on is left alone.

Taps and timers may run on different workers at once (a timer due later carries no ordering key:
it would hold back the customer's other events). So the one change an order may get is *claimed*
first -- a key taken in its own committed transaction, which one contender wins -- and only the
winner calls the shop; a retry after a crash between the REST call and the commit finds the claim
its own and finishes the job (the note, the record, the answer) without changing the status twice.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from ...core.clock import now
from ...core.connector import OutboundCall
from ...core.idempotency import scoped_key
from ...core.messages import ButtonParam, TemplateContent, TextContent
from ...core.models import Event, EventKind, InboundMessage, Order
from ...core.store import outbox
from ...core.store.schema import outbox as outbox_table
from ...core.plugin_settings import render_strict
from ...core.wording import counted
from ...plugins.order_notifications import build_template, order_values
from .mapping import SOURCE, order_from_json

if TYPE_CHECKING:
    from ...core.app import Connectzap
    from ...core.context import EventContext
    from .cod_settings import CodSettings
    from .rest import ShopClient
    from .settings import ShopSettings

TARGET = "connector:woocommerce"
"""The delivery target whose plugin state and outbox keys the flow uses."""

_PAYLOAD = re.compile(r"^cod:(?P<shop>[A-Za-z0-9_-]{1,40}):(?P<order>\d{1,20}):(?P<answer>confirm|cancel)"
                      r":(?P<token>[0-9a-f]{24})$")
OPEN = ("asked", "reminded")
KEEP_SECONDS = 60 * 86400
"""How long an answered order's record is kept after the answer (a late tap still gets its status)."""
"""Record states in which the order still waits for an answer."""


class CodDue(BaseModel):
    """A timer of one order's confirmation, journaled as a ``resolve`` event due later."""

    model_config = ConfigDict(extra="forbid")
    notice: Literal["cod"] = "cod"
    shop: str
    order: str
    step: Literal["reminder", "timeout"]

    def subject(self) -> str:
        return f"the cash-on-delivery {self.step} of order {self.order} of shop {self.shop}"


@dataclass(frozen=True)
class Tap:
    shop: str
    order: str
    answer: Literal["confirm", "cancel"]
    token: str


def token(secret: bytes, shop: str, order: str, answer: str) -> str:
    """The keyed token a button payload carries: only connectzap can make one for an order."""
    return hmac.new(secret, f"cod:{shop}:{order}:{answer}".encode(), sha256).hexdigest()[:24]


def payload(secret: bytes, shop: str, order: str, answer: str) -> str:
    return f"cod:{shop}:{order}:{answer}:{token(secret, shop, order, answer)}"


def tap_of(message: InboundMessage) -> Tap | None:
    """The COD answer a quick-reply tap carries, or None for any other message."""
    found = _PAYLOAD.match(message.reply.payload or "") if message.reply is not None else None
    if found is None:
        return None
    answer: Literal["confirm", "cancel"] = "confirm" if found["answer"] == "confirm" else "cancel"
    return Tap(found["shop"], found["order"], answer, found["token"])


def state_key(shop: str, order: str) -> str:
    return f"cod:{shop}:{order}"


FLOW = "cod"
"""The ``flow`` in the origin of a cash-on-delivery question: its fallback is ``cod.fallback``."""


def _message_key(shop: str, order: str, what: str) -> str:
    return f"cod:{shop}:{order}:{what}"


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def why_not_asked(order: Order, cod: CodSettings) -> str | None:
    """Why ``order`` gets no question (None: ask)."""
    method = (order.model_extra or {}).get("payment_method")
    if method not in cod.payment_methods:
        return f"payment method {method or '(none)'} is not cash on delivery"
    if order.total is None or order.total < cod.minimum_total:
        return f"the total is below the minimum of {cod.minimum_total}"
    if order.status not in cod.awaiting_statuses:
        return f"the order is {order.status}, not waiting for a confirmation"
    if order.customer is None or order.customer.phone is None:
        return "the order has no valid phone number"
    return None


def question(order: Order, cod: CodSettings, secret: bytes, template: str | None = None) -> TemplateContent:
    """The template with its two quick replies, each carrying its signed payload."""
    spec = cod.model_copy(update={"template": template}) if template else cod
    content = build_template(spec, order)
    shop = order.shop or ""
    buttons = [ButtonParam(sub_type="quick_reply", index=cod.confirm_button,
                           payload=payload(secret, shop, order.id, "confirm")),
               ButtonParam(sub_type="quick_reply", index=cod.cancel_button,
                           payload=payload(secret, shop, order.id, "cancel"))]
    return content.model_copy(update={"buttons": [*content.buttons, *buttons]})


class CashOnDelivery:
    """The flow for every shop of one connector (``clients``: the connector's REST client per shop)."""

    def __init__(self, app: Connectzap, shops: dict[str, ShopSettings], clients: Any) -> None:
        self.app = app
        self.shops = shops
        self.client: Any = clients

    def _cod(self, shop: str) -> CodSettings | None:
        settings = self.shops.get(shop)
        return settings.cod if settings is not None and settings.cod.enabled and settings.has_rest_keys else None

    # --- 1. asking ------------------------------------------------------------------------------

    async def ask(self, order: Order, ctx: EventContext) -> None:
        cod = self._cod(order.shop or "")
        if ctx.source != SOURCE or order.partial or cod is None:
            return
        shop, key = order.shop or "", state_key(order.shop or "", order.id)
        reason = why_not_asked(order, cod)
        if reason is None and ctx.state.get(key) is not None:
            reason = "the customer was already asked"
        if reason is not None:
            ctx.note("cod_not_asked", reason)
            return
        assert order.customer is not None and order.customer.phone is not None  # why_not_asked checked it
        contact = ctx.contact_key(order.customer.phone)
        t = now()
        ctx.send(order.customer, question(order, cod, self.app.secret), key=_message_key(shop, order.id, "ask"),
                 origin={"source": SOURCE, "shop": shop, "order": order.id, "flow": FLOW})
        forget = t + max(cod.timeout_hours, cod.reminder_hours) * 3600 + KEEP_SECONDS
        ctx.state.set(key, {"state": "asked", "contact": contact}, forget_at=forget)
        timers = [(step, hours) for step, hours in (("reminder", cod.reminder_hours), ("timeout", cod.timeout_hours))
                  if hours]
        for step, hours in timers:  # journaled now, each due later; their dedupe key makes a retry harmless
            due = CodDue(shop=shop, order=order.id, step=step)  # type: ignore[arg-type]
            # no ordering key: an event due later would hold back every later event of its key
            event = Event.of(EventKind.RESOLVE, due, source=SOURCE, dedupe_key=_message_key(shop, order.id, step))
            await asyncio.to_thread(self.app.ingest, [event], due_at=t + hours * 3600)

    def rehearse_ask(self, order: Order) -> list[OutboundCall]:
        """What :meth:`ask` would do (``connectzap simulate``: the gate's verdict on the question is
        not part of a rehearsal)."""
        cod = self._cod(order.shop or "")
        if cod is None or order.partial or why_not_asked(order, cod) is not None:
            return []
        later = [f"{step} after {hours:g} h" for step, hours in (("a reminder", cod.reminder_hours),
                                                                  ("the timeout", cod.timeout_hours)) if hours]
        return [OutboundCall(None, None, note=f"ask the customer to confirm cash on delivery with the template "
                                              f"{cod.template}" + (f" ({', '.join(later)})" if later else ""))]

    # --- 2. the customer's answer ---------------------------------------------------------------

    async def answer(self, tap: Tap, message: InboundMessage, ctx: EventContext) -> None:
        cod = self._cod(tap.shop)
        if cod is None:
            ctx.note("cod_off", f"shop {tap.shop} does not ask for cash-on-delivery confirmations")
            return
        if not hmac.compare_digest(tap.token, token(self.app.secret, tap.shop, tap.order, tap.answer)):
            ctx.note("cod_forged", f"the button payload for order {tap.order} does not carry its token")
            return
        key = state_key(tap.shop, tap.order)
        record = ctx.state.get(key)
        if record is None:
            ctx.note("cod_unknown", f"order {tap.order} was not asked for a confirmation (or long ago)")
            return
        who = message.contact.phone or message.contact.user_id
        if who is None or ctx.contact_key(who) != record["contact"]:
            ctx.note("cod_other_number", f"a tap for order {tap.order} came from another number than the order's")
            return
        client: ShopClient = self.client(tap.shop)
        data = await asyncio.to_thread(client.get_order, tap.order)
        order = order_from_json(data, tap.shop, self.shops[tap.shop])
        reply_to = message.contact.model_copy(update={"email": None})
        if record["state"] in OPEN:
            target = cod.confirm_status if tap.answer == "confirm" else cod.cancel_status
            final = "confirmed" if tap.answer == "confirm" else "cancelled"
            at = _stamp(message.timestamp.timestamp())
            text = f"The customer {final} the cash-on-delivery order on WhatsApp at {at}."
            if await self._apply(ctx, record, order, target, final, by=message.wamid, text=text):
                reply = cod.confirmed_reply if tap.answer == "confirm" else cod.cancelled_reply
                ctx.send(reply_to, TextContent(body=_render(reply, order, target)),
                         key=_message_key(tap.shop, tap.order, "answer"))
                return
        ctx.note("cod_unchanged", f"order {tap.order} is {order.status}; the tap changed nothing")
        ctx.send(reply_to, TextContent(body=_render(cod.unchanged_reply, order, order.status)),
                 key=_message_key(tap.shop, tap.order, f"tap:{message.wamid}"))

    # --- 3. timers ------------------------------------------------------------------------------

    async def due(self, due: CodDue, ctx: EventContext) -> None:
        cod = self._cod(due.shop)
        key = state_key(due.shop, due.order)
        record = ctx.state.get(key)
        if cod is None:
            ctx.note("cod_off", f"shop {due.shop} no longer asks for cash-on-delivery confirmations: no {due.step}")
            return
        if record is None or record["state"] not in OPEN:
            ctx.note("cod_answered", f"order {due.order} needs no {due.step}: "
                                     f"{record['state'] if record else 'no confirmation was asked'}")
            return
        if not self._asked(due):
            ctx.state.set(key, {**record, "state": "not_asked"})
            ctx.note("cod_not_asked", f"the question for order {due.order} was not delivered (refused or failed)")
            return
        data = await asyncio.to_thread(self.client(due.shop).get_order, due.order)
        order = order_from_json(data, due.shop, self.shops[due.shop])
        if due.step == "reminder":
            if order.status not in cod.awaiting_statuses:
                ctx.state.set(key, {**record, "state": "closed", "status": order.status})
                ctx.note("cod_closed", f"order {due.order} is {order.status}: no reminder")
                return
            if order.customer is not None and order.customer.phone is not None:
                ctx.send(order.customer, question(order, cod, self.app.secret, cod.reminder_template),
                         key=_message_key(due.shop, due.order, "reminder"),
                         origin={"source": SOURCE, "shop": due.shop, "order": due.order, "flow": FLOW})
            ctx.state.set(key, {**record, "state": "reminded"})
            return
        hours = counted(cod.timeout_hours, "hour")
        target = cod.timeout_status()
        if target is None:
            text = f"No cash-on-delivery confirmation on WhatsApp within {hours}; the order was left as it is."
            target = order.status if order.status in cod.awaiting_statuses else ""
        else:
            text = (f"No cash-on-delivery confirmation on WhatsApp within {hours}: the order was set to "
                    f"{target}.")
        if not target or not await self._apply(ctx, record, order, target, "timed_out", by="timeout", text=text):
            ctx.state.set(key, {**record, "state": "closed", "status": order.status})
            ctx.note("cod_closed", f"order {due.order} is {order.status}: the timeout changed nothing")

    def _asked(self, due: CodDue) -> bool:
        """Whether the question went out (admitted, and not refused or failed since)."""
        key = scoped_key(TARGET, _message_key(due.shop, due.order, "ask"))
        with self.app.db.read() as conn:
            row = outbox.by_keys(conn, [key], (outbox_table.c.idempotency_key, outbox_table.c.status)).get(key)
        return row is not None and row.status not in ("refused", "failed", "cancelled")

    # --- the one status change ------------------------------------------------------------------

    async def _apply(self, ctx: EventContext, record: dict[str, Any], order: Order, target: str, final: str, *,
                     by: str, text: str) -> bool:
        """Set ``target`` on ``order`` and note ``text`` on it, if the order still waits and no other
        answer or timer took the order's one change first. Returns whether it did."""
        shop, cod = order.shop or "", self._cod(order.shop or "")
        assert cod is not None
        change = {"by": by, "target": target}
        change_key = f"{state_key(shop, order.id)}:change"
        taken = ctx.state.get(change_key)
        if taken is None:
            if record["state"] not in OPEN or order.status not in cod.awaiting_statuses:
                return False
            # committed at once: whoever takes it first makes the change; a retry after a crash
            # between the REST call and the commit finds it its own and finishes the job
            taken = ctx.state.claim(change_key, change, forget_at=now() + KEEP_SECONDS)
        if taken != change or (order.status != target and order.status not in cod.awaiting_statuses):
            return False
        client: ShopClient = self.client(shop)
        if order.status != target:
            await asyncio.to_thread(client.set_status, order.id, target)
        await asyncio.to_thread(client.add_note, order.id, text)
        ctx.state.set(state_key(shop, order.id), {"state": final, "contact": record["contact"], "by": by,
                                                  "at": now(), "status": target},
                      forget_at=now() + KEEP_SECONDS)
        return True


def _render(text: str, order: Order, status: str) -> str:
    return render_strict(text, {**order_values(order), "status": status}, section="connectors.woocommerce cod")
