"""Scheduled reminders: wait in the outbox, fire when due, re-checked by the gate, cancelled and moved."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from generic_support import example_body, example_config, make_due, outbox_rows, post

from connectzap.connectors.generic.mapping import as_datetime
from connectzap.core.errors import PayloadError
from connectzap.core.models import Category, ConsentChange
from connectzap.core.worker import Worker
from connectzap.testing import seed_template, standard_webhooks_headers

SECRET = "whsec_q4hnRiw3JONFzfu7ioJm3HhYlRjFq1b0"  # the one in tests/payloads/generic/appointments.toml
PHONE = "+34612345678"
EPOCH = datetime(2032, 5, 22, 9, 30, tzinfo=UTC)


def booking_app(make, **source_changes):
    config = example_config("appointments")
    config["generic"]["sources"]["bookings"]["mappings"][0].update(source_changes)
    app = make(connectors=config)
    seed_template(app, "appointment_reminder", "Hi {{1}}, see you on {{2}}. Reply to change it.")
    return app


def deliver(app, name_or_payload, msg_id: str) -> dict:
    body = example_body(name_or_payload) if isinstance(name_or_payload, str) else \
        json.dumps(name_or_payload).encode()
    response = post(app, "bookings", body, standard_webhooks_headers(body, SECRET, msg_id=msg_id))
    assert response.status == 200, response.body
    return response.body


def booking(start: datetime) -> dict:
    data = json.loads(example_body("appointment-booked"))
    data["data"]["start"] = start.isoformat()
    return data


async def test_doc_example_booked_rescheduled_cancelled(make):
    app = booking_app(make)
    deliver(app, "appointment-booked", "msg_booked")
    await Worker(app).run_until_idle()
    [first] = outbox_rows(app)
    assert first["status"] == "queued" and first["cancel_key"] == "generic:bookings:apt_7731"
    assert first["not_before"] == datetime(2031, 5, 19, 7, 30, tzinfo=UTC).timestamp()  # 24 h before 09:30+02:00
    assert app.consent(PHONE)[Category.UTILITY].source == "booking-page"

    deliver(app, "appointment-rescheduled", "msg_moved")
    assert deliver(app, "appointment-rescheduled", "msg_moved") == {"received": 0, "duplicates": 2}
    await Worker(app).run_until_idle()
    old, new = outbox_rows(app)
    assert (old["id"], old["status"]) == (first["id"], "cancelled")
    assert new["status"] == "queued" and new["not_before"] == datetime(2031, 5, 21, 14, 0, tzinfo=UTC).timestamp()

    deliver(app, "appointment-cancelled", "msg_cancelled")
    await Worker(app).run_until_idle()
    assert [r["status"] for r in outbox_rows(app)] == ["cancelled", "cancelled"]
    make_due(app)
    await Worker(app).run_until_idle()
    assert app.channel.sent() == []


async def test_reminder_already_due_fires_once(make):
    app = booking_app(make)
    deliver(app, booking(datetime.now(UTC) + timedelta(hours=23)), "msg_soon")
    deliver(app, booking(datetime.now(UTC) + timedelta(hours=23)), "msg_soon")  # the sender retried
    await Worker(app).run_until_idle()
    sent = app.channel.sent()
    assert len(sent) == 1 and sent[0]["template"]["name"] == "appointment_reminder"
    assert sent[0]["to"] == PHONE.lstrip("+")
    assert [p["text"] for p in sent[0]["template"]["components"][0]["parameters"]] == ["Marta", "Tuesday 20 May, 9:30"]


async def test_reminder_waits_then_fires_when_due(make):
    app = booking_app(make)
    start = datetime.now(UTC) + timedelta(days=3)
    deliver(app, booking(start), "msg_later")
    await Worker(app).run_until_idle()
    [row] = outbox_rows(app)
    assert row["status"] == "queued" and row["not_before"] == pytest.approx((start - timedelta(hours=24)).timestamp())
    assert app.channel.sent() == []
    make_due(app)  # two days pass
    await Worker(app).run_until_idle()
    assert len(app.channel.sent()) == 1 and outbox_rows(app)[0]["status"] in ("accepted", "sent", "delivered")


async def test_consent_revoked_while_waiting_is_refused_when_due(make):
    app = booking_app(make)
    deliver(app, booking(datetime.now(UTC) + timedelta(days=3)), "msg_revoke")
    await Worker(app).run_until_idle()
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=False, source="customer-call"))
    make_due(app)
    await Worker(app).run_until_idle()
    [row] = outbox_rows(app)
    assert (row["status"], row["reason"]) == ("refused", "opted_out")
    assert app.channel.sent() == []


async def test_if_past_skip_sends_nothing_for_a_passed_reminder(make):
    app = booking_app(make, send_at={"field": "data.start", "offset": "-24h", "if_past": "skip"})
    deliver(app, booking(datetime.now(UTC) + timedelta(hours=2)), "msg_late")
    await Worker(app).run_until_idle()
    assert outbox_rows(app) == [] and app.channel.sent() == []


async def test_cancel_touches_only_its_own_source_and_key(make):
    app = booking_app(make)
    later = datetime.now(UTC) + timedelta(days=3)
    deliver(app, booking(later), "msg_a")
    other = booking(later)
    other["data"]["appointment_id"] = "apt_other"
    deliver(app, other, "msg_b")
    deliver(app, "appointment-cancelled", "msg_c")
    await Worker(app).run_until_idle()
    statuses = {r["cancel_key"]: r["status"] for r in outbox_rows(app)}
    assert statuses == {"generic:bookings:apt_7731": "cancelled", "generic:bookings:apt_other": "queued"}


@pytest.mark.parametrize(("value", "zone", "expected"), [
    ("2031-05-20T09:30:00", "Europe/Madrid", datetime(2031, 5, 20, 7, 30, tzinfo=UTC)),
    ("2031-05-20T09:30:00Z", "Europe/Madrid", datetime(2031, 5, 20, 9, 30, tzinfo=UTC)),
    (int(EPOCH.timestamp()), "UTC", EPOCH),
    (int(EPOCH.timestamp()) * 1000, "UTC", EPOCH),  # milliseconds
])
def test_send_times(value, zone, expected):
    assert as_datetime(value, "start", zone) == expected


@pytest.mark.parametrize("value", ["next tuesday", True, [1]])
def test_bad_send_time_names_the_field(value):
    with pytest.raises(PayloadError) as caught:
        as_datetime(value, "data.start", "UTC")
    assert caught.value.field == "data.start"


@pytest.mark.parametrize("sms_box, refusal", [(True, None), (False, "opted_out"), (None, "no_consent")])
async def test_a_reminder_falls_back_on_the_media_its_mapping_names_with_consent_from_the_payload(
        make, sms_box, refusal):
    """A send mapping names ``fallback`` media and a consent on SMS from the booking page's box: a
    number without WhatsApp gets the reminder by SMS once (a replayed delivery adds nothing); with the
    box unticked (an opt-out) or absent (nothing recorded) the SMS is refused with that reason;
    ``email`` is skipped for a payload with no address, and the WhatsApp reminder still goes."""
    from connectzap.core.channel import SMS
    from connectzap.core.errors import SkippableDeliveryError
    from connectzap.testing import FakeChannel, FakeWhatsApp
    config = example_config("appointments")
    mapping = config["generic"]["sources"]["bookings"]["mappings"][0]
    mapping.update(fallback=["email", "sms"], fallback_after_minutes=30)
    mapping["consents"] = [*mapping["consents"], {"category": "utility", "source": "booking-page", "medium": "sms",
                                                  "granted": "data.client.sms_reminders",
                                                  "proof": "'Or remind me by SMS'"}]
    whatsapp, sms = FakeWhatsApp(), FakeChannel(SMS)
    app = make(connectors=config, channel=whatsapp)
    app.use_channel(sms)
    seed_template(app, "appointment_reminder", "Hi {{1}}, see you on {{2}}. Reply to change it.")
    payload = booking(datetime.now(UTC) + timedelta(hours=23))
    payload["data"]["client"]["sms_reminders"] = sms_box
    whatsapp.fail_next(SkippableDeliveryError("no WhatsApp account", code="unreachable", vendor_code=131026))
    deliver(app, payload, "msg_soon")
    deliver(app, payload, "msg_soon")
    await Worker(app).run_until_idle()
    rows = outbox_rows(app)
    [original] = [r for r in rows if r["medium"] == "whatsapp"]
    assert (original["status"], original["reason"]) == ("failed", "unreachable")
    fallbacks = [r for r in rows if r["fallback_of"] == original["id"]]
    assert [r["medium"] for r in fallbacks] == ["sms"]  # no address: no email try
    if refusal is None:
        assert fallbacks[0]["status"] == "accepted" and len(sms.sent_to(PHONE)) == 1
    else:
        assert (fallbacks[0]["status"], fallbacks[0]["reason"]) == ("refused", refusal) and sms.messages == []


@pytest.mark.parametrize("where, fallback, refusal", [
    (-1, ["sms"], "fallback belong to send mappings"),
    (0, ["whatsapp"], "cannot name whatsapp"),
    (0, ["sms", "sms"], "names a medium twice")])
def test_a_mapping_fallback_that_cannot_be_is_refused_at_start(make, where, fallback, refusal):
    config = example_config("appointments")
    config["generic"]["sources"]["bookings"]["mappings"][where]["fallback"] = fallback
    with pytest.raises(Exception, match=refusal):
        make(connectors=config)
