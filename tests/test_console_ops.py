"""The console's operations on outbound webhooks and consent: Replay of a generic subscription's
delivery (the engine's ``replay_delivery``, what ``connectzap webhooks replay`` runs). Each action
needs a session and the form's CSRF token, is audited, and puts no full number on a page. And the
Contacts page's consent CSV import (``connectzap consent import``'s reader and engine method), with
and without the page's script."""

from __future__ import annotations

import html
import json

import pytest
from sqlalchemy import select
from console_support import PASSWORD, USER, csrf_of, log_in
from generic_support import make_due, receiver
from test_console_routes import console, digits
from test_generic_subscriptions import PHONE, delivery, inbound, subscription

from connectzap.console.passwords import hash_password
from connectzap.core.models import Category
from connectzap.core.store.schema import campaigns
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

TARGET = "connector:generic:crm"


@pytest.fixture
def webhook_shop(make):
    def build(url: str):
        app = make(console={"enabled": True}, workers={"max_attempts": 2},
                   connectors={"generic": {"subscriptions": {"crm": subscription(url)}}})
        app.operators.add_user(USER, hash_password(PASSWORD))
        return app
    return build


async def test_replay_of_a_dead_webhook_needs_login_and_csrf_is_audited_and_sends_it_again(webhook_shop):
    async with receiver(then=503) as crm:
        app = webhook_shop(crm.url)
        event_id = inbound(app)
        for _ in range(3):
            await Worker(app).run_until_idle()
            make_due(app)
        assert delivery(app, event_id, TARGET)["status"] == "dead" and len(crm.received) == 2
        form = {"target": TARGET}
        async with console(app) as client:
            stranger = await client.post(f"/console/events/{event_id}/replay", data={**form, "csrf": "x"})
            assert stranger.status_code == 403
            await log_in(client)
            page = await client.get(f"/console/events/{event_id}")
            assert page.status_code == 200 and f'action="/console/events/{event_id}/replay"' in page.text
            assert digits(PHONE) not in digits(page.text)  # masked only
            forged = await client.post(f"/console/events/{event_id}/replay", data={**form, "csrf": "0" * 64})
            assert forged.status_code == 403 and delivery(app, event_id, TARGET)["status"] == "dead"
            done = await client.post(f"/console/events/{event_id}/replay", data={**form, "csrf": csrf_of(page.text)})
            assert done.status_code == 303 and done.headers["location"].startswith(f"/console/events/{event_id}?done=")
            assert delivery(app, event_id, TARGET)["status"] == "pending"
            again = await client.post(f"/console/events/{event_id}/replay", data={**form, "csrf": csrf_of(page.text)})
            shown = await client.get(again.headers["location"])  # still queued: refused, said, nothing changed
            assert 'id="error"' in shown.text and "still queued" in html.unescape(shown.text)
            core = await client.post(f"/console/events/{event_id}/replay",
                                     data={"target": "core", "csrf": csrf_of(page.text)})
            assert "not replayed" in html.unescape((await client.get(core.headers["location"])).text)
        crm.then = 200
        await Worker(app).run_until_idle()
    assert delivery(app, event_id, TARGET)["status"] == "done"
    assert [r["answered"] for r in crm.received] == [503, 503, 200]
    assert len({r["headers"]["webhook-id"] for r in crm.received}) == 1
    [audited] = [a for a in app.operators.audit_log() if a["action"] == "delivery_replay"]
    assert audited["target"] == f"event {event_id} to {TARGET}" and audited["detail"] == "was dead, queued again"


async def test_no_replay_button_for_deliveries_that_cannot_be_replayed(webhook_shop):
    async with receiver() as crm:
        app = webhook_shop(crm.url)
        event_id = inbound(app)  # pending: not yet delivered
        async with console(app) as client:
            await log_in(client)
            page = await client.get(f"/console/events/{event_id}")
    assert page.status_code == 200 and "/replay" not in page.text


async def test_no_replay_button_once_the_payload_is_erased(webhook_shop):
    async with receiver() as crm:
        app = webhook_shop(crm.url)  # privacy.retention_hours = 0: a delivered event's payload goes at once
        event_id = inbound(app)
        await Worker(app).run_until_idle()
        async with console(app) as client:
            await log_in(client)
            page = await client.get(f"/console/events/{event_id}")
    assert delivery(app, event_id, TARGET)["status"] == "done"
    assert page.status_code == 200 and "/replay" not in page.text


# --- consent import ---------------------------------------------------------------------------------------------

HEADER = "phone,category,granted,source,proof,at\n"
GOOD = ["+4915112300001,marketing,yes,newsletter,Ticked the WhatsApp box,2025-06-01T10:00:00Z",
        "+4915112300002,utility,true,checkout,Order form opt-in,2025-06-01T10:00:00Z"]
BAD_PROOF = "+4915112300003,marketing,yes,newsletter,,2025-06-01T10:00:00Z"
BAD_GRANTED = "+4915112300004,marketing,maybe,newsletter,proof,2025-06-01T10:00:00Z"


def csv_file(*lines: str) -> bytes:
    return (HEADER + "".join(line + "\n" for line in lines)).encode()


@pytest.fixture
def ledger_shop(make):
    app = make(console={"enabled": True, "max_upload_bytes": 100_000}, api={"max_body_bytes": 4000})
    app.operators.add_user(USER, hash_password(PASSWORD))
    return app


def granted(app) -> int:
    return sum(1 for r in app.consent_ledger() if r.granted)


async def post_import(client, body: bytes, csrf: str, *, progress: bool = False, **fields: str):
    return await client.post("/console/contacts/import", data={"csrf": csrf, **fields},
                             files={"file": ("optins.csv", body, "text/csv")},
                             headers={"X-Console-Progress": "1"} if progress else {})


async def test_import_without_js_checks_everything_first_and_names_bad_lines(ledger_shop):
    app = ledger_shop
    async with console(app) as client:
        stranger = await post_import(client, csv_file(*GOOD), "x")
        assert stranger.status_code == 403 and granted(app) == 0
        await log_in(client)
        page = await client.get("/console/contacts")
        assert 'action="/console/contacts/import"' in page.text and 'enctype="multipart/form-data"' in page.text
        csrf = csrf_of(page.text)
        forged = await post_import(client, csv_file(*GOOD), "0" * 64)
        assert forged.status_code == 403 and granted(app) == 0
        bad = await post_import(client, csv_file(GOOD[0], BAD_PROOF, GOOD[1], BAD_GRANTED), csrf)
        assert bad.status_code == 400 and granted(app) == 0  # nothing half-applied
        text = html.unescape(bad.text)
        assert "line 3: an opt-in needs its proof" in text and "line 5: granted 'maybe' is not true or false" in text
        assert "optins.csv: 2 bad lines, nothing imported" in text
        header = await post_import(client, b"telefono,categoria\n+4915112300001,marketing\n", csrf)
        assert header.status_code == 400 and "unknown columns 'telefono', 'categoria';" in html.unescape(header.text)
        skipped = await post_import(client, csv_file(GOOD[0], BAD_PROOF, GOOD[1]), csrf, skip_invalid="on")
        assert skipped.status_code == 200 and granted(app) == 2
        assert "imported 2, already recorded 0, skipped 1 bad line<" in skipped.text
        again = await post_import(client, csv_file(*GOOD), csrf)
        assert again.status_code == 200 and "imported 0, already recorded 2" in again.text and granted(app) == 2
    for answer in (bad, skipped, again):
        assert not any(digits(line.split(",")[0]) in digits(answer.text) for line in (*GOOD, BAD_PROOF, BAD_GRANTED))
    audits = [(a["action"], a["detail"]) for a in app.operators.audit_log() if a["action"] == "consent_import"]
    assert len(audits) == 4 and ("consent_import", "imported 0, already recorded 2") in audits
    assert app.consent("+4915112300001")[Category.MARKETING].source == "newsletter"


async def test_import_with_progress_streams_what_it_did_then_the_result(ledger_shop):
    app = ledger_shop
    lines = [f"+49151124{n:05d},marketing,yes,form,Ticked the box,2025-06-01T10:00:00Z" for n in range(1200)]
    async with console(app) as client:
        await log_in(client)
        csrf = csrf_of((await client.get("/console/contacts")).text)
        answer = await post_import(client, "".join(f"{line}\n" for line in [HEADER.strip(), *lines]).encode(),
                                   csrf, progress=True)
        said = [json.loads(line) for line in answer.text.splitlines()]
        refused = await post_import(client, csv_file(BAD_PROOF), csrf, progress=True)
        refusal = [json.loads(line) for line in refused.text.splitlines()]
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/x-ndjson")
    assert {"phase": "checking", "lines": 1200} in said
    assert [s["done"] for s in said if s["phase"] == "importing"] == [0, 1000, 1200]
    assert said[-1]["phase"] == "done" and said[-1]["ok"] and "imported 1200, already recorded 0" in said[-1]["html"]
    assert granted(app) == 1200
    assert refusal[-1]["ok"] is False and "line 2: an opt-in needs its proof" in html.unescape(refusal[-1]["html"])
    assert not [s for s in refusal if s["phase"] == "importing"] and granted(app) == 1200
    assert [a["detail"] for a in app.operators.audit_log() if a["action"] == "consent_import"][0].startswith(
        "optins.csv: 1 bad line, nothing imported")


async def test_import_upload_limit_is_the_consoles(ledger_shop):
    app = ledger_shop
    async with console(app) as client:
        await log_in(client)
        csrf = csrf_of((await client.get("/console/contacts")).text)
        fits = await post_import(client, csv_file(*GOOD * 40), csrf)  # over api.max_body_bytes, under the console's
        huge = await post_import(client, csv_file(*GOOD * 700), csrf)
    assert fits.status_code == 200, fits.text[:300]
    assert granted(app) == 2
    assert huge.status_code == 413


# --- send from: the number a console campaign leaves from -------------------------------------------------------

def two_accounts() -> list[dict[str, object]]:
    return [{"name": name, "waba_id": waba, "access_token": f"EAAG-{name}", "app_secrets": [f"{name}-secret"],
             "numbers": numbers} for name, waba, numbers in
            (("shop", "102290129340398", ["106540352242922", "106540352242923"]),
             ("outlet", "204410775512001", ["117700998811001"]))]


def sent_from(app) -> dict[str, str | None]:
    with app.db.read() as conn:
        return {r.name: r.business_phone_number_id for r in conn.execute(
            select(campaigns.c.name, campaigns.c.business_phone_number_id))}


async def new_campaign(client, name: str, **fields: str):
    page = await client.get("/console/campaigns")
    return page, await client.post("/console/campaigns", data={
        "csrf": csrf_of(page.text), "name": name, "template": "spring_sale|en", **fields},
        files={"audience": ("list.csv", b"phone,1,2\n+4915112300001,Di,30%\n", "text/csv")})


async def test_with_several_numbers_a_campaign_is_sent_from_the_one_chosen(make):
    app = make(console={"enabled": True}, connectors={"whatsapp": {
        "verify_token": "v", "api_base_url": "https://graph.invalid", "accounts": two_accounts()}})
    app.operators.add_user(USER, hash_password(PASSWORD))
    seed_template(app, "spring_sale", "Hi {{1}}, {{2}} off today", category="MARKETING")
    async with console(app) as client:
        await log_in(client)
        page, chosen = await new_campaign(client, "outlet-sale", send_from="117700998811001")
        _, default = await new_campaign(client, "default-sale")
        _, unknown = await new_campaign(client, "nowhere", send_from="999")
    assert '<label for="n-send-from">Send from</label>' in page.text
    assert '<option value="106540352242923">' in page.text and '<option value="117700998811001">' in page.text
    assert chosen.status_code == default.status_code == 303
    assert unknown.status_code == 400 and "Choose a number to send from" in unknown.text
    assert sent_from(app) == {"outlet-sale": "117700998811001", "default-sale": None}


async def test_with_one_number_there_is_no_choice(make):
    app = make(console={"enabled": True})
    app.operators.add_user(USER, hash_password(PASSWORD))
    seed_template(app, "spring_sale", "Hi {{1}}, {{2}} off today", category="MARKETING")
    async with console(app) as client:
        await log_in(client)
        page, refused = await new_campaign(client, "sale", send_from="106540352242922")
    assert 'name="send_from"' not in page.text
    assert refused.status_code == 400 and sent_from(app) == {}


@pytest.mark.parametrize(("more", "said"), [(1, "... and 1 more bad line<"), (2, "... and 2 more bad lines<")])
def test_bad_lines_beyond_those_shown_agree_in_number(more, said):
    """They said "... and 1 more bad lines"."""
    from connectzap.console.consent_import import ImportOutcome
    from connectzap.console.rendering import environment
    from connectzap.core.consent_files import BadLine
    shown = [BadLine(line=2, reason="no proof")]
    outcome = ImportOutcome("optins.csv", error="refused", bad=shown, bad_count=1 + more)
    assert said in environment().get_template("_import_result.html").render(imported=outcome)
    assert said in environment().get_template("_bad_lines.html").render(bad=shown, bad_count=1 + more)
