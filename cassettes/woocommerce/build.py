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


def customer_notes(order: int = 1042) -> tuple[dict, dict]:
    """The order's notes to the customer: the agent's (id 290) and an older one."""
    listed = [{"id": note_id, "author": "Marta", "date_created": created, "date_created_gmt": created_gmt,
               "note": text, "customer_note": True,
               "_links": {"self": [{"href": f"{BASE}/orders/{order}/notes/{note_id}"}],
                          "collection": [{"href": f"{BASE}/orders/{order}/notes"}],
                          "up": [{"href": f"{BASE}/orders/{order}"}]}}
              for note_id, text, created, created_gmt in (
                  (290, AGENT_NOTE, "2026-03-02T14:05:00", "2026-03-02T13:05:00"),
                  (287, "Thanks for your order!", "2026-03-02T12:20:00", "2026-03-02T11:20:00"))]
    return request("GET", f"{BASE}/orders/{order}/notes?type=customer"), response(200, "OK", listed)


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
AGENT_NOTE = "Your parcel leaves today; the courier calls before 6pm."
SENT_NOTE = "The note to the customer was sent on WhatsApp as a message (the customer's 24-hour window is open)."
TEMPLATE_NOTE = ("The note to the customer went on WhatsApp as the template new_message_notice: the customer's "
                 "24-hour window was closed, so the note itself could not be sent; the template tells them there is "
                 "a new message about this order.")
NO_NUMBER_NOTE = ("The note to the customer was not sent on WhatsApp: the order's billing phone is missing or not a "
                  "valid number.")
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
    order = fixture("order_created_classic.json")
    fetched = (request("GET", f"{BASE}/orders/1042"), response(200, "OK", order))
    for name, outcome in (("customer_note_sent.yaml", SENT_NOTE), ("customer_note_template.yaml", TEMPLATE_NOTE)):
        write(name, "_orders.md, Retrieve an order; _order-notes.md, List all order notes, Create an order note",
              [fetched, customer_notes(), note(291, outcome)])
    no_phone = {**order, "billing": {**order["billing"], "phone": ""}}
    write("customer_note_no_phone.yaml", "_orders.md, Retrieve an order; _order-notes.md",
          [(request("GET", f"{BASE}/orders/1042"), response(200, "OK", no_phone)), customer_notes(),
           note(292, NO_NUMBER_NOTE)])
    write("orders_unauthorized.yaml", "_authentication.md (wrong keys)", [
        (request("GET", f"{BASE}/{PAGE}&page=1&status=any"),
         response(401, "Unauthorized", {"code": "woocommerce_rest_cannot_view",
                                        "message": "Sorry, you cannot list resources.", "data": {"status": 401}})),
    ])
    campaign_cassettes()
    review_cassettes()
    lookup_cassettes()


AUDIENCE = ("orders?status=completed%2Cprocessing&orderby=id&order=asc&per_page=100&after=2026-11-01T00%3A00%3A00"
            "&dates_are_gmt=true")


def shop_order(order_id: int, customer: int, total: str, first_name: str, phone: str, country: str = "DE") -> dict:
    base = fixture("order_updated_completed.json")
    billing = {**base["billing"], "first_name": first_name, "last_name": "Muster", "country": country, "phone": phone,
               "email": f"{first_name.lower()}@example.com"}
    return {**base, "id": order_id, "number": str(order_id), "customer_id": customer, "total": total,
            "billing": billing, "shipping": {**base["shipping"], "first_name": first_name},
            "date_created_gmt": "2026-11-20T10:00:00", "meta_data": []}


def customer(customer_id: int, first_name: str, meta: list[dict]) -> dict:
    return {"id": customer_id, "date_created": "2026-01-05T10:00:00", "date_created_gmt": "2026-01-05T09:00:00",
            "date_modified": "2026-12-02T10:00:00", "date_modified_gmt": "2026-12-02T09:00:00",
            "email": f"{first_name.lower()}@example.com", "first_name": first_name, "last_name": "Muster",
            "role": "customer", "username": first_name.lower(), "is_paying_customer": True,
            "meta_data": [{"id": 900 + i, **m} for i, m in enumerate(meta)],
            "_links": {"self": [{"href": f"{BASE}/customers/{customer_id}"}]}}


def campaign_cassettes() -> None:
    """Orders filtered for a campaign audience (two pages), and the outcomes written back."""
    paging = {"X-WP-Total": "7", "X-WP-TotalPages": "2"}
    first = [shop_order(2001, 25, "30.00", "Ana", "+4915112345601"),
             shop_order(2002, 0, "80.00", "Ben", "015112345602"),
             shop_order(2003, 26, "20.00", "Cleo", "")]
    second = [shop_order(2004, 25, "25.00", "Ana", "+4915112345601"),
              shop_order(2005, 26, "40.00", "Cleo", ""),
              shop_order(2006, 27, "10.00", "Dana", "+4915112345607"),
              shop_order(2007, 28, "99.00", "Ben", "+49 151 12345602")]
    write("orders_audience_two_pages.yaml", "_orders.md, List all orders (status, after, dates_are_gmt, orderby); "
          "_introduction.md, Pagination", [
              (request("GET", f"{BASE}/{AUDIENCE}&page=1"), response(200, "OK", first, **paging)),
              (request("GET", f"{BASE}/{AUDIENCE}&page=2"), response(200, "OK", second, **paging)),
          ])
    write("orders_audience_unauthorized.yaml", "_authentication.md (wrong keys)", [
        (request("GET", f"{BASE}/{AUDIENCE}&page=1"),
         response(401, "Unauthorized", {"code": "woocommerce_rest_cannot_view",
                                        "message": "Sorry, you cannot list resources.", "data": {"status": 401}})),
    ])
    outcome = [{"key": "connectzap_last_campaign", "value": "winter"},
               {"key": "connectzap_last_campaign_outcome", "value": "refused (no_consent)"}]
    guest_order = {**shop_order(2002, 0, "80.00", "Ben", "015112345602"),
                   "meta_data": [{"id": 950 + i, **m} for i, m in enumerate(outcome)]}
    write("campaign_outcomes_batch.yaml", "_orders.md and _customers.md, Batch update (up to 100 objects)", [
        (request("POST", f"{BASE}/orders/batch", {"update": [{"id": 2002, "meta_data": outcome}]}),
         response(200, "OK", {"update": [guest_order]})),
        (request("POST", f"{BASE}/customers/batch", {"update": [{"id": 25, "meta_data": outcome}]}),
         response(200, "OK", {"update": [customer(25, "Ana", outcome)]})),
    ])


REVIEW_SENT_NOTE = "WhatsApp review request sent (template review_request)."


def product(product_id: int, name: str, slug: str) -> dict:
    """A product as ``GET products/{id}`` returns it (the fields a review link needs, and a few more)."""
    return {"id": product_id, "name": name, "slug": slug, "permalink": f"https://shop.example.com/product/{slug}/",
            "type": "simple", "status": "publish", "sku": "COF-1KG", "price": "24.79", "reviews_allowed": True,
            "average_rating": "4.60", "rating_count": 12,
            "_links": {"self": [{"href": f"{BASE}/products/{product_id}"}]}}


def review_cassettes() -> None:
    """A due review request reads the order again (and the first product for its permalink), then
    notes on the order what became of it."""
    completed = fixture("order_updated_completed.json")
    get = request("GET", f"{BASE}/orders/1042")
    coffee = (request("GET", f"{BASE}/products/87"),
              response(200, "OK", product(87, "Organic Coffee Beans 1kg", "organic-coffee-beans-1kg")))
    write("review_sent.yaml", "_orders.md, Retrieve an order; _products.md, Retrieve a product; _order-notes.md",
          [(get, response(200, "OK", completed)),
           coffee,
           note(301, REVIEW_SENT_NOTE)])
    write("review_opted_out.yaml", "_orders.md, Retrieve an order; _products.md, Retrieve a product; _order-notes.md",
          [(get, response(200, "OK", completed)),
           coffee,
           note(303, "WhatsApp review request not sent (opted_out): opted out of utility via whatsapp-keyword.")])
    write("review_wrong_category.yaml", "_orders.md, Retrieve an order; _products.md, Retrieve a product; "
          "_order-notes.md", [
              (get, response(200, "OK", completed)),
              coffee,
              note(304, "WhatsApp review request not sent: template review_request (es) is a utility template, and "
                        "review_requests.category is marketing.")])
    refund = {"id": 1101, "reason": "Damaged mug", "total": "-8.14"}
    for name, order, text in (
            ("review_refunded.yaml", fixture("order_updated_refunded.json"),
             "WhatsApp review request not sent: the order is refunded."),
            ("review_cancelled.yaml", fixture("order_updated_cancelled.json"),
             "WhatsApp review request not sent: the order is cancelled."),
            ("review_partial_refund.yaml", {**completed, "refunds": [refund]},
             "WhatsApp review request not sent: the order has refunds."),
            ("review_reopened.yaml", {**completed, "status": "processing"},
             "WhatsApp review request not sent: the order is processing now, no longer completed; it is "
             "scheduled again when the order is completed again.")):
        write(name, "_orders.md, Retrieve an order; _order-notes.md, Create an order note",
              [(get, response(200, "OK", order)), note(302, text)])


LOOKUP_SEARCH = "orders?search=612345678&orderby=date&order=desc&per_page=20&status=any"


def lookup_cassettes() -> None:
    """A customer asks about an order: the order read by its number (or missing), and the newest
    orders found by the sender's national number (one of them another customer's)."""
    completed = fixture("order_updated_completed.json")
    get = request("GET", f"{BASE}/orders/1042")
    write("lookup_order_1042.yaml", "_orders.md, Retrieve an order", [(get, response(200, "OK", completed))])
    write("lookup_order_missing.yaml", "_orders.md, Retrieve an order (error shape from the WP REST API)", [
        (request("GET", f"{BASE}/orders/9999"),
         response(404, "Not Found", {"code": "woocommerce_rest_shop_order_invalid_id", "message": "Invalid ID.",
                                     "data": {"status": 404}}))])
    shipments = [{"tracking_provider": "correos", "custom_tracking_provider": "", "custom_tracking_link": "",
                  "tracking_number": "PK0001", "date_shipped": "1772697600", "tracking_id": "a1"},
                 {"tracking_provider": "", "custom_tracking_provider": "SEUR",
                  "custom_tracking_link": "https://www.seur.example/track?n=ES777", "tracking_number": "ES777",
                  "date_shipped": "1772784000", "tracking_id": "b2"}]
    tracked = {**completed, "meta_data": [m for m in completed["meta_data"] if m["key"] != "_connectzap_tracking_url"]
               + [{"id": 20430, "key": "_wc_shipment_tracking_items", "value": shipments}]}
    write("lookup_shipment_tracking.yaml", "_orders.md, Retrieve an order (meta_data of the Shipment Tracking "
          "extension)", [(get, response(200, "OK", tracked))])
    newer = {**fixture("order_created_classic.json"), "id": 1045, "number": "1045", "status": "processing",
             "date_created_gmt": "2026-03-09T10:00:00", "date_modified_gmt": "2026-03-09T10:00:00"}
    stranger = {**completed, "id": 1050, "number": "1050", "date_created_gmt": "2026-03-10T10:00:00",
                "billing": {**completed["billing"], "first_name": "Bea", "phone": "+34 612 34 56 79",
                            "email": "bea@example.com"}}
    write("lookup_latest.yaml", "_orders.md, Retrieve an order; List all orders (search, orderby, order)", [
        (get, response(200, "OK", completed)),
        (request("GET", f"{BASE}/{LOOKUP_SEARCH}"),
         response(200, "OK", [stranger, newer, completed], **{"X-WP-Total": "3", "X-WP-TotalPages": "1"}))])


if __name__ == "__main__":
    main()
