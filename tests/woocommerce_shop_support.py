"""A stateful local stand-in of a WooCommerce shop's REST API (``/wp-json/wc/v3``), for flows that
read an order, change its status and read it again: ``GET``/``PUT orders/{id}`` and
``GET``/``POST orders/{id}/notes``, shaped as WooCommerce's REST reference documents them. Every
status change made through the API is recorded; the shop's own changes go through :meth:`set_status`."""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable
from typing import Any

from receiver_support import Receiver

_ORDER = re.compile(r"^/wp-json/wc/v3/orders/(\d+)(/notes)?$")


class FakeShop(Receiver):
    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self.status_changes: list[tuple[str, str]] = []
        """``(order id, new status)`` of every change made through the REST API."""
        self._lock = threading.Lock()
        self.after_status_change: Callable[[str, str], None] | None = None
        """Called once a status change is applied, before the answer goes back (a crash test kills
        the caller there)."""

    def __enter__(self) -> FakeShop:
        super().__enter__()
        return self

    def add(self, order: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.orders[str(order["id"])] = copy.deepcopy(order)
            self.notes.setdefault(str(order["id"]), [])
        return order

    def set_status(self, order_id: str, status: str) -> None:
        """A change made by the shop itself (the order screen): not counted in ``status_changes``."""
        with self._lock:
            self.orders[order_id]["status"] = status

    def status(self, order_id: str) -> str:
        return str(self.orders[order_id]["status"])

    def note_texts(self, order_id: str) -> list[str]:
        return [n["note"] for n in self.notes.get(order_id, [])]

    def respond(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        found = _ORDER.match(path)
        if found is None:
            return 404, {"code": "rest_no_route", "message": "No route was found"}
        order_id, notes = found[1], found[2]
        with self._lock:
            order = self.orders.get(order_id)
            if order is None:
                return 404, {"code": "woocommerce_rest_shop_order_invalid_id", "message": "Invalid ID."}
            if notes and method == "POST":
                note = {"id": 900 + sum(map(len, self.notes.values())), "author": "connectzap",
                        "note": body["note"], "customer_note": bool(body.get("customer_note"))}
                self.notes[order_id].append(note)
                return 201, note
            if notes:
                return 200, list(reversed(self.notes[order_id]))
            if method == "PUT":
                if "status" in body and body["status"] != order["status"]:
                    order["status"] = body["status"]
                    self.status_changes.append((order_id, body["status"]))
                    if self.after_status_change is not None:
                        self.after_status_change(order_id, body["status"])
                return 200, order
            return 200, order
