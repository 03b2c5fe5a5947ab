"""What goes back to the shop: which order a WhatsApp message belongs to, and the note text.

The contact -> latest order index lives in the ``woocommerce`` plugin state, keyed by the
contact's keyed hash (never the number). An order notification names its order in its
``origin`` (``{"source": "woocommerce", "shop", "order", "status"}``), which the outbox keeps
after the message content is erased.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ...core.media import SMS
from ...core.models import Handoff, InboundMessage, MessageStatus, Order
from ...core.store import outbox
from .mapping import SOURCE

if TYPE_CHECKING:
    from ...core.app import Connectzap
    from ...core.context import EventContext

INDEX_PLUGIN = "woocommerce"  # the plugin module's name: its hooks keep the index


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
    said = "SMS" if message.medium == SMS else "WhatsApp message"
    note = f"{said} from the customer ({message.timestamp:%Y-%m-%d %H:%M} UTC):\n{what}"
    # the ad the customer tapped before writing: the shop sees where the order's follow-up came from
    return note + (f"\nLead source: {message.referral.summary()}" if message.referral else "")


def handoff_note(handoff: Handoff) -> str:
    if handoff.to == "bot":
        return f"WhatsApp conversation back to automatic answers ({handoff.at:%Y-%m-%d %H:%M} UTC)."
    until = f"until {handoff.until:%Y-%m-%d %H:%M} UTC" if handoff.until else "until released"
    return (f"WhatsApp conversation handed to a person ({handoff.at:%Y-%m-%d %H:%M} UTC, {until}): "
            f"{handoff.reason or 'no reason given'}.")


@dataclass(frozen=True)
class Note:
    """A private note to add to an order, and the state key that records it was added."""

    shop: str
    order: str
    text: str
    state_key: str


@dataclass(frozen=True)
class NotificationOrigin:
    """The order a message was about: an order notification (``status``) or a note to the customer (``note``)."""

    shop: str
    order: str
    status: str | None
    template: str | None
    note: str | None = None


def notification_origin(app: Connectzap, status: MessageStatus) -> NotificationOrigin | None:
    """The WooCommerce order an outbound message was about, when its origin names one."""
    with app.db.read() as conn:
        row = outbox.get(conn, status.outbox_id) if status.outbox_id else outbox.by_wamid(conn, status.wamid)
    origin = outbox.origin_of(row) if row is not None else {}
    if row is None or origin.get("source") != SOURCE or not all(origin.get(k) for k in ("shop", "order")) \
            or not (origin.get("status") or origin.get("note")):
        return None
    return NotificationOrigin(shop=origin["shop"], order=origin["order"], status=origin.get("status"),
                              template=row["template_name"], note=origin.get("note"))


def failure_note(status: MessageStatus, origin: NotificationOrigin) -> str:
    error = status.errors[0] if status.errors else None
    reason = ""
    if error is not None:
        reason = f": {error.code} {error.title or error.message or ''}".rstrip()
        if error.details:
            reason += f" ({error.details})"
    if origin.note:
        return f"The WhatsApp message for the note to the customer could not be delivered{reason.rstrip('.')}."
    return (f"The WhatsApp notification for status '{origin.status}' (template {origin.template or '?'}) "
            f"could not be delivered{reason.rstrip('.')}.")
