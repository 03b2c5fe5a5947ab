"""WooCommerce webhook ingress: ping, signatures, shops, dedupe, order/customer mapping, consent."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectzap import Category, ConfigurationError, Event, EventKind, Order, WebhookRequest
from connectzap.core import ingress
from connectzap.core.errors import SignatureError
from connectzap.connectors.woocommerce.signatures import sign_woocommerce, verify_woocommerce
from connectzap.core.store.schema import events
from connectzap.connectors.woocommerce.settings import ticked

PAYLOADS = Path(__file__).parent / "payloads" / "woocommerce"
SECRET = "wc-secret-main-0123456789"
OLD_SECRET = "wc-secret-previous-9876"
SHOP_URL = "https://shop.example.com"


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def wordpress_json(data: Any) -> bytes:
    """The body as ``wp_json_encode`` writes it: compact, slashes escaped, non-ASCII as \\u escapes."""
    return json.dumps(data, separators=(",", ":")).replace("/", "\\/").encode()


def wc_request(body: bytes, *, topic: str | None = "order.created", delivery: str | None = "d-1",
               shop: str | None = None, secret: str | None = SECRET, content_type: str = "application/json",
               signature: str | None = None) -> WebhookRequest:
    headers = {"content-type": content_type, "user-agent": "WooCommerce/9.4.1 Hookshot (WordPress/6.7.1)",
               "x-wc-webhook-source": SHOP_URL + "/", "x-wc-webhook-id": "12"}
    if topic is not None:
        resource, _, event = topic.partition(".")
        headers.update({"x-wc-webhook-topic": topic, "x-wc-webhook-resource": resource, "x-wc-webhook-event": event})
    if delivery is not None:
        headers["x-wc-webhook-delivery-id"] = delivery
    if signature is not None:
        headers["x-wc-webhook-signature"] = signature
    elif secret is not None:
        headers["x-wc-webhook-signature"] = sign_woocommerce(body, secret)
    path = "/webhooks/woocommerce" + (f"/{shop}" if shop else "")
    return WebhookRequest(method="POST", url="https://cz.test" + path, path=path, headers=headers, body=body,
                          path_params={"shop": shop} if shop else {})


def shop_config(**overrides: Any) -> dict[str, Any]:
    return {"url": SHOP_URL, "webhook_secrets": [SECRET, OLD_SECRET], "consumer_key": "ck_test",
            "consumer_secret": "cs_test", **overrides}


@pytest.fixture
def wc_app(make):
    return make(connectors={"woocommerce": {"shops": {"main": shop_config(),
                                                      "outlet": shop_config(webhook_secrets=["outlet-secret-xyz"])}}})


def journaled(app) -> list[Event]:
    from sqlalchemy import select
    with app.db.read() as conn:
        rows = conn.execute(select(events.c.source, events.c.dedupe_key, events.c.kind, events.c.payload)
                            .order_by(events.c.id)).all()
    out = []
    for row in rows:
        data = json.loads(row.payload) if row.payload else {}
        out.append(Event.model_validate(data) if data else None)
    return out


def handle(app, request: WebhookRequest):
    return ingress.handle(app.connectors["woocommerce"], request, app.ingest)


# --- signatures --------------------------------------------------------------------------------

def test_signature_vector_matches_an_independent_hmac():
    body = (PAYLOADS / "order_created_classic.json").read_bytes()
    independent = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert sign_woocommerce(body, SECRET) == independent
    verify_woocommerce(body, independent, [SECRET])
    # a fixed vector, computed once with openssl:
    # printf 'webhook body' | openssl dgst -sha256 -hmac key -binary | base64
    assert sign_woocommerce(b"webhook body", "key") == base64.b64encode(
        hmac.new(b"key", b"webhook body", hashlib.sha256).digest()).decode()


@given(st.binary(max_size=512), st.integers(min_value=0, max_value=511))
def test_any_changed_byte_breaks_the_signature(body, position):
    signature = sign_woocommerce(body, SECRET)
    verify_woocommerce(body, signature, [SECRET])
    if body:
        i = position % len(body)
        tampered = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]
        with pytest.raises(SignatureError):
            verify_woocommerce(tampered, signature, [SECRET])


def test_bad_or_missing_signature_is_rejected_and_nothing_stored(wc_app):
    body = (PAYLOADS / "order_created_classic.json").read_bytes()
    assert handle(wc_app, wc_request(body, secret="wrong-secret", shop="main")).status == 401
    assert handle(wc_app, wc_request(body, secret=None, shop="main")).status == 401
    assert handle(wc_app, wc_request(body, signature="not base64!", shop="main")).status == 401
    # the other shop's secret does not open this shop
    assert handle(wc_app, wc_request(body, secret="outlet-secret-xyz", shop="main")).status == 401
    assert journaled(wc_app) == []


def test_rotated_secret_and_per_shop_secrets_are_accepted(wc_app):
    body = (PAYLOADS / "order_created_classic.json").read_bytes()
    assert handle(wc_app, wc_request(body, secret=OLD_SECRET, shop="main", delivery="a")).status == 200
    assert handle(wc_app, wc_request(body, secret="outlet-secret-xyz", shop="outlet", delivery="b")).status == 200
    shops = [e.payload().shop for e in journaled(wc_app)]
    assert shops == ["main", "outlet"]


def test_unknown_shop_is_404_and_the_bare_path_needs_a_default(wc_app):
    body = (PAYLOADS / "order_created_classic.json").read_bytes()
    assert handle(wc_app, wc_request(body, shop="nope")).status == 404
    # two shops, none named "default": the path without a shop has no owner
    assert handle(wc_app, wc_request(body)).status == 404


def test_single_shop_is_served_on_the_bare_path(make):
    app = make(connectors={"woocommerce": {"shops": {"only": shop_config()}}})
    body = (PAYLOADS / "order_created_classic.json").read_bytes()
    assert handle(app, wc_request(body)).status == 200
    assert journaled(app)[0].payload().shop == "only"


# --- ping -------------------------------------------------------------------------------------

def test_creation_ping_gets_200_and_does_nothing_else(wc_app):
    ping = wc_request((PAYLOADS / "ping.txt").read_bytes(), topic=None, delivery=None, secret=None,
                      content_type="application/x-www-form-urlencoded", shop="main")
    response = handle(wc_app, ping)
    assert response.status == 200
    assert journaled(wc_app) == []


def test_a_ping_shaped_body_with_a_bad_signature_is_still_rejected(wc_app):
    # an attacker cannot smuggle anything through the ping path: a signed-looking request is verified
    response = handle(wc_app, wc_request(b"webhook_id=12", secret="wrong", shop="main"))
    assert response.status == 401


# --- dedupe -------------------------------------------------------------------------------------

def test_dedupe_on_delivery_id_and_body_hash_fallback(wc_app):
    body = (PAYLOADS / "order_created_classic.json").read_bytes()
    first = handle(wc_app, wc_request(body, shop="main", delivery="3f2b0c8d"))
    again = handle(wc_app, wc_request(body, shop="main", delivery="3f2b0c8d"))
    assert first.body == {"received": 1, "duplicates": 0}
    assert again.body == {"received": 0, "duplicates": 1}
    # a new delivery of the same body is a new event (a coalesced update may repeat a body)
    assert handle(wc_app, wc_request(body, shop="main", delivery="other")).body["received"] == 1
    # without a delivery id, the body hash stands in
    assert handle(wc_app, wc_request(body, shop="main", delivery=None)).body["received"] == 1
    assert handle(wc_app, wc_request(body, shop="main", delivery=None)).body["duplicates"] == 1
    assert len(journaled(wc_app)) == 3


# --- mapping ------------------------------------------------------------------------------------

def test_classic_checkout_order_maps_to_order_with_consent_proof(wc_app):
    body = wordpress_json(payload("order_created_classic.json"))
    assert handle(wc_app, wc_request(body, shop="main")).status == 200
    [event] = journaled(wc_app)
    assert event.kind == EventKind.ORDER_CREATED and event.source == "woocommerce"
    order: Order = event.payload()
    assert (order.id, order.number, order.status, order.shop) == ("1042", "1042", "processing", "main")
    assert order.total == Decimal("45.90") and isinstance(order.total, Decimal) and order.currency == "EUR"
    assert order.customer.phone == "+34612345678" and order.customer.country == "ES"
    assert order.customer.first_name == "Ana"
    assert [i.sku for i in order.items] == ["COF-1KG", "MUG-BLU"] and order.items[1].quantity == 2
    assert order.created_at.isoformat() == "2026-03-02T10:14:05+00:00"
    [consent] = event.consents
    assert consent.category == Category.UTILITY and consent.granted and consent.phone == "+34612345678"
    assert consent.source == "woocommerce:main"
    for needle in ("main", SHOP_URL, "order 1042", "_connectzap_whatsapp_optin", "2026-03-02T10:14:05"):
        assert needle in consent.proof
    assert "+34" not in consent.proof  # the proof never carries the number


def test_block_checkout_field_and_national_number(wc_app):
    body = json.dumps(payload("order_created_block.json")).encode()
    handle(wc_app, wc_request(body, shop="main"))
    [event] = journaled(wc_app)
    order = event.payload()
    assert order.status == "pending" and order.customer.phone == "+4915123456789"
    fields = [c.proof.split("field ")[1].split(" =")[0] for c in event.consents]
    assert fields == ["_wc_other/connectzap/whatsapp-optin"]


def test_unknown_fields_and_plugin_meta_are_tolerated(wc_app):
    handle(wc_app, wc_request(json.dumps(payload("order_created_plugin_field.json")).encode(), shop="main"))
    order = journaled(wc_app)[0].payload()
    assert order.number == "SO-1044"
    assert order.meta["_custom_gift_wrap"] == {"wrap": True, "message": "Feliz cumpleaños"}


def test_tracking_url_and_refunds_are_mapped(wc_app):
    handle(wc_app, wc_request(json.dumps(payload("order_updated_completed.json")).encode(), topic="order.updated",
                              shop="main", delivery="c"))
    handle(wc_app, wc_request(json.dumps(payload("order_updated_refunded.json")).encode(), topic="order.updated",
                              shop="main", delivery="r"))
    completed, refunded = (e.payload() for e in journaled(wc_app))
    assert completed.tracking_url == "https://track.example.net/p/ES123456789"
    assert refunded.status == "refunded" and Decimal(refunded.refunded_total) == Decimal("45.90")


def test_no_opt_in_records_no_consent(wc_app):
    handle(wc_app, wc_request(json.dumps(payload("order_created_no_optin.json")).encode(), shop="main"))
    [event] = journaled(wc_app)
    assert event.consents == [] and event.payload().customer.phone == "+34612345678"


def test_invalid_phone_is_journaled_without_a_number(wc_app):
    response = handle(wc_app, wc_request(json.dumps(payload("order_created_invalid_phone.json")).encode(), shop="main"))
    assert response.status == 200
    [event] = journaled(wc_app)
    customer = event.payload().customer
    assert customer.phone is None and customer.attributes == {"phone_invalid": True}
    assert event.consents == []


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("on", True), (True, True), ("true", True),
                                             (1, True), ("0", False), ("no", False), ("", False), (False, False),
                                             (None, False), ("off", False)])
def test_checkbox_values(value, expected):
    assert ticked(value) is expected


def test_customer_created_becomes_a_consent_event(wc_app):
    body = json.dumps(payload("customer_created.json")).encode()
    assert handle(wc_app, wc_request(body, topic="customer.created", shop="main")).body["received"] == 1
    [event] = journaled(wc_app)
    change = event.payload()
    assert event.kind == EventKind.CONSENT_CHANGED
    assert change.phone == "+436641234567" and change.granted and change.category == Category.UTILITY
    assert "customer 57 sign-up" in change.proof


def test_customer_without_opt_in_journals_nothing(wc_app):
    data = payload("customer_created.json")
    data["meta_data"] = []
    response = handle(wc_app, wc_request(json.dumps(data).encode(), topic="customer.created", shop="main"))
    assert response.status == 200 and response.body["received"] == 0


def test_status_action_topic_becomes_a_partial_order(wc_app):
    body = (PAYLOADS / "action_order_status_completed.json").read_bytes()
    handle(wc_app, wc_request(body, topic="action.woocommerce_order_status_completed", shop="main"))
    [event] = journaled(wc_app)
    order = event.payload()
    assert event.kind == EventKind.ORDER_UPDATED
    assert (order.id, order.status, order.shop, order.partial) == ("1042", "completed", "main", True)


def test_other_topics_are_acknowledged_and_ignored(wc_app):
    response = handle(wc_app, wc_request(b'{"id": 87}', topic="product.updated", shop="main"))
    assert response.status == 200 and response.body["received"] == 0
    assert journaled(wc_app) == []


@pytest.mark.parametrize("body, topic, field", [
    (b"not json", "order.created", "body"),
    (b'{"status": "processing"}', "order.created", "id"),
    (b'{"id": 5, "status": "processing", "total": "a lot"}', "order.updated", "total"),
    (b'{"id": 5}', None, "X-WC-Webhook-Topic"),
])
def test_bad_payloads_are_rejected_with_the_field(wc_app, body, topic, field):
    response = handle(wc_app, wc_request(body, topic=topic, shop="main"))
    assert response.status == 422 and response.body["field"] == field
    assert journaled(wc_app) == []


# --- settings --------------------------------------------------------------------------------------

def test_a_shop_without_a_webhook_secret_refuses_to_start(make):
    with pytest.raises(ConfigurationError) as info:
        make(connectors={"woocommerce": {"shops": {"main": shop_config(), "eu": shop_config(webhook_secrets=[])}}})
    assert "'eu'" in str(info.value) and "\n" not in str(info.value)


def test_secrets_do_not_leak_into_reprs(wc_app):
    connector = wc_app.connectors["woocommerce"]
    text = repr(connector.settings) + repr(connector.client("main"))
    for secret in (SECRET, OLD_SECRET, "ck_test", "cs_test"):
        assert secret not in text


def test_single_shop_shorthand_is_the_default_shop(make):
    app = make(connectors={"woocommerce": shop_config()})
    assert list(app.connectors["woocommerce"].settings.shops) == ["default"]
    with pytest.raises(ConfigurationError) as info:
        make("both", connectors={"woocommerce": {**shop_config(), "shops": {"default": shop_config()}}})
    assert "not both" in str(info.value)
    with pytest.raises(ConfigurationError) as none:
        make("none", connectors={"woocommerce": {}})
    assert "no shop configured" in str(none.value)
