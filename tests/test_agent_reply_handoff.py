"""An agent's reply from any surface hands the conversation to people (issue #20, item 4): the REST
reply endpoint, a WooCommerce note to the customer (cassette built from WooCommerce's REST
reference) and a HubSpot note (the local HubSpot stand-in). While the mark holds, the auto_replies
FAQ answer is held; once ``[replies] handoff_minutes`` are over, it answers again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from automation_support import CUSTOMER, WHATSAPP, Customers
from hubspot_support import hubspot_config, request, v3
from server_support import AUTH, KEY, serving
from test_order_notifications import RULES, deliver
from test_woocommerce_customer_notes import ACTION, NOTE, TOPIC, replayable
from test_woocommerce_webhooks import shop_config

from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.core import ingress
from connectzap.core.app import Connectzap
from connectzap.core.worker import Worker
from connectzap.testing import FakeWhatsApp, seed_template

HOURS = "Abrimos de 10:00 a 20:00."
FAQ = {"auto_replies": {"default_language": "es", "cooldown_minutes": 0, "rules": [
    {"name": "hours", "keywords": ["horario"], "answer": {"es": {"type": "text", "body": HOURS}}}]}}
REPLIES = {"fallback_template": "new_message_notice", "handoff_minutes": 30}
ANSWER = "Hoy abrimos hasta las 22:00."

Surface = Callable[[Connectzap], Coroutine[Any, Any, None]]


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as server:
        yield server


async def from_the_rest_api(app: Connectzap) -> None:
    async with serving(app) as client:
        got = await client.post(f"/v1/conversations/+{CUSTOMER}/reply", headers=AUTH, json={"text": ANSWER})
    assert got.status_code == 200 and got.json()["sent_as"] == "text", got.text
    await Worker(app).run_until_idle()


async def from_a_woocommerce_note(app: Connectzap) -> None:
    with replayable("customer_note_sent.yaml"):
        await deliver(app, ACTION, topic=TOPIC, delivery="n1")


def from_a_hubspot_note(fake: FakeHubSpot) -> Surface:
    async def reply(app: Connectzap) -> None:
        note = fake.add_note(f"<p>WhatsApp: {ANSWER}</p>", [fake.add_contact({"mobilephone": "+" + CUSTOMER})])
        body = json.dumps([{"eventId": 1, "subscriptionId": 2, "portalId": 62515, "appId": 3,
                            "occurredAt": 1772450100000, "subscriptionType": "object.creation",
                            "attemptNumber": 0, "objectId": int(note), "objectTypeId": "0-46"}]).encode()
        assert ingress.handle(app.connectors["hubspot"], request(body, v3(body)), app.ingest).status == 200
        await Worker(app).run_until_idle()
    return reply


def engine(make: Callable[..., Connectzap], surface: str, fake: FakeHubSpot) -> tuple[Connectzap, Surface, str]:
    """An engine with the WhatsApp connector, the FAQ plugin and the surface's connector; the reply
    function; and the text the customer gets from it."""
    connectors: dict[str, Any] = dict(WHATSAPP)
    plugins: dict[str, Any] = dict(FAQ)
    reply: Surface = from_the_rest_api
    text = ANSWER
    if surface == "woocommerce":
        connectors["woocommerce"] = {"shops": {"main": shop_config()}}
        plugins["order_notifications"] = RULES
        reply, text = from_a_woocommerce_note, NOTE
    elif surface == "hubspot":
        connectors["hubspot"] = hubspot_config(fake.url, lead_on_creation=False, agent_replies=True)
        reply = from_a_hubspot_note(fake)
    app = make(channel=FakeWhatsApp(), connectors=connectors, plugins=plugins, replies=REPLIES,
               api={"keys": [KEY]})
    seed_template(app, "new_message_notice", "You have a new message about order {{1}}.")
    return app, reply, text


@pytest.mark.parametrize("surface", ["rest", "woocommerce", "hubspot"])
def test_an_agents_reply_holds_the_automatic_answers_until_handoff_minutes_are_over(make, fake, surface):
    app, reply, text = engine(make, surface, fake)
    customers, start = Customers(app), datetime.now(UTC)
    customers.write(CUSTOMER, start, "¿Cuál es el horario?")
    assert customers.answers(CUSTOMER) == [HOURS]
    asyncio.run(reply(app))
    assert customers.answers(CUSTOMER) == [HOURS, text]
    assert app.conversation("+" + CUSTOMER).handled_by == "human"
    customers.write(CUSTOMER, start + timedelta(minutes=5), "¿Y el horario del sábado?")
    assert customers.answers(CUSTOMER) == [HOURS, text]  # held: a person is answering
    customers.write(CUSTOMER, start + timedelta(minutes=31), "¿Horario de mañana?")
    assert customers.answers(CUSTOMER) == [HOURS, text, HOURS]  # the mark ran out: automatic again
