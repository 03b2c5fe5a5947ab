"""The shop's REST API (``/wp-json/wc/v3``) through the ``woocommerce`` package.

The package is synchronous and returns raw ``requests`` responses (no raising, no paging, no
retries), so this module classifies every answer into connectzap's error tree and callers run
it in a thread (``asyncio.to_thread``); retries come from the dispatcher's delivery retries.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import requests
from woocommerce import API
from woocommerce.oauth import OAuth

from ...core.errors import (FatalDeliveryError, RetriableDeliveryError, SkippableDeliveryError)
from .settings import ShopSettings

class ShopClient:
    """REST calls for one shop. Secrets stay inside the ``API`` object and never reach errors."""

    def __init__(self, name: str, shop: ShopSettings) -> None:
        self.name = name
        self.shop = shop
        self.api = API(url=shop.url, consumer_key=shop.consumer_key.get_secret_value() if shop.consumer_key else "",
                       consumer_secret=shop.consumer_secret.get_secret_value() if shop.consumer_secret else "",
                       version="wc/v3", timeout=shop.timeout_seconds, verify_ssl=shop.verify_ssl,
                       query_string_auth=shop.query_string_auth, user_agent="connectzap")

    def __repr__(self) -> str:
        return f"<ShopClient {self.name} {self.shop.url}>"

    def _call(self, method: str, endpoint: str, data: Any = None, **params: Any) -> requests.Response:
        if not self.shop.has_rest_keys:
            raise FatalDeliveryError(f"shop {self.name}: consumer_key/consumer_secret are not configured")
        try:
            if method == "GET":
                response = (self.api.get(endpoint, params=params) if self.api.is_ssl
                            else self._oauth_get(endpoint, params))
            elif method == "PUT":
                response = self.api.put(endpoint, data)
            else:
                response = self.api.post(endpoint, data)
        except requests.Timeout:
            # A POST that timed out may have been applied; the caller's wamid memory covers the retry.
            raise RetriableDeliveryError(f"shop {self.name}: {method} {endpoint} timed out") from None
        except requests.RequestException as exc:
            raise RetriableDeliveryError(
                f"shop {self.name}: {method} {endpoint} failed: {type(exc).__name__}") from None
        check(response, self.name, f"{method} {endpoint}")
        return response

    def _oauth_get(self, endpoint: str, params: dict[str, Any]) -> requests.Response:
        """A GET over plain http, signed with OAuth 1.0a as WooCommerce requires there. The
        ``woocommerce`` package signs a URL that carries the query and then hands the same parameters
        to ``requests`` again, which sends each one twice; this sends the signed URL alone."""
        query = f"?{urlencode(params)}" if params else ""
        url = OAuth(url=self.url_for(self.shop, endpoint) + query, consumer_key=self.api.consumer_key,
                    consumer_secret=self.api.consumer_secret, version="wc/v3", method="GET").get_oauth_url()
        return requests.get(url, verify=self.shop.verify_ssl, timeout=self.shop.timeout_seconds,
                            headers={"user-agent": "connectzap", "accept": "application/json"})

    def add_note(self, order_id: str, note: str) -> dict[str, Any]:
        """A private note (``customer_note: false``: the customer is not emailed)."""
        response = self._call("POST", *self.note_request(order_id, note))
        return _json(response, self.name)

    @staticmethod
    def note_request(order_id: str, note: str) -> tuple[str, dict[str, Any]]:
        """The endpoint and body of :meth:`add_note`."""
        return f"orders/{order_id}/notes", {"note": note, "customer_note": False}

    @staticmethod
    def url_for(shop: ShopSettings, endpoint: str) -> str:
        """The full URL the ``woocommerce`` package calls for ``endpoint`` (``/wp-json/wc/v3/...``)."""
        return f"{shop.url.rstrip('/')}/wp-json/wc/v3/{endpoint}"

    def set_status(self, order_id: str, status: str) -> dict[str, Any]:
        """``PUT orders/{id}`` with the new status (WooCommerce runs its usual status-change actions)."""
        return dict(_json(self._call("PUT", f"orders/{order_id}", {"status": status}), self.name) or {})

    def get_order(self, order_id: str) -> dict[str, Any]:
        return _json(self._call("GET", f"orders/{order_id}"), self.name)

    def search_orders(self, term: str, limit: int = 20) -> list[dict[str, Any]]:
        """The newest orders (any status) whose searchable fields -- the billing and shipping
        addresses, email and phone as the customer typed them -- contain ``term``."""
        body = _json(self._call("GET", "orders", search=term, orderby="date", order="desc", per_page=limit,
                                status="any"), self.name)
        return [o for o in body if isinstance(o, dict)] if isinstance(body, list) else []

    def get_product(self, product_id: str) -> dict[str, Any]:
        body = _json(self._call("GET", f"products/{product_id}"), self.name)
        return body if isinstance(body, dict) else {}

    def customer_notes(self, order_id: str) -> list[dict[str, Any]]:
        """The order's notes to the customer (``type=customer``), newest first."""
        body = _json(self._call("GET", f"orders/{order_id}/notes", type="customer"), self.name)
        return [n for n in body if isinstance(n, dict)] if isinstance(body, list) else []

    def orders_modified_after(self, since: datetime) -> Iterator[dict[str, Any]]:
        """Every order modified after ``since`` (UTC), oldest first, over all pages."""
        stamp = since.strftime("%Y-%m-%dT%H:%M:%S")
        for page in self.pages("orders", modified_after=stamp, dates_are_gmt="true", orderby="modified",
                               order="asc", per_page=self.shop.reconcile_page_size, status="any"):
            yield from page

    def pages(self, endpoint: str, **params: Any) -> Iterator[list[dict[str, Any]]]:
        """A listing endpoint's pages, one request each, as ``X-WP-TotalPages`` says there are."""
        page, pages = 1, 1
        while page <= pages:
            response = self._call("GET", endpoint, **params, page=page)
            body = _json(response, self.name)
            if not isinstance(body, list):
                raise RetriableDeliveryError(f"shop {self.name}: the {endpoint} list is not a JSON array")
            yield [item for item in body if isinstance(item, dict)]
            try:
                pages = int(response.headers.get("X-WP-TotalPages", "1"))
            except ValueError:
                pages = page
            page += 1

    def batch_update(self, endpoint: str, updates: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST {endpoint}/batch`` with ``{"update": [...]}`` (WooCommerce takes up to 100)."""
        return dict(_json(self._call("POST", f"{endpoint}/batch", {"update": updates}), self.name) or {})


def check(response: requests.Response, shop: str, what: str) -> None:
    """Raise by recovery intent: 429/5xx retry, 401/403 fatal (keys), other 4xx skip this item."""
    status = response.status_code
    if status < 300:
        return
    code = _error_code(response)
    detail = f"shop {shop}: {what} answered HTTP {status}{f' ({code})' if code else ''}"
    if status == 429 or status >= 500:
        retry_after = response.headers.get("Retry-After")
        raise RetriableDeliveryError(detail, http_status=status, vendor_code=code,
                                     retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None)
    if status in (401, 403):
        raise FatalDeliveryError(detail + ": check the REST API keys and their read/write permission",
                                 http_status=status, vendor_code=code)
    raise SkippableDeliveryError(detail, http_status=status, vendor_code=code)


def _error_code(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("code")) if isinstance(body, dict) and body.get("code") else None


def _json(response: requests.Response, shop: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise RetriableDeliveryError(
            f"shop {shop}: the REST API did not answer JSON (pretty permalinks off?)") from None
