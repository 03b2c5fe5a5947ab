"""A shop agent's note to the customer reaches them on WhatsApp (issue #20, item 1): the text inside
the 24-hour window, the [replies] template outside it, never silently dropped, sent once however
often WooCommerce delivers the webhook, and what became of it noted on the order (cassettes built
from WooCommerce's REST reference by cassettes/woocommerce/build.py)."""

from __future__ import annotations

import json
import time

import pytest
import vcr
from test_order_notifications import ANA, RULES, deliver, seed
from test_woocommerce_notes import CASSETTES, deliveries
from test_woocommerce_webhooks import shop_config

from connectzap.core import windows
from connectzap.testing.apps import seed_template

NOTE = "Your parcel leaves today; the courier calls before 6pm."
ACTION = {"action": "woocommerce_new_customer_note", "arg": {"order_id": 1042, "customer_note": NOTE}}
TOPIC = "action.woocommerce_new_customer_note"
notes_vcr = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="none",
                    match_on=["method", "scheme", "host", "port", "path", "query", "body"],
                    filter_headers=["authorization"])


def replayable(name: str):
    """The cassette, each answer playable again (a webhook delivered twice fetches the order twice)."""
    return notes_vcr.use_cassette(name, allow_playback_repeats=True)


@pytest.fixture
def shop(make):
    def build(**shop: object):
        app = make(connectors={"woocommerce": {"shops": {"main": shop_config(**shop)}}},
                   plugins={"order_notifications": RULES},
                   replies={"fallback_template": "new_message_notice", "handoff_minutes": 60})
        seed(app)
        seed_template(app, "new_message_notice", "You have a new message about order {{1}}.")
        return app
    return build


def _texts(app) -> list[str]:
    return [b["text"]["body"] for b in app.channel.sent() if b["type"] == "text"]


def _notices(app) -> list[list[str]]:
    return [[p["text"] for c in b["template"]["components"] for p in c.get("parameters", [])]
            for b in app.channel.sent() if b["type"] == "template" and b["template"]["name"] == "new_message_notice"]


def _posted_notes(cassette) -> list[str]:
    return [json.loads(r.body)["note"] for r in cassette.requests if r.method == "POST"]


async def test_inside_the_window_the_note_goes_as_written_once_and_the_order_says_so(shop):
    app = shop()
    await deliver(app, "order_created_classic.json", topic="order.created", delivery="d1")
    with app.db.begin() as conn:  # Ana wrote an hour ago
        windows.open_window(app.db, conn, app.contact_key(ANA), time.time() - 3600, None)
    with replayable("customer_note_sent.yaml") as cassette:
        await deliver(app, ACTION, topic=TOPIC, delivery="n1")
        await deliver(app, ACTION, topic=TOPIC, delivery="n1")   # the same delivery again
        await deliver(app, ACTION, topic=TOPIC, delivery="n2")   # WooCommerce delivering the note twice
    assert _texts(app) == [NOTE]
    assert _posted_notes(cassette) == ["The note to the customer was sent on WhatsApp as a message (the "
                                       "customer's 24-hour window is open)."]
    assert all(json.loads(r.body)["customer_note"] is False for r in cassette.requests if r.method == "POST")
    person = app.conversation(ANA)
    assert (person.handled_by, person.reason) == ("human", "agent reply")
    [message] = [m for m in app.messages(phone=ANA) if m["content_type"] == "text"]
    assert json.loads(message["origin"]) == {"source": "woocommerce", "shop": "main", "order": "1042", "note": "290"}


async def test_outside_the_window_the_template_names_the_order(shop):
    app = shop()
    await deliver(app, "order_created_classic.json", topic="order.created", delivery="d1")  # opted in at checkout
    with replayable("customer_note_template.yaml") as cassette:
        await deliver(app, ACTION, topic=TOPIC, delivery="n1")
    assert _texts(app) == [] and _notices(app) == [["1042"]]
    assert len(_posted_notes(cassette)) == 1 and "as the template new_message_notice" in _posted_notes(cassette)[0]


async def test_an_order_without_a_number_gets_a_note_saying_so_and_nothing_is_sent(shop):
    app = shop()
    with replayable("customer_note_no_phone.yaml") as cassette:
        await deliver(app, ACTION, topic=TOPIC, delivery="n1")
        await deliver(app, ACTION, topic=TOPIC, delivery="n2")
    assert app.channel.sent() == []
    assert _posted_notes(cassette) == ["The note to the customer was not sent on WhatsApp: the order's billing phone "
                                       "is missing or not a valid number."]
    skipped = deliveries(app, "connector:woocommerce")
    assert len(skipped) == 2 and all(json.loads(d["result"])["skipped"] == "no_phone" for d in skipped)


async def test_a_shop_that_turned_it_off_acknowledges_and_sends_nothing(shop):
    app = shop(send_customer_notes=False)
    with replayable("customer_note_sent.yaml") as cassette:
        await deliver(app, ACTION, topic=TOPIC, delivery="n1")
    assert cassette.play_count == 0 and app.channel.sent() == [] and app.events() == []


@pytest.mark.parametrize("arg", [None, {"customer_note": NOTE}, {"order_id": 1042},
                                 {"order_id": "x", "customer_note": NOTE}, {"order_id": 1042, "customer_note": "  "}])
async def test_a_malformed_note_webhook_is_refused_and_journals_nothing(shop, arg):
    from test_order_notifications import wc_request

    from connectzap.core import ingress
    app = shop()
    body = json.dumps({"action": "woocommerce_new_customer_note", "arg": arg}).encode()
    response = ingress.handle(app.connectors["woocommerce"], wc_request(body, topic=TOPIC, delivery="bad"), app.ingest)
    assert response.status == 422 and "arg." in json.dumps(response.body)
    assert app.events() == []
