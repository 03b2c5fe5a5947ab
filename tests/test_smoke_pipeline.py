"""End-to-end through the engine: consent, window, idempotency, keyword opt-out."""

from __future__ import annotations

from datetime import UTC, datetime

from connectzap import Category, ConsentChange, Contact, Event, InboundMessage, Outgoing, TemplateContent, TextContent
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

PHONE = "+4915112345678"


def confirmation() -> TemplateContent:
    return TemplateContent(name="order_confirmation", language="en", body=["Ana", "42"])


async def test_template_needs_consent_then_sends_once(app):
    seed_template(app, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    refused = app.send(Outgoing(to=PHONE, content=confirmation()), idempotency_key="a")
    assert (refused.status, refused.reason) == ("refused", "no_consent")

    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="t", proof="box"))
    first = app.send(Outgoing(to=PHONE, content=confirmation()), idempotency_key="b")
    again = app.send(Outgoing(to=PHONE, content=confirmation()), idempotency_key="b")
    assert first.status == "queued" and again.duplicate and again.id == first.id
    await Worker(app).run_until_idle()
    sent = app.channel.sent()
    assert len(sent) == 1 and sent[0]["template"]["name"] == "order_confirmation"
    assert app.message(first.id)["status"] == "delivered"


async def test_free_form_only_inside_window_and_stop_keyword(app):
    closed = app.send(Outgoing(to=PHONE, content=TextContent(body="hello")))
    assert closed.reason == "window_closed"
    msg = InboundMessage(wamid="wamid.in1", type="text", timestamp=datetime.now(UTC), contact=Contact(phone=PHONE),
                         text=" STOP ")
    app.ingest([Event.of("inbound_message", msg, source="whatsapp", dedupe_key="wamid.in1")])
    await Worker(app).run_until_idle()
    assert app.consent(PHONE)[Category.MARKETING].granted is False
    bodies = app.channel.sent()
    assert [b["type"] for b in bodies] == ["text"] and bodies[0]["context"] == {"message_id": "wamid.in1"}
    inside = app.send(Outgoing(to=PHONE, content=TextContent(body="hello")))
    assert inside.status == "queued"
