"""Order status on request: a customer who writes an order number ("#1234", "pedido 1234") or taps
"Where is my order?" is told the order's status and its tracking link -- about their own orders only.

Order of decisions (the ``woocommerce`` plugin's ``on_inbound_message``):

1. *A question?* :func:`question_of`: a configured quick reply (its payload, id or title, or the
   text itself) asks about the sender's latest orders; else the first pattern that matches the
   text names an order number; else the message is not for this flow.
2. *Who asks.* The sender's contact key (the keyed hash of their number; a BSUID linked to a
   number resolves to that number's key). A person handling the conversation, or a message older
   than ``[automation] stale_after_minutes``, means no answer at all (and no shop is read).
3. *Too many misses?* More than ``max_misses`` numbers that found nothing of the sender's within
   ``miss_window_minutes``: no answer to numbers until the window passes (noted on the event).
4. *Find.* A number: ``GET orders/{number}`` in each shop. The latest orders: the order the
   sender's contact key last pointed at (the connector's index, from webhooks) and a REST search by
   the sender's national number. An order counts only when :func:`owned`: its billing (else
   shipping) phone, read as E.164 with the billing country, has the sender's contact key.
5. *Answer*, free-form (the customer just wrote: the 24-hour window is open) and as an automatic
   ``faq`` answer through the gate: each found order's status in words (:data:`STATUS_WORDS`) and
   its tracking (:func:`tracking_of`); nothing found -- no such order, another customer's order,
   a draft -- is always the same :data:`NOT_FOUND` sentence, so an answer never tells a number that
   exists from one that does not.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import phonenumbers

from ...core import clock
from ...core.automatic import AutomaticAnswer
from ...core.bsuids import is_bsuid
from ...core.connector import OutboundCall
from ...core.errors import SkippableDeliveryError
from ...core.messages import TextContent
from ...core.models import InboundMessage
from ...core.wording import counted
from ...plugins.languages import country_language
from . import cod, replies
from .lookup_settings import OrderLookupSettings
from .mapping import DRAFT_STATUSES, customer_of, meta_dict, tracking_url
from .rest import ShopClient
from .settings import ShopSettings

if TYPE_CHECKING:
    from ...core.context import EventContext
    from .connector import WooCommerceConnector

STATUS_WORDS: dict[str, dict[str, str]] = {
    "en": {"pending": "waiting for payment", "processing": "being prepared", "on-hold": "on hold",
           "completed": "completed and on its way to you", "shipped": "shipped", "delivered": "delivered",
           "ready-for-pickup": "ready for pickup", "cancelled": "cancelled", "refunded": "refunded",
           "failed": "not paid (the payment failed)"},
    "es": {"pending": "pendiente de pago", "processing": "en preparación", "on-hold": "en espera",
           "completed": "completado y en camino", "shipped": "enviado", "delivered": "entregado",
           "ready-for-pickup": "listo para recoger", "cancelled": "cancelado", "refunded": "reembolsado",
           "failed": "sin pagar (el pago falló)"},
    "pt": {"pending": "aguardando pagamento", "processing": "em preparação", "on-hold": "em espera",
           "completed": "concluído e a caminho", "shipped": "enviado", "delivered": "entregue",
           "ready-for-pickup": "pronto para retirada", "cancelled": "cancelado", "refunded": "reembolsado",
           "failed": "não pago (o pagamento falhou)"},
    "de": {"pending": "wartet auf Zahlung", "processing": "in Bearbeitung", "on-hold": "angehalten",
           "completed": "abgeschlossen und unterwegs zu dir", "shipped": "versandt", "delivered": "zugestellt",
           "ready-for-pickup": "abholbereit", "cancelled": "storniert", "refunded": "erstattet",
           "failed": "nicht bezahlt (die Zahlung ist fehlgeschlagen)"},
    "fr": {"pending": "en attente de paiement", "processing": "en préparation", "on-hold": "en attente",
           "completed": "terminée et en route", "shipped": "expédiée", "delivered": "livrée",
           "ready-for-pickup": "prête à être retirée", "cancelled": "annulée", "refunded": "remboursée",
           "failed": "non payée (le paiement a échoué)"},
}
"""Each status in words, per language; an unknown status is shown as the shop names it."""

LINES: dict[str, tuple[str, str]] = {
    "en": ("Order {number}: {status}.", "Tracking: {tracking}"),
    "es": ("Pedido {number}: {status}.", "Seguimiento: {tracking}"),
    "pt": ("Pedido {number}: {status}.", "Rastreio: {tracking}"),
    "de": ("Bestellung {number}: {status}.", "Sendungsverfolgung: {tracking}"),
    "fr": ("Commande {number} : {status}.", "Suivi : {tracking}"),
}
"""Per language: an order's line, and its tracking line."""

NOT_FOUND: dict[str, str] = {
    "en": "Sorry, I could not find an order of yours with this WhatsApp number. Please check the order number, "
          "or write to us from the phone number you gave at checkout.",
    "es": "Lo siento, no encuentro ningún pedido tuyo con este número de WhatsApp. Revisa el número de pedido "
          "o escríbenos desde el teléfono que indicaste al comprar.",
    "pt": "Desculpe, não encontrei nenhum pedido seu com este número de WhatsApp. Confira o número do pedido "
          "ou escreva-nos do telefone que informou na compra.",
    "de": "Leider finde ich keine Bestellung von dir zu dieser WhatsApp-Nummer. Bitte prüfe die Bestellnummer "
          "oder schreib uns von der Telefonnummer, die du beim Kauf angegeben hast.",
    "fr": "Désolé, je ne trouve aucune commande à votre nom avec ce numéro WhatsApp. Vérifiez le numéro de "
          "commande, ou écrivez-nous depuis le téléphone indiqué lors de l'achat.",
}
"""The one answer for every order that is not the sender's (or does not exist)."""


@dataclass(frozen=True)
class Question:
    """What the customer asked: one order by ``number``, or (None) their latest orders."""

    number: str | None


def _plain(text: str) -> str:
    return " ".join(text.split()).casefold()


def question_of(message: InboundMessage, settings: OrderLookupSettings) -> Question | None:
    """The order question a message asks, if any."""
    taps = {_plain(q) for q in settings.quick_replies}
    said = [message.reply.payload, message.reply.id, message.reply.title] if message.reply else []
    if any(value and _plain(value) in taps for value in [*said, message.text]):
        return Question(None)
    if message.text:
        for pattern in settings.patterns:
            found = re.search(pattern, message.text, re.IGNORECASE)
            if found:
                return Question(found.group(1).lstrip("0") or "0")
    return None


def owned(data: dict[str, Any], sender: str, key_of: Callable[[str], str | None]) -> bool:
    """Whether the order's number (billing, else shipping, as E.164) is the sender's."""
    phone = customer_of(data).phone
    return phone is not None and str(data.get("status") or "") not in DRAFT_STATUSES and key_of(phone) == sender


def tracking_of(data: dict[str, Any], shop: ShopSettings) -> str | None:
    """The shop's own tracking meta keys (a URL), else the newest shipment of the
    ``_wc_shipment_tracking_items`` meta (WooCommerce Shipment Tracking, Advanced Shipment
    Tracking): its link, else its carrier and tracking number."""
    meta = meta_dict(data)
    url = tracking_url(meta, shop)
    if url:
        return url
    items = meta.get("_wc_shipment_tracking_items")
    for item in reversed(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        for key in ("formatted_tracking_link", "custom_tracking_link"):
            link = item.get(key)
            if isinstance(link, str) and link.startswith(("https://", "http://")):
                return link
        number = str(item.get("tracking_number") or "").strip()
        if number:
            carrier = str(item.get("custom_tracking_provider") or item.get("tracking_provider") or "").strip()
            return f"{carrier} {number}".strip()
    return None


def language_for(who: str, settings: OrderLookupSettings) -> str:
    known = {*STATUS_WORDS, *settings.statuses}
    language = country_language(who, settings.countries)
    return language if language in known else settings.default_language


def describe(found: list[tuple[ShopSettings, dict[str, Any]]], language: str, settings: OrderLookupSettings) -> str:
    """The answer about the sender's own orders."""
    words = {**STATUS_WORDS.get(language, STATUS_WORDS["en"]), **settings.statuses.get(language, {})}
    line, track = LINES.get(language, LINES["en"])
    out = []
    for shop, data in found:
        status = str(data.get("status") or "")
        out.append(line.format(number=data.get("number") or data.get("id"), status=words.get(status, status)))
        tracking = tracking_of(data, shop)
        if tracking:
            out.append(track.format(tracking=tracking))
    return "\n".join(out)


def not_found(language: str, settings: OrderLookupSettings) -> str:
    return settings.not_found.get(language) or NOT_FOUND.get(language) or NOT_FOUND["en"]


def _created(data: dict[str, Any]) -> str:
    return str(data.get("date_created_gmt") or "")


def _national(phone: str) -> str | None:
    try:
        return str(phonenumbers.parse(phone).national_number)
    except phonenumbers.NumberParseException:
        return None


def _get(client: ShopClient, order: str) -> dict[str, Any] | None:
    """The order, or None when the shop has no such one (404 and the other refusals of one order)."""
    try:
        data = client.get_order(order)
    except SkippableDeliveryError:
        return None
    return data if isinstance(data, dict) else None


class Finder:
    """Reads the shops for one sender's question (blocking: run it in a thread)."""

    def __init__(self, connector: WooCommerceConnector, shops: list[str], sender: str,
                 key_of: Callable[[str], str | None]) -> None:
        self.connector, self.shops, self.sender, self.key_of = connector, shops, sender, key_of

    def _mine(self, shop: str, data: dict[str, Any] | None) -> list[tuple[ShopSettings, dict[str, Any]]]:
        return [(self.connector.shop(shop), data)] if data and owned(data, self.sender, self.key_of) else []

    def by_number(self, number: str) -> list[tuple[ShopSettings, dict[str, Any]]]:
        for shop in self.shops:
            mine = self._mine(shop, _get(self.connector.client(shop), number))
            if mine:
                return mine
        return []

    def latest(self, phone: str | None, count: int) -> list[tuple[ShopSettings, dict[str, Any]]]:
        found: dict[tuple[str, str], tuple[ShopSettings, dict[str, Any]]] = {}
        indexed = replies.latest_order(self.connector.app, self.sender)
        if indexed and indexed["shop"] in self.shops:
            for pair in self._mine(indexed["shop"], _get(self.connector.client(indexed["shop"]), indexed["order"])):
                found[(indexed["shop"], str(pair[1].get("id")))] = pair
        national = _national(phone) if phone else None
        for shop in self.shops if national else []:
            for data in self.connector.client(shop).search_orders(str(national)):
                for pair in self._mine(shop, data):
                    found[(shop, str(data.get("id")))] = pair
        return sorted(found.values(), key=lambda pair: _created(pair[1]), reverse=True)[:count]


async def answer(message: InboundMessage, ctx: EventContext, connector: WooCommerceConnector) -> None:
    """Answer an order question in ``message`` (see the module for the order of decisions)."""
    settings = connector.settings.order_lookup
    if not settings.enabled or message.type == "system" or cod.tap_of(message) is not None:
        return  # a cash-on-delivery tap is answered by its own flow, whatever its title says
    question = question_of(message, settings)
    if question is None:
        return
    who = message.contact.phone or (message.contact.user_id if is_bsuid(message.contact.user_id) else None)
    sender = ctx.contact_key(who) if who else None
    if who is None or sender is None:
        return
    if ctx.conversation.handled_by == "human":
        ctx.note("human_handling", "order lookup: a person handles this conversation")
        return
    now = clock.now()
    stale = ctx.settings.automation.stale_after_minutes * 60
    if now - message.timestamp.timestamp() > stale:  # the gate would refuse the answer: read no shop for it
        ctx.note("stale", "order lookup: the message is older than [automation] stale_after_minutes")
        return
    misses_key = f"lookup-misses:{sender}"
    window = settings.miss_window_minutes * 60
    misses = [t for t in ctx.state.get(misses_key) or [] if t > now - window]
    if question.number is not None and len(misses) >= settings.max_misses:
        ctx.note("lookup_limited", f"order lookup: {counted(len(misses), 'number')} found nothing of this contact's in "
                                   f"the last {counted(settings.miss_window_minutes, 'minute')}; not answered")
        return
    shops = [name for name, shop in connector.settings.shops.items()
             if settings.applies_to(name) and shop.has_rest_keys]
    if ctx.simulating:
        endpoint = f"orders/{question.number}" if question.number is not None else "orders"
        for shop in shops:
            ctx.would(OutboundCall("GET", ShopClient.url_for(connector.shop(shop), endpoint),
                                   note="look the order up, then answer with its status if it is the sender's"))
        return
    finder = Finder(connector, shops, sender, ctx.contact_key)
    if question.number is not None:
        found = await asyncio.to_thread(finder.by_number, question.number)
    else:
        found = await asyncio.to_thread(finder.latest, message.contact.phone, settings.latest_orders)
    language = language_for(who, settings)
    if found:
        text = describe(found, language, settings)
        ctx.note("order_status", f"order lookup: answered with {counted(len(found), 'order')} of the sender")
    else:
        text = not_found(language, settings)
        if question.number is not None:
            ctx.state.set(misses_key, [*misses, now], forget_at=now + window)
        ctx.note("order_not_found", "order lookup: nothing of the sender's found; the neutral answer")
    ctx.send(who, TextContent(body=text), key=f"{message.wamid}:order_lookup", reply_to=message.wamid,
             business_phone_number_id=message.business_phone_number_id, automatic=AutomaticAnswer.faq)
