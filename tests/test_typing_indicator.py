"""Read receipts and the typing indicator before automatic answers (issue 17, item 6).

The core marks the customer's message read and shows WhatsApp's typing indicator right before an
automatic answer that quotes it goes out -- only then (Meta: "only display a typing indicator if
you are going to respond"): not for plain replies, not for answers the core refused, not with
``[automation] typing_indicator = false``; and a failing receipt never holds the answer back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from automation_support import MADRID_HOURS, WHATSAPP, Customers, chats, deliver_signed, text, wamid_of
from test_whatsapp_client import cassette, live, meta_settings

from connectzap import Outgoing, TextContent
from connectzap.connectors.whatsapp.channel import CloudApiChannel
from connectzap.connectors.whatsapp.client import GraphClient
from connectzap.core import clock
from connectzap.core.errors import RetriableDeliveryError
from connectzap.core.worker import Worker
from connectzap.testing import FakeWhatsApp, run
from connectzap.testing.fake_graph import FakeGraph

SPAIN = "34612345678"
SATURDAY = datetime(2026, 12, 5, 12, tzinfo=UTC)   # closed in Madrid
REFERENCE_WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"


def typing_for(wamid: str) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "status": "read", "message_id": wamid,
            "typing_indicator": {"type": "text"}}


@pytest.fixture
def customers(make):
    return chats(make)


def fake_channel(chat: Customers) -> FakeWhatsApp:
    channel = chat.app.channel
    assert isinstance(channel, FakeWhatsApp)
    return channel


def test_an_automatic_answer_is_preceded_by_a_read_receipt_with_typing(customers):
    chat = customers(away={"enabled": True})
    wamid = chat.write(SPAIN, SATURDAY)
    channel = fake_channel(chat)
    (sent,) = channel.attempts
    assert channel.reads == [typing_for(wamid)]
    assert channel.order == [f"read:{wamid}", f"send:{sent.outbox_id}"]
    assert sent.body["context"] == {"message_id": wamid}


def test_only_the_answer_that_goes_shows_typing(customers):
    # A first message outside hours: welcome and away both answer; away wins, one receipt.
    chat = customers(away={"enabled": True}, welcome={"enabled": True})
    wamid = chat.write(SPAIN, SATURDAY)
    channel = fake_channel(chat)
    assert len(chat.answers(SPAIN)) == 1 and "cerrados" in chat.answers(SPAIN)[0]
    assert channel.reads == [typing_for(wamid)]


def test_the_off_switch_sends_the_answer_without_a_receipt(make):
    chat = Customers(make(channel=FakeWhatsApp(), connectors=WHATSAPP, plugins={"away": {"enabled": True}},
                          business_hours=MADRID_HOURS, automation={"typing_indicator": False}))
    chat.write(SPAIN, SATURDAY)
    assert len(chat.answers(SPAIN)) == 1
    assert fake_channel(chat).reads == []


def test_a_plain_reply_quoting_a_message_shows_no_typing(customers):
    chat = customers()   # no automatic plugin enabled
    wamid = chat.write(SPAIN, SATURDAY)
    # a minute later, inside the window the customer's message opened (not today: it closed a day after)
    with clock.use_clock(lambda: SATURDAY.timestamp() + 60):
        chat.app.send(Outgoing(to=f"+{SPAIN}", content=TextContent(body="Hola, soy Ana"), reply_to=wamid))
        run(chat.app)
    channel = fake_channel(chat)
    assert chat.answers(SPAIN) == ["Hola, soy Ana"] and channel.reads == []


class ReceiptsFail(FakeWhatsApp):
    async def mark_read(self, wamid: str, *, typing: bool = False, phone_number_id: str | None = None) -> bool:
        raise RetriableDeliveryError("Graph said 500", code="http_500")


def test_a_failing_receipt_never_holds_the_answer_back(make):
    chat = Customers(make(channel=ReceiptsFail(), connectors=WHATSAPP, plugins={"away": {"enabled": True}},
                          business_hours=MADRID_HOURS))
    chat.write(SPAIN, SATURDAY)
    assert len(chat.answers(SPAIN)) == 1


def test_the_sandbox_logs_the_receipt_it_would_send(make):
    chat = Customers(make(connectors=WHATSAPP, plugins={"away": {"enabled": True}}, business_hours=MADRID_HOURS))
    wamid = chat.write(SPAIN, SATURDAY)
    sandbox: Any = chat.app.channel
    assert sandbox.read_receipts() == [typing_for(wamid)]
    assert [body["type"] for body in sandbox.sent()] == ["text"]


async def test_the_cloud_api_request_is_metas_reference_shape():
    channel = CloudApiChannel(meta_settings(), GraphClient(meta_settings()))
    with cassette("typing_indicator") as played:
        assert await channel.mark_read(REFERENCE_WAMID, typing=True) is True
        assert played.all_played
    await channel.aclose()


async def test_the_live_channel_sends_the_receipt_before_the_answer(make):
    with FakeGraph(token="test-token") as graph:
        section = live(graph)
        section["whatsapp"].update(WHATSAPP["whatsapp"])
        app = make(connectors=section, plugins={"away": {"enabled": True}}, business_hours=MADRID_HOURS)
        webhook = text("Hola", wa_id=SPAIN)
        webhook["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(SATURDAY.timestamp()))
        with clock.use_clock(lambda: SATURDAY.timestamp() + 2):
            deliver_signed(app, webhook)
            await Worker(app).run_until_idle()
        await app.aclose()
        wamid = wamid_of(webhook)
        kinds = [("read" if r.body.get("status") == "read" else r.body.get("type")) for r in graph.requests
                 if r.path.endswith("/messages")]
        assert kinds == ["read", "text"]
        assert graph.read_receipts() == [typing_for(wamid)]
        assert graph.sends()[0]["context"] == {"message_id": wamid}
