"""Reconcile: WooCommerce never retries a webhook, so missed order changes are fetched
(``modified_after``, every page) and fed through the same path -- once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from connectzap.cli import cli
from connectzap.core.hooks import register_commands
from connectzap.core.worker import Worker
from connectzap.connectors.woocommerce import reconcile_forever
from connectzap.connectors.woocommerce.reconcile import last_seen, reconcile_all
from test_order_notifications import RULES, deliver, seed, templates_sent
from test_woocommerce_notes import wc_vcr
from test_woocommerce_webhooks import SECRET, shop_config

SINCE = datetime(2026, 3, 1, tzinfo=UTC)


def config(**connector):
    return {"shops": {"main": shop_config(reconcile_page_size=2)}, **connector}


@pytest.fixture
def shop_app(make):
    app = make(connectors={"woocommerce": config()}, plugins={"order_notifications": RULES})
    seed(app)
    return app


async def test_reconcile_picks_up_a_missed_status_change_once(shop_app):
    await deliver(shop_app, "order_created_classic.json", topic="order.created", delivery="d1")
    with wc_vcr.use_cassette("orders_modified_two_pages.yaml", allow_playback_repeats=True) as cassette:
        [result] = await asyncio.to_thread(reconcile_all, shop_app, "main", SINCE)
        assert (result.fetched, result.journaled) == (3, 3)
        assert result.last_seen == datetime(2026, 3, 8, 12, tzinfo=UTC) == last_seen(shop_app, "main")
        await Worker(shop_app).run_until_idle()
        # the same window again: every change is already journaled
        [again] = await asyncio.to_thread(reconcile_all, shop_app, "main", SINCE)
        assert (again.fetched, again.journaled) == (3, 0)
        # by default the next run starts a minute before the last change seen
        [following] = await asyncio.to_thread(reconcile_all, shop_app, "main")
        assert following.since == datetime(2026, 3, 8, 11, 59, tzinfo=UTC) and following.fetched == 0
        assert cassette.play_count == 5
    # the webhook for the completed change finally arrives: the customer was already told
    await deliver(shop_app, "order_updated_completed.json", delivery="late")
    sent = [(t["name"], t["language"]["code"]) for t in templates_sent(shop_app)]
    # 1042: confirmation (webhook) + shipped (reconcile); 1043: confirmation; 1045: Ana again, whose
    # opt-in from order 1042 is on record, so its unticked box does not matter
    assert sorted(sent) == [("order_confirmation", "en"), ("order_confirmation", "es"), ("order_shipped", "en"),
                            ("order_shipped", "en")]
    assert [m["status"] for m in shop_app.messages()].count("refused") == 0


@pytest.mark.slow
def test_cli_reconcile_reports_per_shop(tmp_path, backend):
    if backend != "sqlite":
        pytest.skip("one backend is enough for the command's wiring")
    register_commands(cli)
    toml = tmp_path / "cz.toml"
    toml.write_text(f'''data_dir = "{tmp_path / 'data'}"
[sandbox]
quiet = true
[connectors.woocommerce.shops.main]
url = "https://shop.example.com"
webhook_secrets = ["{SECRET}"]
consumer_key = "ck_test"
consumer_secret = "cs_test"
reconcile_page_size = 2
''')
    runner = CliRunner()
    with wc_vcr.use_cassette("orders_modified_two_pages.yaml"):
        result = runner.invoke(cli, ["--config", str(toml), "woocommerce", "reconcile", "--shop", "main",
                                     "--since", "2026-03-01", "--no-wait"])
    assert result.exit_code == 0, result.output
    assert "main: 3 orders modified since 2026-03-01 00:00:00Z, 3 new changes; last seen 2026-03-08T12:00:00" \
        in result.output
    with wc_vcr.use_cassette("orders_unauthorized.yaml"):
        failed = runner.invoke(cli, ["--config", str(toml), "woocommerce", "reconcile", "--since", "2026-03-01"])
    assert failed.exit_code == 1 and "HTTP 401" in failed.output and "Traceback" not in failed.output
    assert "ck_test" not in failed.output and "cs_test" not in failed.output
    unknown = runner.invoke(cli, ["--config", str(toml), "woocommerce", "reconcile", "--shop", "nope"])
    assert unknown.exit_code == 1 and "no shop 'nope'" in unknown.output


async def test_reconcile_forever_runs_rounds_until_stopped(make):
    app = make(connectors={"woocommerce": config(reconcile_interval_minutes=60, reconcile_first_lookback_hours=24)})
    # seed "last seen" so the first round asks for the cassette's second window
    from connectzap.connectors.woocommerce.reconcile import _save_last_seen
    _save_last_seen(app, "main", datetime(2026, 3, 8, 12, tzinfo=UTC))
    assert await first_round_plays(lambda stop: reconcile_forever(app, stop)) == 1


async def first_round_plays(start) -> int:  # type: ignore[no-untyped-def]
    """Start ``start(stop)``, wait for its first reconcile round (not for a duration), stop it, and
    return how many recorded requests were played."""
    stop = asyncio.Event()
    with wc_vcr.use_cassette("orders_modified_two_pages.yaml") as cassette:
        task = asyncio.create_task(start(stop))
        for _ in range(200):
            if cassette.play_count:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 10)
        return int(cassette.play_count)


async def test_reconcile_forever_is_off_without_an_interval(make):
    """Off (no interval, or no WooCommerce connector): it returns before waiting for anything --
    not for ``stop``, which is never set, nor for a shop -- and asks no shop, records nothing."""
    app = make(connectors={"woocommerce": config()})
    plain = make("plain")
    for engine in (app, plain):
        journal_before = len(engine.events())
        with wc_vcr.use_cassette("orders_modified_two_pages.yaml") as cassette:
            loop = reconcile_forever(engine, asyncio.Event())
            # One step of the coroutine, by hand: it must finish in it. An enabled loop suspends
            # (its first round runs in a thread), and this step would return instead of raising.
            with pytest.raises(StopIteration):
                loop.send(None)
            assert cassette.play_count == 0
        assert len(engine.events()) == journal_before
    assert last_seen(app, "main") is None


async def test_worker_runs_the_periodic_reconcile_as_connector_background_work(make):
    """`serve` and `connectzap worker` run Worker.run, which starts each connector's background work."""
    from connectzap.connectors.woocommerce.reconcile import _save_last_seen
    from connectzap.core.worker import Worker
    app = make(connectors={"woocommerce": config(reconcile_interval_minutes=60, reconcile_first_lookback_hours=24)})
    _save_last_seen(app, "main", datetime(2026, 3, 8, 12, tzinfo=UTC))
    assert await first_round_plays(Worker(app).run) == 1
