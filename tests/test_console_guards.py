"""Every console route, as the router lists it (so a route added later is covered too): each page
needs a login (sent to the login page; the live numbers answer 401), and each action needs a live
session and its form's CSRF token -- without either it answers 403 and changes nothing in the
database. Only the login form and the stylesheet and script are public."""

from __future__ import annotations

import re

from console_support import ANA, PAUSE_REASON, log_in
from test_console_routes import console, shop  # noqa: F401  (the story's shop, as a fixture)

import connectzap.console  # noqa: F401  (its modules add their routes)
from connectzap.console.pages import UPLOADS, router

PUBLIC = {("GET", "/console/login"), ("POST", "/console/login"), ("GET", "/console/static/{name}")}
LIVE = re.compile(r"/live$")  # polled by the pages' script: 401, not a redirect

# What a form would carry if it were real: enough for each action to do something, were it let through.
FORM = {"phone": ANA, "category": "utility", "action": "grant", "proof": "ticked the box",
        "target": "order_notifications", "name": "winter", "template": "order_confirmation|en", "params": "Ana\n7",
        "keyword": "hola",
        "body": "Hi {{1}}", "language": "en", "medium": "whatsapp"}


def routes() -> list[tuple[str, str]]:
    return sorted((method, route.path) for route in router.routes for method in getattr(route, "methods", ()) or ())


def snapshot(app, campaign_id: str) -> dict[str, object]:
    """What an action could change: the audit log, dead letters, pausing, consent, campaigns, messages,
    templates, events, handed-over conversations and sessions."""
    return {"audit": [(a["action"], a["target"]) for a in app.operators.audit_log()],
            "dead": [d.event_id for d in app.dead_letters()], "paused": app.paused(),
            "consent": app.consent(ANA), "campaign": app.campaigns.get(campaign_id).state,
            "campaigns": len(app.campaigns.listing()),
            "messages": [(m["id"], m["status"]) for m in app.messages(limit=500)],
            "templates": [(t.name, t.status) for t in app.templates()], "events": len(app.events(limit=500))}


def test_every_route_is_public_a_page_or_an_action():
    listed = routes()
    assert PUBLIC <= set(listed)
    assert {m for m, _ in listed} == {"GET", "POST"}
    assert len(listed) >= 40  # every module's routes are registered


async def test_every_page_needs_a_login_and_every_action_a_session_and_its_csrf_token(shop):  # noqa: F811
    app, ids = shop
    made = app.campaigns.create("draft", {"name": "order_confirmation", "language": "en"})
    values = {"message_id": app.messages(status="refused")[0]["id"], "event_id": str(ids["dead"]),
              "campaign_id": made.id, "what": "pause", "name": "woocommerce"}
    guarded = [(m, p) for m, p in routes() if (m, p) not in PUBLIC]
    before = snapshot(app, made.id)
    assert before["dead"] and before["paused"] == PAUSE_REASON  # there is something to retry and resume

    async def post(path: str, fields: dict[str, str]):
        if UPLOADS.fullmatch(path):
            field = "file" if path.endswith("/import") else "audience"  # one file a form
            return await client.post(path, data=fields, files={field: ("list.csv", f"phone\n{ANA}\n".encode())})
        return await client.post(path, data=fields)

    async with console(app) as client:
        for method, template in guarded:
            path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
            if method == "GET":
                answer = await client.get(path)
                if LIVE.search(path):
                    assert answer.status_code == 401, path
                else:
                    assert answer.status_code == 303, path
                    assert answer.headers["location"].startswith("/console/login?next="), path
            else:
                for fields in ({**FORM, "csrf": "0" * 64}, FORM):
                    answer = await post(path, fields)
                    assert answer.status_code == 403, path
        assert snapshot(app, made.id) == before

        await log_in(client)
        logged_in = snapshot(app, made.id)
        assert [a for a, _ in logged_in["audit"]] == ["login", *(a for a, _ in before["audit"])]
        for method, template in guarded:
            if method != "POST":
                continue
            path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
            for fields in ({**FORM, "csrf": "f" * 64}, FORM):  # another token, and none
                answer = await post(path, fields)
                assert answer.status_code == 403, path
        assert snapshot(app, made.id) == logged_in
        assert (await client.get("/console")).status_code == 200  # still logged in: logout was refused too
