"""Meta's messaging limit (per business portfolio since October 2025) drives the pacer's daily
unique-recipient budget: read from signed ``phone_number_quality_update`` webhooks -- the
``max_daily_conversations_per_business`` field, and ``current_limit`` from before February 2026 --
and from the phone number's Graph fields (at worker start, every ``messaging_limit_refresh_minutes``,
``connectzap whatsapp limits``), shared by every worker through the database. Unset, the budget
starts at 250; a configured ``daily_unique_recipients`` wins over Meta's reports."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
import vcr
from click.testing import CliRunner

from connectzap.cli import _install_plugin_commands, cli
from connectzap.connectors.whatsapp import limits
from connectzap.connectors.whatsapp.client import GraphClient
from connectzap.connectors.whatsapp.pacer import STARTING_LIMIT, Pacer, _Ask, record_limit
from connectzap.connectors.whatsapp.webhooks import messaging_limit
from connectzap.core.errors import PacedError
from connectzap.core.worker import Worker
from connectzap.testing import deliver, meta_headers, run, webhook_request
from connectzap.testing.fake_graph import FakeGraph

SECRET = "meta-app-secret-for-limit-tests"
TOKEN = "token-for-limit-tests"
WABA = "102290129340398"
NOW = 1_780_000_000.0
FRESH = itertools.count()  # every recipient new: one already counted in the window costs nothing


def whatsapp(**extra: Any) -> dict[str, Any]:
    return {"access_token": TOKEN, "phone_number_id": "106540352242922", "waba_id": WABA,
            "app_secrets": [SECRET], "verify_token": "v", **extra}


def quality_update(value: dict[str, str], waba: str = WABA, at: int = 1_780_000_000) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": waba, "time": at, "changes": [
        {"field": "phone_number_quality_update",
         "value": {"display_phone_number": "15550783881", "event": "UPGRADE", **value}}]}]}).encode()


def report(app: Any, value: dict[str, str], **kw: Any) -> None:
    body = quality_update(value, **kw)
    response = deliver(app, "whatsapp", webhook_request("/webhooks/whatsapp", body, headers=meta_headers(body, SECRET)))
    assert response.status == 200, response.body
    run(app)


def admitted(app: Any, recipients: int) -> int:
    """How many of ``recipients`` fresh recipients the connector's pacer lets through at once."""
    pacer = Pacer.from_settings(app.db, app.connectors["whatsapp"].settings)
    pacer.clock = lambda: NOW
    pacer.interval = 1e-6
    loop = asyncio.new_event_loop()
    try:
        batch = [_Ask(pacer.default_number, f"{next(FRESH):032x}", True, loop.create_future())
                 for _ in range(recipients)]
        results = pacer._decide(batch)
    finally:
        loop.close()
    assert all(isinstance(r, (float, PacedError)) for r in results)
    return sum(isinstance(r, float) for r in results)


def test_the_budget_follows_the_limit_meta_reports(make: Any) -> None:
    app = make(connectors={"whatsapp": whatsapp()})
    assert app.connectors["whatsapp"].settings.daily_unique_recipients is None
    assert admitted(app, 300) == STARTING_LIMIT == 250  # nothing reported yet: where portfolios start
    report(app, {"max_daily_conversations_per_business": "TIER_2K"})  # the field from February 2026
    assert admitted(app, 1000) == 1000 and admitted(app, 1500) == 2000 - 250 - 1000  # 250 counted before
    report(app, {"current_limit": "TIER_10K", "old_limit": "TIER_2K"}, at=1_780_000_100)  # before it
    assert admitted(app, 5000) == 5000
    report(app, {"max_daily_conversations_per_business": "TIER_UNLIMITED", "current_limit": "TIER_10K"},
           at=1_780_000_200)  # both sent: the new field counts
    assert admitted(app, 3000) == 3000
    report(app, {"current_limit": "TIER_NOT_SET"}, at=1_780_000_300)  # says nothing about the limit
    assert admitted(app, 500) == 500


def test_a_configured_limit_wins_and_other_accounts_are_ignored(make: Any) -> None:
    fixed = make("fixed", connectors={"whatsapp": whatsapp(daily_unique_recipients=300)})
    report(fixed, {"max_daily_conversations_per_business": "TIER_100K"})
    assert admitted(fixed, 400) == 300
    other = make("other", connectors={"whatsapp": whatsapp()})
    report(other, {"max_daily_conversations_per_business": "TIER_100K"}, waba="999999999999999")
    assert admitted(other, 400) == 250


def test_business_capability_update_sets_the_budget(make: Any) -> None:
    """``business_capability_update`` (fixture built from Meta's reference: the limit as a number)
    moves the budget like the quality webhook; the per-phone field of before February 2026 counts
    when it is the only one, ``-1`` meaning unlimited; a change of phone-number counts alone sets nothing."""
    app = make(connectors={"whatsapp": whatsapp()})
    body = (Path(__file__).parent / "payloads" / "whatsapp" / "business_capability_update.json").read_bytes()
    answer = deliver(app, "whatsapp", webhook_request("/webhooks/whatsapp", body, headers=meta_headers(body, SECRET)))
    assert answer.status == 200
    run(app)
    assert admitted(app, 2500) == 2000
    # (recipients admitted while the limit was unlimited are not counted against a later limit)
    for at, value, ask, room in ((1_780_000_100, {"max_phone_numbers_per_waba": 25}, 6000, 0),
                                 (1_780_000_200, {"max_daily_conversation_per_phone": -1}, 6000, 6000),
                                 (1_780_000_300, {"max_daily_conversations_per_business": "TIER_10K",
                                                  "max_daily_conversation_per_phone": -1}, 9000, 10_000 - 2000)):
        capability = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": WABA, "time": at,
                                 "changes": [{"field": "business_capability_update", "value": value}]}]}).encode()
        deliver(app, "whatsapp", webhook_request("/webhooks/whatsapp", capability,
                                                 headers=meta_headers(capability, SECRET)))
        run(app)
        assert admitted(app, ask) == room, value


@pytest.mark.parametrize(("reported", "expected"), [
    ("TIER_250", (True, 250)), ("TIER_2K", (True, 2000)), ("TIER_100K", (True, 100_000)), ("10000", (True, 10_000)),
    ("TIER_UNLIMITED", (True, None)), ("TIER_NOT_SET", (False, None)), ("", (False, None)), ("TIER_0", (False, None)),
])
def test_meta_limit_spellings(reported: str, expected: tuple[bool, int | None]) -> None:
    assert messaging_limit(reported) == expected


# --- the limit read from the phone number's Graph fields --------------------------------------

CASSETTES = Path(__file__).parent.parent / "cassettes" / "whatsapp"


def cassette(name: str) -> Any:
    recorder = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="none", filter_headers=["authorization"],
                       match_on=["method", "scheme", "host", "path", "query"])
    return recorder.use_cassette(f"{name}.yaml", allow_playback_repeats=False)


async def test_the_budget_follows_the_phone_numbers_limit_field_by_api_version(make: Any, caplog: Any) -> None:
    """Meta's reference: ``whatsapp_business_manager_messaging_limit`` from v24.0,
    ``messaging_limit_tier`` before; a failed read keeps the budget and logs why, without the token."""
    app = make(connectors={"whatsapp": whatsapp()})
    settings = app.connectors["whatsapp"].settings
    v24 = settings.model_copy(update={"api_version": "v24.0", "transport": "httpx"})
    v23 = settings.model_copy(update={"api_version": "v23.0", "transport": "httpx"})
    assert limits.in_force(app.db, settings)[0] == STARTING_LIMIT
    with cassette("messaging_limit") as cas:
        for step, config in enumerate((v24, v23, v24)):
            client = GraphClient(config)
            try:
                reading = await limits.refresh(app.db, settings, client)
            finally:
                await client.aclose()
            if step == 0:
                assert reading is not None and (reading.field, reading.limit) == (limits.CURRENT_FIELD, 2000)
                assert admitted(app, 2500) == 2000
            elif step == 1:
                assert reading is not None and (reading.field, reading.limit) == (limits.LEGACY_FIELD, 10_000)
                assert admitted(app, 9000) == 8000
            else:
                assert reading is None  # the expired token: nothing stored
        assert cas.all_played
    budget, source = limits.in_force(app.db, settings)
    assert budget == 10_000 and source.startswith("reported by Meta")
    warning = [r.getMessage() for r in caplog.records if "could not read the messaging limit" in r.getMessage()]
    assert len(warning) == 1 and "190" in warning[0] and "stays at 10000" in warning[0]
    assert TOKEN not in caplog.text


async def test_workers_read_the_limit_at_start_and_keep_the_budget_when_it_is_missing(make: Any, caplog: Any) -> None:
    with FakeGraph(token=TOKEN) as fake:
        fake.messaging_limit = "TIER_100K"
        app = make(connectors={"whatsapp": whatsapp(api_base_url=fake.url, messaging_limit_refresh_minutes=0)})
        stop = asyncio.Event()
        worker = asyncio.create_task(Worker(app).run(stop))
        deadline = time.monotonic() + 30
        while limits.in_force(app.db, app.connectors["whatsapp"].settings)[0] != 100_000:
            assert time.monotonic() < deadline, "the worker never read the limit"
            await asyncio.sleep(0.05)
        stop.set()
        await worker
        asked = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/106540352242922")]
        assert [r.body for r in asked] == [{"fields": limits.CURRENT_FIELD}]  # the default api_version is v27.0
        # An answer without the field stores nothing: the last reported limit stays.
        fake.messaging_limit = None
        await app.connectors["whatsapp"].background(asyncio.Event())
    assert limits.in_force(app.db, app.connectors["whatsapp"].settings)[0] == 100_000
    assert f"{limits.CURRENT_FIELD} = None is not a messaging limit; the daily budget stays at 100000" in caplog.text


async def test_a_configured_budget_is_not_replaced_by_the_graph_reading(make: Any) -> None:
    with FakeGraph(token=TOKEN) as fake:
        fake.messaging_limit = "TIER_UNLIMITED"
        app = make(connectors={"whatsapp": whatsapp(api_base_url=fake.url, daily_unique_recipients=300)})
        await app.connectors["whatsapp"].background(asyncio.Event())  # configured: nothing to follow
        assert fake.requests == []
        client = GraphClient(app.connectors["whatsapp"].settings)
        try:
            assert (await limits.refresh(app.db, app.connectors["whatsapp"].settings, client)) is not None
        finally:
            await client.aclose()
    assert limits.in_force(app.db, app.connectors["whatsapp"].settings) == (300, "daily_unique_recipients (configured)")
    assert admitted(app, 400) == 300


def test_the_latest_observation_wins(make: Any) -> None:
    """A webhook applied late (from a backlog) does not undo a newer reading, nor the reverse."""
    app = make(connectors={"whatsapp": whatsapp()})
    record_limit(app.db, WABA, 2000, at=NOW)
    record_limit(app.db, WABA, 250, at=NOW - 60)  # observed earlier, applied later
    assert limits.in_force(app.db, app.connectors["whatsapp"].settings)[0] == 2000
    record_limit(app.db, WABA, None, at=NOW + 60)
    assert limits.in_force(app.db, app.connectors["whatsapp"].settings)[0] is None


@pytest.mark.parametrize(("version", "field"), [
    ("v23.0", limits.LEGACY_FIELD), ("v22.0", limits.LEGACY_FIELD), ("v24.0", limits.CURRENT_FIELD),
    ("v25.0", limits.CURRENT_FIELD), ("24", limits.CURRENT_FIELD), ("latest", limits.CURRENT_FIELD),
])
def test_the_field_follows_the_api_version(version: str, field: str) -> None:
    assert limits.limit_field(version) == field


def test_cli_reads_stores_and_shows_the_limit(tmp_path: Path) -> None:
    with FakeGraph(token=TOKEN, version="v24.0") as fake:
        fake.messaging_limit = "TIER_2K"
        config = tmp_path / "connectzap.toml"
        config.write_text(f"""
data_dir = "{tmp_path / 'data'}"
[connectors.whatsapp]
access_token = "{TOKEN}"
phone_number_id = "106540352242922"
waba_id = "{WABA}"
app_secrets = ["{SECRET}"]
verify_token = "v"
api_base_url = "{fake.url}"
api_version = "v24.0"
""")
        _install_plugin_commands()
        runner = CliRunner()
        before = runner.invoke(cli, ["--config", str(config), "whatsapp", "limits", "--no-refresh", "--json"])
        assert before.exit_code == 0, before.output
        assert json.loads(before.output)["daily_unique_recipients"] == "250" and fake.requests == []
        result = runner.invoke(cli, ["--config", str(config), "whatsapp", "limits", "--json"])
        assert result.exit_code == 0, result.output
        shown = json.loads(result.output)
        assert shown["field"] == limits.CURRENT_FIELD and shown["reported"] == "TIER_2K"
        assert shown["daily_unique_recipients"] == "2000" and shown["source"].startswith("reported by Meta")
        fake.token = "another-token"  # the stored token no longer works: one line, exit 5 or 1, budget kept
        failed = runner.invoke(cli, ["--config", str(config), "whatsapp", "limits"])
        assert failed.exit_code != 0 and TOKEN not in failed.output
        kept = runner.invoke(cli, ["--config", str(config), "whatsapp", "limits", "--no-refresh", "--json"])
        assert json.loads(kept.output)["daily_unique_recipients"] == "2000"


def test_a_volume_pricing_tier_update_is_listed_by_connectzap_events_and_logged_once(make: Any, caplog: Any) -> None:
    """account_update VOLUME_BASED_PRICING_TIER_UPDATE (tests/payloads/whatsapp/account_update_pricing_tier.json):
    one journaled event whose line `connectzap events list` shows, logged once by the worker, even
    when Meta delivers it twice."""
    import logging

    caplog.set_level(logging.WARNING)
    app = make(connectors={"whatsapp": whatsapp()})
    body = (Path(__file__).parent / "payloads" / "whatsapp" / "account_update_pricing_tier.json").read_bytes()
    for _ in range(2):
        request = webhook_request("/webhooks/whatsapp", body, headers=meta_headers(body, SECRET))
        answer = deliver(app, "whatsapp", request)
        assert answer.status == 200, answer.body
    line = ("WhatsApp volume pricing tier update for account 419561257915477: UTILITY messages in INDIA are "
            "priced at tier 25000001:50000000 from 2025-11")
    [waiting] = app.events(kind="resolve")
    assert (waiting.status, waiting.subject) == ("pending", line), waiting
    run(app)
    [listed] = app.events(kind="resolve")  # done: the payload is erased, the outcome keeps the line
    assert (listed.status, listed.outcome) == ("done", f"connector:whatsapp: pricing_tier_update: {line}"), listed
    assert [r.getMessage() for r in caplog.records if "pricing tier" in r.getMessage()] == [line]
    assert admitted(app, 300) == STARTING_LIMIT  # not a messaging limit: the budget is untouched
