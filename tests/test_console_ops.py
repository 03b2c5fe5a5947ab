"""The console's operations on outbound webhooks and consent: Replay of a generic subscription's
delivery (the engine's ``replay_delivery``, what ``connectzap webhooks replay`` runs). Each action
needs a session and the form's CSRF token, is audited, and puts no full number on a page."""

from __future__ import annotations

import html

import pytest
from console_support import PASSWORD, USER, csrf_of, log_in
from generic_support import make_due, receiver
from test_console_routes import console, digits
from test_generic_subscriptions import PHONE, delivery, inbound, subscription

from connectzap.console.passwords import hash_password
from connectzap.core.worker import Worker

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
