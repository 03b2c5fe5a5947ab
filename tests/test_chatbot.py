"""Chatbot bridge (issue 17, item 4): inbound messages reach a local fake bot as the generic
outbound webhooks' signed JSON; its answer (one or several messages) is sent as one automatic
answer of kind chatbot; a slow, broken or nonsensical bot leads to the fallback -- or to the FAQ
answer or away message when one applies -- never to silence and never to two answers; nothing is
forwarded while a person handles the conversation; a bot that answers later does so through
POST /v1/chatbot/answers, once."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from automation_support import CUSTOMER, WHATSAPP, again, receive, sent_bodies, text, wamid_of
from connectzap import AutomaticAnswer, ConfigurationError, StartupError, TextContent, hookimpl
from connectzap.core import signatures
from connectzap.testing import FakeBot, FakeWhatsApp, registered_plugin, run

SECRET = "whsec_" + base64.b64encode(b"chatbot-tests-secret-0123").decode()
FALLBACK = "Ahora no puedo responder; una persona te escribirá pronto."
KEY = "test-key-0123456789abcdef"


@pytest.fixture
def bot() -> Iterator[FakeBot]:
    with FakeBot() as server:
        yield server


def bridged(make, bot: FakeBot, **section):
    config = {"url": bot.url, "secret": SECRET, "timeout_seconds": 2, "fallback_text": FALLBACK, **section}
    return make(channel=FakeWhatsApp(), connectors=WHATSAPP, api={"keys": [KEY]}, plugins={"chatbot": config})


def texts(app) -> list[str]:
    return [m.get("text", {}).get("body") or m["interactive"]["body"]["text"] for m in sent_bodies(app)]


class Answering:
    """Another plugin answering the same messages with a kind of its own (an FAQ rule, the away message)."""

    def __init__(self, kind: AutomaticAnswer, body: str) -> None:
        self.kind, self.body = kind, body

    @hookimpl
    def on_inbound_message(self, message, ctx):
        ctx.send(message.contact, TextContent(body=self.body), reply_to=message.wamid, automatic=self.kind)


def test_the_bots_answer_goes_once_and_the_request_is_the_signed_webhook_json(make, bot):
    bot.answer({"type": "text", "body": "¡Hola Ana! ¿Qué talla buscas?"},
               {"type": "buttons", "body": "Elige una:", "buttons": [{"id": "s", "title": "S"},
                                                                      {"id": "m", "title": "M"}]})
    app = bridged(make, bot)
    hello = text("hola, ¿tenéis la camiseta azul?")
    receive(app, hello, again(hello))
    [asked] = bot.requests
    signatures.verify_standard(asked.headers["webhook-id"], asked.headers["webhook-timestamp"],
                               asked.headers["webhook-signature"], asked.body, SECRET)
    sent = asked.json()
    assert sent["type"] == "inbound_message" and sent["source"] == "whatsapp"
    assert sent["data"]["wamid"] == wamid_of(hello) and sent["data"]["text"] == "hola, ¿tenéis la camiseta azul?"
    assert sent["data"]["contact"]["phone"] == "+" + CUSTOMER
    assert sorted(texts(app)) == ["Elige una:", "¡Hola Ana! ¿Qué talla buscas?"]   # one answer, two messages
    assert [m.get("context", {}).get("message_id") for m in sent_bodies(app) if "text" in m] == [wamid_of(hello)]


@pytest.mark.parametrize("breaks", ["slow", "500", "garbage", "invalid message", "too many"])
def test_a_failing_bot_leads_to_the_fallback_once(make, bot, breaks):
    bot.answer({"type": "text", "body": "too late"})
    if breaks == "slow":
        bot.stall(30)           # timeout_seconds is 2
    elif breaks == "500":
        bot.fail(500)
    elif breaks == "garbage":
        bot.garbage()
    elif breaks == "invalid message":
        bot.answer({"type": "text"})    # no body
    else:
        bot.answer(*[{"type": "text", "body": str(n)} for n in range(4)])   # max_messages is 3
    app = bridged(make, bot)
    question = text("¿hacéis envíos a Canarias?")
    receive(app, question, again(question))
    assert texts(app) == [FALLBACK]
    assert len(bot.requests) == 1


def test_an_faq_answer_or_the_away_message_wins_over_the_bot_and_its_fallback(make, bot):
    bot.answer({"type": "text", "body": "respuesta del bot"})
    with registered_plugin(Answering(AutomaticAnswer.faq, "Enviamos a toda España en 48 h.")):
        app = bridged(make, bot)
        receive(app, text("envíos"))
    assert texts(app) == ["Enviamos a toda España en 48 h."]
    bot.fail(503)
    with registered_plugin(Answering(AutomaticAnswer.away, "Estamos cerrados; abrimos el lunes a las 9:00.")):
        closed = bridged(make, bot)
        receive(closed, text("¿hay alguien?"))
    assert texts(closed) == ["Estamos cerrados; abrimos el lunes a las 9:00."]


def test_nothing_is_forwarded_while_a_person_handles_the_conversation(make, bot):
    bot.answer({"type": "text", "body": "respuesta del bot"})
    app = bridged(make, bot)
    app.hand_to_human("+" + CUSTOMER, "a person took over")
    receive(app, text("quiero hablar con alguien"))
    assert bot.requests == [] and sent_bodies(app) == []
    app.release("+" + CUSTOMER)
    receive(app, text("gracias"))
    assert len(bot.requests) == 1 and texts(app) == ["respuesta del bot"]


def test_a_failing_bot_may_hand_the_conversation_to_a_person(make, bot):
    bot.fail(500)
    app = bridged(make, bot, hand_to_human_on_failure=True)
    receive(app, text("hola"))
    assert texts(app) == [FALLBACK]
    assert app.conversation("+" + CUSTOMER).handled_by == "human"


async def test_a_bot_that_answers_later_does_so_once_through_the_api(make, bot):
    from server_support import serving
    bot.later()
    app = bridged(make, bot)
    question = text("¿cuándo llega mi pedido 1042?")
    await asyncio.to_thread(receive, app, question)
    assert sent_bodies(app) == []
    answer = {"in_reply_to": wamid_of(question), "to": "+" + CUSTOMER,
              "messages": [{"type": "text", "body": "Tu pedido 1042 llega mañana."}]}
    auth = {"Authorization": f"Bearer {KEY}"}
    async with serving(app) as client:
        wrong = await client.post("/v1/chatbot/answers", json={**answer, "to": "+34699999999"}, headers=auth)
        first = await client.post("/v1/chatbot/answers", json=answer, headers=auth)
        second = await client.post("/v1/chatbot/answers", json=answer, headers=auth)
    assert wrong.status_code == 422 and first.status_code == 200 and second.status_code == 404
    await asyncio.to_thread(run, app)
    assert texts(app) == ["Tu pedido 1042 llega mañana."]
    # the fallback that waited for the bot's deadline was withdrawn by the answer, not just delayed
    outcomes = sorted((m["status"], m["reason"]) for m in app.messages())
    assert outcomes == [("accepted", None), ("refused", "automatic_superseded")], outcomes


async def test_a_bot_that_never_answers_later_leaves_the_fallback(make, bot):
    import time
    from server_support import serving
    bot.later()
    app = bridged(make, bot, later_minutes=0.02)    # 1.2 s
    question = text("¿seguís abiertos?")
    await asyncio.to_thread(receive, app, question)
    assert sent_bodies(app) == []                   # not yet: the bot may still answer
    deadline = time.monotonic() + 60                # generous: a loaded machine
    while not sent_bodies(app) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(run, app)
    assert texts(app) == [FALLBACK]
    answer = {"in_reply_to": wamid_of(question), "to": "+" + CUSTOMER,
              "messages": [{"type": "text", "body": "demasiado tarde"}]}
    async with serving(app) as client:
        late = await client.post("/v1/chatbot/answers", json=answer, headers={"Authorization": f"Bearer {KEY}"})
    assert late.status_code in (404, 409) and texts(app) == [FALLBACK]


async def test_a_late_answer_to_a_message_already_answered_is_refused(make, bot):
    from server_support import serving
    bot.later()
    with registered_plugin(Answering(AutomaticAnswer.welcome, "¡Bienvenida a Tienda Sol!")):
        app = bridged(make, bot)
        question = text("hola")
        await asyncio.to_thread(receive, app, question)
    answer = {"in_reply_to": wamid_of(question), "to": "+" + CUSTOMER,
              "messages": [{"type": "text", "body": "¿En qué te ayudo?"}]}
    async with serving(app) as client:
        late = await client.post("/v1/chatbot/answers", json=answer, headers={"Authorization": f"Bearer {KEY}"})
    assert late.status_code == 409 and late.json()["error"] == "already_answered"
    assert texts(app) == ["¡Bienvenida a Tienda Sol!"]


@pytest.mark.parametrize("section, problem", [
    ({"url": "https://bot.example.com/hook"}, "with a url, also set secret"),
    ({"url": "not a url", "secret": "x"}, "plugins.chatbot.url"),
    ({"url": "https://bot.example.com/hook", "secret": "x", "timeout_seconds": 0}, "plugins.chatbot.timeout_seconds"),
    ({"url": "https://bot.example.com/hook", "secret": "whsec_not base64!"}, "the rest is not base64"),
])
def test_config_mistakes_stop_the_start_in_one_line(make, section, problem):
    with pytest.raises((ConfigurationError, StartupError)) as raised:
        make(plugins={"chatbot": section})
    assert problem in str(raised.value) and "\n" not in str(raised.value)


# --- whatever the bot answers: valid messages, or a failure -- never anything else -------------------

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=20)
_TEXTS = st.lists(st.builds(lambda body: {"type": "text", "body": body}, st.text(min_size=1, max_size=50)),
                  max_size=5)


@given(st.one_of(_JSON.map(lambda v: {"messages": v}), _JSON, _TEXTS.map(lambda m: {"messages": m})))
def test_any_answer_is_valid_messages_or_a_failure(answer):
    import httpx

    from connectzap.plugins.chatbot.bridge import BotFailure, _contents
    try:
        contents = _contents(httpx.Response(200, json=answer), limit=3)
    except BotFailure:
        return
    # accepted: a "messages" list of up to 3 valid contents, none dropped; empty = "I answer later"
    assert isinstance(answer, dict) and isinstance(answer.get("messages"), list)
    if not answer["messages"]:
        assert contents is None
    else:
        assert contents is not None and 1 <= len(contents) == len(answer["messages"]) <= 3


@given(_TEXTS.filter(lambda m: 1 <= len(m) <= 3))
def test_every_allowed_answer_is_kept_whole(messages):
    import httpx

    from connectzap.plugins.chatbot.bridge import _contents
    contents = _contents(httpx.Response(200, json={"messages": messages}), limit=3)
    assert [(c.type, c.body) for c in contents] == [("text", m["body"]) for m in messages]


def test_simulate_shows_the_request_and_asks_no_bot(tmp_path, bot):
    import json
    import subprocess
    import sys
    from pathlib import Path
    bot.answer({"type": "text", "body": "respuesta del bot"})
    config = tmp_path / "connectzap.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nquiet = true\n[plugins.chatbot]\n'
                      f'url = "{bot.url}"\nsecret = "{SECRET}"\n')
    items = tmp_path / "items.json"
    items.write_text(json.dumps([{"webhook": "/webhooks/whatsapp", "body": text("hola")}]))
    done = subprocess.run([str(Path(sys.executable).with_name("connectzap")), "--config", str(config), "simulate",
                           str(items), "--json"], capture_output=True, text=True, timeout=300, check=True)
    [call] = json.loads(done.stdout)["events"][0]["calls"]
    assert call["target"] == "chatbot" and call["method"] == "POST" and call["url"] == bot.url
    assert json.loads(call["body"])["data"]["text"] == "hola" and CUSTOMER not in call["body"]
    assert bot.requests == []


def test_a_waiting_record_is_forgotten_once_later_minutes_passed(make, bot):
    """"I answer later" keeps a small record (event id, hashed customer, number) for
    POST /v1/chatbot/answers; once later_minutes passed the fallback has gone (or been
    superseded) and no answer is taken, so the housekeeping erases it, not before."""
    import time

    from connectzap.core import clock
    from connectzap.core.worker import Worker
    bot.later()
    app = bridged(make, bot, later_minutes=10)
    asked = time.time()
    receive(app, text("¿tenéis talla 42?"))

    def waiting() -> list:
        with app.db.read() as conn:
            return conn.exec_driver_sql("SELECT key FROM plugin_state WHERE plugin = 'chatbot'").all()

    assert len(waiting()) == 1
    with clock.use_clock(lambda: asked + 9 * 60):
        Worker(app).housekeeping()
    assert len(waiting()) == 1                      # the bot may still answer
    with clock.use_clock(lambda: asked + 11 * 60):
        Worker(app).housekeeping()
    assert waiting() == []
