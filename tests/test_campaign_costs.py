"""Cost in money and analytics of a campaign: the [pricing] rates (per Meta pricing category and
recipient country, in one currency) applied to the messages Meta's status webhooks called
billable, by outcome; replies within N hours of the send; the report as CSV (CLI and REST)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from console_support import PASSWORD, USER, log_in
from server_support import AUTH, serving
from test_console_routes import console

from connectzap import Event, EventKind, InboundMessage, MessageStatus
from connectzap.cli import cli
from connectzap.console.passwords import hash_password
from connectzap.core.campaigns import read_file, report_csv
from connectzap.core.campaigns.service import costs
from connectzap.core.settings import PricingSettings
from connectzap.testing import FakeWhatsApp, run as run_workers
from test_campaign_interfaces import TEMPLATE, ready
from test_campaigns import NUMBERS, grant

SPAIN = "+34699123456"
PRICING = {"currency": "EUR", "rates": {"marketing": {"DE": "0.1365", "*": "0.05"}}}

CATEGORIES = st.sampled_from(["marketing", "utility", "authentication", None])
COUNTRIES = st.sampled_from(["DE", "ES", "BR", None])
PRICES = st.decimals(min_value=0, max_value=10, places=4, allow_nan=False, allow_infinity=False)


@given(rates=st.dictionaries(st.sampled_from(["marketing", "utility"]),
                             st.dictionaries(st.sampled_from(["DE", "ES", "*"]), PRICES, max_size=3), max_size=2),
       rows=st.lists(st.tuples(st.sampled_from(["delivered", "read", "failed"]), CATEGORIES, COUNTRIES,
                               st.integers(0, 10**6)), max_size=12))
def test_cost_is_count_times_the_rate_and_unpriced_messages_are_counted_apart(rates, rows) -> None:
    table = PricingSettings(rates=rates)
    total, by_outcome, unpriced = costs(rows, table)
    expected, missing = Decimal(0), 0
    for _outcome, category, country, count in rows:
        by_market = rates.get(category or "", {})
        price = by_market.get(country) if country in by_market else by_market.get("*")
        if price is None:
            missing += count
        else:
            expected += price * count
    assert (total, unpriced) == (expected, missing)
    assert sum(by_outcome.values(), Decimal(0)) == total  # every priced message in exactly one outcome
    assert all(v >= 0 for v in by_outcome.values())


def test_the_price_table_is_checked_at_start():
    for wrong in ({"marketing": {"Germany": 1}}, {"marketing": {"DE": -1}}, {"marketing": {"DE": "NaN"}}):
        with pytest.raises(ValidationError):
            PricingSettings(rates=wrong)
    with pytest.raises(ValidationError):
        PricingSettings(currency="euro")
    table = PricingSettings(rates={"marketing": {"DE": "0.1", "*": "0.2"}})
    assert (table.price("marketing", "DE"), table.price("marketing", "FR"), table.price("utility", "DE")) == (
        Decimal("0.1"), Decimal("0.2"), None)


def sent_campaign(make, name: str, numbers: list[str]) -> tuple[Any, FakeWhatsApp, Any]:
    """A campaign to ``numbers`` at the PRICING rates (SPAIN and NUMBERS[:2] consented), started and sent."""
    app = ready(make)
    app.settings.pricing = PricingSettings.model_validate(PRICING)
    fake = FakeWhatsApp()
    app.use_channel(fake)
    grant(app, SPAIN)
    made = app.campaigns.create(name, TEMPLATE)
    text = "phone,1,2\n" + "".join(f"{n},Eve,5%\n" for n in numbers)
    app.campaigns.load_audience(made.id, read_file(io.StringIO(text), "csv", app.secret))
    app.campaigns.control(made.id, "start")
    run_workers(app)
    return app, fake, made


def test_report_cost_by_outcome_replies_within_hours_and_csv(make, tmp_path: Path) -> None:
    app, fake, made = sent_campaign(make, "costs", [*NUMBERS[:3], SPAIN])  # NUMBERS[2]: no consent
    sent_at = time.time() - 7200  # two hours before the reply; delivered after 30 minutes, read after 90
    after = {"sent": 0, "delivered": 1800, "read": 5400}
    billable = {"category": "marketing", "type": "regular", "billable": True, "pricing_model": "PMP"}
    events = []
    for attempt in fake.attempts:
        to = "+" + attempt.body["to"]
        steps = [("sent", None), ("delivered", billable)] + ([("read", None)] if to != SPAIN else [])
        for status, pricing in steps:
            events.append(Event.of(EventKind.MESSAGE_STATUS, MessageStatus(
                wamid=attempt.wamid, status=status, timestamp=datetime.fromtimestamp(sent_at + after[status], UTC),
                outbox_id=attempt.outbox_id, recipient=to,
                pricing=pricing), source="whatsapp", dedupe_key=f"{attempt.wamid}:{status}"))
    events.append(Event.of(EventKind.INBOUND_MESSAGE, InboundMessage(
        wamid="wamid.reply", type="text", timestamp=datetime.now(UTC), contact={"phone": NUMBERS[0]}, text="more"),
        source="whatsapp", dedupe_key="wamid.reply"))
    app.ingest(events)
    run_workers(app)
    report = app.campaigns.report(made.id, within_hours=3)
    assert report.outcomes == {"refused": 1, "delivered": 1, "read": 1, "replied": 1}
    assert (report.currency, report.billable_messages, report.unpriced_billable) == ("EUR", 3, 0)
    assert Decimal(report.cost) == Decimal("0.1365") * 2 + Decimal("0.05")
    assert {k: Decimal(v) for k, v in report.cost_by_outcome.items()} == {
        "replied": Decimal("0.1365"), "read": Decimal("0.1365"), "delivered": Decimal("0.05")}
    assert (report.delivered_within, report.read_within, report.replied_within) == (3, 2, 1)
    assert (report.read_within_rate, report.replied_within_rate) == (0.6667, 0.3333)
    early = app.campaigns.report(made.id, within_hours=1)  # delivered in time; read and the reply were later
    assert (early.delivered_within, early.read_within, early.replied_within) == (3, 0, 0)

    config = tmp_path / "cli.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.settings.database_url}"\n'
                      '[pricing]\ncurrency = "EUR"\n[pricing.rates.marketing]\nDE = 0.1365\n"*" = 0.05\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "campaigns", "report", "costs", "--csv",
                                      "--within", "3"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    by = {(r["kind"], r["key"]): r for r in rows}
    assert Decimal(by[("total", "")]["cost"]) == Decimal("0.3230") and by[("total", "")]["currency"] == "EUR"
    assert by[("outcome", "delivered")]["cost"] == "0.05" and by[("outcome", "refused")]["cost"] == "0"
    assert by[("rate", "replied_within_3h")]["count"] == "1" and by[("rate", "read_within_3h")]["rate"] == "0.6667"
    shown = json.loads(CliRunner().invoke(cli, ["--config", str(config), "campaigns", "report", "costs",
                                                "--json"]).output)
    assert shown["cost"] == report.cost and shown["within_hours"] == 24

    async def over_rest() -> None:
        async with serving(app) as client:
            answer = await client.get(f"/v1/campaigns/{made.id}/report.csv?within_hours=1", headers=AUTH)
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
            got = {(r["kind"], r["key"]): r for r in csv.DictReader(io.StringIO(answer.text))}
            assert got[("rate", "delivered_within_1h")]["count"] == "3" and got[("total", "")]["cost"] == report.cost
            body = (await client.get(f"/v1/campaigns/{made.id}/report?within_hours=3", headers=AUTH)).json()
            assert body["replied_within"] == 1 and body["cost_by_outcome"] == report.cost_by_outcome

    asyncio.run(over_rest())

    async def on_the_console() -> None:
        app.operators.add_user(USER, hash_password(PASSWORD))
        async with console(app) as client:
            await log_in(client)
            page = (await client.get(f"/console/campaigns/{made.id}")).text
            assert 'id="cost-delivered">0.05<' in page and 'id="cost-read">0.1365<' in page
            assert "0.3230 EUR for 3 billable messages" in page
            assert "delivered 100.0%, read 66.7%, replied 33.3%" in page
            exported = await client.get(f"/console/campaigns/{made.id}/report.csv")
            assert exported.status_code == 200 and exported.text == report_csv(app.campaigns.report(made.id))

    asyncio.run(on_the_console())


def test_one_billable_message_on_the_console_is_one(make) -> None:
    """The campaign page said "for 1 billable messages"."""
    app, fake, made = sent_campaign(make, "one", [SPAIN])
    [attempt] = fake.attempts
    billable = {"category": "marketing", "type": "regular", "billable": True, "pricing_model": "PMP"}
    app.ingest([Event.of(EventKind.MESSAGE_STATUS, MessageStatus(
        wamid=attempt.wamid, status="delivered", timestamp=datetime.now(UTC), outbox_id=attempt.outbox_id,
        recipient=SPAIN, pricing=billable), source="whatsapp", dedupe_key=f"{attempt.wamid}:delivered")])
    run_workers(app)
    assert app.campaigns.report(made.id).billable_messages == 1

    async def on_the_console() -> str:
        app.operators.add_user(USER, hash_password(PASSWORD))
        async with console(app) as client:
            await log_in(client)
            return (await client.get(f"/console/campaigns/{made.id}")).text

    assert "0.05 EUR for 1 billable message<" in asyncio.run(on_the_console())
