"""Meta's messaging limit (per business portfolio since October 2025) drives the pacer's daily
unique-recipient budget: read from signed ``phone_number_quality_update`` webhooks -- the
``max_daily_conversations_per_business`` field, and ``current_limit`` from before February 2026 --
shared by every worker through the database. Unset, the budget starts at 250; a configured
``daily_unique_recipients`` wins over Meta's reports."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest

from connectzap.connectors.whatsapp.pacer import STARTING_LIMIT, Pacer, _Ask
from connectzap.connectors.whatsapp.webhooks import messaging_limit
from connectzap.core.errors import PacedError
from connectzap.testing import deliver, meta_headers, run, webhook_request

SECRET = "meta-app-secret-for-limit-tests"
WABA = "102290129340398"
NOW = 1_780_000_000.0
FRESH = itertools.count()  # every recipient new: one already counted in the window costs nothing


def whatsapp(**extra: Any) -> dict[str, Any]:
    return {"access_token": "token-for-limit-tests", "phone_number_id": "106540352242922", "waba_id": WABA,
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


@pytest.mark.parametrize(("reported", "expected"), [
    ("TIER_250", (True, 250)), ("TIER_2K", (True, 2000)), ("TIER_100K", (True, 100_000)), ("10000", (True, 10_000)),
    ("TIER_UNLIMITED", (True, None)), ("TIER_NOT_SET", (False, None)), ("", (False, None)), ("TIER_0", (False, None)),
])
def test_meta_limit_spellings(reported: str, expected: tuple[bool, int | None]) -> None:
    assert messaging_limit(reported) == expected
