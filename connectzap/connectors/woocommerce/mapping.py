"""WooCommerce REST v3 JSON -> connectzap models.

The webhook body of ``order.*`` is exactly the ``GET /wc/v3/orders/{id}`` response, so the same
mapping serves webhooks and reconcile. Plugins add top-level keys and meta freely: unknown
fields are ignored. Money arrives as strings and becomes ``Decimal``; the billing phone is
free text and is read with the billing country.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ...core.clock import iso_utc
from ...core.errors import InvalidPhoneError, PayloadError
from ...core.media import WHATSAPP
from ...core.models import Category, ConsentChange, Contact, Event, EventKind, Order, OrderItem
from ...core.phones import to_e164
from .settings import ShopSettings, ticked

SOURCE = "woocommerce"
"""The source of every event the WooCommerce connector journals (and its connector name)."""

# Statuses WooCommerce uses before an order is really placed; they never notify.
DRAFT_STATUSES = frozenset({"checkout-draft", "auto-draft", "draft", "new"})


def money(value: Any, field: str) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise PayloadError(f"{field} is not a number", field=field) from None


def gmt(value: Any) -> datetime | None:
    """WooCommerce ``*_gmt`` dates are UTC without an offset."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def meta_dict(data: dict[str, Any]) -> dict[str, Any]:
    """``meta_data`` as key -> value (the last entry wins, as in WooCommerce's get_meta)."""
    out: dict[str, Any] = {}
    for item in data.get("meta_data") or []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = item.get("value")
    return out


def _phone_of(data: dict[str, Any]) -> tuple[str | None, str | None, bool]:
    """(E.164 phone, country, invalid?) from billing, then shipping."""
    invalid = False
    for part in ("billing", "shipping"):
        block = data.get(part) or {}
        raw, country = block.get("phone"), block.get("country") or None
        if not raw:
            continue
        try:
            return to_e164(raw, country), country, False
        except InvalidPhoneError:
            invalid = True
    country = (data.get("billing") or {}).get("country") or None
    return None, country, invalid


def customer_of(data: dict[str, Any]) -> Contact:
    billing = data.get("billing") or {}
    phone, country, invalid = _phone_of(data)
    attributes: dict[str, Any] = {}
    if invalid:
        attributes["phone_invalid"] = True  # kept without the number: the send is refused, visibly
    customer_id = data.get("customer_id", data.get("id"))
    return Contact(phone=phone, country=country, first_name=billing.get("first_name") or data.get("first_name") or None,
                   last_name=billing.get("last_name") or data.get("last_name") or None,
                   email=billing.get("email") or data.get("email") or None,
                   external_id=str(customer_id) if customer_id else None, attributes=attributes)


def tracking_url(meta: dict[str, Any], shop: ShopSettings) -> str | None:
    for key in shop.tracking_meta_keys:
        value = meta.get(key)
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
    return None


def _items(data: dict[str, Any]) -> list[OrderItem]:
    items = []
    for n, line in enumerate(data.get("line_items") or []):
        if not isinstance(line, dict):
            continue
        items.append(OrderItem(name=str(line.get("name") or ""),
                               quantity=money(line.get("quantity"), f"line_items.{n}.quantity") or Decimal(0),
                               sku=line.get("sku") or None, price=money(line.get("price"), f"line_items.{n}.price"),
                               total=money(line.get("total"), f"line_items.{n}.total")))
    return items


def order_from_json(data: Any, shop_name: str, shop: ShopSettings) -> Order:
    """Map one REST v3 order. Raises :class:`PayloadError` naming the field that is wrong."""
    if not isinstance(data, dict):
        raise PayloadError("order payload is not a JSON object", field="body")
    for required in ("id", "status"):
        if data.get(required) in (None, ""):
            raise PayloadError(f"order has no {required}", field=required)
    meta = meta_dict(data)
    refunds = data.get("refunds") or []
    refunded = sum((abs(money(r.get("total"), "refunds.total") or Decimal(0)) for r in refunds if isinstance(r, dict)),
                   Decimal(0))
    return Order(
        id=str(data["id"]), status=str(data["status"]), number=str(data.get("number") or data["id"]),
        currency=data.get("currency") or None, total=money(data.get("total"), "total"),
        customer=customer_of(data), items=_items(data), shop=shop_name,
        created_at=gmt(data.get("date_created_gmt")), updated_at=gmt(data.get("date_modified_gmt")),
        tracking_url=tracking_url(meta, shop), meta=meta,
        refunded_total=str(refunded) if refunds else None,
        payment_method=data.get("payment_method") or None,
        payment_method_title=data.get("payment_method_title") or None,
        shipping_total=_text(money(data.get("shipping_total"), "shipping_total")),
        currency_symbol=data.get("currency_symbol") or None,
    )


def _text(value: Decimal | None) -> str | None:
    return str(value) if value is not None else None


def consents_from(data: dict[str, Any], contact: Contact, shop_name: str, shop: ShopSettings, *,
                  what: str, at: datetime | None) -> list[ConsentChange]:
    """Opt-ins found in the configured meta keys, with proof: on WhatsApp (``consent_meta_keys``,
    ``marketing_meta_keys``) and on other media (``medium_consent_meta_keys``, for fallback
    messages; an email opt-in is kept under the customer's number). An unticked box records nothing:
    a later order without the box does not undo an opt-in given earlier."""
    if contact.phone is None:
        return []
    meta = meta_dict(data)
    granted: dict[tuple[str, Category], str] = {}
    fields = [(WHATSAPP, shop.consent_keys())] + [
        (medium, {key: list(shop.consent_categories) for key in keys})
        for medium, keys in shop.medium_consent_meta_keys.items()]
    for medium, keys in fields:
        for key, categories in keys.items():
            if key in meta and ticked(meta[key]):
                for category in categories:
                    granted.setdefault((medium, category), key)
    when = at or datetime.now(UTC)
    changes = []
    for (medium, category), key in granted.items():
        wording = f'; wording: "{shop.consent_wording}"' if shop.consent_wording else ""
        proof = (f"WooCommerce shop {shop_name} ({shop.url}), {what}: field {key} = {meta[key]!r} "
                 f"at {iso_utc(when)}{wording}")
        changes.append(ConsentChange(phone=contact.phone, category=category, granted=True, medium=medium,
                                     source=f"woocommerce:{shop_name}", proof=proof, at=when))
    return changes


def ordering_key(shop_name: str, order_id: str) -> str:
    """Every event about one order is applied in journal order, one at a time (the status-rank
    rule of order notifications reads and writes per-order state)."""
    return f"{SOURCE}:{shop_name}:order:{order_id}"


def order_event(shop_name: str, shop: ShopSettings, data: Any, kind: EventKind, dedupe: str) -> Event:
    """One REST v3 order as an event, with the opt-ins it carries (webhooks and reconcile share this)."""
    order = order_from_json(data, shop_name, shop)
    at = order.updated_at or order.created_at
    extra: dict[str, Any] = {"occurred_at": at} if at else {}
    consents = consents_from(data, order.customer or customer_of(data), shop_name, shop,
                             what=f"order {order.id}", at=order.created_at)
    return Event.of(kind, order, source=SOURCE, dedupe_key=dedupe, consents=consents,
                    ordering_key=ordering_key(shop_name, order.id), **extra)
