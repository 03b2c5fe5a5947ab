"""An SMS the whole way, through the engine: admitted by the gate on the sms medium's consent,
sent by the SMS channel to a local stand-in of Twilio's REST API, settled by Twilio's signed status
callback; quiet hours hold marketing SMS; STOP and START change SMS consent and nothing else."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from console_support import PASSWORD, USER, log_in
from sms_support import PUBLIC_URL, Answer, TwilioStandIn, callback, inbound_params, settings, status_params
from test_console_routes import console

from connectzap import Category, ConsentChange, Connectzap, Outgoing, TextContent
from connectzap.core import consent as ledger
from connectzap.core.channel import SMS, WHATSAPP
from connectzap.core.clock import use_clock
from connectzap.core.worker import Worker
from connectzap.cli import messages as cli_messages
from connectzap.cli.base import Ctx
from connectzap.connectors.sms.segments import count_segments
from connectzap.console.passwords import hash_password
from connectzap.testing import deliver

PHONE = "+4915112345678"
API_KEY = "sms-test-api-key-0123456789abcdef"


@pytest.fixture
def twilio() -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as stand_in:
        yield stand_in


def engine(make: Callable[..., Connectzap], twilio: TwilioStandIn) -> Connectzap:
    # WhatsApp goes to the sandbox; the SMS connector offers the channel for sms
    return make(connectors={"sms": settings(api_base_url=twilio.url, status_callback_url=PUBLIC_URL)})


def grant(app: Connectzap, category: Category, medium: str = SMS, granted: bool = True) -> None:
    app.set_consent(ConsentChange(phone=PHONE, category=category, granted=granted, source="test", proof="form",
                                  medium=medium))


def consent_on(app: Connectzap, medium: str) -> dict[Category, bool]:
    with app.db.read() as conn:
        return {c: r.granted for c, r in ledger.current(conn, app.contact_key(PHONE), medium).items()}


def text(body: str = "Your parcel is on its way", category: Category = Category.UTILITY) -> Outgoing:
    return Outgoing(to=PHONE, content=TextContent(body=body), medium=SMS, category=category)


def berlin(hour: int, minute: int = 0) -> float:
    return datetime(2026, 12, 3, hour, minute, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC).timestamp()


async def test_an_sms_is_sent_and_its_status_callbacks_settle_it(make: Callable[..., Connectzap],
                                                                 twilio: TwilioStandIn) -> None:
    app = engine(make, twilio)
    assert app.channels[SMS].name == "twilio-sms" and app.channels[WHATSAPP].name != "twilio-sms"
    grant(app, Category.UTILITY)
    decision = app.send(text())
    assert decision.status == "queued"
    await Worker(app).run_until_idle()
    (call,) = twilio.calls
    assert call.form["To"] == PHONE and call.form["StatusCallback"] == f"{PUBLIC_URL}?outbox={decision.id}"
    sid = twilio.created[0]["sid"]
    assert app.message(decision.id)["wamid"] == sid and app.message(decision.id)["status"] == "accepted"
    for status in ("sent", "delivered"):
        answer = deliver(app, "sms", callback(status_params(sid, status, to=PHONE), outbox=decision.id))
        assert answer.status == 200
    await Worker(app).run_until_idle()
    assert app.message(decision.id)["status"] == "delivered"


async def test_a_forged_callback_changes_nothing(make: Callable[..., Connectzap], twilio: TwilioStandIn) -> None:
    app = engine(make, twilio)
    grant(app, Category.UTILITY)
    decision = app.send(text())
    await Worker(app).run_until_idle()
    sid = twilio.created[0]["sid"]
    failed = status_params(sid, "failed", to=PHONE, error_code="30003")
    for forged in (callback(failed, outbox=decision.id, token="someone-elses-token"),
                   callback(failed, outbox=decision.id, token=None)):
        assert deliver(app, "sms", forged).status in (401, 403)
    await Worker(app).run_until_idle()
    assert app.message(decision.id)["status"] == "accepted"


async def test_sms_needs_consent_on_sms(make: Callable[..., Connectzap], twilio: TwilioStandIn) -> None:
    app = engine(make, twilio)
    grant(app, Category.UTILITY, medium=WHATSAPP)  # consent on WhatsApp says nothing about SMS
    assert app.send(text()).reason == "no_consent"
    await Worker(app).run_until_idle()
    assert twilio.calls == []


async def test_a_failed_status_for_a_stop_records_an_sms_opt_out_only(make: Callable[..., Connectzap],
                                                                      twilio: TwilioStandIn) -> None:
    app = engine(make, twilio)
    with use_clock(lambda: berlin(11)):  # granted before the opt-out, whatever the time the test runs at
        for medium in (SMS, WHATSAPP):
            grant(app, Category.MARKETING, medium=medium)
    with use_clock(lambda: berlin(12)):
        decision = app.send(text("20% off today", Category.MARKETING))
        await Worker(app).run_until_idle()
        sid = twilio.created[0]["sid"]
        deliver(app, "sms", callback(status_params(sid, "failed", to=PHONE, error_code="21610"), outbox=decision.id))
        await Worker(app).run_until_idle()
    row = app.message(decision.id)
    assert (row["status"], row["reason"]) == ("failed", "opted_out")
    assert consent_on(app, SMS)[Category.MARKETING] is False
    assert consent_on(app, WHATSAPP)[Category.MARKETING] is True


async def test_a_send_refused_for_a_stop_records_an_sms_opt_out_only(make: Callable[..., Connectzap],
                                                                     twilio: TwilioStandIn) -> None:
    app = engine(make, twilio)
    unsubscribed = "+15005550004"  # Twilio's test number that answers 21610
    for medium in (SMS, WHATSAPP):
        app.set_consent(ConsentChange(phone=unsubscribed, category=Category.UTILITY, granted=True, source="test",
                                      proof="form", medium=medium))
    decision = app.send(Outgoing(to=unsubscribed, content=TextContent(body="Hi"), medium=SMS,
                                 category=Category.UTILITY))
    await Worker(app).run_until_idle()
    assert (app.message(decision.id)["status"], app.message(decision.id)["reason"]) == ("failed", "opted_out")
    with app.db.read() as conn:
        key = app.contact_key(unsubscribed)
        assert ledger.current(conn, key, SMS)[Category.MARKETING].granted is False
        assert Category.MARKETING not in ledger.current(conn, key, WHATSAPP)


async def test_marketing_sms_wait_for_the_recipients_morning(make: Callable[..., Connectzap],
                                                             twilio: TwilioStandIn) -> None:
    app = engine(make, twilio)
    grant(app, Category.MARKETING)
    grant(app, Category.UTILITY)
    with use_clock(lambda: berlin(23, 30)):
        offer = app.send(text("20% off today", Category.MARKETING))
        notice = app.send(text("Your parcel is on its way"))
        await Worker(app).run_until_idle()
        assert [c.form["Body"] for c in twilio.calls] == ["Your parcel is on its way"]
        held = app.message(offer.id)
        assert (held["status"], held["reason"]) == ("queued", "quiet_hours")
    with use_clock(lambda: berlin(8, 5) + 86400):
        await Worker(app).run_until_idle()
    assert [c.form["Body"] for c in twilio.calls] == ["Your parcel is on its way", "20% off today"]
    assert app.message(offer.id)["status"] == "accepted" and app.message(notice.id)["attempts"] <= 1


async def test_stop_and_start_change_sms_consent_and_nothing_else(make: Callable[..., Connectzap],
                                                                  twilio: TwilioStandIn) -> None:
    app = engine(make, twilio)
    for medium in (SMS, WHATSAPP):
        for category in (Category.MARKETING, Category.UTILITY):
            grant(app, category, medium=medium)
    assert deliver(app, "sms", callback(inbound_params("Stop", sender=PHONE, sid="SM" + "1" * 32))).status == 200
    await Worker(app).run_until_idle()
    assert set(consent_on(app, SMS).values()) == {False} and len(consent_on(app, SMS)) == 3
    assert consent_on(app, WHATSAPP) == {Category.MARKETING: True, Category.UTILITY: True}
    assert app.send(text()).reason == "opted_out"
    assert deliver(app, "sms", callback(inbound_params("START", sender=PHONE, sid="SM" + "2" * 32))).status == 200
    await Worker(app).run_until_idle()
    assert set(consent_on(app, SMS).values()) == {True}
    assert app.send(text()).status == "queued"


async def test_a_send_without_an_answer_is_never_repeated_and_its_callback_settles_it(
        make: Callable[..., Connectzap], twilio: TwilioStandIn) -> None:
    app = engine(make, twilio)
    grant(app, Category.UTILITY)
    twilio.script.append(Answer(drop=True))  # Twilio took the request; the answer never came back
    decision = app.send(text())
    await Worker(app).run_until_idle()
    assert app.message(decision.id)["status"] == "unknown" and len(twilio.calls) == 1
    sid = "SM" + "9" * 32  # the id Twilio gave the message it did send
    answer = deliver(app, "sms", callback(status_params(sid, "delivered", to=PHONE), outbox=decision.id))
    assert answer.status == 200
    await Worker(app).run_until_idle()
    row = app.message(decision.id)
    assert (row["status"], row["wamid"]) == ("delivered", sid)
    assert len(twilio.calls) == 1  # never sent twice


async def test_the_segment_count_is_kept_on_the_message_and_shown(make: Callable[..., Connectzap],
                                                                   twilio: TwilioStandIn) -> None:
    app = make(connectors={"sms": settings(api_base_url=twilio.url, status_callback_url=PUBLIC_URL)},
               api={"keys": [API_KEY]}, console={"enabled": True})
    app.operators.add_user(USER, hash_password(PASSWORD))
    grant(app, Category.UTILITY)
    long_ucs2 = "Ihre Sendung ist unterwegs, Grüße aus Köln ú " * 2  # 'ú' is no GSM-7: UCS-2, 67 per segment
    assert count_segments(long_ucs2).segments == 2
    short, long = app.send(text()), app.send(text(long_ucs2))
    whatsapp = app.send(Outgoing(to=PHONE, content=TextContent(body="hi"), category=Category.UTILITY))
    await Worker(app).run_until_idle()
    assert (app.message(short.id)["segments"], app.message(long.id)["segments"]) == (1, 2)
    assert app.message(whatsapp.id)["segments"] is None  # only SMS are counted in segments
    ctx = Ctx(None)
    ctx._app = app
    shown = CliRunner().invoke(cli_messages.messages, ["show", long.id, "--json"], obj=ctx)
    assert json.loads(shown.stdout)["segments"] == 2
    assert re.search(r"^segments\s+2$", CliRunner().invoke(cli_messages.messages, ["show", long.id], obj=ctx).stdout,
                     flags=re.M)
    async with console(app) as client:
        rest = await client.get(f"/v1/messages/{long.id}", headers={"Authorization": f"Bearer {API_KEY}"})
        await log_in(client)
        page = (await client.get(f"/console/messages/{long.id}")).text
        other = (await client.get(f"/console/messages/{whatsapp.id}")).text
    assert rest.status_code == 200 and rest.json()["segments"] == 2
    assert re.search(r'id="m-segments">2<', page) and 'id="m-segments"' not in other
