"""Review requests: some days after an order is completed, ask the customer to review the product.

Order of decisions:

1. *Schedule* (the ``woocommerce`` plugin's order hooks, on a complete order whose status is
   ``completed``): unless the order already has a request scheduled, sent or given up on, journal a
   :class:`ReviewDue` ``resolve`` event due ``days_after_completion`` days after the completion (the
   journal is the engine's one store of timed work: it survives restarts and is taken by whichever
   worker is free once due). The per-order record (plugin state, by shop and order id) makes a
   repeated or replayed ``completed`` webhook, or an order completed again, schedule nothing more.
2. *When due* (the connector's ``resolve`` target): read the order again from the REST API and
   :func:`decide` over what it says now -- cancelled, refunded, failed or deleted: never (noted);
   refunds on a completed order: never, unless ``skip_partial_refunds = false`` and it is only
   partly refunded; back to another status (reopened): nothing now, and the next completion
   schedules again; completed: the template goes through the gate (which refuses a customer who
   opted out or never consented to the template's category) under the idempotency key
   ``review:{shop}:{order}`` -- one message per order, ever.
3. A private order note says what happened: sent (with the template) or why not.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from ...core import clock, templates
from ...core.connector import OutboundCall
from ...core.errors import SkippableError
from ...core.gate import REASONS
from ...core.messages import ButtonParam, Outgoing, TemplateContent, TextParam
from ...core.models import Event, EventKind, Order
from ...core.plugin_settings import render_strict
from ...core.wording import counted
from .mapping import SOURCE, customer_of, money, ordering_key
from .review_settings import ReviewRequestSettings

if TYPE_CHECKING:
    from ...core.app import Connectzap
    from ...core.context import EventContext
    from ...core.gate import Decision
    from .rest import ShopClient

STATE_PLUGIN = "woocommerce"  # the plugin module's state: its order hooks schedule, the connector settles
NEVER_STATUSES = frozenset({"cancelled", "refunded", "failed", "trash"})
"""Statuses after which a review is never asked for."""


class ReviewDue(BaseModel):
    """The ``resolve`` notice of a review request falling due. ``round`` counts the schedulings of
    the order (a reopened order completed again schedules round 2), so each round's event has its own
    dedupe key and a replayed one is recognised as stale."""

    notice: Literal["review_request"]
    shop: str
    order: str
    round: int = 1

    def subject(self) -> str:
        return f"the review request for order {self.order} of shop {self.shop}"


def record_key(shop: str, order: str) -> str:
    return f"review:{shop}:{order}"


def idempotency_key(shop: str, order: str) -> str:
    return f"review:{shop}:{order}"


# --- 1. scheduling ------------------------------------------------------------------------------

def schedule(order: Order, ctx: EventContext, settings: ReviewRequestSettings) -> None:
    """Journal the request for a newly completed order (once per completion round, see the module)."""
    if order.shop is None or order.partial or order.status != "completed" or not settings.applies_to(order.shop):
        return
    key = record_key(order.shop, order.id)
    record = ctx.state.get(key) or {}
    if record.get("state") not in (None, "reopened"):
        ctx.note("review_already_" + str(record["state"]),
                 f"the review request of order {order.id} is already {record['state']}")
        return
    completed = order.updated_at or ctx.received_at
    due = completed.timestamp() + settings.days_after_completion * 86400
    notice = ReviewDue(notice="review_request", shop=order.shop, order=order.id, round=int(record.get("round", 0)) + 1)
    if ctx.simulating:  # a rehearsal journals nothing: it says what would be scheduled
        ctx.would(OutboundCall(None, None, note=f"schedule the review request of order {order.id} for "
                                                f"{datetime.fromtimestamp(due, UTC):%Y-%m-%d %H:%M} UTC"))
        return
    event = Event.of(EventKind.RESOLVE, notice, source=SOURCE, dedupe_key=f"{key}:{notice.round}",
                     ordering_key=ordering_key(order.shop, order.id))
    # Its own transaction, before the record: a retried hook journals the same dedupe key again (a no-op).
    ctx.app.ingest([event], due_at=due)
    ctx.state.set(key, {"state": "scheduled", "round": notice.round, "due": due})
    ctx.note("review_scheduled", f"review request of order {order.id} due in "
                                 f"{counted(settings.days_after_completion, 'day')}")


# --- 2. the decision when due -------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """What to do with a due request: ``send``, ``never`` (final) or ``later`` (the order is
    reopened: a later completion schedules again). ``why`` is the order note's reason."""

    action: Literal["send", "never", "later"]
    why: str


def decide(data: dict[str, Any], settings: ReviewRequestSettings) -> Verdict:
    """Pure: the verdict for the order as the REST API returned it now."""
    status = str(data.get("status") or "")
    if status in NEVER_STATUSES:
        return Verdict("never", f"the order is {status}")
    refunded = sum((abs(money(r.get("total"), "refunds.total") or Decimal(0))
                    for r in data.get("refunds") or [] if isinstance(r, dict)), Decimal(0))
    total = money(data.get("total"), "total") or Decimal(0)
    if data.get("refunds") and (settings.skip_partial_refunds or refunded >= total):
        return Verdict("never", "the order has refunds" if refunded < total else "the order is fully refunded")
    if status != "completed":
        return Verdict("later", f"the order is {status or 'without a status'} now, no longer completed")
    if customer_of(data).phone is None:
        return Verdict("never", "the order's billing phone is missing or not a valid number")
    return Verdict("send", "")


def _render(source: str, values: dict[str, Any]) -> str:
    return render_strict(source, values, section="connectors.woocommerce.review_requests")


def first_product(data: dict[str, Any]) -> dict[str, Any]:
    """The order's first line item with a product (the one the request asks about)."""
    return next((line for line in data.get("line_items") or []
                 if isinstance(line, dict) and str(line.get("product_id") or "0") != "0"), {})


def needs_permalink(settings: ReviewRequestSettings) -> bool:
    return "permalink" in settings.review_url


def values_of(data: dict[str, Any], shop: str, shop_url: str, permalink: str | None) -> dict[str, Any]:
    """What the template's parameters may read (:data:`~.review_settings.REVIEW_VARIABLES`)."""
    customer = customer_of(data)
    line = first_product(data)
    values: dict[str, Any] = {
        "first_name": customer.first_name or "", "last_name": customer.last_name or "",
        "name": customer.display_name or "", "id": str(data.get("id") or ""),
        "number": str(data.get("number") or data.get("id") or ""), "shop": shop, "shop_url": shop_url,
        "product_id": str(line.get("product_id") or ""), "product_name": str(line.get("name") or ""),
        "sku": str(line.get("sku") or ""), "permalink": permalink or shop_url}
    return values


def build_message(data: dict[str, Any], settings: ReviewRequestSettings, shop: str, shop_url: str,
                  permalink: str | None) -> Outgoing:
    values = values_of(data, shop, shop_url, permalink)
    values["review_url"] = _render(settings.review_url, values)
    values["review_path"] = values["review_url"].removeprefix(shop_url).lstrip("/")
    customer = customer_of(data)
    content = TemplateContent(
        name=settings.template or "", language=settings.language_for(customer.country),
        body=[TextParam(text=_render(p, values)) for p in settings.params],
        buttons=[ButtonParam(index=b.index, sub_type="url", text=_render(b.text, values)) for b in settings.buttons])
    order = str(data.get("id"))
    return Outgoing(to=customer.model_copy(update={"email": None}), content=content,
                    idempotency_key=idempotency_key(shop, order),
                    origin={"source": SOURCE, "shop": shop, "order": order, "flow": "review_request"})


def category_mismatch(app: Connectzap, message: Outgoing, settings: ReviewRequestSettings) -> str | None:
    """Why the template may not go as the configured category, if its category (now) is another.
    A template missing from the cache is left to the gate (``template_unknown``)."""
    content = message.content
    assert isinstance(content, TemplateContent)
    with app.db.read() as conn:
        info = templates.get(conn, content.name, content.language)
    actual = info.category_at(clock.now()).lower() if info is not None else settings.category
    if actual == settings.category:
        return None
    return (f"template {content.name} ({content.language}) is a {actual} template, and review_requests.category "
            f"is {settings.category}")


def outcome_note(decision: Decision, template: str) -> str:
    if decision.accepted:
        return f"WhatsApp review request sent (template {template})."
    why = decision.detail or REASONS.get(decision.reason or "", "refused")
    return f"WhatsApp review request not sent ({decision.reason}): {why}."


@dataclass(frozen=True)
class Settled:
    """What the due request became: the order note to add (None: add none) and the record's new state."""

    note: str | None
    state: str


async def settle(app: Connectzap, client: ShopClient, notice: ReviewDue, settings: ReviewRequestSettings) -> Settled:
    """Read the order again and send, or give up, or wait for the next completion."""
    record = app.plugin_state(STATE_PLUGIN).get(record_key(notice.shop, notice.order)) or {}
    if record.get("round") == notice.round and "note" in record:
        return Settled(record["note"], record["state"])  # decided before a failed order note: note it again
    if record.get("state") != "scheduled" or record.get("round") != notice.round:
        raise SkippableError(f"the review request of order {notice.order} is {record.get('state', 'unknown')} "
                             f"(round {record.get('round')}): this due event is stale", code="review_stale")
    if not settings.applies_to(notice.shop):
        return Settled(None, "off")
    data = await asyncio.to_thread(client.get_order, notice.order)
    verdict = decide(data, settings)
    if verdict.action == "later":
        return Settled(f"WhatsApp review request not sent: {verdict.why}; it is scheduled again when the order "
                       "is completed again.", "reopened")
    if verdict.action == "never":
        return Settled(f"WhatsApp review request not sent: {verdict.why}.", "skipped")
    permalink = None
    if needs_permalink(settings) and first_product(data):
        product = await asyncio.to_thread(client.get_product, str(first_product(data)["product_id"]))
        permalink = str(product.get("permalink") or "") or None
    message = build_message(data, settings, notice.shop, client.shop.url, permalink)
    mismatch = await asyncio.to_thread(category_mismatch, app, message, settings)
    if mismatch:
        return Settled(f"WhatsApp review request not sent: {mismatch}.", "refused")
    decision = await asyncio.to_thread(app.send, message, source=SOURCE)
    return Settled(outcome_note(decision, settings.template or ""), "sent" if decision.accepted else "refused")


def record(app: Connectzap, notice: ReviewDue, settled: Settled) -> None:
    """Record the outcome before the order note is written: a retry after a failed note writes the
    same note, and never decides (or sends) again."""
    app.plugin_state(STATE_PLUGIN).set(record_key(notice.shop, notice.order),
                                       {"state": settled.state, "round": notice.round, "note": settled.note})
