"""A stateful local stand-in of a WooCommerce shop's REST API (``/wp-json/wc/v3``), for flows that
read an order, change its status and read it again: ``GET``/``PUT orders/{id}`` and
``GET``/``POST orders/{id}/notes``, shaped as WooCommerce's REST reference documents them. Every
status change made through the API is recorded; the shop's own changes go through :meth:`set_status`."""

from __future__ import annotations

import copy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ORDER = re.compile(r"^/wp-json/wc/v3/orders/(\d+)(/notes)?$")


class FakeShop:
    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self.status_changes: list[tuple[str, str]] = []
        """``(order id, new status)`` of every change made through the REST API."""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeShop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

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

    def _answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
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
                return 200, order
            return 200, order

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, answer = shop._answer(self.command, self.path.split("?", 1)[0],
                                              json.loads(raw) if raw else {})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
