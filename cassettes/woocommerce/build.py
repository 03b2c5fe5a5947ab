"""Builds the WooCommerce cassettes in this folder.

No live shop is reachable from here, so these cassettes are NOT recordings: each interaction is
written from WooCommerce's REST API reference (woocommerce/woocommerce-rest-api-docs,
source/includes/wp-api-v3/_orders.md, _order-notes.md, _introduction.md for X-WP-Total /
X-WP-TotalPages paging) using the order fixtures in tests/payloads/woocommerce. Credentials never
appear: HTTPS requests carry the keys in an Authorization header, which is not stored (tests also
set vcrpy's filter_headers / filter_query_parameters so a re-recording would be scrubbed).

Run from the repository root:  .venv/bin/python cassettes/woocommerce/build.py
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

HERE = Path(__file__).parent
FIXTURES = HERE.parent.parent / "tests" / "payloads" / "woocommerce"
BASE = "https://shop.example.com/wp-json/wc/v3"
HEADER = ("# Built by hand from WooCommerce's REST API reference (wp-api-v3: {doc}), not recorded:\n"
          "# no live shop is reachable. Regenerate with cassettes/woocommerce/build.py. No credentials stored.\n")


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def request(method: str, uri: str, body: dict | None = None) -> dict:
    headers = {"accept": ["application/json"], "user-agent": ["connectzap"]}
    if body is not None:
        headers["content-type"] = ["application/json;charset=utf-8"]
    return {"method": method, "uri": uri, "headers": headers,
            "body": json.dumps(body, ensure_ascii=False) if body is not None else None}


def response(status: int, message: str, body: object, **headers: str) -> dict:
    all_headers = {"Content-Type": ["application/json; charset=UTF-8"], **{k: [v] for k, v in headers.items()}}
    return {"status": {"code": status, "message": message}, "headers": all_headers,
            "body": {"string": json.dumps(body, ensure_ascii=False)}}


def note(note_id: int, text: str, order: int = 1042) -> tuple[dict, dict]:
    created = {"id": note_id, "author": "system", "date_created": "2026-03-02T13:30:01",
               "date_created_gmt": "2026-03-02T12:30:01", "note": text, "customer_note": False,
               "_links": {"self": [{"href": f"{BASE}/orders/{order}/notes/{note_id}"}],
                          "collection": [{"href": f"{BASE}/orders/{order}/notes"}],
                          "up": [{"href": f"{BASE}/orders/{order}"}]}}
    return (request("POST", f"{BASE}/orders/{order}/notes", {"note": text, "customer_note": False}),
            response(201, "Created", created, Location=f"/wp-json/wc/v3/orders/{order}/notes/{note_id}"))


def write(name: str, doc: str, interactions: list[tuple[dict, dict]]) -> None:
    data = {"interactions": [{"request": r, "response": s} for r, s in interactions], "version": 1}
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=120)
    (HERE / name).write_text(HEADER.format(doc=doc) + text, encoding="utf-8")


INBOUND_NOTE = "WhatsApp message from the customer (2026-03-02 12:30 UTC):\nCan you deliver after 6pm?"
AD_NOTE = ("WhatsApp message from the customer (2026-03-02 12:30 UTC):\nIs the summer offer still on?\nLead source: "
           "Click-to-WhatsApp ad 120226305854810726 · Summer sale · https://fb.me/3cr4Wqqkk · ctwa_clid ARAkLkA8rmlFe")
FAILURE_NOTE = ("The WhatsApp notification for status 'processing' (template order_confirmation) could not be "
                "delivered: 131049 This message was not delivered to maintain healthy ecosystem engagement.")
HANDOFF_NOTE = ("WhatsApp conversation handed to a person (2026-03-02 12:35 UTC, until 2026-03-02 16:35 UTC): "
                "asked for a person.")
PAGE = "orders?modified_after=2026-03-01T00%3A00%3A00&dates_are_gmt=true&orderby=modified&order=asc&per_page=2"


def main() -> None:
    write("note_inbound_reply.yaml", "_order-notes.md, Create an order note", [note(281, INBOUND_NOTE)])
    write("note_inbound_ad_reply.yaml", "_order-notes.md, Create an order note", [note(283, AD_NOTE)])
    write("note_delivery_failure.yaml", "_order-notes.md, Create an order note", [note(282, FAILURE_NOTE)])
    write("note_handoff.yaml", "_order-notes.md, Create an order note", [note(283, HANDOFF_NOTE)])

    completed = fixture("order_updated_completed.json")
    block = {**fixture("order_created_block.json"), "status": "processing", "date_modified_gmt": "2026-03-03T08:05:00"}
    no_optin = {**fixture("order_created_no_optin.json"), "status": "completed",
                "date_modified_gmt": "2026-03-08T12:00:00"}
    paging = {"X-WP-Total": "3", "X-WP-TotalPages": "2"}
    write("orders_modified_two_pages.yaml", "_orders.md, List all orders; _introduction.md, Pagination", [
        (request("GET", f"{BASE}/{PAGE}&page=1&status=any"), response(200, "OK", [completed, block], **paging)),
        (request("GET", f"{BASE}/{PAGE}&page=2&status=any"), response(200, "OK", [no_optin], **paging)),
        # the next run starts one minute before the last change seen (2026-03-08T12:00:00): nothing new
        (request("GET", f"{BASE}/{PAGE.replace('2026-03-01T00%3A00%3A00', '2026-03-08T11%3A59%3A00')}"
                        "&page=1&status=any"),
         response(200, "OK", [], **{"X-WP-Total": "0", "X-WP-TotalPages": "0"})),
    ])
    write("order_get_1042_completed.yaml", "_orders.md, Retrieve an order",
          [(request("GET", f"{BASE}/orders/1042"), response(200, "OK", completed))])
    write("note_order_missing.yaml", "_order-notes.md (error shape from the WP REST API)", [
        (request("POST", f"{BASE}/orders/1042/notes", {"note": INBOUND_NOTE, "customer_note": False}),
         response(404, "Not Found", {"code": "woocommerce_rest_order_invalid_id", "message": "Invalid order ID.",
                                     "data": {"status": 404}})),
    ])
    write("note_server_error.yaml", "_order-notes.md (a 503 from the host while WordPress is in maintenance)", [
        (request("POST", f"{BASE}/orders/1042/notes", {"note": INBOUND_NOTE, "customer_note": False}),
         response(503, "Service Unavailable", {"code": "maintenance", "message": "Briefly unavailable"},
                  **{"Retry-After": "120"})),
    ])
    write("orders_unauthorized.yaml", "_authentication.md (wrong keys)", [
        (request("GET", f"{BASE}/{PAGE}&page=1&status=any"),
         response(401, "Unauthorized", {"code": "woocommerce_rest_cannot_view",
                                        "message": "Sorry, you cannot list resources.", "data": {"status": 401}})),
    ])


if __name__ == "__main__":
    main()
