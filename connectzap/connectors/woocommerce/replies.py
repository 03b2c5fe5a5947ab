"""What goes back to the shop: which order a WhatsApp message belongs to, and the note text.

The contact -> latest order index lives in the ``woocommerce`` plugin state, keyed by the
contact's keyed hash (never the number). Order notifications are found again from their
outbox idempotency key, ``order_notifications:woocommerce:{shop}:{order}:{status}``, which
survives the erasure of message content.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ...core.models import InboundMessage, MessageStatus, Order
from ...core.store.schema import outbox

if TYPE_CHECKING:
    from ...core.app import Connectzap
    from ...core.context import EventContext

INDEX_PLUGIN = "woocommerce"  # the plugin module's name: its hooks keep the index
NOTIFICATIONS_PLUGIN = "order_notifications"
NOTIFICATION_KEY_PREFIX = f"{NOTIFICATIONS_PLUGIN}:woocommerce:"


def _index_key(contact_key: str) -> str:
    return f"latest-order:{contact_key}"


def noted_key(wamid: str, what: str = "inbound") -> str:
    return f"noted:{what}:{wamid}"


def remember_order(order: Order, ctx: EventContext) -> None:
    """Point the customer's contact key at this order when it is their newest one."""
    phone = order.customer.phone if order.customer else None
    key = ctx.contact_key(phone) if phone else None
    if key is None or order.shop is None:
        return
    at = max((t.timestamp() for t in (order.created_at, order.updated_at) if t), default=ctx.received_at.timestamp())
    created = order.created_at.timestamp() if order.created_at else at
    current = ctx.state.get(_index_key(key))
    same = current and current["shop"] == order.shop and current["order"] == order.id
    if current and not same and current.get("created", 0) > created:
        return  # an older order arrived late; replies belong to the newer one
    if same and current["at"] >= at:
        return
    ctx.state.set(_index_key(key), {"shop": order.shop, "order": order.id, "at": at, "created": created})


def latest_order(app: Connectzap, contact_key: str) -> dict[str, Any] | None:
    found = app.plugin_state(INDEX_PLUGIN).get(_index_key(contact_key))
    return found if isinstance(found, dict) else None


def within_window(target: dict[str, Any], at: datetime, hours: float) -> bool:
    """A reply counts when it comes at most ``hours`` after the order's latest change (or before it)."""
    return hours > 0 and at.timestamp() - target["at"] <= hours * 3600


def inbound_note(message: InboundMessage) -> str:
    what = message.text
    if message.reaction is not None:
        what = f"reacted {message.reaction.emoji or '(removed)'}"
    elif not what:
        what = f"[{message.type}]"
    elif message.type != "text":
        what = f"[{message.type}] {what}"
    return f"WhatsApp message from the customer ({message.timestamp:%Y-%m-%d %H:%M} UTC):\n{what}"


@dataclass(frozen=True)
class Note:
    """A private note to add to an order, and the state key that records it was added."""

    shop: str
    order: str
    text: str
    state_key: str


@dataclass(frozen=True)
class NotificationOrigin:
    shop: str
    order: str
    status: str
    template: str | None


def notification_origin(app: Connectzap, status: MessageStatus) -> NotificationOrigin | None:
    """The order an outbound message was about, when the order-notifications plugin proposed it."""
    query = select(outbox.c.idempotency_key, outbox.c.template_name)
    if status.outbox_id:
        query = query.where(outbox.c.id == status.outbox_id)
    else:
        query = query.where(outbox.c.wamid == status.wamid)
    with app.db.read() as conn:
        row = conn.execute(query.limit(1)).first()
    if row is None or not row[0].startswith(NOTIFICATION_KEY_PREFIX):
        return None
    parts = row[0].removeprefix(NOTIFICATION_KEY_PREFIX).split(":")
    if len(parts) != 3:
        return None
    return NotificationOrigin(shop=parts[0], order=parts[1], status=parts[2], template=row[1])


def failure_note(status: MessageStatus, origin: NotificationOrigin) -> str:
    error = status.errors[0] if status.errors else None
    reason = ""
    if error is not None:
        reason = f": {error.code} {error.title or error.message or ''}".rstrip()
        if error.details:
            reason += f" ({error.details})"
    return (f"The WhatsApp notification for status '{origin.status}' (template {origin.template or '?'}) "
            f"could not be delivered{reason.rstrip('.')}.")
