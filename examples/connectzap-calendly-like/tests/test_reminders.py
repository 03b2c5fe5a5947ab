"""What a booking does end to end: the confirmation goes out, the reminder waits, a cancellation stops it."""

import json
from pathlib import Path

import connectzap_calendly_like
from connectzap import Category
from connectzap.testing import deliver, put_templates, run, standard_webhooks_headers, webhook_request

from test_conformance import SECRET, TEMPLATES

PAYLOADS = Path(__file__).parent / "payloads"


def post(app, name):
    """Deliver a payload file, signed, the way the HTTP service would."""
    body = (PAYLOADS / f"{name}.json").read_bytes()
    request = webhook_request("/webhooks/calendly_like", body, headers=standard_webhooks_headers(body, SECRET))
    return deliver(app, "calendly_like", request)


def booking_app(connectzap_factory, register_plugin):
    register_plugin(connectzap_calendly_like)
    app = connectzap_factory(connectors={"calendly_like": {"signing_secrets": [SECRET]}})
    put_templates(app, TEMPLATES)
    return app


def test_booking_with_opt_in_confirms_now_and_schedules_the_reminder(connectzap_factory, register_plugin):
    app = booking_app(connectzap_factory, register_plugin)
    assert post(app, "invitee_created").status == 200
    run(app)
    [confirmation] = app.channel.sent()
    assert confirmation["to"] == "4915112345678"
    assert confirmation["template"]["name"] == "appointment_confirmed"
    params = [p["text"] for p in confirmation["template"]["components"][0]["parameters"]]
    assert params == ["Ana", "Coffee tasting", "Thu 09 May 2030, 16:00 (Europe/Berlin)"]
    assert app.consent("+4915112345678")[Category.UTILITY].granted
    waiting = app.messages(status="queued")
    assert [m["template_name"] for m in waiting] == ["appointment_reminder"]


def test_cancellation_cancels_the_waiting_reminder(connectzap_factory, register_plugin):
    app = booking_app(connectzap_factory, register_plugin)
    post(app, "invitee_created")
    run(app)
    assert post(app, "invitee_canceled").status == 200
    run(app)
    assert app.messages(status="queued") == []
    assert [m["template_name"] for m in app.messages(status="cancelled")] == ["appointment_reminder"]


def test_no_opt_in_no_message(connectzap_factory, register_plugin):
    app = booking_app(connectzap_factory, register_plugin)
    post(app, "invitee_created_no_consent")
    run(app)
    assert app.channel.sent() == []
    assert {m["reason"] for m in app.messages()} == {"no_consent"}


def test_bad_signature_is_refused_and_nothing_is_stored(connectzap_factory, register_plugin):
    app = booking_app(connectzap_factory, register_plugin)
    body = (PAYLOADS / "invitee_created.json").read_bytes()
    headers = standard_webhooks_headers(body, SECRET)
    response = deliver(app, "calendly_like", webhook_request("/webhooks/calendly_like", body + b" ", headers=headers))
    assert response.status == 401 and json.dumps(response.body).count(SECRET) == 0
    run(app)
    assert app.messages() == []
