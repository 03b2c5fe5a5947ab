"""The connector conformance suite, run against the WooCommerce connector (single-shop form)."""

from __future__ import annotations

import connectzap.connectors.woocommerce as woocommerce_plugin
from connectzap.connectors.woocommerce import WooCommerceConnector
from connectzap.testing import Sample, Signer, connector_test_class
from test_woocommerce_webhooks import PAYLOADS, SECRET

ORDER = ("order_created",)
# What WooCommerce sends besides the signature; part of each sample, so the suite knows that
# dropping the topic is a payload problem (422), not a signature one.
HEADERS = {"x-wc-webhook-topic": "order.created", "x-wc-webhook-resource": "order", "x-wc-webhook-event": "created",
           "x-wc-webhook-source": "https://shop.example.com/", "x-wc-webhook-id": "12",
           "user-agent": "WooCommerce/9.4.1 Hookshot (WordPress/6.7.1)"}
# Signer.woocommerce() adds the delivery headers too; requests without the delivery id are
# legitimately accepted (deduped on a body hash), which the missing-header test allows.
SIGNATURE_AND_DELIVERY = Signer.woocommerce()

TestWooCommerceConformance = connector_test_class(
    WooCommerceConnector,
    config={"url": "https://shop.example.com", "webhook_secrets": [SECRET], "consumer_key": "ck_conformance",
            "consumer_secret": "cs_conformance"},
    signer=SIGNATURE_AND_DELIVERY,
    secret_field="webhook_secrets",
    plugins=[woocommerce_plugin],
    payloads=[
        Sample.from_file(PAYLOADS / "order_created_classic.json", expect_kinds=ORDER, headers=HEADERS, expect_sends=0),
        Sample.from_file(PAYLOADS / "order_created_block.json", expect_kinds=ORDER, headers=HEADERS, expect_sends=0),
        Sample.from_file(PAYLOADS / "order_created_plugin_field.json", expect_kinds=ORDER, headers=HEADERS),
        Sample.from_file(PAYLOADS / "order_created_invalid_phone.json", expect_kinds=ORDER, headers=HEADERS,
                         expect_sends=0),
        Sample.from_file(PAYLOADS / "order_created_no_optin.json", expect_kinds=ORDER, headers=HEADERS),
        Sample(name="order_without_id", body={"status": "processing"}, expect="error", headers=HEADERS,
               error_field="id"),
        Sample(name="order_bad_total", body={"id": 9, "status": "processing", "total": "lots"}, expect="error",
               headers=HEADERS, error_field="total"),
    ],
)
