"""Every create loads the audience before the campaign exists -- POST /v1/campaigns, `connectzap
campaigns create` (a file or --from a source) and the console's create from a source: a refused,
failed or interrupted create leaves no campaign and no recipient rows, where the CLI and the
console used to create a draft first and delete it afterwards (a kill between the two left an
empty draft, and a failed load showed a campaign that then disappeared)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from console_support import PASSWORD, USER, csrf_of, log_in
from server_support import AUTH, serving
from sqlalchemy import func, select
from test_campaign_hubspot_audience import cli_config, contacts_in
from test_campaign_hubspot_audience import engine as hubspot_engine
from test_console_routes import console
from test_woocommerce_webhooks import shop_config

from connectzap.cli import cli
from connectzap.connectors.hubspot import audience as list_audience
from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.connectors.woocommerce.audience import ShopAudience
from connectzap.console.passwords import hash_password
from connectzap.core.campaigns import Campaigns, service
from connectzap.core.campaigns.engine import staging_id
from connectzap.core.campaigns.service import ABANDONED_AFTER, Draft, new_campaign_id
from connectzap.core.errors import RetriableDeliveryError
from connectzap.core.store.schema import campaign_recipients, campaigns
from connectzap.testing import seed_template
from test_campaign_interfaces import TEMPLATE, cli_files, ready
from test_campaigns import NUMBERS

AUDIENCE = [{"phone": n, "params": ["Ana", "5%"]} for n in NUMBERS[:3]]


def rows(app: Any) -> tuple[int, int]:
    """Committed campaigns and recipient rows (staged ones included)."""
    with app.db.read() as conn:
        return (conn.execute(select(func.count()).select_from(campaigns)).scalar_one(),
                conn.execute(select(func.count()).select_from(campaign_recipients)).scalar_one())


def post(app: Any, body: dict[str, Any]) -> Any:
    async def call() -> Any:
        async with serving(app) as client:
            return await client.post("/v1/campaigns", headers=AUTH, json=body)
    return asyncio.run(call())


def test_a_refused_create_leaves_no_campaign_and_no_recipients(make) -> None:
    app = ready(make)
    refused = post(app, {"name": "spring", "template": TEMPLATE,
                         "audience": [*AUDIENCE, {"phone": "12", "params": ["x", "y"]}]})
    assert (refused.status_code, refused.json()["error"]) == (422, "invalid_lines")
    assert rows(app) == (0, 0)
    made = post(app, {"name": "spring", "template": TEMPLATE, "audience": AUDIENCE})
    assert made.status_code == 201, made.text
    assert (made.json()["campaign"]["recipients"], rows(app)) == (3, (1, 3))


def test_a_create_interrupted_while_loading_its_audience_has_written_no_campaign(make, monkeypatch) -> None:
    """A process killed while the audience loads keeps what was committed then: no draft may be."""
    app = ready(make)
    seen: list[tuple[int, int]] = []

    def killed(self: Campaigns, *args: Any) -> None:
        seen.append(rows(app))
        raise RuntimeError("killed")

    monkeypatch.setattr(Campaigns, "_add", killed)
    with pytest.raises(RuntimeError, match="killed"):
        post(app, {"name": "spring", "template": TEMPLATE, "audience": AUDIENCE})
    assert seen == [(0, 0)]  # the old create had written its draft here: (1, 0)
    assert rows(app) == (0, 0)


def test_a_create_erases_what_creates_killed_mid_load_left_staged(make) -> None:
    """A kill mid-load leaves the rows written so far staged under the new campaign's id, which no
    campaign has: the next create erases them once no load could still be running."""
    app = ready(make)
    long_ago = time.time() - ABANDONED_AFTER - 60
    old_draft = app.campaigns.draft("old", TEMPLATE)
    kept_campaign = new_campaign_id(long_ago)  # an old campaign whose replacement audience is staged
    app.campaigns.save(Draft({**old_draft.values, "id": kept_campaign}))
    abandoned, loading = (staging_id(new_campaign_id(at)) for at in (long_ago, time.time()))
    with app.db.begin() as conn:
        conn.execute(campaign_recipients.insert(), [
            dict(campaign_id=target, contact_key=f"k{i}", line=1, recipient=NUMBERS[0], masked="+1***",
                 outcome="pending", due_at=0.0, updated_at=long_ago)
            for i, target in enumerate((abandoned, loading, staging_id(kept_campaign)))])
    assert post(app, {"name": "spring", "template": TEMPLATE, "audience": AUDIENCE}).status_code == 201
    with app.db.read() as conn:
        staged = set(conn.execute(select(campaign_recipients.c.campaign_id)
                                  .where(campaign_recipients.c.campaign_id.like("~%"))).scalars())
    assert staged == {loading, staging_id(kept_campaign)}


@pytest.fixture
def hubspot() -> Any:
    with FakeHubSpot() as server:
        yield server


def staged(app: Any) -> int:
    """Recipient rows written aside for a campaign being created (under its staging id)."""
    with app.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(campaign_recipients)
                                .where(campaign_recipients.c.campaign_id.like(staging_id("") + "%"))).scalar_one())


def test_cli_create_from_a_file_writes_no_campaign_until_its_audience_is_loaded(make, tmp_path: Path,
                                                                                 monkeypatch) -> None:
    """`campaigns create --audience FILE` created the draft, loaded the file into it and deleted it
    when the load failed: a kill mid-load kept an empty draft, and a failure showed one meanwhile."""
    app = ready(make)
    config, audience = cli_files(app, tmp_path, NUMBERS[:3])
    monkeypatch.setattr(service, "AUDIENCE_BATCH", 1)
    seen: list[tuple[int, int]] = []
    add = Campaigns._add

    def failing(self: Campaigns, *args: Any) -> None:  # the file's second batch: the process dies
        seen.append(rows(app))
        if len(seen) == 2:
            raise RuntimeError("killed")
        add(self, *args)

    monkeypatch.setattr(Campaigns, "_add", failing)
    failed = CliRunner().invoke(cli, ["--config", str(config), "campaigns", "create", "autumn", "--template",
                                      "spring_sale", "--audience", str(audience)])
    assert failed.exit_code != 0 and "killed" in failed.output, failed.output
    assert seen == [(0, 0), (0, 1)]  # the old create had its draft here: (1, 0), (1, 1)
    assert rows(app) == (0, 0)
    monkeypatch.setattr(Campaigns, "_add", add)
    made = CliRunner().invoke(cli, ["--config", str(config), "campaigns", "create", "autumn", "--template",
                                    "spring_sale", "--audience", str(audience)])
    assert made.exit_code == 0, made.output
    assert "audience: 3 recipients" in made.output and rows(app) == (1, 3)


def failing_after_the_first_page(fake: FakeHubSpot, app: Any, monkeypatch: pytest.MonkeyPatch
                                 ) -> list[tuple[int, int]]:
    """Every contacts read after the list's first page refused (403: a scope taken away while the
    list is read); each refusal notes what the database held then."""
    seen: list[tuple[int, int]] = []
    reads: list[int] = []
    original = fake.handle

    def handle(method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any, dict[str, str]]:
        if path.endswith("/batch/read"):
            reads.append(1)
            if len(reads) > 1:
                seen.append(rows(app))
                return 403, {"status": "error", "category": "MISSING_SCOPES", "message": "scope missing"}, {}
        return original(method, path, query, body)

    monkeypatch.setattr(fake, "handle", handle)
    return seen


def test_cli_create_from_a_list_failing_mid_stream_leaves_nothing(make, hubspot: FakeHubSpot, tmp_path: Path,
                                                                   monkeypatch) -> None:
    """`campaigns create --from hubspot-list:ID` whose list fails after its first page: the error as
    before, and no campaign, neither meanwhile nor after (the old create showed a draft while the
    list was read and deleted it afterwards)."""
    contacts_in(hubspot)
    monkeypatch.setattr(list_audience, "MEMBERSHIP_PAGE", 2)
    monkeypatch.setattr(service, "AUDIENCE_BATCH", 1)
    app = hubspot_engine(make, hubspot)
    config = cli_config(app, hubspot, tmp_path)
    seen = failing_after_the_first_page(hubspot, app, monkeypatch)
    failed = CliRunner().invoke(cli, ["--config", str(config), "campaigns", "create", "winter", "--template",
                                      "winter_news", "--from", "hubspot-list:77"])
    assert failed.exit_code == 1, failed.output
    assert failed.stderr.splitlines()[-1].startswith("error: HubSpot read contacts failed (403 MISSING_SCOPES)")
    assert seen and set(seen) == {(0, 2)}  # the first page's two contacts written aside; the old create: (1, 2)
    assert rows(app) == (0, 0)


ORDERS = [{"id": 3000 + n, "number": str(3000 + n), "customer_id": 40 + n, "total": "60.00",
           "billing": {"phone": f"+49151123456{n:02d}", "first_name": f"Reader {n}", "country": "DE"}}
          for n in range(3)]


@pytest.mark.parametrize("error", [RetriableDeliveryError("shop main: orders answered HTTP 503"),
                                   ConnectionError("connection reset by the shop")])
async def test_console_create_from_a_shop_failing_mid_stream_leaves_nothing(make, monkeypatch,
                                                                           error: Exception) -> None:
    """The console's create from a WooCommerce filter whose second page of orders fails: the page
    names the error as before and no campaign is there, meanwhile or after. The old create showed a
    draft while the orders were read, and kept it empty when the error was not the connector's own
    (a dropped connection)."""
    app = make(console={"enabled": True}, connectors={"woocommerce": {"shops": {"main": shop_config()}}})
    app.operators.add_user(USER, hash_password(PASSWORD))
    seed_template(app, "winter_news", "Hi {{first_name}}, the winter collection is in", category="MARKETING",
                  parameter_format="NAMED")
    monkeypatch.setattr(service, "AUDIENCE_BATCH", 1)
    seen: list[tuple[int, int]] = []

    def pages(self: ShopAudience) -> Any:
        yield ORDERS
        seen.append(rows(app))
        raise error

    monkeypatch.setattr(ShopAudience, "_pages", pages)
    async with console(app) as client:
        await log_in(client)
        page = await client.get("/console/campaigns")
        form = {"csrf": csrf_of(page.text), "name": "winter", "template": "winter_news|en",
                "source": "woocommerce:min_total=50", "params_from": "first_name=first_name"}
        try:
            answer = await client.post("/console/campaigns", data=form, files={"audience": ("", b"", "text/csv")})
        except ConnectionError:  # not the connector's own error: the console's 500, as before
            assert isinstance(error, ConnectionError)
        else:
            assert answer.status_code == 400, answer.text
            assert "woocommerce:min_total=50: shop main: orders answered HTTP 503" in answer.text
    assert seen == [(0, 3)]  # the first page's customers written aside; the old create: (1, 3)
    assert rows(app) == (0, 0)
    assert app.campaigns.listing() == []
