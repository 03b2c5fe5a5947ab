"""The console's Templates page: filters over the cache, sync and create through the connector's
template management (the functions ``connectzap templates sync|create`` run: the sandbox here, the
local fake Graph server for a live account), a preview, refusals naming the wrong field, and a
test send through the gate -- each action only with a session and the form's CSRF token, audited,
and no full number in any page."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from console_support import ANA, PASSWORD, USER, csrf_of, log_in
from server_support import KEY
from test_console_routes import console, digits

from connectzap import Category, ConsentChange
from connectzap.connectors.whatsapp import sandbox_templates
from connectzap.console.passwords import hash_password
from connectzap.testing import seed_template
from connectzap.testing.fake_graph import FakeGraph

BEA = "+34600000002"
SPRING = {"name": "spring_sale", "language": "en", "category": "MARKETING", "parameter_format": "POSITIONAL",
          "header": "Spring at {{1}}", "header_example": "Tienda Ana",
          "body": "Hi {{1}}, {{2}} off everything this week.", "body_examples": "Ana\n20%",
          "footer": "Reply STOP to opt out", "quick_replies": "Show me\nNot now",
          "url_label": "Shop", "url": "https://shop.example/sale/{{1}}", "url_example": "https://shop.example/sale/a1"}


@pytest.fixture
def shop(make):
    """The sandbox (no Cloud API token), a console user, an approved template and Ana's consent."""
    app = make(api={"keys": [KEY]}, console={"enabled": True}, sandbox={"template_approval_seconds": 3600})
    app.operators.add_user(USER, hash_password(PASSWORD))
    seed_template(app, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    app.set_consent(ConsentChange(phone=ANA, category=Category.UTILITY, granted=True, source="test", proof="form"))
    return app


def actions(app, name: str) -> list[dict]:
    return [a for a in app.operators.audit_log() if a["action"] == name]


async def post(client, path: str, page: str = "/console/templates", **fields: str):
    token = csrf_of((await client.get(page)).text)
    return await client.post(path, data={"csrf": token, **fields})


def rows_of(page: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-template="([^"]+)">(.*?)</tr>', page, flags=re.S))


async def test_actions_need_a_session_and_the_forms_csrf_token(shop):
    async with console(shop) as client:
        assert (await client.get("/console/templates")).status_code == 303
        for path in ("/console/templates/sync", "/console/templates/create", "/console/templates/test-send"):
            assert (await client.post(path, data={"account": "sandbox", **SPRING})).status_code == 403
        await log_in(client)
        for path in ("/console/templates/sync", "/console/templates/create", "/console/templates/test-send"):
            refused = await client.post(path, data={"csrf": "0" * 64, "do": "create", "phone": ANA,
                                                    "template": "order_confirmation|en", **SPRING})
            assert refused.status_code == 403 and "out of date" in refused.text
    assert sandbox_templates.stored(shop) == [] and shop.messages() == []
    assert [a["action"] for a in shop.operators.audit_log()] == ["login"]


async def test_preview_renders_the_message_and_creates_nothing(shop):
    async with console(shop) as client:
        await log_in(client)
        answer = await post(client, "/console/templates/create", do="preview", **SPRING)
    assert answer.status_code == 200
    preview = html.unescape(answer.text.split('id="preview"')[1].split("</figure>")[0])
    assert "Spring at Tienda Ana" in preview and "Hi Ana, 20% off everything this week." in preview
    assert "Reply STOP to opt out" in preview and "Show me" in preview and ">Shop<" in preview
    assert 'value="spring_sale"' in answer.text  # the form keeps what was typed
    assert sandbox_templates.stored(shop) == [] and actions(shop, "template_create") == []


async def test_create_submits_to_the_sandbox_as_the_cli_does_and_is_audited(shop):
    async with console(shop) as client:
        await log_in(client)
        answer = await post(client, "/console/templates/create", do="create", **SPRING)
        assert answer.status_code == 303
        page = (await client.get(answer.headers["location"])).text
        again = await post(client, "/console/templates/create", do="create", **SPRING)
    [stored] = sandbox_templates.stored(shop)
    assert (stored.name, stored.category, stored.status()) == ("spring_sale", "MARKETING", "PENDING")
    [header, body, footer, buttons] = stored.components
    assert body == {"type": "BODY", "text": SPRING["body"], "example": {"body_text": [["Ana", "20%"]]}}
    assert header["example"] == {"header_text": ["Tienda Ana"]} and footer["text"] == SPRING["footer"]
    assert [b["type"] for b in buttons["buttons"]] == ["QUICK_REPLY", "QUICK_REPLY", "URL"]
    assert "created spring_sale (en) on the sandbox: PENDING" in html.unescape(page)
    assert "PENDING" in rows_of(page)["spring_sale:en@sandbox"]
    [audit] = actions(shop, "template_create")
    assert audit["actor"] == f"user:{USER}" and audit["target"] == "spring_sale"
    assert again.status_code == 409 and "already exists" in again.text  # the sandbox's own refusal


@pytest.mark.parametrize(("change", "field", "says"), [
    ({"name": "Spring Sale"}, "name", "lowercase letters"),
    ({"language": "english"}, "language", "language code"),
    ({"body_examples": "Ana"}, "body_examples", "give 2 example values"),
    ({"body": "{{1}} off for {{2}} today"}, "body", "cannot start or end the body"),
    ({"footer": "Bye {{1}}"}, "footer", "takes no parameters"),
    ({"header": "A {{1}} and {{2}}"}, "header", "at most one parameter"),
    ({"url": "ftp://shop.example"}, "buttons", "http(s) URL"),
])
async def test_a_refusal_names_the_wrong_field_and_creates_nothing(shop, change, field, says):
    async with console(shop) as client:
        await log_in(client)
        answer = await post(client, "/console/templates/create", do="create", **{**SPRING, **change})
    assert answer.status_code == 422
    error = re.search(rf'<p class="error" id="{field}-error" role="alert">(.*?)</p>', answer.text)
    assert error and says in html.unescape(error.group(1))
    assert f'aria-invalid="true" aria-describedby="{field}-error"' in answer.text
    assert sandbox_templates.stored(shop) == [] and actions(shop, "template_create") == []


async def test_sync_copies_the_sandbox_into_the_cache_and_filters_narrow_the_list(shop):
    sandbox_templates.create(shop, {"name": "winter_sale", "language": "es", "category": "MARKETING",
                                    "components": [{"type": "BODY", "text": "Rebajas de invierno"}]})
    with shop.db.begin() as conn:  # gone from the cache, as after a restore: sync brings it back
        from connectzap.core import templates
        templates.delete(conn, "winter_sale")
    async with console(shop) as client:
        await log_in(client)
        answer = await post(client, "/console/templates/sync", account="sandbox")
        assert answer.status_code == 303
        page = (await client.get(answer.headers["location"])).text
        pending = (await client.get("/console/templates?status=PENDING")).text
        spanish = (await client.get("/console/templates?language=es&category=MARKETING")).text
        none = (await client.get("/console/templates?category=AUTHENTICATION")).text
        unknown = await post(client, "/console/templates/sync", account="elsewhere")
    assert "synced 1 template from the sandbox" in page
    assert set(rows_of(page)) == {"order_confirmation:en", "winter_sale:es@sandbox"}
    assert set(rows_of(pending)) == set(rows_of(spanish)) == {"winter_sale:es@sandbox"}
    assert rows_of(none) == {} and "No cached template matches these filters." in none
    assert unknown.status_code == 303 and "choose+one+of+sandbox" in unknown.headers["location"]
    assert [a["detail"] for a in actions(shop, "templates_sync")] == [
        "failed: account: choose one of sandbox", "synced 1 template from the sandbox"]


async def test_a_test_send_goes_through_the_gate_and_links_the_message(shop):
    async with console(shop) as client:
        await log_in(client)
        sent = await post(client, "/console/templates/test-send", template="order_confirmation|en", phone=ANA,
                          params="Ana\n1088")
        assert sent.status_code == 303
        page = (await client.get(sent.headers["location"])).text
        refused = await post(client, "/console/templates/test-send", template="order_confirmation|en", phone=BEA,
                             params="Bea\n1089")
        refused_page = (await client.get(refused.headers["location"])).text
    [bea, ana] = shop.messages()  # newest first
    assert ana["status"] == "queued"
    assert f'<a href="/console/messages/{ana["id"]}">' in page and '<span id="sent-status">queued</span>' in page
    assert "+34*******78" in page
    assert bea["status"] == "refused" and bea["reason"] == "no_consent"
    assert '<span id="sent-reason">no_consent</span>' in refused_page
    for text in (page, refused_page):
        assert digits(ANA) not in digits(text) and digits(BEA) not in digits(text)
    audit = actions(shop, "template_test_send")
    assert [a["target"] for a in audit] == ["+34*******02", "+34*******78"]
    assert "refused, no_consent" in audit[0]["detail"] and f"message {ana['id']}: " in audit[1]["detail"]


@pytest.mark.parametrize(("fields", "field"), [
    ({"template": "", "phone": ANA}, "template"),
    ({"template": "order_confirmation|en", "phone": "not a number"}, "phone"),
    ({"template": "order_confirmation|en", "phone": ANA, "params": "first=Ana\n1088"}, "params"),
])
async def test_a_test_send_with_a_wrong_field_sends_nothing(shop, fields, field):
    async with console(shop) as client:
        await log_in(client)
        answer = await post(client, "/console/templates/test-send", **fields)
    assert answer.status_code == 422 and f'id="{field}-error"' in answer.text
    assert shop.messages() == [] and actions(shop, "template_test_send") == []
    assert digits(ANA) not in digits(answer.text)


# --- a live business account: the local fake Graph server --------------------------------------

@pytest.fixture
def graph():
    with FakeGraph(token="console-token") as server:
        server.templates = [
            {"id": "1", "name": "order_confirmation", "language": "en", "status": "APPROVED", "category": "UTILITY",
             "parameter_format": "POSITIONAL", "components": [{"type": "BODY", "text": "Order {{1}} confirmed"}],
             "quality_score": {"score": "GREEN", "date": 1764633600}},
            {"id": "2", "name": "welcome", "language": "de", "status": "REJECTED", "category": "MARKETING",
             "parameter_format": "NAMED", "components": [{"type": "BODY", "text": "Hallo {{first_name}}"}],
             "quality_score": {"score": "RED", "date": 1764633600}},
        ]
        yield server


def live(make, graph: FakeGraph, token: str):
    app = make(console={"enabled": True}, connectors={"whatsapp": {
        "access_token": token, "phone_number_id": "106540352242922", "waba_id": "waba1", "app_secrets": ["s"],
        "verify_token": "v", "api_base_url": graph.url}})
    app.operators.add_user(USER, hash_password(PASSWORD))
    return app


async def test_live_sync_and_create_go_to_the_business_account(make, graph):
    app = live(make, graph, "console-token")
    async with console(app) as client:
        await log_in(client)
        synced = await post(client, "/console/templates/sync", account="waba1")
        page = (await client.get(synced.headers["location"])).text
        red = (await client.get("/console/templates?quality=RED&account=waba1")).text
        created = await post(client, "/console/templates/create", do="create", **SPRING)
    assert "synced 2 templates from the business account" in page
    rows = rows_of(page)
    assert {"order_confirmation:en@waba1", "welcome:de@waba1"} <= set(rows)
    assert '<td class="quality-green" data-quality>GREEN</td>' in rows["order_confirmation:en@waba1"]
    assert set(rows_of(red)) == {"welcome:de@waba1"}
    assert created.status_code == 303 and "created+spring_sale+%28en%29%3A+PENDING" in created.headers["location"]
    posted = [r for r in graph.requests if r.method == "POST" and r.path.endswith("/waba1/message_templates")]
    assert [p.body["name"] for p in posted] == ["spring_sale"]
    assert any(t.name == "spring_sale" and t.status == "PENDING" for t in app.templates())


async def test_a_graph_error_shows_its_code_and_title_and_never_the_token(make, graph, tmp_path: Path):
    token = "EAAG-wrong-token-for-the-fake"
    app = live(make, graph, token)
    async with console(app) as client:
        await log_in(client)
        synced = await post(client, "/console/templates/sync", account="waba1")
        page = (await client.get(synced.headers["location"])).text
        created = await post(client, "/console/templates/create", do="create", **SPRING)
    error = html.unescape(re.search(r'id="error">(.*?)</p>', page).group(1))
    assert error.startswith("sync failed: WhatsApp error 190: (#190) Error validating access token")
    assert created.status_code == 502 and "WhatsApp error 190" in created.text
    for text in (page, created.text, str(app.operators.audit_log())):
        assert token not in text
    assert [a["detail"][:25] for a in actions(app, "templates_sync")] == ["failed: WhatsApp error 19"]
