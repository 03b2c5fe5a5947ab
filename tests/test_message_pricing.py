"""Per-message pricing (since July 2025): the ``pricing`` of each status (category, type, billable) is
kept on the message and counted in ``/metrics``. Status fixtures: tests/payloads/whatsapp/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server_support import AUTH, PHONE, api_engine, serving

from connectzap import Category, ConsentChange, Outgoing, TemplateContent
from connectzap.connectors.whatsapp import webhooks
from connectzap.core.store import outbox
from connectzap.core.worker import Worker
from connectzap.testing import FakeWhatsApp, seed_template

FIXTURES = Path(__file__).parent / "payloads" / "whatsapp"
DELIVERED_WAMID = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJPVVRCT1VORDAwMDEA"
DELIVERED_OUTBOX = "msg_01JZ0000000000000000000001"


async def sent_message(app: Any) -> dict[str, Any]:
    seed_template(app, "order_shipped", "Order {{1}} is on its way.")
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="t", proof="box"))
    decision = app.send(Outgoing(to=PHONE, content=TemplateContent(name="order_shipped", language="en",
                                                                   body=["42"])))
    await Worker(app).run_until_idle()
    return app.message(decision.id)


def status_webhook(app: Any, row: dict[str, Any], status: str, pricing: dict[str, Any] | None) -> None:
    """The delivered fixture, re-aimed at ``row`` with ``status`` and ``pricing`` (None: no pricing object)."""
    import json
    doc = json.loads((FIXTURES / "status_delivered.json").read_text())
    item = doc["entry"][0]["changes"][0]["value"]["statuses"][0]
    item.update(id=row["wamid"], biz_opaque_callback_data=row["id"], status=status)
    item.pop("pricing")
    if pricing is not None:
        item["pricing"] = pricing
    app.ingest(webhooks.parse_body(json.dumps(doc).encode()))


async def test_status_pricing_is_kept_on_the_message_and_a_status_without_it_keeps_it(make):
    app = make(channel=FakeWhatsApp())
    row = await sent_message(app)
    status_webhook(app, row, "sent", {"billable": True, "pricing_model": "PMP", "category": "utility",
                                      "type": "regular"})
    status_webhook(app, row, "delivered", {"billable": False, "pricing_model": "PMP", "category": "utility",
                                           "type": "free_customer_service"})
    status_webhook(app, row, "read", None)  # read statuses carry no pricing
    await Worker(app).run_until_idle()
    stored = app.message(row["id"])
    assert (stored["status"], stored["pricing_category"], stored["pricing_type"], stored["billable"]) == (
        "read", "utility", "free_customer_service", False)
    with app.db.read() as conn:
        assert outbox.pricing_counts(conn) == [("utility", "free_customer_service", "false", 1)]


async def test_metrics_count_messages_by_pricing(make):
    engine = api_engine(make, channel=FakeWhatsApp())
    row = await sent_message(engine)
    status_webhook(engine, row, "delivered", {"billable": True, "pricing_model": "PMP", "category": "marketing",
                                              "type": "regular"})
    await Worker(engine).run_until_idle()
    async with serving(engine) as client:
        text = (await client.get("/metrics", headers=AUTH)).text
    assert 'connectzap_priced_messages{billable="true",category="marketing",type="regular"} 1.0' in text


def test_pricing_values_ignore_what_is_not_meta_shaped():
    assert outbox.pricing_values(None) == {} and outbox.pricing_values({}) == {}
    assert outbox.pricing_values({"category": 3, "type": None, "billable": "yes"}) == {}
    assert outbox.pricing_values({"category": "authentication_international", "billable": True}) == {
        "pricing_category": "authentication_international", "billable": True}
