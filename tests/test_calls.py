"""WhatsApp calls webhooks are journaled, reach on_call, and an ended call becomes one HubSpot Call on the
contact's timeline (the fake HubSpot server), however often the webhook comes. Fixtures:
tests/payloads/whatsapp/call_*.json (built from the reference)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hubspot_support import hubspot_config

from connectzap import Outgoing, TextContent, hookimpl
from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.connectors.whatsapp import webhooks
from connectzap.core import clock
from connectzap.core.worker import Worker
from connectzap.testing import registered_plugin

FIXTURES = Path(__file__).parent / "payloads" / "whatsapp"
PHONE = "+4915112345678"  # the customer in the call fixtures


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as server:
        yield server


def webhook(app: Any, name: str, source: str = "whatsapp") -> None:
    events = webhooks.parse_body((FIXTURES / f"{name}.json").read_bytes())
    app.ingest([e.model_copy(update={"source": source}) for e in events])


async def test_ended_call_is_one_hubspot_call_and_every_step_reaches_the_hook(make, fake):
    ana = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE, "hubspot_owner_id": "777"})
    app = make(connectors={"hubspot": hubspot_config(fake.url)})
    heard: list[tuple[str, str | None]] = []

    class Listener:
        @hookimpl
        def on_call(self, call):
            heard.append((call.event, call.status))

    with registered_plugin(Listener()):
        webhook(app, "call_connect")
        webhook(app, "call_terminate")
        await Worker(app).run_until_idle()
        webhook(app, "call_terminate")  # a repeated webhook: deduplicated by the journal
        webhook(app, "call_terminate", source="whatsapp-replay")  # a copy that slips past it
        await Worker(app).run_until_idle()

    assert heard[:2] == [("connect", None), ("terminate", "COMPLETED")]
    [call] = fake.objects("calls")
    props = call["properties"]
    assert (props["hs_call_direction"], props["hs_call_status"], props["hs_call_duration"]) == (
        "INBOUND", "COMPLETED", "120000")
    assert props["hs_timestamp"] == "1750600004000" and props["hubspot_owner_id"] == "777"
    assert "wacid.HBgLMTY1MDU1NTEyMzQVAgARGBQzQUI2MjQ3Rjc4RUEA" in props["hs_call_body"]
    assert ("calls", call["id"], ana, 194) in fake.associations
    outcomes = [e.outcome for e in app.events(kind="call")]
    assert outcomes and all("dead" not in o for o in outcomes)


async def test_calls_are_journaled_even_without_any_listener(make):
    app = make()
    webhook(app, "call_status")
    await Worker(app).run_until_idle()
    [event] = app.events(kind="call")
    assert event.status == "done" and event.dedupe_key.endswith(":status:RINGING")


async def test_a_customers_call_opens_the_24_hour_window_and_a_business_call_does_not(make):
    app = make()
    # a business-initiated call ringing the customer: no window
    webhook(app, "call_status")
    await Worker(app).run_until_idle()
    assert app.send(Outgoing(to=PHONE, content=TextContent(body="Sorry we missed you"))).reason == "window_closed"
    with clock.use_clock(lambda: 1750600000.0 + 3600):  # an hour after the customer called (the fixture's time)
        webhook(app, "call_connect")
        await Worker(app).run_until_idle()
        reply = app.send(Outgoing(to=PHONE, content=TextContent(body="Sorry we missed you")))
    assert reply.status == "queued"
