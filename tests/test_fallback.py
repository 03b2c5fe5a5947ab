"""Fallback: a WhatsApp message that cannot be delivered is followed by exactly one message on the
first listed medium whose consent holds, linked to it, however often the failure is reported."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import select

from connectzap import Category, ConsentChange, Connectzap, Event, EventKind, Outgoing, TemplateContent
from connectzap.core.channel import EMAIL, SMS, WHATSAPP
from connectzap.core.errors import FatalDeliveryError, SkippableDeliveryError
from connectzap.core.fallbacks import fallback_key, triggered
from connectzap.core.models import MessageStatus
from connectzap.core.store.schema import outbox
from connectzap.core.worker import Worker
from connectzap.testing import FakeChannel, FakeWhatsApp, seed_template

PHONE = "+4915112345678"
EMAIL_ADDRESS = "ana@example.com"


def grant(app: Connectzap, medium: str, granted: bool = True, category: Category = Category.UTILITY) -> None:
    app.set_consent(ConsentChange(phone=PHONE, category=category, granted=granted, source="test", proof="form",
                                  medium=medium))


def engine(make: Callable[..., Connectzap], **settings: Any) -> tuple[Connectzap, FakeWhatsApp, FakeChannel,
                                                                       FakeChannel]:
    whatsapp, texts, mails = FakeWhatsApp(), FakeChannel(SMS), FakeChannel(EMAIL)
    app = make(channel=whatsapp, **settings)
    app.use_channel(texts)
    app.use_channel(mails)
    seed_template(app, "order_confirmation", "Order {{1}} is confirmed")
    grant(app, WHATSAPP)
    return app, whatsapp, texts, mails


def confirmation(*media: str, email: str | None = EMAIL_ADDRESS) -> Outgoing:
    return Outgoing.model_validate({
        "to": {"phone": PHONE, "email": email},
        "content": {"type": "template", "name": "order_confirmation", "language": "en", "body": ["1042"]},
        "fallback_channels": list(media)})


def fallbacks_of(app: Connectzap, message_id: str) -> list[dict[str, Any]]:
    with app.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(outbox).where(outbox.c.fallback_of == message_id))]


def admitted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["status"] != "refused"]


async def send_failing(app: Connectzap, whatsapp: FakeWhatsApp, error: Exception, *media: str) -> str:
    whatsapp.fail_next(error)
    decision = app.send(confirmation(*media))
    assert decision.accepted
    await Worker(app).run_until_idle()
    return decision.id


def unreachable() -> SkippableDeliveryError:
    return SkippableDeliveryError("no WhatsApp account", code="unreachable", vendor_code=131026)


def failed_status(app: Connectzap, message_id: str, n: int = 0, **fields: Any) -> Event:
    status = MessageStatus(wamid=app.message(message_id)["wamid"], status="failed", timestamp=datetime.now(UTC),
                           outbox_id=message_id, **fields)
    return Event.of(EventKind.MESSAGE_STATUS, status, source="whatsapp", dedupe_key=f"{message_id}:failed:{n}")


# --- the triggers ------------------------------------------------------------------------------------------

async def test_an_unreachable_number_gets_one_sms_linked_to_its_whatsapp_message(make):
    app, whatsapp, texts, mails = engine(make)
    grant(app, SMS)
    original = await send_failing(app, whatsapp, unreachable(), SMS, EMAIL)
    assert app.message(original)["status"] == "failed"
    [fallback] = fallbacks_of(app, original)
    assert (fallback["medium"], fallback["status"], fallback["idempotency_key"]) == (
        SMS, "accepted", fallback_key(original, SMS))
    [sms] = texts.messages
    assert (sms.recipient, sms.category, sms.outbox_id) == (PHONE, "utility", fallback["id"])
    assert sms.content == TemplateContent(name="order_confirmation", language="en", body=["1042"])
    assert mails.messages == []


async def test_a_failure_with_a_configured_code_falls_back_and_another_code_does_not(make):
    app, whatsapp, texts, _ = engine(make, fallback={"codes": ["131049"]})
    grant(app, SMS)
    listed = await send_failing(app, whatsapp, FatalDeliveryError("not delivered", vendor_code=131049), SMS)
    other = await send_failing(app, whatsapp, FatalDeliveryError("bad parameter", vendor_code=132000), SMS)
    assert len(admitted(fallbacks_of(app, listed))) == 1
    assert fallbacks_of(app, other) == []
    assert len(texts.messages) == 1


async def test_a_failed_status_with_a_configured_code_falls_back_once_however_often_it_is_replayed(make):
    app, _, texts, _ = engine(make, fallback={"codes": ["131049"]})
    grant(app, SMS)
    decision = app.send(confirmation(SMS))
    await Worker(app).run_until_idle()
    failure = {"errors": [{"code": 131049, "title": "not delivered to maintain healthy ecosystem engagement"}]}
    for n in range(3):  # the webhook redelivered, and the same status reported again under another key
        app.ingest([failed_status(app, decision.id, n, **failure), failed_status(app, decision.id, n, **failure)])
        await Worker(app).run_until_idle()
    assert len(fallbacks_of(app, decision.id)) == 1
    assert len(texts.messages) == 1


@pytest.mark.parametrize("failure", [{"outcome": "unreachable", "errors": [{"code": 131026}]},
                                     # WhatsApp dropped the message it held because its template was paused
                                     {"reason": "template_paused", "errors": [{"code": 132015}]}])
async def test_an_unreachable_or_template_paused_status_falls_back(make, failure):
    app, _, texts, _ = engine(make)
    grant(app, SMS)
    decision = app.send(confirmation(SMS))
    await Worker(app).run_until_idle()
    app.ingest([failed_status(app, decision.id, **failure)])
    await Worker(app).run_until_idle()
    assert [m.outbox_id for m in texts.messages] == [r["id"] for r in fallbacks_of(app, decision.id)]
    assert len(texts.messages) == 1


async def test_a_message_without_fallback_media_or_a_plain_failure_has_no_fallback(make):
    app, whatsapp, texts, _ = engine(make)
    grant(app, SMS)
    fatal = await send_failing(app, whatsapp, FatalDeliveryError("bad parameter", vendor_code=132000), SMS)
    plain = await send_failing(app, whatsapp, unreachable())
    assert fallbacks_of(app, plain) == fallbacks_of(app, fatal) == []
    assert texts.messages == []


# --- consent on the fallback medium ---------------------------------------------------------------------------

async def test_without_consent_on_the_first_medium_the_next_one_is_used(make):
    app, whatsapp, texts, mails = engine(make)
    grant(app, EMAIL)  # none on SMS
    original = await send_failing(app, whatsapp, unreachable(), SMS, EMAIL)
    rows = {r["medium"]: r for r in fallbacks_of(app, original)}
    assert (rows[SMS]["status"], rows[SMS]["reason"]) == ("refused", "no_consent")
    assert rows[EMAIL]["status"] == "accepted"
    assert texts.messages == [] and [m.recipient for m in mails.messages] == [EMAIL_ADDRESS]


async def test_opted_out_everywhere_means_no_fallback(make):
    app, whatsapp, texts, mails = engine(make)
    grant(app, SMS, granted=False)
    grant(app, EMAIL, granted=False)
    original = await send_failing(app, whatsapp, unreachable(), SMS, EMAIL)
    assert admitted(fallbacks_of(app, original)) == []
    assert texts.messages == mails.messages == []


async def test_email_without_an_address_is_skipped(make):
    app, whatsapp, _, mails = engine(make)
    grant(app, EMAIL)
    whatsapp.fail_next(unreachable())
    decision = app.send(confirmation(EMAIL, email=None))
    await Worker(app).run_until_idle()
    assert fallbacks_of(app, decision.id) == [] and mails.messages == []


def test_fallback_media_are_checked() -> None:
    with pytest.raises(ValidationError, match="whatsapp"):
        confirmation(WHATSAPP)
    with pytest.raises(ValidationError, match="twice"):
        confirmation(SMS, SMS)
    with pytest.raises(ValidationError, match="email"):
        confirmation(EMAIL, email="not an address")
    with pytest.raises(ValidationError, match="only WhatsApp"):
        Outgoing.model_validate({"to": PHONE, "channel": SMS, "category": "utility",
                                 "content": {"type": "text", "body": "hi"}, "fallback_channels": [EMAIL]})


def test_the_triggers() -> None:
    assert triggered("unreachable", None, ()) == "unreachable"
    assert triggered(None, "131049", {"131049"}) == "failed"
    assert triggered("opted_out", "131050", {"131049"}) is None
    assert triggered(None, None, {"131049"}) is None


# --- any sequence of failures and replays: at most one, exactly one when a consented medium exists ---------

EXAMPLES = itertools.count()
EVENTS = st.lists(st.sampled_from(["unreachable", "coded", "uncoded", "delivered", "late"]), min_size=1, max_size=6)
"""What happens to the WhatsApp message after it was sent: a failed status (its error unreachable, a
configured code, another code), a delivered status, or ``late``: 11 minutes pass (a timed message's
``fallback_after_minutes`` = 10 are up; a held message is checked again)."""


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=EVENTS, consented=st.sampled_from([(), (SMS,), (EMAIL,), (SMS, EMAIL)]),
       media=st.sampled_from([(SMS,), (EMAIL,), (SMS, EMAIL), (EMAIL, SMS)]), timed=st.booleans(),
       paused=st.booleans())
def test_any_sequence_of_triggers_admits_at_most_one_fallback(make, events, consented, media, timed, paused):
    import time

    from connectzap.core.clock import use_clock
    offset = [0.0]
    with use_clock(lambda: time.time() + offset[0]):
        app, whatsapp, texts, mails = engine(make, sub=f"example{next(EXAMPLES)}", fallback={"codes": ["131049"]})
        for medium in (SMS, EMAIL):
            grant(app, medium, granted=medium in consented)
        if paused:  # the template is paused when the message is sent: it never goes on WhatsApp
            pause(app)
        decision = app.send(urgent(*media) if timed else confirmation(*media))
        asyncio.run(Worker(app).run_until_idle())
        failures = {"unreachable": {"outcome": "unreachable", "errors": [{"code": 131026}]},
                    "coded": {"errors": [{"code": 131049}]}, "uncoded": {"errors": [{"code": 131000}]}}
        for n, event in enumerate(events):
            if event == "late":
                offset[0] += 11 * 60
            elif paused:
                continue  # never sent: WhatsApp reports nothing about it
            elif event == "delivered":
                app.ingest([status_of(app, decision.id, "delivered", n)])
            else:
                app.ingest([failed_status(app, decision.id, n, **failures[event])])
            asyncio.run(Worker(app).run_until_idle())
        asyncio.run(Worker(app).run_until_idle())  # a fallback admitted by the last round goes
    sent = [m.outbox_id for m in texts.messages + mails.messages]
    fallbacks = admitted(fallbacks_of(app, decision.id))
    statuses = [e for e in events if e != "late"]
    # the first status settles the message either way; a timed message late before it falls back
    triggering = paused or (timed and events[0] == "late") or (bool(statuses) and statuses[0] in ("unreachable",
                                                                                                     "coded"))
    assert len(fallbacks) == len(sent) <= 1
    assert len(fallbacks) == (1 if triggering and set(media) & set(consented) else 0)
    if fallbacks:  # the first listed medium with consent
        assert fallbacks[0]["medium"] == next(m for m in media if m in consented)
    if paused:  # withdrawn exactly when its fallback went; else it still waits for the pause to end
        assert whatsapp.sent() == []
        assert app.message(decision.id)["status"] == ("refused" if fallbacks else "queued")


# --- what is kept, and for how long ------------------------------------------------------------------------

async def test_a_sent_message_keeps_what_its_fallback_needs_only_until_a_status_settles_it(make):
    app, _, texts, _ = engine(make)  # privacy.retention_hours = 0: anything else is erased once sent
    grant(app, SMS)
    plain = app.send(Outgoing(to=PHONE, content=TemplateContent(name="order_confirmation", language="en",
                                                                body=["1"])))
    kept = app.send(confirmation(SMS, EMAIL))
    await Worker(app).run_until_idle()
    assert (app.message(plain.id)["recipient"], app.message(plain.id)["content"]) == (None, None)
    row = app.message(kept.id)
    assert row["recipient"] == PHONE and EMAIL_ADDRESS in row["content"] and row["erase_after"] is not None
    status = MessageStatus(wamid=row["wamid"], status="delivered", timestamp=datetime.now(UTC), outbox_id=kept.id)
    app.ingest([Event.of(EventKind.MESSAGE_STATUS, status, source="whatsapp", dedupe_key="delivered")])
    await Worker(app).run_until_idle()
    assert (app.message(kept.id)["recipient"], app.message(kept.id)["content"]) == (None, None)
    app.ingest([failed_status(app, kept.id, outcome="unreachable")])  # too late: it reached the customer
    await Worker(app).run_until_idle()
    assert fallbacks_of(app, kept.id) == [] and texts.messages == []


# --- the interfaces ----------------------------------------------------------------------------------------

async def test_rest_takes_fallback_channels_and_shows_the_link(make):
    from server_support import AUTH, SETTINGS, serving
    whatsapp, texts = FakeWhatsApp(), FakeChannel(SMS)
    app = make(channel=whatsapp, **SETTINGS)
    app.use_channel(texts)
    seed_template(app, "order_confirmation", "Order {{1}} is confirmed")
    grant(app, WHATSAPP)
    grant(app, SMS)
    whatsapp.fail_next(unreachable())
    body = {"to": {"phone": PHONE, "email": EMAIL_ADDRESS}, "fallback_channels": ["sms", "email"],
            "content": {"type": "template", "name": "order_confirmation", "language": "en", "body": ["1042"]}}
    async with serving(app) as client:
        queued = await client.post("/v1/messages", json=body, headers=AUTH)
        assert queued.status_code == 202, queued.text
        bad = await client.post("/v1/messages", json={**body, "fallback_channels": ["whatsapp"]}, headers=AUTH)
        await Worker(app).run_until_idle()
        page = (await client.get("/v1/messages", headers=AUTH)).json()["messages"]
    assert bad.status_code == 422 and "whatsapp" in bad.text
    [fallback] = [m for m in page if m["fallback_of"] == queued.json()["id"]]
    assert (fallback["medium"], fallback["status"]) == (SMS, "accepted")
    assert [m.outbox_id for m in texts.messages] == [fallback["id"]]


def test_cli_send_takes_fallback_media_and_an_email(tmp_path) -> None:
    from click.testing import CliRunner

    from connectzap.cli import cli
    config = tmp_path / "connectzap.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nquiet = true\n')
    from connectzap import load_settings
    engine = Connectzap(load_settings(config)).start()
    seed_template(engine, "order_confirmation", "Order {{1}} is confirmed")
    grant(engine, WHATSAPP)
    engine.close()

    def send(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--config", str(config), "send", PHONE, "--template", "order_confirmation",
                                        "--param", "1042", "--no-wait", *args])

    done = send("--fallback", "sms,email", "--email", "Ana@Example.com")
    assert done.exit_code == 0, done.output
    wrong = send("--fallback", "whatsapp")
    assert wrong.exit_code == 2 and "whatsapp" in wrong.stderr
    engine = Connectzap(load_settings(config)).start()
    [row] = engine.messages()
    engine.close()
    assert '"fallback_media": ["sms", "email"]' in row["content"]
    assert '"email": "Ana@example.com"' in row["content"]  # the domain normalised


# --- refused at the gate --------------------------------------------------------------------------------------

def text(*media: str) -> Outgoing:
    return Outgoing.model_validate({"to": {"phone": PHONE, "email": EMAIL_ADDRESS}, "category": "utility",
                                    "content": {"type": "text", "body": "Your parcel is on its way"},
                                    "fallback_channels": list(media)})


async def test_a_free_form_message_outside_the_window_falls_back_once_as_it_is_refused(make):
    app, _, texts, _ = engine(make)
    grant(app, SMS)
    first = app.send(text(SMS), idempotency_key="parcel-1")
    again = app.send(text(SMS), idempotency_key="parcel-1")  # the same request repeated
    assert (first.status, first.reason, again.id, again.duplicate) == ("refused", "window_closed", first.id, True)
    [fallback] = fallbacks_of(app, first.id)
    assert (fallback["medium"], fallback["status"], fallback["category"]) == (SMS, "queued", "utility")
    await Worker(app).run_until_idle()
    assert [m.content.body for m in texts.messages] == ["Your parcel is on its way"]  # type: ignore[union-attr]
    assert app.message(first.id)["content"] is None  # the refused original keeps nothing


async def test_a_contact_marked_unreachable_gets_the_fallback_of_the_next_message(make):
    app, whatsapp, texts, _ = engine(make)
    grant(app, SMS)
    await send_failing(app, whatsapp, unreachable())  # no fallback named: the contact is only marked
    refused = app.send(confirmation(SMS))
    assert refused.reason == "unreachable"
    assert [r["status"] for r in fallbacks_of(app, refused.id)] == ["queued"]
    await Worker(app).run_until_idle()
    assert len(texts.messages) == 1


async def test_a_window_that_closed_while_the_message_waited_falls_back_at_the_send_time_check(make):
    from datetime import timedelta

    from connectzap.core.clock import use_clock
    from connectzap.testing import sample_event
    app, whatsapp, texts, _ = engine(make)
    grant(app, SMS)
    app.ingest([sample_event("inbound_message", dedupe_key="w1", wamid="w1",
                             contact={"phone": PHONE, "wa_id": PHONE.lstrip("+")},
                             timestamp=(datetime.now(UTC) - timedelta(hours=23, minutes=30)).isoformat())])
    await Worker(app).run_until_idle()
    queued = app.send(text(SMS))
    assert queued.status == "queued"
    later = datetime.now(UTC).timestamp() + 3600
    with use_clock(lambda: later):
        await Worker(app).run_until_idle()
        assert (app.message(queued.id)["status"], app.message(queued.id)["reason"]) == ("refused", "window_closed")
        await Worker(app).run_until_idle()  # the fallback was queued by the round that refused the original
    assert whatsapp.sent() == [] and len(texts.messages) == 1
    assert [r["id"] for r in fallbacks_of(app, queued.id)] == [texts.messages[0].outbox_id]


# --- a paused template ------------------------------------------------------------------------------------------

def pause(app: Connectzap, status: str = "PAUSED") -> None:
    seed_template(app, "order_confirmation", "Order {{1}} is confirmed", status=status)


async def test_a_message_for_a_paused_template_naming_fallback_media_is_withdrawn_for_its_fallback(make):
    app, whatsapp, texts, _ = engine(make)
    grant(app, SMS)
    pause(app)
    first = app.send(confirmation(SMS), idempotency_key="order-1")
    again = app.send(confirmation(SMS), idempotency_key="order-1")  # the same request repeated
    plain = app.send(Outgoing(to=PHONE, content=TemplateContent(name="order_confirmation", language="en",
                                                                body=["7"])))
    assert (first.status, first.reason, again.id, again.duplicate) == ("refused", "template_paused", first.id, True)
    assert (plain.status, plain.reason) == ("queued", "template_paused")  # no fallback named: it waits, as before
    [fallback] = fallbacks_of(app, first.id)
    assert (fallback["medium"], fallback["status"]) == (SMS, "queued")
    assert fallback["id"] in (first.detail or "") and app.message(first.id)["content"] is None
    await Worker(app).run_until_idle()
    pause(app, "APPROVED")  # the pause ends: only the message without a fallback goes on WhatsApp
    app.ingest([template_update("APPROVED")])
    await Worker(app).run_until_idle()
    assert [m.outbox_id for m in texts.messages] == [fallback["id"]]
    assert len(whatsapp.sent()) == 1 and app.message(plain.id)["status"] != "queued"


async def test_a_paused_template_without_consent_elsewhere_keeps_the_message_waiting(make):
    app, whatsapp, texts, _ = engine(make)  # no SMS consent: no fallback can go, so the original waits
    pause(app)
    decision = app.send(confirmation(SMS))
    assert (decision.status, decision.reason) == ("queued", "template_paused")
    assert [(r["status"], r["reason"]) for r in fallbacks_of(app, decision.id)] == [("refused", "no_consent")]
    await Worker(app).run_until_idle()
    assert app.message(decision.id)["status"] == "queued" and texts.messages == [] and whatsapp.sent() == []


async def test_a_template_paused_while_the_message_waited_withdraws_it_at_the_send_time_check(make):
    app, whatsapp, texts, _ = engine(make)
    grant(app, SMS)
    queued = app.send(confirmation(SMS))
    assert (queued.status, queued.reason) == ("queued", None)
    pause(app)  # the cache says PAUSED (a sync), no webhook: the sender's check finds it
    await Worker(app).run_until_idle()
    row = app.message(queued.id)
    assert (row["status"], row["reason"]) == ("refused", "template_paused")
    await Worker(app).run_until_idle()  # the fallback was queued by the round that refused the original
    assert whatsapp.sent() == [] and [m.outbox_id for m in texts.messages] == [
        r["id"] for r in fallbacks_of(app, queued.id)]


def template_update(status: str, name: str = "order_confirmation") -> Event:
    from connectzap.core.models import TemplateUpdate
    return Event.of(EventKind.TEMPLATE_UPDATE, TemplateUpdate(name=name, language="en", status=status),
                    source="whatsapp", dedupe_key=f"{name}:{status}:{next(EXAMPLES)}")


async def test_the_pause_webhook_withdraws_queued_messages_naming_fallback_media_and_only_them(make):
    from datetime import timedelta
    app, whatsapp, texts, _ = engine(make)
    grant(app, SMS)
    due = app.send(confirmation(SMS))
    plain = app.send(Outgoing(to=PHONE, content=TemplateContent(name="order_confirmation", language="en",
                                                                body=["7"])))
    later = app.send(confirmation(SMS).model_copy(update={"not_before": datetime.now(UTC) + timedelta(hours=5)}))
    app.ingest([template_update("PAUSED")])
    assert await Worker(app).dispatch_once() > 0  # the webhook's event alone: no sender has looked yet
    assert (app.message(due.id)["status"], app.message(due.id)["reason"]) == ("refused", "template_paused")
    assert [r["status"] for r in fallbacks_of(app, due.id)] == ["queued"]
    assert app.message(plain.id)["status"] == app.message(later.id)["status"] == "queued"  # waits; its time later
    assert fallbacks_of(app, later.id) == []
    await Worker(app).run_until_idle()
    assert whatsapp.sent() == [] and len(texts.messages) == 1



# --- no delivered within N minutes ------------------------------------------------------------------------------

def urgent(*media: str, minutes: int = 10) -> Outgoing:
    fields = confirmation(*media).model_dump(by_alias=True)
    return Outgoing.model_validate({**fields, "fallback_after_minutes": minutes})


def status_of(app: Connectzap, message_id: str, value: str, n: int = 0) -> Event:
    status = MessageStatus(wamid=app.message(message_id)["wamid"], status=value, timestamp=datetime.now(UTC),
                           outbox_id=message_id)
    return Event.of(EventKind.MESSAGE_STATUS, status, source="whatsapp", dedupe_key=f"{message_id}:{value}:{n}")


def minutes_later(minutes: float) -> Any:
    from connectzap.core.clock import use_clock
    later = datetime.now(UTC).timestamp() + minutes * 60
    return use_clock(lambda: later)


async def test_a_time_critical_message_not_delivered_in_time_falls_back_once(make):
    from connectzap.core.models import FallbackDue
    app, whatsapp, texts, _ = engine(make, fallback={"keep_hours": 0})  # the check keeps what it needs anyway
    grant(app, SMS)
    decision = app.send(urgent(SMS))
    await Worker(app).run_until_idle()
    app.ingest([status_of(app, decision.id, "sent")])
    await Worker(app).run_until_idle()
    assert app.message(decision.id)["content"] is not None and fallbacks_of(app, decision.id) == []
    with minutes_later(9):  # not yet
        await Worker(app).run_until_idle()
        assert fallbacks_of(app, decision.id) == []
    with minutes_later(11):
        await Worker(app).run_until_idle()
        await Worker(app).run_until_idle()
        # the check again (a replay), and a late failure: nothing more
        again = Event.of(EventKind.FALLBACK_DUE, FallbackDue(message_id=decision.id, minutes=10), source="connectzap",
                         dedupe_key="replayed")
        app.ingest([again, failed_status(app, decision.id, outcome="unreachable", errors=[{"code": 131026}])])
        await Worker(app).run_until_idle()
    [fallback] = fallbacks_of(app, decision.id)
    assert [m.outbox_id for m in texts.messages] == [fallback["id"]]
    assert len(whatsapp.sent()) == 1  # the original stays sent: it may still arrive
    assert (app.message(decision.id)["content"], app.message(decision.id)["recipient"]) == (None, None)


@pytest.mark.parametrize("answer", ["delivered", "read", "failed"])
async def test_a_time_critical_message_that_was_delivered_or_failed_in_time_does_not_fall_back(make, answer):
    app, _, texts, _ = engine(make)
    grant(app, SMS)
    decision = app.send(urgent(SMS))
    await Worker(app).run_until_idle()
    app.ingest([status_of(app, decision.id, answer)])  # failed with no trigger: the failure decided
    await Worker(app).run_until_idle()
    with minutes_later(11):
        await Worker(app).run_until_idle()
    assert fallbacks_of(app, decision.id) == [] and texts.messages == []


@pytest.mark.parametrize(("minutes", "within"), [(10, "10 minutes"), (1, "1 minute")])
async def test_a_time_critical_message_still_queued_is_withdrawn_for_its_fallback(make, minutes, within):
    app, whatsapp, texts, _ = engine(make)
    grant(app, SMS)
    decision = app.send(urgent(SMS, minutes=minutes))
    no_consent = app.send(urgent(EMAIL, minutes=minutes))  # no email consent: no fallback, so it is not withdrawn
    with minutes_later(minutes + 1):  # nothing sent it meanwhile (sending paused, say): the check comes first
        assert await Worker(app).dispatch_once() > 0
        row = app.message(decision.id)
        assert (row["status"], row["reason"]) == ("refused", "not_delivered_in_time")
        assert row["error_details"].startswith(f"not sent within {within}; withdrawn")
        assert app.message(no_consent.id)["status"] == "queued"
        await Worker(app).run_until_idle()
    assert [m.outbox_id for m in texts.messages] == [r["id"] for r in fallbacks_of(app, decision.id)]
    assert [m["to"] for m in whatsapp.sent()] == [PHONE.lstrip("+")]  # only the one without a fallback


def test_fallback_after_minutes_is_checked(tmp_path) -> None:
    with pytest.raises(ValidationError, match="needs fallback_channels"):
        urgent()
    for wrong in (0, 1441):
        with pytest.raises(ValidationError, match="fallback_after_minutes"):
            urgent(SMS, minutes=wrong)
    assert urgent(SMS, minutes=1440).fallback_after_minutes == 1440


async def test_rest_and_cli_take_fallback_after_minutes(make, tmp_path):
    from click.testing import CliRunner
    from server_support import AUTH, SETTINGS, serving

    from connectzap.cli import cli
    app = make(**SETTINGS)
    seed_template(app, "order_confirmation", "Order {{1}} is confirmed")
    grant(app, WHATSAPP)
    body = {"to": {"phone": PHONE}, "fallback_channels": ["sms"], "fallback_after_minutes": 15,
            "content": {"type": "template", "name": "order_confirmation", "language": "en", "body": ["1042"]}}
    async with serving(app) as client:
        queued = await client.post("/v1/messages", json=body, headers=AUTH)
        alone = await client.post("/v1/messages", json={**body, "fallback_channels": []}, headers=AUTH)
        too_long = await client.post("/v1/messages", json={**body, "fallback_after_minutes": 5000}, headers=AUTH)
        batch = await client.post("/v1/messages/batch", json={"messages": [{**body, "idempotency_key": "b1"}]},
                                  headers=AUTH)
    assert queued.status_code == 202, queued.text
    assert alone.status_code == too_long.status_code == 422
    assert "fallback_channels" in alone.text and "fallback_after_minutes" in too_long.text
    assert batch.status_code == 200 and batch.json()["results"][0]["status"] == "queued"
    with app.db.read() as conn:
        from connectzap.core.store.schema import events
        checks = conn.execute(select(events.c.dedupe_key, events.c.next_attempt_at)
                              .where(events.c.kind == "fallback_due")).all()
    row = app.message(queued.json()["id"])
    assert len(checks) == 2 and f"fallback_after:{row['id']}" in {c.dedupe_key for c in checks}
    assert min(c.next_attempt_at for c in checks) >= row["created_at"] + 15 * 60

    config = tmp_path / "connectzap.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nquiet = true\n')
    args = ["--config", str(config), "send", PHONE, "--template", "order_confirmation", "--no-wait"]
    without = CliRunner().invoke(cli, [*args, "--fallback-after", "5"])
    out_of_range = CliRunner().invoke(cli, [*args, "--fallback", "sms", "--fallback-after", "0"])
    assert without.exit_code == out_of_range.exit_code == 2
    assert "--fallback-after needs --fallback:" in without.stderr and "--fallback-after" in out_of_range.stderr
    assert "fallback_" not in without.stderr  # the options typed, not the model's field names
