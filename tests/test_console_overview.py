"""The overview's health is ``/healthz``'s (issue #19): the database, the workers with a heartbeat,
the channel of each medium (issue #21), and each plugin that failed to load, with why."""

from __future__ import annotations

import re
import time

from console_support import PASSWORD, USER, log_in
from test_console_routes import console, shop  # noqa: F401 - a fixture

import connectzap.core.app
from connectzap.console.passwords import hash_password
from connectzap.core.channel import SMS
from connectzap.core.plugins import LoadFailure
from connectzap.testing import FakeChannel, FakeWhatsApp


def cell(page: str, cell_id: str) -> str:
    found = re.search(rf'id="{cell_id}"[^>]*>(.*?)</dd>', page, flags=re.S)
    assert found, cell_id
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


async def test_the_overview_shows_what_healthz_says_and_each_plugin_load_error(make, monkeypatch):
    app = make(channel=FakeWhatsApp(), console={"enabled": True})
    app.use_channel(FakeChannel(SMS))
    app.operators.add_user(USER, hash_password(PASSWORD))
    broken = LoadFailure(name="acme_loyalty", distribution="acme-loyalty", error="ModuleNotFoundError: acme_sdk")
    async with console(app) as client:
        await log_in(client)
        healthy = (await client.get("/console")).text
        monkeypatch.setattr(connectzap.core.app, "load_failures", lambda: [broken])
        health = (await client.get("/healthz")).json()
        page = (await client.get("/console")).text
    assert cell(healthy, "health-plugins") == "none"
    assert cell(page, "health-database") == health["database"] == "ok"
    assert cell(page, "health-workers") == str(health["workers"])
    assert cell(page, "health-channel") == health["channel"] == app.channel.name
    assert cell(page, f"health-channel-{SMS}") == app.channels[SMS].name
    assert cell(page, "health-plugins") == "acme_loyalty: ModuleNotFoundError: acme_sdk"
    assert [p["name"] for p in health["plugin_errors"]] == ["acme_loyalty"]


async def test_the_overview_shows_throughput_of_the_last_minutes_from_the_database(shop):  # noqa: F811
    """Events received, messages admitted and messages handed to a channel per minute over the last
    five minutes, counted in the database (every process of a ``serve``), on the page and in its live
    numbers; what happened earlier than that is not counted."""
    from sqlalchemy import func, select, update

    from connectzap.core.store.schema import events, outbox
    app, _ = shop
    with app.db.begin() as conn:  # the story runs no sender: mark its messages handed off as the sender does
        conn.execute(update(outbox).values(handed_off_at=func.coalesce(outbox.c.handed_off_at, time.time())))
    with app.db.read() as conn:
        stored_events = conn.execute(select(func.count()).select_from(events)).scalar_one()
        stored_messages = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
        handed_off = conn.execute(select(func.count()).select_from(outbox)
                                  .where(outbox.c.handed_off_at.is_not(None))).scalar_one()
    assert stored_events and stored_messages and handed_off  # the story journals, admits and sends
    flow = app.throughput()
    assert (flow.events_received, flow.messages_admitted, flow.messages_handed_off) == (
        stored_events, stored_messages, handed_off)
    async with console(app) as client:
        await log_in(client)
        page = (await client.get("/console")).text
        live = (await client.get("/console/live")).json()["numbers"]
    for name, count in (("events", stored_events), ("admitted", stored_messages), ("handed-off", handed_off)):
        per_minute = round(count * 60 / 300, 1)
        assert re.search(rf'id="flow-{name}">{per_minute}<', page), name
        assert live[f"flow-{name}"] == per_minute
    with app.db.begin() as conn:  # ten minutes ago: outside the window
        conn.execute(update(events).values(received_at=events.c.received_at - 600))
        conn.execute(update(outbox).values(created_at=outbox.c.created_at - 600,
                                           handed_off_at=outbox.c.handed_off_at - 600))
    assert app.throughput()[1:] == (0, 0, 0)
