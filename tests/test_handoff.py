"""Human handoff from the outside: `connectzap conversations handoff|show|release`, the REST API
(`/v1/conversations/{contact}`), a BSUID-only customer, and the CRM timelines -- one HubSpot
Communication per change of hands (the fake HubSpot server) and a private note on the customer's
latest WooCommerce order (a cassette built from the REST reference)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hubspot_support import hubspot_config
from server_support import AUTH, api_engine, serving
from test_cli import config, ok, run  # noqa: F401 - the CLI tests' engine on both databases
from test_woocommerce_notes import shop_app, wc_vcr  # noqa: F401 - a shop with an order for ANA

from connectzap import Contact, Event, EventKind, Handoff, hookimpl
from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.core.worker import Worker
from connectzap.testing import registered_plugin
from test_order_notifications import ANA, deliver

PHONE = "+4915112345678"
BSUID = "US.13491208655302741918"


def test_the_cli_hands_over_shows_and_releases(config: Path):  # noqa: F811
    shown = json.loads(ok(run(config, "conversations", "handoff", PHONE, "--reason", "complaint", "--minutes",
                              "30", "--json")))
    assert (shown["handled_by"], shown["reason"], shown["changed"]) == ("human", "complaint", True)
    assert PHONE not in json.dumps(shown)  # masked
    assert "human" in ok(run(config, "conversations", "show", PHONE))
    again = json.loads(ok(run(config, "conversations", "handoff", PHONE, "--reason", "still", "--json")))
    assert again["changed"] is False and again["until"] is None  # now until released
    released = json.loads(ok(run(config, "conversations", "release", PHONE, "--json")))
    assert (released["handled_by"], released["changed"]) == ("bot", True)
    bad = run(config, "conversations", "release", "not-a-number")
    assert bad.exit_code != 0 and "Traceback" not in bad.output


async def test_the_rest_api_hands_over_and_releases_also_a_bsuid_only_customer(make):
    app = api_engine(make)
    async with serving(app) as client:
        got = await client.post(f"/v1/conversations/{BSUID}/handoff", headers=AUTH,
                                json={"reason": "wants a person", "minutes": 60})
        assert got.status_code == 200, got.text
        body = got.json()
        assert (body["handled_by"], body["changed"]) == ("human", True) and BSUID not in body["contact"]
        assert app.conversation(BSUID).handled_by == "human"
        assert (await client.get(f"/v1/conversations/{BSUID}", headers=AUTH)).json()["handled_by"] == "human"
        assert (await client.post(f"/v1/conversations/{PHONE}/handoff", headers=AUTH,
                                  json={"reason": "x", "minutes": 0})).status_code == 422
        assert (await client.post(f"/v1/conversations/{PHONE}/release", headers={})).status_code == 401
        released = (await client.post(f"/v1/conversations/{BSUID}/release", headers=AUTH)).json()
        assert (released["handled_by"], released["changed"]) == ("bot", True)
        assert (await client.post(f"/v1/conversations/{BSUID}/release", headers=AUTH)).json()["changed"] is False


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as server:
        yield server


async def test_each_change_of_hands_is_one_communication_on_the_hubspot_timeline(make, fake):
    fake.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = make(connectors={"hubspot": hubspot_config(fake.url)})
    heard: list[str] = []

    class Listener:
        @hookimpl
        def on_handoff(self, handoff: Handoff) -> None:
            heard.append(handoff.to)

    with registered_plugin(Listener()):
        app.hand_to_human(PHONE, "asked for a person", minutes=240, by="handoff")
        await Worker(app).run_until_idle()
        app.release(PHONE, by="cli")
        await Worker(app).run_until_idle()
    assert heard == ["human", "bot"]
    bodies = [c["properties"]["hs_communication_body"] for c in fake.objects("communications")]
    assert len(bodies) == 2
    assert "handed to a person" in bodies[0] and "asked for a person" in bodies[0] and "by handoff" in bodies[0]
    assert "back to automatic answers" in bodies[1] and "released by cli" in bodies[1]


async def test_a_handoff_is_a_private_note_on_the_customers_latest_order(shop_app):  # noqa: F811
    await deliver(shop_app, "order_created_classic.json", topic="order.created", delivery="d1")
    at = datetime(2026, 3, 2, 12, 35, tzinfo=UTC)
    handoff = Handoff(contact=Contact(phone=ANA), to="human", at=at, reason="asked for a person", by="handoff",
                      until=at + timedelta(hours=4))
    unknown = handoff.model_copy(update={"contact": Contact(phone="+34699999999")})  # no order: no note
    with wc_vcr.use_cassette("note_handoff.yaml") as cassette:
        shop_app.ingest([Event.of(EventKind.HANDOFF, handoff, source="handoff", dedupe_key="h1"),
                         Event.of(EventKind.HANDOFF, unknown, source="handoff", dedupe_key="h2")])
        await Worker(shop_app).run_until_idle()
        assert cassette.play_count == 1 and cassette.all_played
    assert json.loads(cassette.requests[0].body)["customer_note"] is False
