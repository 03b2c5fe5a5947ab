"""The overview's health is ``/healthz``'s (issue #19): the database, the workers with a heartbeat,
the channel of each medium (issue #21), and each plugin that failed to load, with why."""

from __future__ import annotations

import re

from console_support import PASSWORD, USER, log_in
from test_console_routes import console

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
