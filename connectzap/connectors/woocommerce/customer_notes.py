"""A shop agent's "note to customer" on an order, sent to the customer on WhatsApp.

WooCommerce fires ``woocommerce_new_customer_note`` with ``{"order_id", "customer_note"}`` whenever
a note to the customer is added (the order screen's "Note to customer", or the REST API with
``customer_note: true``). A webhook with topic *Action* and that action delivers it as
``{"action": "woocommerce_new_customer_note", "arg": {...}}`` -- configurable in WooCommerce's
settings, no PHP. The webhook names the order but not the customer, so it is journaled as a thin
``resolve`` notice; the worker fetches the order (the billing number) and the order's customer
notes (the note's id, so a note WooCommerce delivers twice is sent once), and journals a ``reply``
event: the core sends the text inside the customer's 24-hour window and the ``[replies]`` template
(with the order number) outside it. What became of it goes back on the order as a private note.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, Field

from ...core.errors import PayloadError
from ...core.models import Event, EventKind
from ...core.replies import ReplyRequest
from .mapping import SOURCE, customer_of, ordering_key

ACTION = "woocommerce_new_customer_note"


class CustomerNote(BaseModel):
    """The ``resolve`` notice of a note to the customer: which shop and order, and the note's text
    (erased with the event once it is handled)."""

    shop: str
    order: str
    note: str = Field(min_length=1, max_length=4096)

    def subject(self) -> str:
        return f"a note to the customer on order {self.order} of shop {self.shop}"


def notice_event(shop: str, arg: Any, dedupe: str) -> Event:
    """The thin event of one action webhook; raises :class:`PayloadError` naming what is missing."""
    if not isinstance(arg, dict) or not str(arg.get("order_id", "")).isdigit():
        raise PayloadError("a customer note webhook names its order in arg.order_id", field="arg.order_id")
    text = arg.get("customer_note")
    if not isinstance(text, str) or not text.strip():
        raise PayloadError("a customer note webhook carries the note in arg.customer_note", field="arg.customer_note")
    note = CustomerNote(shop=shop, order=str(arg["order_id"]), note=text.strip()[:4096])
    return Event.of(EventKind.RESOLVE, note, source=SOURCE, dedupe_key=dedupe,
                    ordering_key=ordering_key(shop, note.order))


def note_key(notice: CustomerNote, notes: list[dict[str, Any]]) -> str:
    """What identifies the note for ever: its id among the order's customer notes (the newest with
    the same text), else a digest of order and text (a note deleted before it was fetched)."""
    same = [n for n in notes if isinstance(n, dict) and str(n.get("note", "")).strip() == notice.note
            and str(n.get("id", "")).isdigit()]
    if same:
        return f"{notice.shop}:note:{max(int(n['id']) for n in same)}"
    digest = hashlib.sha256(f"{notice.order}\n{notice.note}".encode()).hexdigest()[:24]
    return f"{notice.shop}:note-text:{digest}"


def reply_of(notice: CustomerNote, order: dict[str, Any], key: str) -> ReplyRequest | None:
    """The reply to journal, or None when the order has no number WhatsApp can reach."""
    contact = customer_of(order)
    if contact.phone is None:
        return None
    number = str(order.get("number") or notice.order)
    return ReplyRequest(to=contact.model_copy(update={"email": None}), text=notice.note, fallback_params=[number],
                        origin={"source": SOURCE, "shop": notice.shop, "order": notice.order,
                                "note": key.rsplit(":", 1)[-1]},
                        idempotency_key=key, by=SOURCE)


def outcome_note(message: dict[str, Any] | None) -> str:
    """The private note that says what became of the note on WhatsApp."""
    if message is None:
        return "The note to the customer was not sent on WhatsApp: no message was admitted for it."
    if message["status"] == "refused":
        why = message.get("error_details") or message.get("reason") or "refused"
        return f"The note to the customer was not sent on WhatsApp ({message.get('reason')}): {why}"
    if message["content_type"] == "template":
        return (f"The note to the customer went on WhatsApp as the template {message['template_name']}: the "
                "customer's 24-hour window was closed, so the note itself could not be sent; the template tells "
                "them there is a new message about this order.")
    return "The note to the customer was sent on WhatsApp as a message (the customer's 24-hour window is open)."


NO_NUMBER_NOTE = ("The note to the customer was not sent on WhatsApp: the order's billing phone is missing or not "
                  "a valid number.")
