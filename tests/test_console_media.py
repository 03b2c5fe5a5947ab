"""The console shows each medium's messages like WhatsApp's (issue #21): the Messages list names the
medium of each message and filters by it, and a message's page links a fallback to the WhatsApp
message it stood in for, and that message to its fallback -- the refused tries on other media too,
with their reason. No full number reaches a page."""

from __future__ import annotations

import json
import re

import pytest
from console_support import PASSWORD, USER, log_in
from server_support import KEY
from test_console_routes import console, digits

from connectzap import Category, ConsentChange, Outgoing
from connectzap.console.passwords import hash_password
from connectzap.core.channel import EMAIL, SMS, WHATSAPP
from connectzap.core.errors import SkippableDeliveryError
from connectzap.core.worker import Worker
from connectzap.testing import FakeChannel, FakeWhatsApp, seed_template

PHONE = "+4915112345678"


@pytest.fixture
async def shop(make):
    """A WhatsApp message to a number without WhatsApp, falling back on email (no consent there:
    refused) and then SMS (admitted); and a WhatsApp message that went out. Returns the app and
    the ids: the original, its SMS fallback, its refused email try, and the one that went out."""
    whatsapp = FakeWhatsApp()
    app = make(channel=whatsapp, console={"enabled": True}, api={"keys": [KEY]})
    app.use_channel(FakeChannel(SMS))
    app.use_channel(FakeChannel(EMAIL))
    app.operators.add_user(USER, hash_password(PASSWORD))
    seed_template(app, "order_confirmation", "Order {{1}} is confirmed")
    for medium in (WHATSAPP, SMS):
        app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="test",
                                      proof="ticked the box at checkout", medium=medium))

    def confirmation(*media: str) -> Outgoing:
        return Outgoing.model_validate({
            "to": {"phone": PHONE, "email": "ana@example.com"},
            "content": {"type": "template", "name": "order_confirmation", "language": "en", "body": ["1042"]},
            "fallback_channels": list(media)})

    went = app.send(confirmation(SMS)).id  # first: after the failure the number is unreachable on WhatsApp
    await Worker(app).run_until_idle()
    whatsapp.fail_next(SkippableDeliveryError("no WhatsApp account", code="unreachable", vendor_code=131026))
    original = app.send(confirmation(EMAIL, SMS)).id
    await Worker(app).run_until_idle()
    tries = {r["medium"]: r for r in app.messages(fallback_of=original)}
    assert set(tries) == {EMAIL, SMS} and tries[EMAIL]["status"] == "refused"
    return app, {"original": original, "sms": tries[SMS]["id"], "email": tries[EMAIL]["id"], "went": went}


def listed(page: str) -> list[tuple[str, str]]:
    """The Messages table's rows: (message id, what its medium cell says)."""
    return re.findall(r'<tr data-id="([^"]+)">.*?<td class="medium">(.*?)</td>', page, flags=re.S)


async def test_the_messages_list_shows_each_messages_medium_and_filters_by_it(shop):
    app, ids = shop
    async with console(app) as client:
        await log_in(client)
        everything = dict(listed((await client.get("/console/messages")).text))
        only_sms = dict(listed((await client.get("/console/messages?medium=sms")).text))
        only_whatsapp = dict(listed((await client.get("/console/messages?medium=whatsapp&status=failed")).text))
        not_a_medium = dict(listed((await client.get("/console/messages?medium=SMS%27%3B")).text))
        sms_page = (await client.get("/console/messages?medium=sms")).text
    assert set(everything) == set(ids.values())
    assert everything[ids["sms"]].startswith("sms") and "(fallback)" in everything[ids["sms"]]
    assert everything[ids["email"]].startswith("email") and "(fallback)" in everything[ids["email"]]
    assert everything[ids["original"]] == everything[ids["went"]] == "whatsapp"
    assert set(only_sms) == {ids["sms"]}
    assert set(only_whatsapp) == {ids["original"]}
    assert not_a_medium == everything  # not a medium's name: no filter
    assert '<option value="sms" selected>' in sms_page and '<option value="email">' in sms_page
    assert digits(PHONE) not in digits(sms_page)


async def test_a_fallback_links_to_its_original_and_the_original_to_its_fallbacks(shop):
    app, ids = shop
    async with console(app) as client:
        await log_in(client)
        original = (await client.get(f"/console/messages/{ids['original']}")).text
        fallback = (await client.get(f"/console/messages/{ids['sms']}")).text
        refused = (await client.get(f"/console/messages/{ids['email']}")).text
        alone = (await client.get(f"/console/messages/{ids['went']}")).text
    tries = dict(re.findall(r'<li data-id="([^"]+)">(.*?)</li>', original, flags=re.S))
    assert set(tries) == {ids["sms"], ids["email"]}
    assert f'href="/console/messages/{ids["sms"]}"' in tries[ids["sms"]] and "on sms" in tries[ids["sms"]]
    assert app.message(ids["sms"])["status"] in tries[ids["sms"]]
    assert "on email" in tries[ids["email"]] and "refused" in tries[ids["email"]]
    assert f"({app.message(ids['email'])['reason']})" in tries[ids["email"]]
    for page in (fallback, refused):
        assert re.search(rf'id="m-fallback-of">.*href="/console/messages/{ids["original"]}"', page)
        assert 'id="m-fallbacks"' not in page  # a fallback has no fallback of its own
    assert 'id="m-medium">sms<' in fallback and 'id="m-medium">email<' in refused
    assert "m-fallback-of" not in alone and "m-fallbacks" not in alone
    assert 'id="m-fallback-of"' not in original
    for page in (original, fallback, refused, alone):
        assert digits(PHONE) not in digits(page)


async def test_rest_and_the_cli_filter_messages_by_medium_and_by_the_message_they_fall_back_for(shop, tmp_path):
    """What the console's filters show, REST ``GET /v1/messages?channel=&fallback_of=`` and
    ``connectzap messages list --channel --fallback-of`` show too; a bad medium is refused."""
    import httpx
    from click.testing import CliRunner

    from connectzap.cli import cli
    from connectzap.core.http.app import create_app
    app, ids = shop
    served = create_app(app, run_workers=False)
    async with served.router.lifespan_context(served):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://t",
                                     headers={"Authorization": f"Bearer {KEY}"}) as client:
            async def listed_by(**query: str) -> set[str]:
                answer = await client.get("/v1/messages", params=query)
                assert answer.status_code == 200, answer.text
                return {m["id"] for m in answer.json()["messages"]}
            assert await listed_by(channel="sms") == {ids["sms"]}
            assert await listed_by(channel="whatsapp") == {ids["original"], ids["went"]}
            assert await listed_by(fallback_of=ids["original"]) == {ids["sms"], ids["email"]}
            assert await listed_by(fallback_of=ids["went"]) == set()
            assert (await client.get("/v1/messages", params={"channel": "SMS;"})).status_code == 422
    config = tmp_path / "cli.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.db.url}"\n')

    def cli_lists(*args: str) -> set[str]:
        done = CliRunner().invoke(cli, ["--config", str(config), "messages", "list", "--json", *args],
                                  catch_exceptions=False)
        assert done.exit_code == 0, done.output
        return {m["id"] for m in json.loads(done.output)}
    assert cli_lists("--channel", "sms") == {ids["sms"]}
    assert cli_lists("--fallback-of", ids["original"]) == {ids["sms"], ids["email"]}
    assert cli_lists() == set(ids.values())
    refused = CliRunner().invoke(cli, ["--config", str(config), "messages", "list", "--channel", "SMS;"])
    assert refused.exit_code == 2 and "is not a medium" in refused.output
