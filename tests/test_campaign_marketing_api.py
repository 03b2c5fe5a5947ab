"""A campaign's own choice of the Marketing Messages API (``marketing_api``: account, use, avoid):
the route its marketing template takes against the local Graph stand-in
(connectzap.testing.fake_graph, as tests/test_marketing_messages.py), the refusal of ``use`` where
the number's account has no such API, and the choice as ``campaign status`` and the REST API show it."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from test_marketing_messages import PROMO
from test_whatsapp_client import NUMBER, PHONE, fake, live, meta_settings, out

from connectzap import Category, ConsentChange
from connectzap.connectors.whatsapp.channel import route
from connectzap.core.campaigns import Action, read_file
from connectzap.core.campaigns import marketing_api as mm_api
from connectzap.core.errors import PayloadError
from connectzap.core.store.schema import campaigns
from connectzap.testing import run, seed_template

__all__ = ["fake"]  # the fixture, imported for this module's tests


def sent_campaign(app: Any, choice: str | None) -> str:
    """A one-recipient campaign of a marketing template with ``choice``, run to the end; its id."""
    made = loaded_campaign(app, choice)
    app.campaigns.control(made, Action.START)
    run(app)
    return made


def routes(fake: Any) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in fake.requests if r.path.endswith(("/messages", "/marketing_messages"))]


@pytest.mark.parametrize(("account", "choice", "expected"), [
    (False, None, "messages"), (False, "account", "messages"), (True, "account", "marketing_messages"),
    (True, "avoid", "messages"), (False, "avoid", "messages"), (True, "use", "marketing_messages")])
def test_each_choice_takes_its_route(make, fake, account: bool, choice: str | None, expected: str) -> None:
    app = make(connectors=live(fake, marketing_messages_api=account))
    campaign_id = sent_campaign(app, choice)
    assert routes(fake) == [expected]
    view = app.campaigns.get(campaign_id)
    assert view.outcomes == {"sent": 1}
    assert view.marketing_api == (choice or "account")


def test_use_where_the_account_has_no_marketing_messages_api_is_refused_at_create(make, fake) -> None:
    app = make(connectors=live(fake, marketing_messages_api=False))
    seed_template(app, "spring_sale", "Spring sale: {{1}} off", category="MARKETING")
    with pytest.raises(PayloadError, match="no Marketing Messages API configured") as refused:
        app.campaigns.create("spring", {"name": "spring_sale", "language": "en"}, marketing_api="use")
    assert refused.value.field == "marketing_api"
    with app.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(campaigns)).scalar_one() == 0  # nothing kept


def test_use_is_refused_at_preview_once_the_account_no_longer_has_the_api(make, fake, monkeypatch) -> None:
    app = make(connectors=live(fake, marketing_messages_api=True))
    seed_template(app, "spring_sale", "Spring sale: {{1}} off", category="MARKETING")
    made = app.campaigns.create("spring", {"name": "spring_sale", "language": "en"}, marketing_api="use")
    assert app.campaigns.preview(made.id).recipients == 0
    monkeypatch.setattr(app.connectors["whatsapp"].settings, "marketing_messages_api", False)  # config changed
    with pytest.raises(PayloadError, match="marketing_api is use"):
        app.campaigns.preview(made.id)


def test_an_unknown_choice_is_a_clear_error() -> None:
    with pytest.raises(PayloadError, match="marketing_api must be one of account, use, avoid, not 'always'"):
        mm_api.stored("always")


def test_use_never_falls_back_to_messages_when_meta_refuses(make, fake) -> None:
    # With the account's own setting a listed refusal goes once through /messages
    # (test_marketing_messages); a campaign that chose the API fails the message instead.
    fake.fail(10, http_status=403, path="/marketing_messages", details="terms of service not accepted")
    app = make(connectors=live(fake, marketing_messages_api=True))
    campaign_id = sent_campaign(app, "use")
    assert routes(fake) == ["marketing_messages"]
    assert app.campaigns.get(campaign_id).outcomes == {"failed": 1}  # that message only: sending goes on
    assert app.paused() is None
    [result] = app.campaigns.results(campaign_id)
    assert result["error_code"] == "10"
    assert not fake.accepted()


@given(account=st.booleans(), prefer=st.sampled_from([None, True, False]),
       category=st.sampled_from(["marketing", "utility", "authentication", "service"]), template=st.booleans())
def test_route_follows_the_campaigns_choice_else_the_account(account: bool, prefer: bool | None, category: str,
                                                            template: bool) -> None:
    view = meta_settings(marketing_messages_api=account)
    wanted = account if prefer is None else prefer
    marketing = wanted and category == "marketing" and template
    assert route(view, category, template, prefer) == ("marketing_messages" if marketing else "messages")


@pytest.mark.parametrize("choice", ["use", "avoid", "account"])
def test_stored_and_shown_round_trip(choice: str) -> None:
    value = mm_api.stored(choice)
    assert mm_api.shown(value) == choice
    assert mm_api.preference(value) is {"use": True, "avoid": False, "account": None}[choice]


async def test_the_channel_honours_the_preference_over_the_account(fake) -> None:
    from connectzap.connectors.whatsapp.channel import CloudApiChannel
    from connectzap.connectors.whatsapp.client import GraphClient
    from dataclasses import replace
    view = meta_settings(marketing_messages_api=False, api_base_url=fake.url, access_token="test-token")
    channel = CloudApiChannel(view, GraphClient(view))
    await channel.send(replace(out(PROMO, category="marketing", outbox_id="m1"), prefer_marketing_api=True))
    await channel.aclose()
    assert routes(fake) == ["marketing_messages"]
    assert fake.requests[-1].path.startswith("/v") and NUMBER in fake.requests[-1].path


# --- the interfaces: REST create and status, CLI create and show, the console's campaign page -------------

def test_rest_create_takes_the_choice_shows_it_and_refuses_use_without_the_api(make) -> None:
    import asyncio

    from server_support import AUTH, api_engine, serving
    app = api_engine(make)  # no connector with a Marketing Messages API
    seed_template(app, "spring_sale", "Spring sale: {{1}} off", category="MARKETING")
    template = {"name": "spring_sale", "language": "en"}

    async def walk() -> None:
        async with serving(app) as client:
            made = await client.post("/v1/campaigns", headers=AUTH,
                                     json={"name": "spring", "template": template, "marketing_api": "avoid"})
            assert made.status_code == 201, made.text
            assert made.json()["campaign"]["marketing_api"] == "avoid"
            shown = (await client.get("/v1/campaigns/spring", headers=AUTH)).json()
            assert shown["marketing_api"] == "avoid"
            plain = await client.post("/v1/campaigns", headers=AUTH, json={"name": "plain", "template": template})
            assert plain.json()["campaign"]["marketing_api"] == "account"
            refused = await client.post("/v1/campaigns", headers=AUTH,
                                        json={"name": "use", "template": template, "marketing_api": "use"})
            assert refused.status_code == 422 and "no Marketing Messages API configured" in refused.text
            wrong = await client.post("/v1/campaigns", headers=AUTH,
                                      json={"name": "odd", "template": template, "marketing_api": "always"})
            assert wrong.status_code == 422
            names = [c["name"] for c in (await client.get("/v1/campaigns", headers=AUTH)).json()]
            assert sorted(names) == ["plain", "spring"]  # nothing kept of the refused ones

    asyncio.run(walk())


def test_cli_create_takes_the_choice_and_show_prints_it(make, tmp_path) -> None:
    import json

    from click.testing import CliRunner

    from connectzap.cli import cli
    app = make()
    seed_template(app, "spring_sale", "Spring sale: {{1}} off", category="MARKETING")
    config = tmp_path / "cli.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.settings.database_url}"\n')

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--config", str(config), "campaigns", *args], catch_exceptions=False)

    assert invoke("create", "autumn", "--template", "spring_sale", "--marketing-api", "avoid").exit_code == 0
    text = invoke("show", "autumn").output
    assert re.search(r"marketing_api\W+avoid", text), text
    assert json.loads(invoke("show", "autumn", "--json").output)["marketing_api"] == "avoid"
    assert invoke("create", "plain", "--template", "spring_sale").exit_code == 0
    assert json.loads(invoke("show", "plain", "--json").output)["marketing_api"] == "account"
    refused = invoke("create", "winter", "--template", "spring_sale", "--marketing-api", "use")
    assert refused.exit_code != 0 and "no Marketing Messages API configured" in refused.output
    assert [c["name"] for c in json.loads(invoke("list", "--json").output)] == ["plain", "autumn"]


async def test_the_console_creates_with_the_choice_refuses_use_without_the_api_and_shows_it(make) -> None:
    from console_support import PASSWORD, USER, log_in
    from server_support import KEY
    from test_console_campaigns import AUDIENCE, create, stored
    from test_console_routes import console

    from connectzap.console.passwords import hash_password
    app = make(api={"keys": [KEY]}, console={"enabled": True})
    app.operators.add_user(USER, hash_password(PASSWORD))
    seed_template(app, "spring_sale", "Spring sale: {{1}} off", category="MARKETING")
    async with console(app) as client:
        await log_in(client)
        form = (await client.get("/console/campaigns")).text
        assert re.search(r'<option value="account" selected>', form)
        refused = await create(client, AUDIENCE, marketing_api="use")
        assert refused.status_code == 400 and "no Marketing Messages API configured" in refused.text
        assert 'value="use" selected' in refused.text  # the form keeps the choice
        assert stored(app) == (0, 0)  # nothing kept
        made = await create(client, AUDIENCE, marketing_api="avoid")
        assert made.status_code == 303, made.text
        page = (await client.get(made.headers["location"])).text
    assert re.search(r'id="campaign-marketing-api">not used \(Cloud API\)<', page), page
    [view] = app.campaigns.listing()
    assert view.marketing_api == "avoid"


# --- changing the choice after create; use checked again at start and resume ----------------------

def loaded_campaign(app: Any, choice: str | None) -> str:
    """A one-recipient draft campaign of a marketing template with ``choice``; its id."""
    seed_template(app, "spring_sale", "Spring sale: {{1}} off", category="MARKETING")
    app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="test",
                                  proof="newsletter form"))
    made = app.campaigns.create("spring", {"name": "spring_sale", "language": "en"}, marketing_api=choice)
    app.campaigns.load_audience(made.id, read_file(io.StringIO(f"phone,1\n{PHONE},20%\n"), "csv", app.secret))
    return str(made.id)


def test_the_choice_changes_exactly_while_nothing_of_the_campaign_sends(make, fake) -> None:
    """Both sides: any state a campaign can reach takes the change iff it is draft, scheduled or paused;
    a refused change leaves the stored choice as it was."""
    from datetime import UTC, datetime, timedelta

    from hypothesis import settings

    from connectzap.core.errors import ConflictError
    app = make(connectors=live(fake, marketing_messages_api=True))
    loaded_campaign(app, "avoid")  # the template and the consent
    template = {"name": "spring_sale", "language": "en"}
    audience = f"phone,1\n{PHONE},20%\n"

    @settings(max_examples=40, deadline=None)
    @given(path=st.lists(st.sampled_from(["start", "pause", "resume", "cancel", "schedule"]), max_size=4),
           choice=st.sampled_from(["account", "use", "avoid"]))
    def walk(path: list[str], choice: str) -> None:
        made = app.campaigns.create("spring", template, marketing_api="avoid")
        app.campaigns.load_audience(made.id, read_file(io.StringIO(audience), "csv", app.secret))
        for step in path:
            try:
                if step == "schedule":
                    app.campaigns.start(made.id, datetime.now(UTC) + timedelta(hours=1))
                else:
                    app.campaigns.control(made.id, step)
            except ConflictError:
                pass
        state = app.campaigns.get(made.id).state
        try:
            app.campaigns.set_marketing_api(made.id, choice)
            changed = True
        except ConflictError as exc:
            assert "draft, scheduled or paused" in exc.message
            changed = False
        assert changed == (state in ("draft", "scheduled", "paused"))
        assert app.campaigns.get(made.id).marketing_api == (choice if changed else "avoid")

    walk()


def test_use_after_create_needs_the_api_and_the_new_choice_takes_its_route(make, fake) -> None:
    app = make(connectors=live(fake, marketing_messages_api=False))
    campaign_id = loaded_campaign(app, None)
    with pytest.raises(PayloadError, match="no Marketing Messages API configured"):
        app.campaigns.set_marketing_api(campaign_id, "use")
    assert app.campaigns.get(campaign_id).marketing_api == "account"
    with pytest.raises(PayloadError, match="marketing_api must be one of"):
        app.campaigns.set_marketing_api(campaign_id, "always")
    app.connectors["whatsapp"].settings.marketing_messages_api = True
    assert app.campaigns.set_marketing_api(campaign_id, "use").marketing_api == "use"
    app.campaigns.control(campaign_id, Action.START)
    run(app)
    assert routes(fake) == ["marketing_messages"]


def test_use_is_checked_again_at_start_resume_and_a_scheduled_start(make, fake, monkeypatch) -> None:
    """An account whose Marketing Messages API was switched off since: start and resume are refused
    with a clear message and nothing is sent; a scheduled campaign stays scheduled and says why."""
    from datetime import UTC, datetime, timedelta

    app = make(connectors=live(fake, marketing_messages_api=True))
    campaign_id = loaded_campaign(app, "use")
    settings = app.connectors["whatsapp"].settings
    monkeypatch.setattr(settings, "marketing_messages_api", False)  # switched off since create
    with pytest.raises(PayloadError, match="marketing_api is use, but the account of the default number"):
        app.campaigns.control(campaign_id, Action.START)
    assert app.campaigns.get(campaign_id).state == "draft"
    run(app)
    assert routes(fake) == [] and app.campaigns.get(campaign_id).outcomes == {"pending": 1}

    # scheduled (while the API was on), due now with the API off: not started, and shown why
    monkeypatch.setattr(settings, "marketing_messages_api", True)
    app.campaigns.start(campaign_id, datetime.now(UTC) + timedelta(hours=1))
    monkeypatch.setattr(settings, "marketing_messages_api", False)
    with app.db.begin() as conn:
        conn.execute(campaigns.update().where(campaigns.c.id == campaign_id).values(starts_at=0.0))
    run(app)
    view = app.campaigns.get(campaign_id)
    assert view.state == "scheduled" and view.waiting and "not started: marketing_api is use" in view.waiting
    assert routes(fake) == []

    # on again: it starts by itself; paused and switched off, resume is refused
    monkeypatch.setattr(settings, "marketing_messages_api", True)
    app.campaigns.run_once()
    assert app.campaigns.get(campaign_id).state == "running"
    app.campaigns.control(campaign_id, Action.PAUSE)
    monkeypatch.setattr(settings, "marketing_messages_api", False)
    with pytest.raises(PayloadError, match="marketing_api is use"):
        app.campaigns.control(campaign_id, Action.RESUME)
    assert app.campaigns.get(campaign_id).state == "paused"
    assert app.campaigns.set_marketing_api(campaign_id, "avoid").marketing_api == "avoid"  # the way out
    app.campaigns.control(campaign_id, Action.RESUME)
    run(app)
    assert routes(fake) == ["messages"]


def test_rest_and_cli_change_the_choice(make, tmp_path) -> None:
    import asyncio
    import json

    from click.testing import CliRunner
    from server_support import AUTH, api_engine, serving

    from connectzap.cli import cli
    app = api_engine(make)
    campaign_id = loaded_campaign(app, None)

    async def walk() -> None:
        async with serving(app) as client:
            changed = await client.put(f"/v1/campaigns/{campaign_id}/marketing_api", headers=AUTH,
                                       json={"marketing_api": "avoid"})
            assert changed.status_code == 200, changed.text
            assert changed.json()["marketing_api"] == "avoid"
            refused = await client.put(f"/v1/campaigns/{campaign_id}/marketing_api", headers=AUTH,
                                       json={"marketing_api": "use"})
            assert refused.status_code == 422 and "no Marketing Messages API configured" in refused.text
            missing = await client.put("/v1/campaigns/nope/marketing_api", headers=AUTH,
                                       json={"marketing_api": "avoid"})
            assert missing.status_code == 404
            app.campaigns.control(campaign_id, Action.START)
            running = await client.put(f"/v1/campaigns/{campaign_id}/marketing_api", headers=AUTH,
                                       json={"marketing_api": "account"})
            assert running.status_code == 409 and "pause it first" in running.text

    asyncio.run(walk())
    app.campaigns.control(campaign_id, Action.PAUSE)
    config = tmp_path / "cli.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.settings.database_url}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "campaigns", "marketing-api", "spring", "account",
                                      "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["marketing_api"] == "account"


@pytest.mark.parametrize(("account", "prefer", "expected"), [
    (False, None, "messages"), (True, None, "marketing_messages"), (True, False, "messages"),
    (False, True, "marketing_messages")])
def test_simulate_shows_the_route_by_the_campaigns_choice_else_the_account(make, fake, account: bool,
                                                                           prefer: bool | None, expected: str) -> None:
    from connectzap.cli.simulate import _campaign_choice, _cloud_api_url
    app = make(connectors=live(fake, marketing_messages_api=account))
    choice = {None: "account", True: "use", False: "avoid"}[prefer]
    if choice == "use":
        app.connectors["whatsapp"].settings.marketing_messages_api = True  # use is accepted only with the API
    campaign_id = loaded_campaign(app, choice)
    app.connectors["whatsapp"].settings.marketing_messages_api = account
    message = {"plugin": f"campaign:{campaign_id}"}
    assert _campaign_choice(app, message) is prefer
    assert _campaign_choice(app, {"plugin": "orders"}) is None
    url = _cloud_api_url(app, {"type": "template"}, "marketing", None, _campaign_choice(app, message))
    assert url.endswith(f"/{NUMBER}/{expected}")
