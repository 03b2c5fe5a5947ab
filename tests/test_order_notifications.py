"""Order notifications end to end: signed WooCommerce webhook -> gate -> sandbox send, and the
status-memory rule that keeps coalesced, repeated and out-of-order webhooks from sending twice."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connectzap import Category, ConfigurationError, ConsentChange, Contact, Order
from connectzap.cli import cli
from connectzap.console.automation_pages import plugin_summaries
from connectzap.core import ingress
from connectzap.core.store import journal
from connectzap.core.store.schema import deliveries, events
from connectzap.core.worker import Worker
from connectzap.plugins import order_notifications
from connectzap.testing import seed_template
from test_woocommerce_webhooks import payload, shop_config, wc_request

ANA = "+34612345678"
OWNER = "+4915112345678"

RULES: dict[str, Any] = {"rules": [
    {"status": "processing", "template": "order_confirmation", "languages": {"es": "es"}, "default_language": "en",
     "params": ["{{ first_name }}", "{{ number }}", {"type": "currency"}]},
    {"status": "completed", "template": "order_shipped", "language": "en",
     "params": ["{{ first_name or 'there' }}", "{{ number }}"],
     "buttons": [{"index": 0, "text": "{{ tracking_url | replace('https://track.example.net/', '') }}"}]},
    {"status": ["cancelled", "refunded"], "template": "order_cancelled", "language": "en", "params": ["{{ number }}"]},
]}


def seed(app) -> None:
    seed_template(app, "order_confirmation", "Hola {{1}}, tu pedido {{2}} por {{3}} está confirmado.", language="es")
    seed_template(app, "order_confirmation", "Hi {{1}}, order {{2}} for {{3}} is confirmed.", language="en")
    seed_template(app, "order_shipped", "Hi {{1}}, order {{2}} is on its way.", language="en",
                  extra_components=[{"type": "BUTTONS", "buttons": [
                      {"type": "URL", "text": "Track", "url": "https://track.example.net/{{1}}"}]}])
    seed_template(app, "order_cancelled", "Order {{1}} was cancelled or refunded.", language="en")
    seed_template(app, "new_order_alert", "New order {{1}}: {{2}}", language="en")


@pytest.fixture
def shop(make):
    def build(**plugin: Any):
        app = make(connectors={"woocommerce": {"shops": {"main": shop_config()}}},
                   plugins={"order_notifications": {**RULES, **plugin}})
        seed(app)
        return app
    return build


async def deliver(app, data: dict[str, Any] | str, *, topic: str = "order.updated", delivery: str) -> None:
    body = json.dumps(payload(data) if isinstance(data, str) else data).encode()
    request = wc_request(body, topic=topic, delivery=delivery)
    response = ingress.handle(app.connectors["woocommerce"], request, app.ingest)
    assert response.status == 200, response.body
    await Worker(app).run_until_idle()


def templates_sent(app) -> list[dict[str, Any]]:
    return [b["template"] for b in app.channel.sent() if b["type"] == "template"]


async def test_signed_order_sends_the_confirmation_with_its_parameters(shop):
    app = shop()
    await deliver(app, "order_created_classic.json", topic="order.created", delivery="d1")
    [sent] = app.channel.sent()
    assert sent["to"] == ANA.lstrip("+")
    template = sent["template"]
    assert template["name"] == "order_confirmation" and template["language"]["code"] == "es"
    [body] = [c for c in template["components"] if c["type"] == "body"]
    assert body["parameters"][:2] == [{"type": "text", "text": "Ana"}, {"type": "text", "text": "1042"}]
    assert body["parameters"][2] == {"type": "currency", "currency": {
        "fallback_value": "45.90 EUR", "code": "EUR", "amount_1000": 45900}}
    assert app.consent(ANA)[Category.UTILITY].granted  # the checkout opt-in reached the ledger first


async def test_repeats_coalesced_and_late_updates_never_send_twice(shop):
    app = shop()
    await deliver(app, "order_created_classic.json", topic="order.created", delivery="d1")
    await deliver(app, "order_created_classic.json", topic="order.created", delivery="d1")  # same delivery
    await deliver(app, "order_updated_processing.json", delivery="d2")  # coalesced update, same status
    await deliver(app, "order_updated_on-hold.json", delivery="d3")  # late, lower-ranked
    assert [t["name"] for t in templates_sent(app)] == ["order_confirmation"]
    await deliver(app, "order_updated_completed.json", delivery="d4")
    await deliver(app, "order_updated_completed.json", delivery="d5")
    await deliver(app, "order_updated_processing.json", delivery="d6")  # arrives after completed
    names = [t["name"] for t in templates_sent(app)]
    assert names == ["order_confirmation", "order_shipped"]
    shipped = templates_sent(app)[1]
    [button] = [c for c in shipped["components"] if c["type"] == "button"]
    assert button["parameters"] == [{"type": "text", "text": "p/ES123456789"}]
    await deliver(app, "order_updated_refunded.json", delivery="d7")
    assert [t["name"] for t in templates_sent(app)][-1] == "order_cancelled"


async def test_pending_waits_and_a_skipped_status_sends_only_the_latest(shop):
    app = shop()
    block = payload("order_created_block.json")
    await deliver(app, block, topic="order.created", delivery="b1")
    assert app.channel.sent() == []  # pending: nothing yet
    completed = {**block, "status": "completed", "date_modified_gmt": "2026-03-05T10:00:00",
                 "meta_data": block["meta_data"] + [{"id": 1, "key": "_connectzap_tracking_url",
                                                      "value": "https://track.example.net/p/DE1"}]}
    await deliver(app, completed, delivery="b2")  # processing was never reported (coalesced)
    assert [(t["name"], t["language"]["code"]) for t in templates_sent(app)] == [("order_shipped", "en")]
    # the lost "processing" delivery turns up late: the customer already knows it shipped
    await deliver(app, {**block, "status": "processing", "date_modified_gmt": "2026-03-03T09:00:00"}, delivery="b3")
    assert [t["name"] for t in templates_sent(app)] == ["order_shipped"]


async def test_checkout_draft_never_notifies(shop):
    app = shop(rules=[{"status": "checkout-draft", "template": "order_cancelled", "language": "en",
                       "params": ["{{ number }}"]}])
    await deliver(app, {**payload("order_created_classic.json"), "status": "checkout-draft"}, delivery="x")
    assert app.messages() == []


async def test_no_opt_in_is_refused_visibly_and_nothing_is_sent(shop, tmp_path):
    app = shop()
    await deliver(app, "order_created_no_optin.json", topic="order.created", delivery="n1")
    assert app.channel.sent() == []
    [message] = app.messages()
    assert (message["status"], message["reason"], message["template_name"]) == ("refused", "no_consent",
                                                                                "order_confirmation")
    config = tmp_path / "cz.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.db.url}"\n'
                      '[sandbox]\nquiet = true\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "messages", "list"])
    assert result.exit_code == 0, result.output
    assert "no_consent" in result.output and "order_confirmation" in result.output


async def test_invalid_phone_is_refused_not_crashed(shop):
    app = shop()
    await deliver(app, "order_created_invalid_phone.json", topic="order.created", delivery="i1")
    [message] = app.messages()
    assert (message["status"], message["reason"]) == ("refused", "invalid_phone")
    with app.db.read() as conn:
        assert journal.dead_letters(conn) == []


async def test_owner_hears_of_each_new_order_once_with_consent(shop):
    app = shop(owner={"phone": OWNER, "template": "new_order_alert", "language": "en",
                      "params": ["{{ number }}", "{{ total_with_currency }}"]})
    app.set_consent(ConsentChange(phone=OWNER, category=Category.UTILITY, granted=True, source="cli",
                                  proof="shop owner alerts"))
    await deliver(app, "order_created_classic.json", topic="order.created", delivery="o1")
    await deliver(app, "order_updated_completed.json", delivery="o2")
    alerts = [b for b in app.channel.sent() if b["template"]["name"] == "new_order_alert"]
    assert len(alerts) == 1 and alerts[0]["to"] == OWNER.lstrip("+")
    assert alerts[0]["template"]["components"][0]["parameters"][1] == {"type": "text", "text": "45.90 EUR"}


async def test_owner_without_consent_is_refused(shop):
    app = shop(owner={"phone": OWNER, "template": "new_order_alert", "language": "en",
                      "params": ["{{ number }}", "{{ total }}"]})
    await deliver(app, "order_created_classic.json", topic="order.created", delivery="o1")
    refused = [m for m in app.messages() if m["template_name"] == "new_order_alert"]
    assert [m["reason"] for m in refused] == ["no_consent"]


def order_deliveries(app) -> list[tuple[str, str | None]]:
    """(target, result) of every delivery of the order events journaled so far."""
    with app.db.read() as conn:
        rows = conn.execute(select(deliveries.c.target, deliveries.c.result).join(
            events, events.c.id == deliveries.c.event_id).where(events.c.kind.in_(["order_created", "order_updated"])))
        return [(row.target, row.result) for row in rows]


async def test_without_rules_orders_record_nothing_and_doctor_and_the_console_say_it_once(make, tmp_path):
    app = make(connectors={"woocommerce": {"shops": {"main": shop_config()}}})  # no [plugins.order_notifications]
    await deliver(app, "order_created_classic.json", topic="order.created", delivery="q1")
    await deliver(app, "order_updated_completed.json", delivery="q2")
    targets = [target for target, _ in order_deliveries(app)]
    assert "core" in targets and "order_notifications" not in targets  # no entry per order
    assert app.messages() == []
    assert plugin_summaries(app) and dict(plugin_summaries(app))["order_notifications"] == [
        ("order notifications", f"off: {order_notifications.NOT_CONFIGURED}")]
    config = tmp_path / "cz.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.db.url}"\n'
                      '[sandbox]\nquiet = true\n')
    doctor = CliRunner().invoke(cli, ["--config", str(config), "doctor"])
    assert doctor.exit_code == 0, doctor.output
    assert f"plugins:\n  order_notifications: {order_notifications.NOT_CONFIGURED}\n" in doctor.output
    assert doctor.output.strip().endswith("ok")  # a note, not a warning: no rules is a choice


async def test_with_rules_a_status_no_rule_names_is_still_noted_on_its_order(shop):
    app = shop()
    await deliver(app, {**payload("order_created_classic.json"), "status": "on-hold"}, topic="order.created",
                  delivery="h1")
    [(_, result)] = [d for d in order_deliveries(app) if d[0] == "order_notifications"]
    assert "no_rule" in result and "on-hold" in result
    summary = dict(plugin_summaries(app))["order_notifications"]
    assert summary[0] == ("rule 0", "status processing: template order_confirmation")
    assert summary[2] == ("rule 2", "status cancelled or refunded: template order_cancelled")
    assert order_notifications.NotificationConfig.model_validate(RULES).doctor_notes() == []


def test_a_misspelt_parameter_stops_the_engine_before_any_order(shop):
    with pytest.raises(ConfigurationError) as caught:
        shop(rules=[{"status": "processing", "template": "order_cancelled", "language": "en",
                     "params": ["{{ numbr }}"]}])
    assert caught.value.message.endswith(
        "plugins.order_notifications.rules.0.params.0: unknown variable 'numbr' (did you mean 'number'?)")


async def test_a_parameter_failing_on_one_order_is_a_visible_dead_letter(shop):
    # Valid at start (meta is known), but this order has no such meta key: only that delivery fails.
    app = shop(rules=[{"status": "processing", "template": "order_cancelled", "language": "en",
                       "params": ["{{ meta['_no_such_key'] }}"]}])
    await deliver(app, "order_created_classic.json", topic="order.created", delivery="t1")
    with app.db.read() as conn:
        dead = journal.dead_letters(conn)
    assert app.messages() == [] and len(dead) == 1
    assert "_no_such_key" in json.dumps(dead[0], default=str)


def test_the_variables_a_parameter_may_read_are_what_rendering_offers():
    values = order_notifications.order_values(Order(id="1", status="processing"))
    assert set(values) == order_notifications.ORDER_VARIABLES


def test_the_sandbox_blocks_attribute_tricks():
    order = Order(id="1", status="processing", customer=Contact(first_name="Ana"))
    with pytest.raises(Exception) as info:
        order_notifications.render("{{ order.__class__.__mro__ }}", order_notifications.order_values(order))
    assert "unsafe" in str(info.value).lower() or "cannot render" in str(info.value)


# --- the status rule as a property ------------------------------------------------------------

class FakeState:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.data[key])) if key in self.data else default

    def set(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))


class FakeContext:
    source = "woocommerce"

    plugin_settings = None  # not validated by an engine: the plugin validates config itself

    def __init__(self, config: dict[str, Any], state: FakeState) -> None:
        self.config, self.state, self.sent, self.notes = config, state, [], []

    def send(self, to: Any, content: Any, *, key: str | None = None, **options: Any) -> None:
        self.sent.append((content.name, key))

    def note(self, code: str, detail: str) -> None:
        self.notes.append(code)


STATUSES = ["pending", "on-hold", "failed", "processing", "shipped", "completed", "cancelled", "refunded",
            "checkout-draft", "awaiting-pickup"]
CONFIG = {"rules": [{"status": s, "template": f"t_{s}", "language": "en"} for s in STATUSES]}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(STATUSES), max_size=12))
def test_each_status_notifies_at_most_once_and_never_after_a_higher_one(sequence):
    state, config = FakeState(), order_notifications.NotificationConfig.model_validate(CONFIG)
    sent: list[str] = []
    highest = -1
    for status in sequence:
        ctx = FakeContext(CONFIG, state)
        order_notifications._notify(Order(id="7", status=status, shop="main", customer=Contact(phone=ANA)), ctx)
        names = [name.removeprefix("t_") for name, _ in ctx.sent]
        assert bool(names) != bool(ctx.notes)  # a send, or a note saying why not: never silence
        if status in order_notifications.DRAFT_STATUSES:
            assert names == []
            continue
        rank = config.rank(status)
        should = status not in sent and rank >= highest
        assert names == ([status] if should else [])
        sent += names
        highest = max(highest, rank)
    assert len(sent) == len(set(sent))
