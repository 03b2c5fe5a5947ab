"""The console's routes without a browser: who may see and do what (login, rate limit, CSRF, the
session cookie), that no full number, key or message text reaches a page, and that filters and
actions do what the CLI's same engine methods do."""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from console_support import (ANA, PASSWORD, PAUSE_REASON, PLUGINS, USER, csrf_of, log_in, tell_story,
                             unknown_message)
from server_support import KEY

from connectzap.cli.running import http_extensions
from connectzap.console import mount
from connectzap.core.http import create_app
from connectzap.core.worker import Worker


@pytest.fixture
def shop(make):
    app = make(api={"keys": [KEY]}, plugins=PLUGINS, console={"enabled": True}, privacy={"retention_hours": 1})
    return app, tell_story(app)


@asynccontextmanager
async def console(app) -> AsyncIterator[httpx.AsyncClient]:
    """The service with the console, over https (its cookie is Secure), redirects not followed."""
    served = create_app(app, run_workers=False, extensions=[mount])
    async with served.router.lifespan_context(served):
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            yield client


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def test_the_console_is_off_unless_enabled(make):
    assert http_extensions(make(console={"enabled": False})) == []
    assert http_extensions(make("on", console={"enabled": True})) == [mount]


async def test_pages_need_a_login_and_the_login_sets_a_strict_cookie(shop):
    app, _ = shop
    async with console(app) as client:
        first = await client.get("/console/messages?status=refused")
        assert first.status_code == 303
        assert first.headers["location"] == "/console/login?next=%2Fconsole%2Fmessages%3Fstatus%3Drefused"
        answer = await log_in(client, name=USER, password=PASSWORD, next="/console/messages?status=refused")
        assert answer.status_code == 303 and answer.headers["location"] == "/console/messages?status=refused"
        cookie = next(v for k, v in answer.headers.multi_items()
                      if k == "set-cookie" and v.startswith("connectzap_console="))
        assert {"HttpOnly", "Secure", "SameSite=strict", "Path=/console"} <= {p.strip() for p in cookie.split(";")}
        page = await client.get("/console")
        assert page.status_code == 200 and "Log out" in page.text
        assert page.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in page.headers[
            "content-security-policy"]
    assert [a["action"] for a in app.operators.audit_log()][0] == "login"


async def test_next_never_leaves_the_console(shop):
    app, _ = shop
    async with console(app) as client:
        answer = await log_in(client, name=USER, password=PASSWORD, next="//evil.example/console")
        assert answer.headers["location"] == "/console"


async def test_a_wrong_password_is_refused_recorded_and_rate_limited(shop):
    app, _ = shop
    limit = app.settings.console.login_attempts
    async with console(app) as client:
        for _ in range(limit):
            wrong = await log_in(client, name=USER, password="not the password at all")
            assert wrong.status_code == 401 and "connectzap_console=" not in wrong.headers.get("set-cookie", "")
        # even the right password waits now: the failures are in the shared store, not one process
        blocked = await log_in(client, name=USER, password=PASSWORD)
        assert blocked.status_code == 429 and "Too many failed logins" in blocked.text
        assert (await client.get("/console")).status_code == 303
    failed = [a for a in app.operators.audit_log() if a["action"] == "login_failed"]
    assert len(failed) == limit and all(a["target"] == USER for a in failed)


async def test_the_login_form_needs_its_csrf_token(shop):
    app, _ = shop
    async with console(app) as client:
        answer = await client.post("/console/login", data={"name": USER, "password": PASSWORD, "csrf": "0" * 64})
        assert answer.status_code == 403 and "connectzap_console=" not in answer.headers.get("set-cookie", "")


async def test_an_api_key_logs_in_and_no_page_shows_a_key_or_a_full_number(shop):
    app, ids = shop
    async with console(app) as client:
        wrong = await log_in(client, api_key="not-" + KEY)
        assert wrong.status_code == 401
        assert (await log_in(client, api_key=KEY)).status_code == 303
        pages = ["/console", "/console/messages", "/console/events", "/console/dead", "/console/messages/unknown",
                 "/console/templates", f"/console/contacts?contact={app.contact_key(ANA)}",
                 f"/console/events/{ids['refused']}", f"/console/events/{ids['dead']}"]
        refused = app.messages(status="refused")[0]["id"]
        pages.append(f"/console/messages/{refused}")
        for path in pages:
            page = await client.get(path)
            assert page.status_code == 200, path
            assert KEY not in page.text and app.secret.hex() not in page.text, path
            assert digits(ANA) not in digits(page.text), path
        assert "<td>erased</td>" in (await client.get("/console/messages")).text  # refused: number gone at once


async def test_resume_needs_csrf_and_is_recorded(shop):
    app, _ = shop
    async with console(app) as client:
        await log_in(client)
        page = await client.get("/console")
        assert PAUSE_REASON in page.text and "Resume sending" in page.text
        forged = await client.post("/console/resume", data={"csrf": "f" * 64})
        assert forged.status_code == 403 and app.paused() == PAUSE_REASON
        missing = await client.post("/console/resume", data={})
        assert missing.status_code == 403 and app.paused() == PAUSE_REASON
        done = await client.post("/console/resume", data={"csrf": csrf_of(page.text)})
        assert done.status_code == 303 and app.paused() is None
        assert "Resume sending" not in (await client.get("/console")).text
    resumed = [a for a in app.operators.audit_log() if a["action"] == "resume_sending"]
    assert [(a["actor"], a["detail"]) for a in resumed] == [(f"user:{USER}", f"was paused: {PAUSE_REASON}")]


async def test_actions_without_a_session_do_nothing(shop):
    app, ids = shop
    async with console(app) as client:
        answer = await client.post(f"/console/events/{ids['dead']}/retry", data={"csrf": "0" * 64})
        assert answer.status_code == 403
    assert [d.event_id for d in app.dead_letters()] == [ids["dead"]]


async def test_logging_out_ends_the_session_everywhere(shop):
    app, _ = shop
    async with console(app) as client:
        await log_in(client)
        token = client.cookies.get("connectzap_console")
        page = await client.get("/console")
        assert (await client.post("/console/logout", data={"csrf": csrf_of(page.text)})).status_code == 303
        client.cookies.set("connectzap_console", token, domain="testserver", path="/console")
        assert (await client.get("/console")).status_code == 303
    assert app.operators.session_actor(token) is None


async def test_message_filters_and_the_number_search(shop):
    app, _ = shop
    refused = app.messages(status="refused")
    assert len(refused) == 1 and refused[0]["reason"] == "no_consent"
    mid = refused[0]["id"]
    async with console(app) as client:
        await log_in(client)
        assert mid in (await client.get("/console/messages?status=refused&reason=no_consent&since=24h")).text
        assert mid not in (await client.get("/console/messages?status=queued")).text
        assert mid not in (await client.get("/console/messages?reason=window_closed")).text
        assert mid in (await client.get("/console/messages?plugin=order_notifications")).text
        page = await client.get("/console/messages")
        found = await client.post("/console/messages/search", data={"csrf": csrf_of(page.text), "phone": ANA})
        where = found.headers["location"]
        assert found.status_code == 303 and digits(ANA) not in digits(where.split("masked=")[0])
        assert f"contact={app.contact_key(ANA)}" in where
        result = await client.get(where)
        assert mid in result.text and "+34*******78" in result.text
        other = await client.post("/console/messages/search", data={"csrf": csrf_of(page.text),
                                                                   "phone": "+34699999999"})
        assert mid not in (await client.get(other.headers["location"])).text
        bad = await client.post("/console/messages/search", data={"csrf": csrf_of(page.text), "phone": "12"})
        assert 'role="alert"' in (await client.get(bad.headers["location"])).text
        one = await client.get(f"/console/messages/{mid}")
        assert "no_consent" in one.text and 'class="stopped">refused' in one.text


async def test_retry_a_dead_letter_and_all_of_one_plugin(shop):
    app, ids = shop
    async with console(app) as client:
        await log_in(client)
        page = await client.get("/console/dead")
        assert "Retry all for order_notifications" in page.text
        assert 'data-confirm="Retry the 1 dead delivery of order_notifications?"' in page.text
        done = await client.post(f"/console/events/{ids['dead']}/retry", data={"csrf": csrf_of(page.text)})
        assert done.status_code == 303
        assert f"requeued 1 delivery of event {ids['dead']}<" in (await client.get(done.headers["location"])).text
        assert app.dead_letters() == []
        # dead again, then every dead delivery of the plugin at once
        app.settings.workers.max_attempts = 1
        await Worker(app).run_until_idle()
        assert [d.event_id for d in app.dead_letters()] == [ids["dead"]]
        page = await client.get("/console/dead")
        allof = await client.post("/console/dead/retry", data={"csrf": csrf_of(page.text),
                                                              "target": "order_notifications"})
        assert "requeued 1 delivery of order_notifications<" in (await client.get(allof.headers["location"])).text
        assert app.dead_letters() == []
    assert [(a["target"], a["detail"]) for a in app.operators.audit_log() if a["action"] == "retry_dead"] == [
        ("order_notifications", "1 delivery requeued"), (f"event {ids['dead']}", "1 delivery requeued")]


async def test_the_overview_shows_the_metrics_numbers(shop):
    app, _ = shop
    depths = app.queue_depths()
    async with console(app) as client:
        await log_in(client)
        page = (await client.get("/console")).text
        metrics = (await client.get("/metrics")).text
    for queue in ("events_pending", "messages_queued", "messages_sending", "messages_unknown"):
        shown = re.search(rf'id="depth-{queue}">(\d+)<', page)
        scraped = re.search(rf'connectzap_queue_depth{{queue="{queue}"}} (\d+)', metrics)
        assert shown and scraped and int(shown.group(1)) == int(float(scraped.group(1))), queue
    assert re.search(r'id="outcome-refused">1<', page)
    assert depths.messages.get("refused") == 1
    assert "whatsapp: messaging limit" in page and "0 of 250 unique recipients in the last 24 h" in page


def test_each_whatsapp_account_shows_its_own_budget(make):
    """With several accounts, each keeps its own daily budget: the overview lists one line each."""
    from connectzap.connectors.whatsapp import pacer
    accounts = [{"name": name, "waba_id": waba, "access_token": f"EAAG-{name}", "app_secrets": [f"{name}-secret"],
                 "numbers": [number]} for name, waba, number in
                (("shop", "102290129340398", "106540352242922"), ("outlet", "204410775512001", "117700998811001"))]
    app = make(connectors={"whatsapp": {"verify_token": "v", "api_base_url": "https://graph.invalid",
                                        "accounts": accounts}})
    budget = pacer.Pacer(app.db, default_number="106540352242922", daily_unique_recipients=10,
                         scope="102290129340398")
    with app.db.begin() as conn:  # two recipients counted on the shop's budget, none on the outlet's
        budget._budget(conn, time.time(), [pacer._Ask("106540352242922", k, True, None) for k in ("a", "b")],
                       [0, 1], [None, None], 10)
    lines = dict(app.connectors["whatsapp"].status_lines())
    assert set(lines) == {"messaging limit (shop)", "messaging limit (outlet)"}
    assert lines["messaging limit (shop)"].startswith("2 of 250 unique recipients in the last 24 h")
    assert lines["messaging limit (outlet)"].startswith("0 of 250 unique recipients in the last 24 h")


async def test_settle_an_unknown_message_now(shop):
    app, _ = shop
    mid = unknown_message(app)
    async with console(app) as client:
        await log_in(client)
        page = await client.get("/console/messages/unknown")
        assert f"Settle now ({app.settings.workers.unknown_policy})" in page.text
        assert digits(ANA) not in digits(page.text) and "+34*******78" in page.text
        forged = await client.post(f"/console/messages/{mid}/settle", data={"csrf": "0" * 64})
        assert forged.status_code == 403 and app.message(mid)["status"] == "unknown"
        done = await client.post(f"/console/messages/{mid}/settle", data={"csrf": csrf_of(page.text)})
        shown = (await client.get(done.headers["location"])).text
    expected = {"resend": ("queued", "queued to be resent"), "fail": ("failed", "failed as unconfirmed")}[
        app.settings.workers.unknown_policy]
    assert app.message(mid)["status"] == expected[0] and f"message {mid}: {expected[1]}" in shown
    assert [(a["action"], a["target"]) for a in app.operators.audit_log()][0] == ("settle_unknown", f"message {mid}")


async def test_look_a_contact_up_and_grant_and_revoke_consent_with_proof(shop):
    from connectzap.core import windows
    from connectzap.core.models import Category
    app, _ = shop
    proof = "Ticked 'WhatsApp me about my order' at checkout, order 1088"
    async with console(app) as client:
        await log_in(client)
        page = await client.get("/console/contacts")
        found = await client.post("/console/contacts/lookup", data={"csrf": csrf_of(page.text), "phone": ANA})
        where = found.headers["location"]
        assert f"contact={app.contact_key(ANA)}" in where and digits(ANA) not in digits(where.split("masked=")[0])
        shown = (await client.get(where)).text
        assert "never opened" in shown and shown.count("none on record") == 3
        assert digits(ANA) not in digits(shown) and "+34*******78" in shown

        form = {"csrf": csrf_of(shown), "phone": ANA, "category": "utility", "action": "grant",
                "back": app.contact_key(ANA), "masked": "+34*******78"}
        no_proof = await client.post("/console/contacts/consent", data={**form, "proof": "  "})
        assert "needs its proof" in (await client.get(no_proof.headers["location"])).text
        assert app.consent(ANA) == {}
        forged = await client.post("/console/contacts/consent", data={**form, "proof": proof, "csrf": "1" * 64})
        assert forged.status_code == 403 and app.consent(ANA) == {}

        granted = await client.post("/console/contacts/consent", data={**form, "proof": proof})
        after = (await client.get(granted.headers["location"])).text
        record = app.consent(ANA)[Category.UTILITY]
        assert (record.granted, record.source, record.proof) == (True, f"console:{USER}", proof)
        assert "+34*******78: utility granted" in after and proof in html.unescape(after)

        revoked = await client.post("/console/contacts/consent",
                                    data={**form, "action": "revoke", "source": "phone call", "proof": ""})
        assert "utility revoked" in (await client.get(revoked.headers["location"])).text
        assert [(r.granted, r.source) for r in app.consent_history(ANA)] == [(True, f"console:{USER}"),
                                                                             (False, "phone call")]
        with app.db.begin() as conn:  # Ana writes: her window opens for 24 hours
            windows.open_window(app.db, conn, app.contact_key(ANA), time.time(), None)
        assert "open until" in (await client.get(where)).text
    audit = [(a["action"], a["target"]) for a in app.operators.audit_log() if a["action"].startswith("consent")]
    assert audit == [("consent_revoke", "+34*******78 utility"), ("consent_grant", "+34*******78 utility")]


async def test_the_live_numbers_need_a_session_and_match_the_page(shop):
    app, _ = shop
    async with console(app) as client:
        assert (await client.get("/console/live")).status_code == 401
        await log_in(client)
        page = (await client.get("/console")).text
        numbers = (await client.get("/console/live")).json()["numbers"]
    for cell, n in numbers.items():
        assert f'id="{cell}">{n}<' in page, cell
    assert numbers["outcome-refused"] == 1 and numbers["depth-events_pending"] == app.queue_depths().events_pending


async def test_event_filters(shop):
    app, ids = shop
    async with console(app) as client:
        await log_in(client)

        async def listed(query: str) -> set[int]:
            page = (await client.get(f"/console/events?{query}")).text
            return {int(n) for n in re.findall(r'<tr data-id="(\d+)">', page)}

        assert await listed("") == set(ids.values())
        assert await listed("status=dead") == {ids["dead"]}
        assert await listed("kind=order_updated&since=1h&source=woocommerce") == set(ids.values())
        assert await listed("kind=lead") == set()
        assert await listed("source=hubspot") == set()
        assert await listed("status=bogus&kind=bogus") == set(ids.values())  # unknown values filter nothing


async def test_the_templates_page_lists_the_cache_the_gate_checks(shop):
    from connectzap.testing import seed_template
    app, _ = shop
    seed_template(app, "winter_sale", "Hi {{1}}, 20% off today", category="MARKETING", status="PAUSED")
    async with console(app) as client:
        await log_in(client)
        page = (await client.get("/console/templates")).text
    rows = dict(re.findall(r'<tr data-template="([^"]+)">(.*?)</tr>', page, flags=re.S))
    assert set(rows) == {f"{t.name}:{t.language}" for t in app.templates()}
    assert "PAUSED" in rows["winter_sale:en"] and "MARKETING" in rows["winter_sale:en"]
    assert "Hi {{1}}, 20% off today" in html.unescape(rows["winter_sale:en"])
    assert "APPROVED" in rows["order_confirmation:en"]


async def test_with_several_accounts_the_templates_page_shows_each_accounts_own(make):
    """Two accounts' templates of one name and language: a row each, with its account and its own text."""
    from connectzap.console.passwords import hash_password
    from connectzap.testing import seed_template
    accounts = [{"name": name, "waba_id": waba, "access_token": f"EAAG-{name}", "app_secrets": [f"{name}-secret"],
                 "numbers": [number]} for name, waba, number in
                (("shop", "102290129340398", "106540352242922"), ("outlet", "204410775512001", "117700998811001"))]
    app = make(api={"keys": [KEY]}, console={"enabled": True},
               connectors={"whatsapp": {"verify_token": "v", "api_base_url": "https://graph.invalid",
                                        "accounts": accounts}})
    app.operators.add_user(USER, hash_password(PASSWORD))
    seed_template(app, "order_shipped", "Order {{1}} is on its way.", waba_id="102290129340398")
    seed_template(app, "order_shipped", "{{1}}: 20% off, code {{2}}", category="MARKETING", waba_id="204410775512001")
    async with console(app) as client:
        await log_in(client)
        page = (await client.get("/console/templates")).text
    rows = dict(re.findall(r'<tr data-template="([^"]+)">(.*?)</tr>', page, flags=re.S))
    shop, outlet = rows["order_shipped:en@102290129340398"], rows["order_shipped:en@204410775512001"]
    assert "Order {{1}} is on its way." in html.unescape(shop) and "20% off" not in shop
    assert "{{1}}: 20% off, code {{2}}" in html.unescape(outlet) and "MARKETING" in outlet


@pytest.mark.parametrize(("grace", "said"), [(1, "within 1 second,"), (2, "within 2 seconds,")])
async def test_unknown_messages_grace_agrees_in_number(shop, grace, said):
    """It said "within 1 seconds"."""
    app, _ = shop
    app.settings.workers.unknown_grace_seconds = grace
    async with console(app) as client:
        await log_in(client)
        assert said in (await client.get("/console/messages/unknown")).text
