"""The console's automation page: business hours as the engine reads them, the conversations people
handle (no full number on the page) and Release -- what ``connectzap conversations release`` does,
only for the number typed again matching the row, with the form's CSRF token, audited."""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime

import pytest
from console_support import ANA, PASSWORD, PLUGINS, USER, csrf_of, log_in, tell_story
from server_support import KEY
from test_console_routes import console, digits

from connectzap import ConsentLink, PluginSettings, hookimpl
from connectzap.console.passwords import hash_password
from connectzap.core.plugins import pm
from connectzap.core.models import Category
from connectzap.console.rendering import when

BOB = "+34699000111"
HOURS = {"timezone": "Europe/Madrid", "monday": ["09:00-10:00"], "friday": ["22:00-02:00"],
         "holidays": ["2026-12-25"]}


BOT_SECRET = "whsec_" + base64.b64encode(b"console-automation-bot-secret").decode()
LONG_ANSWER = "We open Monday 9 to 10 and Friday night. " * 12
AUTOMATION = {
    "auto_replies": {"rules": [{"name": "opening_hours", "keywords": ["horario", "hours"], "buttons": ["when"],
                                "answer": {"en": {"type": "text", "body": LONG_ANSWER}}},
                               {"name": "agent", "regex": ["^human"], "handoff": True}]},
    "welcome": {"enabled": True, "texts": {"en": "Welcome to the shop!"}},
    "away": {"enabled": True, "once_every_hours": 6},
    "chatbot": {"url": "https://bot.example.com/hook?token=tok-in-the-query", "secret": BOT_SECRET},
    "optin": {"business_name": "Tienda Ana", "number": "+34600000000",
              "links": [{"keyword": "ALTA", "category": "marketing"}]},
}


@pytest.fixture
def shop(make):
    app = make(api={"keys": [KEY]}, plugins={**PLUGINS, **AUTOMATION}, console={"enabled": True},
               business_hours=HOURS)
    tell_story(app, pause=False)
    app.hand_to_human(ANA, "refund question", 90, by="test")
    app.hand_to_human(BOB, "complaint", by="test")
    return app


async def test_the_page_needs_a_login_and_shows_hours_and_who_people_handle(shop):
    async with console(shop) as client:
        assert (await client.get("/console/automation")).status_code == 303
        await log_in(client)
        before = datetime.now(UTC)
        page = await client.get("/console/automation")
        after = datetime.now(UTC)
    text = page.text
    assert page.status_code == 200 and 'aria-current="page">Automation' in text
    assert '<td>09:00-10:00</td>' in text and '<td>22:00-02:00</td>' in text and "2026-12-25" in text
    assert "Europe/Madrid" in text
    hours = shop.business_hours
    if hours.is_open(before) == hours.is_open(after):  # not asked right at an opening or a closing
        assert (">open<" if hours.is_open(before) else ">closed<") in text
        if not hours.is_open(before):
            assert when(hours.next_opening(before)) in text or when(hours.next_opening(after)) in text
    rows = text.split('<table id="handled">')[1].split("</table>")[0]
    assert rows.count("<tr data-contact=") == 2
    assert "refund question" in rows and "complaint" in rows and "until released" in rows
    assert f'data-contact="{shop.contact_key(ANA)}"' in rows and f'data-contact="{shop.contact_key(BOB)}"' in rows
    for number in (ANA, BOB):
        assert digits(number) not in digits(text)
    assert KEY not in text and shop.secret.hex() not in text


async def test_release_needs_csrf_and_the_rows_number_and_does_what_the_cli_does(shop):
    async with console(shop) as client:
        await log_in(client)
        page = await client.get("/console/automation")
        form = {"contact": shop.contact_key(ANA), "phone": ANA}
        forged = await client.post("/console/automation/release", data={**form, "csrf": "0" * 64})
        assert forged.status_code == 403 and shop.conversation(ANA).handled_by == "human"
        wrong = await client.post("/console/automation/release",
                                  data={**form, "phone": BOB, "csrf": csrf_of(page.text)})
        assert "not this conversation" in (await client.get(wrong.headers["location"])).text
        assert shop.conversation(ANA).handled_by == shop.conversation(BOB).handled_by == "human"
        done = await client.post("/console/automation/release", data={**form, "csrf": csrf_of(page.text)})
        shown = await client.get(done.headers["location"])
        assert "+34*******78: given back to the bot" in shown.text
        assert shown.text.count("<tr data-contact=") == 1
    assert shop.conversation(ANA).handled_by == "bot" and shop.conversation(BOB).handled_by == "human"
    [audited] = [a for a in shop.operators.audit_log() if a["action"] == "conversation_release"]
    assert (audited["actor"], audited["target"]) == ("user:shopowner", "+34*******78")


async def test_what_answers_automatically_is_summarised_without_secrets(shop):
    async with console(shop) as client:
        await log_in(client)
        text = (await client.get("/console/automation")).text
    section = text.split('<h2 id="plugins">')[1].split("</section>")[0]
    rule = section.split("<dt>rule opening_hours</dt><dd>")[1].split("</dd>")[0]
    assert rule.startswith("matches the tap opening_hours, when or words horario, hours; answers We open Monday")
    assert rule.endswith("…") and len(rule) == 160 and LONG_ANSWER not in section  # shortened
    assert "<dt>rule agent</dt><dd>matches the tap agent or patterns ^human; answers nothing; then a person" in section
    assert "<dt>welcome</dt><dd>on: once</dd>" in section and "Welcome to the shop!" in section
    assert "at most once every 6 hours" in section
    assert "forwards to https://bot.example.com/hook, signed (secret set)" in section
    assert "<dt>link ALTA</dt><dd>marketing</dd>" in section and "Tienda Ana" in section
    assert BOT_SECRET not in text and "tok-in-the-query" not in text and KEY not in text


async def test_a_plugin_left_off_says_so_without_its_texts(make):
    app = make(console={"enabled": True}, plugins={"welcome": {"enabled": False, "texts": {"en": "Hello there!"}}})
    app.operators.add_user(USER, hash_password(PASSWORD))
    async with console(app) as client:
        await log_in(client)
        text = (await client.get("/console/automation")).text
    assert "<dt>welcome</dt><dd>off</dd>" in text and "Hello there!" not in text


async def test_the_optin_link_is_the_clis_and_needs_csrf(shop):
    from connectzap.plugins.optin import links
    async with console(shop) as client:
        await log_in(client)
        page = await client.get("/console/automation")
        form = {"category": "utility", "keyword": "VERANO"}
        forged = await client.post("/console/automation/optin-link", data={**form, "csrf": "0" * 64})
        assert forged.status_code == 403 and "verano" not in (shop.plugin_state("optin").get(links.STATE_KEY) or {})
        empty = await client.post("/console/automation/optin-link",
                                  data={"category": "utility", "keyword": " ", "csrf": csrf_of(page.text)})
        assert empty.status_code == 422 and 'id="optin-error"' in empty.text
        made = await client.post("/console/automation/optin-link", data={**form, "csrf": csrf_of(page.text)})
    assert made.status_code == 200 and "verano" in shop.plugin_state("optin").get(links.STATE_KEY)
    # what connectzap optin link / GET /v1/optin/qr answer now: the same link, found again
    link, url = await links.publish(shop, keyword="VERANO", category=Category.UTILITY)
    assert url.startswith("https://wa.me/34600000000?text=") and link.category is Category.UTILITY
    assert f'<code class="urls" id="optin-url">{html.escape(url)}</code>' in made.text
    qr = made.text.split('id="optin-qr" src="data:image/svg+xml;base64,')[1].split('"')[0]
    assert base64.b64decode(qr) == links.qr_svg(url)
    [audited] = [a for a in shop.operators.audit_log() if a["action"] == "optin_link"]
    assert (audited["target"], audited["detail"]) == ("VERANO", "utility")


class Leaflet(PluginSettings):
    """A third-party section that makes consent links its own way, through the declared methods."""

    prefix: str = "https://links.example.com/"

    def makes_consent_links(self) -> bool:
        return True

    async def consent_link(self, app, *, keyword: str, category: Category) -> ConsentLink:
        return ConsentLink(f"{self.prefix}{category.value}/{keyword}", b"<svg>leaflet</svg>")


class LeafletPlugin:
    @hookimpl
    def register_plugin_settings(self, register) -> None:
        register("leaflet", Leaflet)


async def test_the_link_form_uses_any_plugins_declared_consent_link_and_is_hidden_without_one(make):
    plain = make("plain", console={"enabled": True})
    plain.operators.add_user(USER, hash_password(PASSWORD))
    async with console(plain) as client:
        await log_in(client)
        page = await client.get("/console/automation")
        refused = await client.post("/console/automation/optin-link",
                                    data={"category": "marketing", "keyword": "X", "csrf": csrf_of(page.text)})
    assert 'action="/console/automation/optin-link"' not in page.text  # no plugin makes links: no form
    assert refused.status_code == 422 and "no loaded plugin makes opt-in links" in refused.text
    assert not [a for a in plain.operators.audit_log() if a["action"] == "optin_link"]

    pm.register(LeafletPlugin(), name="leaflet")
    try:
        app = make("leaflet", console={"enabled": True}, plugins={"leaflet": {}})
    finally:
        pm.unregister(name="leaflet")
    app.operators.add_user(USER, hash_password(PASSWORD))
    async with console(app) as client:
        await log_in(client)
        page = await client.get("/console/automation")
        made = await client.post("/console/automation/optin-link",
                                 data={"category": "utility", "keyword": "PROMO", "csrf": csrf_of(page.text)})
    assert 'id="optin-links"' in page.text and made.status_code == 200
    assert '<code class="urls" id="optin-url">https://links.example.com/utility/PROMO</code>' in made.text
    qr = made.text.split('id="optin-qr" src="data:image/svg+xml;base64,')[1].split('"')[0]
    assert base64.b64decode(qr) == b"<svg>leaflet</svg>"
    [audited] = [a for a in app.operators.audit_log() if a["action"] == "optin_link"]
    assert (audited["target"], audited["detail"]) == ("PROMO", "utility")


async def test_the_optin_plugins_consent_link_is_the_link_publish_makes(shop):
    from connectzap.plugins.optin import links
    made = await shop.plugin_settings["optin"].consent_link(shop, keyword="OTOÑO", category=Category.MARKETING)
    _, url = await links.publish(shop, keyword="OTOÑO", category=Category.MARKETING)
    assert made == ConsentLink(url, links.qr_svg(url)) and shop.plugin_settings["optin"].makes_consent_links()
    assert not PluginSettings().makes_consent_links()
