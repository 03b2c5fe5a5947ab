"""The WooCommerce plugin's order hooks (complete a partial order, remember the customer's latest
order) have nothing to do without the WooCommerce connector: what they keep is read only by it.
Without ``[connectors.woocommerce]`` they are not called and cost no delivery row per order event --
a shop whose orders come from a generic webhook sees no "woocommerce" delivery on them -- as the
plugin's inbound-message hook and every connector's own sync methods already behave."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_woocommerce_notes import deliveries
from test_woocommerce_webhooks import shop_config

from connectzap import Contact, Event, Order
from connectzap.core.worker import Worker

ORDER_EVENTS = ["order_created", "order_updated"]
SOURCES = ["woocommerce", "generic:shop", "api"]
_ids = itertools.count(1)


def order_event(kind: str, source: str, partial: bool = False) -> Event:
    number = next(_ids)
    order = Order(id=str(number), shop="main", status="processing", partial=partial,
                  customer=Contact(phone="+34612345678", name="Ana"))
    return Event.of(kind, order, source=source, dedupe_key=f"{kind}:{number}")


def engine(make, configured: bool):
    connectors = {"woocommerce": {"shops": {"main": shop_config()}}} if configured else {}
    return make(connectors=connectors)


@pytest.mark.parametrize("configured", [False, True])
async def test_without_woocommerce_an_order_costs_no_woocommerce_delivery(make, configured):
    app = engine(make, configured)
    app.ingest([order_event("order_created", "woocommerce"), order_event("order_updated", "generic:shop")])
    await Worker(app).run_until_idle()
    assert len(deliveries(app, "woocommerce")) == (2 if configured else 0)


@pytest.mark.parametrize("configured", [False, True])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(ORDER_EVENTS), source=st.sampled_from(SOURCES), partial=st.booleans())
async def test_the_order_hooks_get_a_delivery_exactly_when_the_connector_is_configured(make, configured, kind,
                                                                                         source, partial):
    app = engine(make, configured)
    [journaled] = app.ingest([order_event(kind, source, partial)])
    await Worker(app).run_until_idle()
    assert len(deliveries(app, "woocommerce", journaled.event_id)) == int(configured)
