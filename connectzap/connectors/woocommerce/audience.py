"""Campaign audiences from a shop's customers, chosen by their orders, and the outcomes written
back to them.

WooCommerce's customers endpoint says nothing about orders (no total spent in REST v3), so the
audience is read from ``GET /orders`` -- filtered by the shop itself on status and date
(``status=completed,processing``, ``after=``), 100 a page, oldest first -- and each customer is
yielded once, when their orders in that period first reach ``min_total``. A registered customer
is their customer id; a guest is their billing phone (or e-mail), kept only as a short hash. The
orders themselves are never held beyond their page; what grows with the shop is that one hash
(or id) and a running total per customer seen.

Write-back: WooCommerce has no customer notes (notes belong to orders), so the outcome goes to
meta data, ``connectzap_last_campaign`` and ``connectzap_last_campaign_outcome``: on the customer
(``POST /customers/batch``) or, for a guest, on the order that put them in the audience
(``POST /orders/batch``), 100 records a call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ...core.campaigns.write_back import Outcome
from ...core.connector import AudienceMember, AudienceQuery
from ...core.errors import PayloadError
from ...core.wording import plural
from .rest import ShopClient

log = logging.getLogger("connectzap.woocommerce")

SOURCE = "woocommerce"
PAGE_SIZE = 100  # WordPress's largest page
WRITE_BATCH = 100  # WooCommerce's batch endpoints take up to 100 records
DEFAULT_STATUSES = ("completed", "processing")
STATUSES = frozenset({"pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed", "any"})
LAST_CAMPAIGN = "connectzap_last_campaign"
LAST_OUTCOME = "connectzap_last_campaign_outcome"
BILLING_FIELDS = ("first_name", "last_name", "company", "city", "state", "postcode", "country", "email")


@dataclass(frozen=True)
class Filter:
    shop: str
    since: datetime | None
    min_total: float
    statuses: tuple[str, ...]


def _number(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PayloadError(f"{SOURCE}: {name} must be a number, not {value!r}", field="source") from None
    if number < 0:
        raise PayloadError(f"{SOURCE}: {name} must not be negative", field="source")
    return number


def filter_of(options: dict[str, Any], shops: list[str], default_shop: str | None,
              now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Filter:
    """The options of ``--from woocommerce:days=30,min_total=50,status=completed|processing``
    (REST: the same names, ``status`` also a list), checked."""
    unknown = sorted(set(options) - {"shop", "days", "since", "min_total", "status"})
    if unknown:
        raise PayloadError(f"{SOURCE}: unknown {plural(len(unknown), 'option')} {', '.join(unknown)}; "
                           "it takes shop, days (or since), min_total and status", field="source")
    shop = str(options.get("shop") or default_shop or "")
    if shop not in shops:
        raise PayloadError(f"{SOURCE}: name the shop (shop=...), one of {', '.join(shops)}", field="source")
    if "days" in options and "since" in options:
        raise PayloadError(f"{SOURCE}: give days or since, not both", field="source")
    since: datetime | None = None
    if "days" in options:
        days = _number("days", options["days"])
        since = now() - timedelta(days=days)
    elif "since" in options:
        try:
            since = datetime.fromisoformat(str(options["since"]).replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError(f"{SOURCE}: since must be a date such as 2026-11-01", field="source") from None
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
    raw = options.get("status") or list(DEFAULT_STATUSES)
    statuses = tuple(s.strip() for s in (raw if isinstance(raw, list) else str(raw).replace("|", ",").split(","))
                     if s.strip())
    wrong = [s for s in statuses if s not in STATUSES]
    if wrong:
        raise PayloadError(f"{SOURCE}: unknown order status {wrong[0]!r}; use {', '.join(sorted(STATUSES))}",
                           field="source")
    return Filter(shop, since.astimezone(UTC) if since else None, _number("min_total", options.get("min_total", 0)),
                  statuses)


def _customer_key(order: dict[str, Any]) -> str | None:
    """Who placed ``order``: the customer's id, or for a guest a short hash of their phone or e-mail."""
    if order.get("customer_id"):
        return f"c{order['customer_id']}"
    billing = order.get("billing") or {}
    who = str(billing.get("phone") or billing.get("email") or "").strip().lower()
    return "g" + hashlib.blake2b(who.encode(), digest_size=8).hexdigest() if who else None


def _total(order: dict[str, Any]) -> float:
    try:
        return float(order.get("total") or 0)
    except (TypeError, ValueError):
        return 0.0


class ShopAudience:
    """The customers whose orders match a :class:`Filter`, each once."""

    def __init__(self, client: ShopClient, found: Filter) -> None:
        self.client = client
        self.filter = found

    def _pages(self) -> Iterator[list[dict[str, Any]]]:
        params: dict[str, Any] = {"status": ",".join(self.filter.statuses), "orderby": "id", "order": "asc",
                                  "per_page": PAGE_SIZE}
        if self.filter.since is not None:
            params.update(after=self.filter.since.strftime("%Y-%m-%dT%H:%M:%S"), dates_are_gmt="true")
        return self.client.pages("orders", **params)

    async def members(self, fields: tuple[str, ...]) -> AsyncIterator[AudienceMember]:
        pages = self._pages()
        totals: dict[str, float] = {}
        done: set[str] = set()
        while True:
            page = await asyncio.to_thread(next, pages, None)
            if page is None:
                return
            for order in page:
                key = _customer_key(order)
                if key is None or key in done:
                    continue
                total = totals.pop(key, 0.0) + _total(order)
                if total + 1e-9 < self.filter.min_total:
                    totals[key] = total
                    continue
                done.add(key)
                yield self._member(order, total, fields)

    def _member(self, order: dict[str, Any], total: float, fields: tuple[str, ...]) -> AudienceMember:
        billing = order.get("billing") or {}
        ref = f"{self.filter.shop}:customer:{order['customer_id']}" if order.get("customer_id") \
            else f"{self.filter.shop}:order:{order.get('id')}"
        known = {name: str(billing.get(name) or "") for name in BILLING_FIELDS}
        known.update(total_spent=f"{total:.2f}", last_order=str(order.get("number") or order.get("id") or ""))
        return AudienceMember(ref=ref, phone=str(billing.get("phone") or "").strip() or None,
                              country=str(billing.get("country") or "").strip() or None,
                              fields={f: known[f] for f in fields if known.get(f)})


def meta(campaign: str, outcome: Outcome) -> list[dict[str, str]]:
    return [{"key": LAST_CAMPAIGN, "value": campaign}, {"key": LAST_OUTCOME, "value": outcome.text}]


def updates_by_shop(campaign: str, batch: list[Outcome]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """``(shop, "customers" | "orders")`` -> the batch updates that write ``batch``'s outcomes."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for outcome in batch:
        shop, kind, record = outcome.ref.rsplit(":", 2)
        endpoint = "customers" if kind == "customer" else "orders"
        out.setdefault((shop, endpoint), []).append({"id": int(record), "meta_data": meta(campaign, outcome)})
    return out


async def write_batch(client_for: Callable[[str], ShopClient], campaign: str, batch: list[Outcome]) -> None:
    for (shop, endpoint), updates in updates_by_shop(campaign, batch).items():
        answer = await asyncio.to_thread(client_for(shop).batch_update, endpoint, updates)
        refused = [item for item in answer.get("update") or [] if isinstance(item, dict) and item.get("error")]
        if refused:  # e.g. a customer deleted since: the others are written, these are not
            log.info("shop %s: %d of %d %s not updated with the campaign's outcome (%s)", shop, len(refused),
                     len(updates), endpoint, refused[0]["error"].get("code"))


def query_filter(query: AudienceQuery, shops: list[str], default_shop: str | None) -> Filter:
    return filter_of(dict(query.options), shops, default_shop)
