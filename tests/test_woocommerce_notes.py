"""Replies back to the shop: inbound WhatsApp messages and delivery failures become private order
notes through the WooCommerce REST API (vcrpy cassettes built from the REST reference)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import vcr

from connectzap import Contact, Event, InboundMessage, MessageStatus
from connectzap.core.errors import FatalDeliveryError, RetriableDeliveryError, SkippableDeliveryError
from connectzap.core.store import journal
from connectzap.core.worker import Worker
from connectzap.connectors.woocommerce.rest import check
from test_order_notifications import ANA, RULES, deliver, seed, templates_sent
from test_woocommerce_webhooks import shop_config

CASSETTES = Path(__file__).parent.parent / "cassettes" / "woocommerce"
wc_vcr = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="none",
                 match_on=["method", "scheme", "host", "port", "path", "query", "body"],
                 filter_headers=["authorization"],
                 filter_query_parameters=["consumer_key", "consumer_secret", "oauth_consumer_key", "oauth_signature"])
REPLY_AT = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)


@pytest.fixture
def shop_app(make):
    app = make(connectors={"woocommerce": {"shops": {"main": shop_config()}}}, plugins={"order_notifications": RULES})
    seed(app)
    return app


def inbound(wamid: str, at: datetime = REPLY_AT, text: str = "Can you deliver after 6pm?") -> InboundMessage:
    return InboundMessage(wamid=wamid, type="text", timestamp=at, contact=Contact(phone=ANA), text=text)


def deliveries(app, target: str, event_id: int | None = None) -> list[dict]:
    from sqlalchemy import select

    from connectzap.core.store.schema import deliveries as table
    query = select(table).where(table.c.target == target)
    if event_id is not None:
        query = query.where(table.c.event_id == event_id)
    with app.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


async def test_a_reply_becomes_exactly_one_private_note(shop_app):
    await deliver(shop_app, "order_created_classic.json", topic="order.created", delivery="d1")
    with wc_vcr.use_cassette("note_inbound_reply.yaml") as cassette:
        message = inbound("wamid.reply.1")
        shop_app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key=message.wamid)])
        shop_app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key=message.wamid)])
        await Worker(shop_app).run_until_idle()
        # the same wamid journaled again under another key (a replayed export, a second number)
        shop_app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key="replay-1")])
        await Worker(shop_app).run_until_idle()
        assert cassette.play_count == 1 and cassette.all_played
    request = cassette.requests[0]
    assert json.loads(request.body)["customer_note"] is False
    assert all(d["status"] == "done" for d in deliveries(shop_app, "connector:woocommerce"))


async def test_replies_outside_the_window_or_without_an_order_are_not_noted(shop_app):
    with wc_vcr.use_cassette("note_inbound_reply.yaml") as cassette:
        early = inbound("wamid.before-any-order")
        shop_app.ingest([Event.of("inbound_message", early, source="whatsapp", dedupe_key=early.wamid)])
        await Worker(shop_app).run_until_idle()
        await deliver(shop_app, "order_created_classic.json", topic="order.created", delivery="d1")
        late = inbound("wamid.late", at=datetime(2026, 3, 9, tzinfo=UTC))
        shop_app.ingest([Event.of("inbound_message", late, source="whatsapp", dedupe_key=late.wamid)])
        await Worker(shop_app).run_until_idle()
        assert cassette.play_count == 0


async def test_a_bsuid_only_reply_is_noted_on_the_linked_numbers_order_never_a_guessed_one(shop_app):
    """A customer writing without their number (a WhatsApp username) is matched to an order only
    through the number their business-scoped user id is linked to; an unlinked BSUID notes nothing."""
    from connectzap.core import identities
    bsuid = "ES.13491208655302741918"
    await deliver(shop_app, "order_created_classic.json", topic="order.created", delivery="d1")
    with wc_vcr.use_cassette("note_inbound_reply.yaml") as cassette:
        unlinked = InboundMessage(wamid="wamid.bsuid.unlinked", type="text", timestamp=REPLY_AT,
                                  contact=Contact(user_id=bsuid), text="Can you deliver after 6pm?")
        shop_app.ingest([Event.of("inbound_message", unlinked, source="whatsapp", dedupe_key=unlinked.wamid)])
        await Worker(shop_app).run_until_idle()
        assert cassette.play_count == 0
        with shop_app.db.begin() as conn:  # a webhook showed both (tests/test_identities.py covers how)
            identities.observe(shop_app.db, conn, shop_app.secret, ANA, bsuid)
        linked = unlinked.model_copy(update={"wamid": "wamid.bsuid.linked"})
        shop_app.ingest([Event.of("inbound_message", linked, source="whatsapp", dedupe_key=linked.wamid)])
        await Worker(shop_app).run_until_idle()
        assert cassette.play_count == 1 and cassette.all_played


async def test_a_failed_notification_is_noted_on_its_order(shop_app):
    await deliver(shop_app, "order_created_classic.json", topic="order.created", delivery="d1")
    [sent] = shop_app.messages()
    failed = MessageStatus(wamid=sent["wamid"], status="failed", timestamp=datetime.now(UTC), outbox_id=sent["id"],
                           errors=[{"code": 131049, "title": "This message was not delivered to maintain healthy "
                                                             "ecosystem engagement."}])
    with wc_vcr.use_cassette("note_delivery_failure.yaml") as cassette:
        shop_app.ingest([Event.of("message_status", failed, source="whatsapp", dedupe_key="f1")])
        shop_app.ingest([Event.of("message_status", failed, source="whatsapp", dedupe_key="f2")])
        await Worker(shop_app).run_until_idle()
        assert cassette.play_count == 1 and cassette.all_played


async def test_failures_of_other_messages_are_not_noted(shop_app):
    from connectzap import Outgoing, TextContent
    decision = shop_app.send(Outgoing(to=ANA, content=TextContent(body="hi")))
    failed = MessageStatus(wamid="wamid.x", status="failed", timestamp=datetime.now(UTC), outbox_id=decision.id)
    with wc_vcr.use_cassette("note_delivery_failure.yaml") as cassette:
        shop_app.ingest([Event.of("message_status", failed, source="whatsapp", dedupe_key="f1")])
        await Worker(shop_app).run_until_idle()
        assert cassette.play_count == 0


async def note_delivery(app, cassette: str, wamid: str) -> dict:
    """Journal a reply, run the workers against ``cassette``; the connector's delivery for it."""
    with wc_vcr.use_cassette(cassette):
        message = inbound(wamid)
        [journaled] = app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key=message.wamid)])
        await Worker(app).run_until_idle()
    [delivery] = deliveries(app, "connector:woocommerce", journaled.event_id)
    return delivery


async def test_a_missing_order_is_skipped_and_a_5xx_is_retried(shop_app):
    await deliver(shop_app, "order_created_classic.json", topic="order.created", delivery="d1")
    done = await note_delivery(shop_app, "note_order_missing.yaml", "wamid.reply.404")
    assert done["status"] == "done" and "woocommerce_rest_order_invalid_id" in done["result"]
    waiting = await note_delivery(shop_app, "note_server_error.yaml", "wamid.reply.503")
    assert waiting["status"] == "pending" and "HTTP 503" in waiting["last_error"]
    with shop_app.db.read() as conn:
        assert journal.dead_letters(conn) == []


async def test_status_action_webhook_is_completed_by_a_fetch(shop_app):
    from test_woocommerce_webhooks import PAYLOADS
    await deliver(shop_app, "order_created_classic.json", topic="order.created", delivery="d1")
    action = json.loads((PAYLOADS / "action_order_status_completed.json").read_text())
    with wc_vcr.use_cassette("order_get_1042_completed.yaml") as cassette:
        await deliver(shop_app, action, topic="action.woocommerce_order_status_completed", delivery="a1")
        assert cassette.play_count == 1
    # the regular order.updated of the same change arrives too: still one shipped message
    await deliver(shop_app, "order_updated_completed.json", delivery="d2")
    assert [t["name"] for t in templates_sent(shop_app)] == ["order_confirmation", "order_shipped"]


def fake_response(status: int, body: dict | None = None, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body or {}).encode()
    response.headers.update(headers)
    return response


@pytest.mark.parametrize("status, error", [(429, RetriableDeliveryError), (500, RetriableDeliveryError),
                                           (503, RetriableDeliveryError), (401, FatalDeliveryError),
                                           (403, FatalDeliveryError), (400, SkippableDeliveryError),
                                           (404, SkippableDeliveryError)])
def test_rest_answers_are_classified_by_what_to_do_next(status, error):
    with pytest.raises(error) as info:
        check(fake_response(status, {"code": "x_code"}, **{"Retry-After": "7"}), "main", "POST orders/1/notes")
    assert "x_code" in info.value.message and f"HTTP {status}" in info.value.message
    if error is RetriableDeliveryError and status == 429:
        assert info.value.retry_after == 7.0
    check(fake_response(201), "main", "POST orders/1/notes")  # success raises nothing
