"""Campaign audiences from a shop's customers by their orders, and the outcomes written back as
customer (or guest order) meta data: against cassettes built from WooCommerce's REST reference."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from test_woocommerce_notes import wc_vcr
from test_woocommerce_webhooks import shop_config

from connectzap.cli import cli
from connectzap.connectors.woocommerce import audience as shop_audience
from connectzap.core.errors import FatalDeliveryError, PayloadError
from connectzap.core.models import CampaignFinished
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

TEMPLATE = {"name": "winter_news", "language": "en"}
FILTER = {"since": "2026-11-01", "min_total": "50"}


@pytest.fixture
def shop_app(make):
    app = make(connectors={"woocommerce": {"shops": {"main": shop_config()}}})
    seed_template(app, "winter_news", "Hi {{first_name}}, the winter collection is in", category="MARKETING",
                  parameter_format="NAMED")
    return app


def load(app, options=None):
    opened = app.campaigns.open_source("woocommerce", options or FILTER, {"first_name": "first_name"})
    made = app.campaigns.create("winter", TEMPLATE)
    return made.id, app.campaigns.load_source(made.id, opened)


def test_customers_by_order_history_once_each(shop_app) -> None:
    with wc_vcr.use_cassette("orders_audience_two_pages.yaml") as cassette:
        campaign, result = load(shop_app)
    assert cassette.all_played
    # Ben (guest, 80.00) at once; Ana when her second order brings her to 55.00; Cleo reaches 60.00 but
    # has no number; Dana stays at 10.00; customer 28 shares Ben's number (written nationally) -> one
    assert (result.added, result.duplicates, dict(result.skipped)) == (2, 1, {"no phone number": 1})
    assert [ref for _l, ref, _o, _r in shop_app.campaigns.source_outcomes(campaign)] == [
        "main:order:2002", "main:customer:25"]
    assert [r["phone"] for r in shop_app.campaigns.results(campaign)] == ["+49*********02", "+49*********01"]


def test_refused_keys_create_nothing(shop_app) -> None:
    with wc_vcr.use_cassette("orders_audience_unauthorized.yaml"), pytest.raises(FatalDeliveryError,
                                                                                match="REST API keys"):
        load(shop_app)
    assert shop_app.campaigns.listing() == []


@pytest.mark.parametrize(("options", "problem"), [
    ({"days": "thirty"}, "days must be a number"), ({"min_total": "-5"}, "must not be negative"),
    ({"status": "shipped"}, "unknown order status"), ({"shop": "outlet"}, "name the shop"),
    ({"days": "3", "since": "2026-11-01"}, "days or since"), ({"colour": "red"}, "unknown option")])
def test_bad_filters_are_named(shop_app, options, problem) -> None:
    with pytest.raises(PayloadError, match=problem):
        load(shop_app, options)
    assert shop_app.campaigns.listing() == []


def test_days_status_and_shop_make_the_shops_own_filter() -> None:
    at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    found = shop_audience.filter_of({"days": "30", "status": "completed|on-hold", "min_total": 100}, ["main"],
                                    "main", now=lambda: at)
    assert (found.since, found.statuses, found.min_total) == (datetime(2026, 11, 2, 12, 0, tzinfo=UTC),
                                                               ("completed", "on-hold"), 100.0)
    assert shop_audience.filter_of({"status": ["refunded"], "shop": "b"}, ["a", "b"], None).shop == "b"


orders = st.lists(st.tuples(st.integers(0, 6), st.decimals(0, 200, places=2), st.integers(0, 3)), max_size=40)


@given(orders, st.integers(0, 150))
def test_each_customer_once_exactly_when_their_total_reaches_the_threshold(placed, threshold) -> None:
    """Both sides: nobody below the threshold is yielded, everybody at or above it is, once."""
    # order ids are unique across the shop, as WooCommerce's are (a guest's reference is their order's id)
    pages = [[{"id": n + i, "customer_id": c, "total": str(t), "billing": {"phone": f"+49151123456{c}{g}"}}
              for i, (c, t, g) in enumerate(placed[n:n + 7])] for n in range(0, len(placed), 7)]

    class Pages:
        def pages(self, endpoint, **params):
            return iter(pages)

    found = shop_audience.Filter("main", None, float(threshold), ("completed",))
    reader = shop_audience.ShopAudience(Pages(), found)  # type: ignore[arg-type]

    async def read() -> list:
        return [m async for m in reader.members(("total_spent",))]

    members = asyncio.run(read())
    totals: dict[str, float] = {}
    for customer, total, guest in placed:
        key = f"c{customer}" if customer else f"g{guest}"
        totals[key] = totals.get(key, 0.0) + float(total)
    reached = {k for k, t in totals.items() if t + 1e-9 >= threshold}
    refs = [m.ref for m in members]
    assert len(refs) == len(set(refs)) == len(reached)
    assert all(float(m.fields.get("total_spent", "0")) + 1e-9 >= threshold for m in members)


def test_outcomes_written_back_once_across_a_replay(shop_app) -> None:
    with wc_vcr.use_cassette("orders_audience_two_pages.yaml"):
        campaign, _ = load(shop_app)
    shop_app.campaigns.start(campaign)
    with wc_vcr.use_cassette("campaign_outcomes_batch.yaml") as cassette:
        asyncio.run(Worker(shop_app).run_until_idle())
    assert shop_app.campaigns.get(campaign).state == "finished"
    assert cassette.all_played and cassette.play_count == 2

    from connectzap.core.context import EventContext
    ended = CampaignFinished(id=campaign, name="winter", state="finished", template="winter_news", language="en",
                             ended_at=datetime.now(UTC), recipients=2, audience_source="woocommerce")
    ctx = EventContext(shop_app, event_id=99, source="campaigns", dedupe_key="replay",
                       received_at=datetime.now(UTC), plugin="connector:woocommerce")
    with wc_vcr.use_cassette("campaign_outcomes_batch.yaml") as again:
        asyncio.run(shop_app.connectors["woocommerce"].sync_campaign_finished(ended, ctx))
    assert again.play_count == 0  # a replayed hook writes nothing
    rehearsed = shop_app.connectors["woocommerce"].rehearse("connector:woocommerce", "campaign_finished", ended, ctx)
    assert asyncio.run(rehearsed) == []  # nothing left to write


def test_a_simulation_shows_the_batch_updates_and_sends_nothing(shop_app) -> None:
    from connectzap.core.context import EventContext
    with wc_vcr.use_cassette("orders_audience_two_pages.yaml"):
        campaign, _ = load(shop_app)
    ended = CampaignFinished(id=campaign, name="winter", state="cancelled", template="winter_news", language="en",
                             ended_at=datetime.now(UTC), recipients=2, audience_source="woocommerce")
    ctx = EventContext(shop_app, event_id=98, source="campaigns", dedupe_key="simulate",
                       received_at=datetime.now(UTC), plugin="connector:woocommerce")
    calls = asyncio.run(shop_app.connectors["woocommerce"].rehearse("connector:woocommerce", "campaign_finished",
                                                                    ended, ctx))
    assert [(c.url, [u["id"] for u in c.body["update"]]) for c in calls] == [
        ("https://shop.example.com/wp-json/wc/v3/orders/batch", [2002]),
        ("https://shop.example.com/wp-json/wc/v3/customers/batch", [25])]
    assert calls[1].body["update"][0]["meta_data"][1] == {"key": "connectzap_last_campaign_outcome",
                                                          "value": "pending"}


def cli_config(app, folder: Path) -> Path:
    """A config for the CLI on the engine's folder and database, with the cassettes' shop."""
    config = folder / "cli.toml"
    settings = app.settings
    config.write_text(f'data_dir = "{settings.data_dir}"\n[database]\nurl = "{settings.database_url}"\n'
                      '[connectors.woocommerce.shops.main]\nurl = "https://shop.example.com"\n'
                      'webhook_secrets = ["s3cr3t-for-the-cli-0001"]\nconsumer_key = "ck_test"\n'
                      'consumer_secret = "cs_test"\n')
    return config


def test_cli_create_from_the_shop(shop_app, tmp_path: Path) -> None:
    config = cli_config(shop_app, tmp_path)
    with wc_vcr.use_cassette("orders_audience_two_pages.yaml"):
        made = CliRunner().invoke(cli, ["--config", str(config), "campaigns", "create", "winter", "--template",
                                        "winter_news", "--from", "woocommerce:since=2026-11-01,min_total=50",
                                        "--param-from", "first_name=first_name"])
    assert made.exit_code == 0, made.output
    assert "audience from woocommerce:since=2026-11-01,min_total=50: 2 recipients, 1 duplicate of an earlier " \
           "record" in made.output
    assert ", 1 record skipped (no phone number 1)" in made.output


def test_cli_a_selection_of_nobody_is_refused_and_the_audience_kept(shop_app, tmp_path: Path) -> None:
    """`campaigns audience NAME --from woocommerce:...` that no customer meets replaced the audience
    with nobody (0 recipients, exit 0)."""
    config = cli_config(shop_app, tmp_path)
    with wc_vcr.use_cassette("orders_audience_two_pages.yaml"):
        campaign, _ = load(shop_app)
    nobody = "woocommerce:since=2026-11-01,min_total=100000"
    with wc_vcr.use_cassette("orders_audience_two_pages.yaml"):
        refused = CliRunner().invoke(cli, ["--config", str(config), "campaigns", "audience", "winter",
                                           "--from", nobody])
    assert refused.exit_code == 1, refused.output
    assert refused.stderr.splitlines()[-1] == f"error: {nobody}: no recipients -- the previous audience " \
                                              "(2 recipients) is kept"
    assert [r["phone"] for r in shop_app.campaigns.results(campaign)] == ["+49*********02", "+49*********01"]
