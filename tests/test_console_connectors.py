"""The console's connectors page: each connector's state, last event and webhook URLs, and its
declared operator actions -- WooCommerce's "Run reconcile now" does what ``connectzap woocommerce
reconcile`` does (the same recorded shop), needs the form's CSRF token and is audited."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from console_support import ANA, PLUGINS, csrf_of, log_in, tell_story
from server_support import KEY
from test_console_routes import console, digits
from test_woocommerce_notes import wc_vcr
from test_woocommerce_webhooks import SECRET, shop_config

from connectzap.connectors.woocommerce.reconcile import _save_last_seen, last_seen
from connectzap.core.errors import ConnectzapError

# one minute after the recorded window's start: the next run asks for the cassette's first pages
SEEN = datetime(2026, 3, 1, 0, 1, tzinfo=UTC)


def woocommerce(**overrides):
    return {"woocommerce": {"shops": {"main": shop_config(reconcile_page_size=2, **overrides)}}}


@pytest.fixture
def shop(make):
    app = make(api={"keys": [KEY]}, plugins=PLUGINS, console={"enabled": True}, connectors=woocommerce())
    tell_story(app, pause=False)
    _save_last_seen(app, "main", SEEN)
    return app


def woocommerce_events(app) -> list[str]:
    return [e.dedupe_key for e in app.events(source="woocommerce", limit=100)]


async def test_the_page_needs_a_login_and_shows_state_last_event_and_webhook_url(shop):
    async with console(shop) as client:
        assert (await client.get("/console/connectors")).status_code == 303
        await log_in(client)
        page = await client.get("/console/connectors")
    assert page.status_code == 200 and 'aria-current="page">Connectors' in page.text
    section = page.text.split('data-connector="woocommerce"')[1].split("</section>")[0]
    assert '<dd class="ok" data-state>ok</dd>' in section
    newest = shop.events(source="woocommerce", limit=1)[0].received_at
    assert f"{newest:%Y-%m-%d %H:%M:%S} UTC" in section
    assert "<code>https://testserver/webhooks/woocommerce</code>" in section
    assert "<code>https://testserver/webhooks/woocommerce/{shop}</code>" in section
    assert "Run reconcile now" in section
    for secret in (SECRET, "ck_test", "cs_test", KEY, shop.secret.hex()):
        assert secret not in page.text
    assert digits(ANA) not in digits(page.text)


@pytest.fixture
def keyless(make):
    """A shop without REST keys, its webhook URLs published under a configured address."""
    app = make(console={"enabled": True, "public_url": "https://hooks.example.org/"},
               connectors=woocommerce(consumer_key=None, consumer_secret=None))
    tell_story(app, pause=False)
    return app


async def test_a_configured_public_url_and_a_connector_in_trouble(keyless, monkeypatch):
    app = keyless

    def refused() -> list[tuple[str, str]]:
        raise ConnectzapError("the shop refused the REST keys (401)")

    monkeypatch.setattr(app.connectors["woocommerce"], "status_lines", refused)
    async with console(app) as client:
        await log_in(client)
        page = await client.get("/console/connectors")
    assert "<code>https://hooks.example.org/webhooks/woocommerce</code>" in page.text
    assert "error: its status cannot be read: the shop refused the REST keys (401)" in page.text
    assert "Run reconcile now" not in page.text  # without REST keys there is nothing to reconcile with


async def test_run_reconcile_needs_csrf_and_does_what_the_cli_does(shop):
    before = woocommerce_events(shop)
    async with console(shop) as client:
        await log_in(client)
        page = await client.get("/console/connectors")
        with wc_vcr.use_cassette("orders_modified_two_pages.yaml", ignore_hosts=["testserver"]) as cassette:
            forged = await client.post("/console/connectors/woocommerce/run",
                                       data={"csrf": "0" * 64, "action": "reconcile"})
            assert forged.status_code == 403 and cassette.play_count == 0
            unknown = await client.post("/console/connectors/woocommerce/run",
                                        data={"csrf": csrf_of(page.text), "action": "drop_tables"})
            assert "offers no action" in (await client.get(unknown.headers["location"])).text
            assert cassette.play_count == 0
            done = await client.post("/console/connectors/woocommerce/run",
                                     data={"csrf": csrf_of(page.text), "action": "reconcile"})
            assert done.status_code == 303 and cassette.play_count == 2
        shown = await client.get(done.headers["location"])
    said = "main: 3 orders modified since 2026-03-01 00:00:00Z, 3 new changes; last seen 2026-03-08T12:00:00Z"
    assert said in shown.text
    # what reconcile_all journals: the three missed changes, under reconcile's dedupe keys
    added = [key for key in woocommerce_events(shop) if key not in before]
    assert len(added) == 3 and all(key.startswith("reconcile:main:") for key in added)
    assert last_seen(shop, "main") == datetime(2026, 3, 8, 12, tzinfo=UTC)
    [audited] = [a for a in shop.operators.audit_log() if a["action"] == "connector_reconcile"]
    assert (audited["target"], audited["detail"]) == ("woocommerce", said)


@pytest.mark.parametrize(("failed", "said"), [(1, "1 delivery to it failed"), (2, "2 deliveries to it failed")])
def test_dead_deliveries_to_a_connector_agree_in_number(shop, failed, said):
    """It said "1 deliveries to it failed every attempt"."""
    from connectzap.console.connector_pages import view_of
    view = view_of(shop, shop.connectors["woocommerce"], "http://console.test", {"connector:woocommerce": failed})
    assert f"{said} every attempt (see Dead letters)" in (view.problem or "")
