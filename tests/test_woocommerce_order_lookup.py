"""Order status on request (issue #20, item 7): a customer who writes an order number or taps
"Where is my order?" hears the status and tracking of their own orders -- and, about anyone else's
order or one that does not exist, the same neutral sentence (cassettes built from WooCommerce's REST
reference by cassettes/woocommerce/build.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import vcr
from automation_support import WHATSAPP, deliver_signed, envelope, text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_order_notifications import deliver
from test_woocommerce_notes import CASSETTES
from test_woocommerce_webhooks import payload, shop_config

from connectzap.connectors.woocommerce import order_lookup
from connectzap.connectors.woocommerce.lookup_settings import OrderLookupSettings
from connectzap.core.models import Contact, InboundMessage
from connectzap.testing import FakeWhatsApp, run

ANA = "34612345678"        # the billing phone of order 1042 (+34 612 34 56 78), as WhatsApp names her
STRANGER = "34699111222"
NEUTRAL_ES = order_lookup.NOT_FOUND["es"]
lookup_vcr = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="none",
                     match_on=["method", "scheme", "host", "port", "path", "query"], filter_headers=["authorization"])


@pytest.fixture
def shop(make):
    def build(**lookup: Any):
        return make(channel=FakeWhatsApp(), connectors={
            **WHATSAPP, "woocommerce": {"shops": {"main": shop_config()},
                                        "order_lookup": {"enabled": True, **lookup}}})
    return build


def answers(app, wa_id: str) -> list[str]:
    return [b["text"]["body"] for b in app.channel.sent() if b.get("type") == "text" and b["to"] == wa_id]


def hook_notes(app) -> list[str]:
    """The codes the woocommerce plugin's inbound-message hook noted (why it answered, or not)."""
    import json

    from test_woocommerce_notes import deliveries
    results = [json.loads(d["result"] or "{}") for d in deliveries(app, "woocommerce") if d["status"] == "done"]
    return [note["code"] for result in results if isinstance(result, dict) for note in result.get("notes", [])]


def ask(app, wa_id: str, body: str, cassette: str | None = None) -> None:
    webhook = text(body, wa_id=wa_id)
    if cassette is None:
        deliver_signed(app, webhook)
        run(app)
        return
    with lookup_vcr.use_cassette(cassette, allow_playback_repeats=True):
        deliver_signed(app, webhook)
        run(app)


def tap(app, wa_id: str, cassette: str) -> None:
    webhook = envelope({"type": "button", "button": {"payload": "WHERE_IS_MY_ORDER", "text": "Where is my order?"}},
                       wa_id=wa_id)
    with lookup_vcr.use_cassette(cassette) as played:
        deliver_signed(app, webhook)
        run(app)
    assert played.all_played


def test_the_owner_hears_status_and_tracking_in_their_language(shop):
    app = shop()
    ask(app, ANA, "Hola, ¿cómo va el pedido 1042?", "lookup_order_1042.yaml")
    assert answers(app, ANA) == ["Pedido 1042: completado y en camino.\n"
                                 "Seguimiento: https://track.example.net/p/ES123456789"]


def test_shipment_tracking_meta_gives_the_newest_link(shop):
    app = shop()
    ask(app, ANA, "#1042", "lookup_shipment_tracking.yaml")
    assert answers(app, ANA) == ["Pedido 1042: completado y en camino.\n"
                                 "Seguimiento: https://www.seur.example/track?n=ES777"]


def test_another_customers_order_and_a_missing_one_get_the_same_neutral_answer(shop):
    app = shop()
    ask(app, STRANGER, "pedido 1042", "lookup_order_1042.yaml")
    ask(app, STRANGER, "pedido 9999", "lookup_order_missing.yaml")
    assert answers(app, STRANGER) == [NEUTRAL_ES, NEUTRAL_ES]
    assert all("1042" not in a and "Ana" not in a for a in answers(app, STRANGER))


def test_repeated_misses_are_rate_limited_per_contact(shop):
    app = shop(max_misses=2)
    for _ in range(4):
        ask(app, STRANGER, "order 1042", "lookup_order_1042.yaml")
    assert answers(app, STRANGER) == [NEUTRAL_ES, NEUTRAL_ES]
    assert hook_notes(app) == ["order_not_found", "order_not_found", "lookup_limited", "lookup_limited"]
    ask(app, ANA, "order 1042", "lookup_order_1042.yaml")  # another contact is not limited
    assert len(answers(app, ANA)) == 1


def test_where_is_my_order_answers_about_the_senders_latest_orders_only(shop):
    app = shop(latest_orders=2)
    import asyncio
    asyncio.run(deliver(app, "order_updated_completed.json", delivery="c1"))  # the index: Ana's latest order
    tap(app, ANA, "lookup_latest.yaml")
    assert answers(app, ANA) == ["Pedido 1045: en preparación.\n"
                                 "Pedido 1042: completado y en camino.\n"
                                 "Seguimiento: https://track.example.net/p/ES123456789"]


def test_no_answer_while_a_person_handles_the_conversation(shop):
    app = shop()
    app.hand_to_human("+" + ANA, "agent on it")
    ask(app, ANA, "pedido 1042")
    assert answers(app, ANA) == [] and hook_notes(app) == ["human_handling"]


def test_a_stale_question_reads_no_shop_and_gets_no_answer(shop):
    import time

    from connectzap.core import clock
    app = shop()
    with clock.use_clock(lambda: time.time() + 3600):  # the webhook is handled an hour after it was sent
        ask(app, ANA, "pedido 1042")
    assert answers(app, ANA) == [] and hook_notes(app) == ["stale"]


def test_a_cash_on_delivery_tap_is_left_to_its_own_flow(shop):
    app = shop()
    webhook = envelope({"type": "button", "button": {"payload": "cod:main:1042:confirm:" + "0" * 24,
                                                     "text": "Confirm order #1042"}}, wa_id=ANA)
    with lookup_vcr.use_cassette("lookup_order_1042.yaml", allow_playback_repeats=True):
        deliver_signed(app, webhook)
        run(app)
    assert hook_notes(app) == [] and not any("Pedido 1042" in a for a in answers(app, ANA))


def test_a_message_without_an_order_question_is_left_alone(shop):
    app = shop()
    ask(app, ANA, "I ordered 2 mugs, thanks!")
    assert answers(app, ANA) == []


def test_off_by_default(make):
    app = make(channel=FakeWhatsApp(), connectors={**WHATSAPP, "woocommerce": {"shops": {"main": shop_config()}}})
    ask(app, ANA, "pedido 1042")
    assert answers(app, ANA) == []


@pytest.mark.parametrize("configured", [False, True])
def test_without_woocommerce_its_hook_costs_no_delivery_per_message(make, configured):
    """The hook has nothing to do without the connector: no delivery row per inbound message. With
    the connector, each message still gets its delivery (the order lookup may answer it)."""
    from test_woocommerce_notes import deliveries
    connectors = {**WHATSAPP, "woocommerce": {"shops": {"main": shop_config()}}} if configured else WHATSAPP
    app = make(channel=FakeWhatsApp(), connectors=connectors)
    ask(app, ANA, "hello")
    ask(app, STRANGER, "pedido 1042")
    assert len(deliveries(app, "woocommerce")) == (2 if configured else 0)


@pytest.mark.parametrize(("written", "number"), [("#1234", "1234"), ("order 1234", "1234"), ("pedido 1234", "1234"),
                                                 ("Pedido nº 0042 por favor", "42"), ("Bestellung Nr. 77", "77"),
                                                 ("ORDER #1042", "1042"), ("I ordered 2 mugs", None)])
def test_default_patterns(written, number):
    message = InboundMessage(wamid="w", type="text", timestamp="2026-03-02T12:00:00Z", contact=Contact(), text=written)
    asked = order_lookup.question_of(message, OrderLookupSettings(enabled=True))
    assert (asked.number if asked else None) == number


def test_a_pattern_needs_exactly_one_group():
    with pytest.raises(ValueError, match="exactly one group"):
        OrderLookupSettings(patterns=[r"order (\d+) (\d+)"])


# --- no sender ever learns about another contact's order -----------------------------------------

ORDER = payload("order_updated_completed.json")
PHONES = ["+34 612 34 56 78", "612345679", "+34699111222", "+4915112345678", "", "not a number"]


class FakeShop:
    """A shop's REST reads over a dict of orders (the decision logic, not the HTTP, is under test)."""

    def __init__(self, orders: dict[str, dict[str, Any]]) -> None:
        self.orders = orders

    def get_order(self, order: str) -> dict[str, Any]:
        from connectzap.core.errors import SkippableDeliveryError
        if order not in self.orders:
            raise SkippableDeliveryError("HTTP 404")
        return self.orders[order]

    def search_orders(self, term: str, limit: int = 20) -> list[dict[str, Any]]:
        return list(self.orders.values())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(owners=st.lists(st.sampled_from(PHONES), min_size=1, max_size=4),
       asked=st.integers(min_value=1040, max_value=1046),
       sender=st.sampled_from(["34612345678", "34612345679", "34699111222", "4915112345678"]))
def test_no_sender_ever_learns_about_another_contacts_order(make, owners, asked, sender):
    orders = {str(1040 + n): {**copy.deepcopy(ORDER), "id": 1040 + n, "number": str(1040 + n),
                              "billing": {**ORDER["billing"], "phone": phone}, "shipping": {**ORDER["shipping"]}}
              for n, phone in enumerate(owners)}
    app = make(channel=FakeWhatsApp(), connectors={**WHATSAPP, "woocommerce": {
        "shops": {"main": shop_config()}, "order_lookup": {"enabled": True, "max_misses": 100}}})
    app.connectors["woocommerce"]._clients["main"] = FakeShop(orders)  # type: ignore[attr-defined]
    ask(app, sender, f"order {asked}")
    [said] = answers(app, sender)
    order = orders.get(str(asked))
    mine = order is not None and order_lookup.customer_of(order).phone == "+" + sender
    if mine:
        assert said.split(":", 1)[0].strip().endswith(f" {asked}")  # "Pedido 1040: ...", "Bestellung 1040: ..."
    else:
        assert said in order_lookup.NOT_FOUND.values()
    # whatever the sender asked, no answer names an order that is not theirs
    for number, other in orders.items():
        if order_lookup.customer_of(other).phone != "+" + sender:
            assert number not in said


def test_a_simulation_reads_no_shop_and_says_what_it_would_read(make):
    from connectzap.core.simulation import Simulation
    app = make(simulation=Simulation(), connectors={
        **WHATSAPP, "woocommerce": {"shops": {"main": shop_config()}, "order_lookup": {"enabled": True}}})
    ask(app, ANA, "pedido 1042")  # no cassette, and no request to the shop either
    calls = [r.call for r in app.simulation.rehearsed if r.target == "woocommerce"]
    assert [(c.method, c.url) for c in calls] == [("GET", "https://shop.example.com/wp-json/wc/v3/orders/1042")]
    assert hook_notes(app) == []


def hook_details(app, code: str) -> list[str]:
    """What the woocommerce plugin's inbound-message hook noted under ``code``, in words."""
    import json

    from test_woocommerce_notes import deliveries
    results = [json.loads(d["result"] or "{}") for d in deliveries(app, "woocommerce") if d["status"] == "done"]
    return [note["detail"] for result in results if isinstance(result, dict) for note in result.get("notes", [])
            if note["code"] == code]


@pytest.mark.parametrize(("n", "numbers", "minutes"), [(1, "1 number", "1 minute"), (2, "2 numbers", "2 minutes")])
def test_the_limited_note_agrees_in_number(shop, n, numbers, minutes):
    """It said "1 numbers found nothing ... in the last 1 minutes"."""
    app = shop(max_misses=n, miss_window_minutes=n)
    for _ in range(n + 1):
        ask(app, STRANGER, "order 1042", "lookup_order_1042.yaml")
    assert hook_details(app, "lookup_limited") == [
        f"order lookup: {numbers} found nothing of this contact's in the last {minutes}; not answered"]


def test_the_answered_note_agrees_in_number(shop):
    """It said "answered with 1 order(s)"."""
    app = shop(latest_orders=2)
    ask(app, ANA, "pedido 1042", "lookup_order_1042.yaml")
    import asyncio
    asyncio.run(deliver(app, "order_updated_completed.json", delivery="c1"))
    tap(app, ANA, "lookup_latest.yaml")
    assert hook_details(app, "order_status") == ["order lookup: answered with 1 order of the sender",
                                                 "order lookup: answered with 2 orders of the sender"]
