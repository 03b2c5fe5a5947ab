"""The channel as a declared extension point: a connector offers it (``make_channel``), pacing is
part of it (``pace``), the CLI and tests pass one (``channel=``), and with none at all nothing is
sent, nothing is lost, and health and ``doctor`` say why. What a failed delivery says about the
recipient reaches the core as a neutral outcome (``opted_out``, ``unreachable``), never as a code."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectzap import (Category, ConsentChange, Connector, ConnectorSettings, Connectzap, Event, EventKind,
                        MessageStatus, Outgoing, SkippableDeliveryError, TemplateContent, TextContent,
                        WebhookRequest)
from connectzap.connectors.whatsapp.sandbox import SandboxChannel
from connectzap.core.clock import use_clock
from connectzap.core.channel import (EMAIL, SMS, WHATSAPP, BaseChannel, Channel, LegacyChannel, NoChannel,
                                    OutboundSend)
from connectzap.core.errors import (AmbiguousDeliveryError, FatalDeliveryError, PacedError, RetriableDeliveryError,
                                   SendingPausedError)
from connectzap.core.sender import SendResult, classify
from connectzap.core.worker import Worker
from connectzap.testing import ConnectorRegistration, FakeWhatsApp, registered_plugin, seed_template

PHONE = "+4915112345678"
NO_WHATSAPP = {"whatsapp": {"enabled": False}}


def consented(app: Connectzap) -> Connectzap:
    seed_template(app, "order_confirmation", "Order {{1}} is confirmed")
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="test", proof="yes"))
    return app


def confirmation(order: str = "1") -> Outgoing:
    return Outgoing(to=PHONE, content=TemplateContent(name="order_confirmation", language="en", body=[order]))


# --- no channel -------------------------------------------------------------------------------------

async def test_without_a_channel_messages_wait_and_health_says_why(make):
    app = consented(make(connectors=NO_WHATSAPP))
    assert isinstance(app.channel, NoChannel) and "no channel" in (app.channel_missing or "")
    decision = app.send(confirmation())
    assert decision.status == "queued"  # the gate still decides; the message waits for a channel
    await Worker(app).run_until_idle()
    row = app.message(decision.id)
    assert (row["status"], row["attempts"], row["recipient"]) == ("queued", 0, PHONE)  # untouched, not lost
    health = app.health()
    assert health["ok"] is False and health["channel"] is None
    assert health["paused"] == app.channel_missing and "[connectors.whatsapp] enabled = false" in health["paused"]

    # the same database with a channel: the waiting message goes out
    later = Connectzap(app.settings.model_copy(update={"connectors": {}}), channel=FakeWhatsApp()).start()
    try:
        await Worker(later).run_until_idle()
        assert later.message(decision.id)["status"] == "accepted"
        assert later.channel_missing is None and later.health()["channel"] == "fake-whatsapp"
    finally:
        later.close()


async def test_the_http_service_reports_no_channel_and_its_worker_holds_the_queue(make):
    from server_support import SETTINGS, serving
    engine = consented(make(**{**SETTINGS, "connectors": NO_WHATSAPP}))
    decision = engine.send(confirmation())
    async with serving(engine) as client:
        health = await client.get("/healthz")
        await Worker(engine).run_until_idle()  # with the service's metered channel in place
    assert health.status_code == 503 and health.json()["channel"] is None
    assert health.json()["paused"].startswith("no channel:")
    assert (engine.message(decision.id)["status"], engine.message(decision.id)["attempts"]) == ("queued", 0)


def test_doctor_warns_when_no_connector_offers_a_channel(tmp_path: Path) -> None:
    config = tmp_path / "cz.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nquiet = true\n'
                      '[connectors.whatsapp]\nenabled = false\n')
    out = subprocess.run([sys.executable, "-m", "connectzap", "--config", str(config), "doctor"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "channel: none" in out.stdout
    assert "warning: no channel: none of the enabled connectors" in out.stdout
    assert out.stdout.rstrip().endswith("\n1 warning")  # one: not "1 warnings"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nquiet = true\n')
    fine = subprocess.run([sys.executable, "-m", "connectzap", "--config", str(config), "doctor"],
                          capture_output=True, text=True, timeout=120)
    assert "channel: sandbox" in fine.stdout and "no channel" not in fine.stdout


def test_a_no_channel_send_is_a_retriable_refusal_with_the_reason() -> None:
    import asyncio

    with pytest.raises(RetriableDeliveryError, match="nothing here"):
        asyncio.run(NoChannel("nothing here").send(OutboundSend("m1", PHONE, confirmation().content, "utility")))


# --- a connector offers the channel -------------------------------------------------------------------

class RecordingChannel(BaseChannel):
    name = "recording"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.paced: list[str] = []
        self.hold_first = False

    async def pace(self, message: OutboundSend) -> None:
        self.paced.append(message.outbox_id)
        if self.hold_first and len(self.paced) == 1:
            raise PacedError("held back once", retry_after=0.0)

    async def send(self, message: OutboundSend) -> str:
        self.sent.append(message.outbox_id)
        return f"wamid.{message.outbox_id}"


class SendingConnector(Connector):
    """A connector whose only job here is to offer a channel."""

    name = "test_sender"
    settings_model = ConnectorSettings
    routes = ("/webhooks/test_sender",)

    def verify_request(self, request: WebhookRequest) -> None:
        return None

    def parse(self, request: WebhookRequest) -> list[Any]:
        return []

    def make_channel(self) -> Channel | None:
        return RecordingChannel()


async def test_the_channel_comes_from_the_connector_that_offers_one(make):
    with registered_plugin(ConnectorRegistration(SendingConnector)):
        app = consented(make(connectors={**NO_WHATSAPP, "test_sender": {}}))
        channel = app.channel
        assert isinstance(channel, RecordingChannel) and app.channel_missing is None
        channel.hold_first = True
        decision = app.send(confirmation())
        worker = Worker(app)
        await worker.run_until_idle()
        # paced and held back: not sent, the attempt given back, due again a second later
        row = app.message(decision.id)
        assert channel.paced == [decision.id] and channel.sent == [] and (row["status"], row["attempts"]) == (
            "queued", 0)
        later = time.time() + 2
        with use_clock(lambda: later):
            await worker.run_until_idle()
    assert channel.paced == [decision.id, decision.id] and channel.sent == [decision.id]
    row = app.message(decision.id)
    assert (row["status"], row["attempts"]) == ("accepted", 1)


def test_the_whatsapp_connector_offers_the_sandbox_without_credentials(make):
    app = make()
    assert isinstance(app.channel, SandboxChannel) and app.connectors["whatsapp"].make_channel() is not None


def test_connectors_offer_no_channel_by_default(make):
    with registered_plugin(ConnectorRegistration(SendingConnector)):
        app = make(connectors={"test_sender": {}})
    assert Connector.make_channel(app.connectors["test_sender"]) is None


# --- the engine is given one -----------------------------------------------------------------------------

def test_a_channel_factory_is_called_with_the_engine(make):
    app = make(channel=SandboxChannel)
    assert isinstance(app.channel, SandboxChannel) and app.channel.app is app


async def test_a_channel_without_pace_is_adapted_with_a_warning(make):
    class OldChannel:  # written against the protocol before pace() existed
        name = "old"

        def __init__(self) -> None:
            self.sent: list[str] = []

        async def send(self, message: OutboundSend) -> str:
            self.sent.append(message.outbox_id)
            return "wamid.old"

        async def reconcile(self, outbox_id: str) -> Any:
            return None

        async def aclose(self) -> None:
            return None

    old = OldChannel()
    with pytest.warns(DeprecationWarning, match="OldChannel has no pace"):
        app = consented(make(channel=old))
    assert isinstance(app.channel, LegacyChannel) and app.channel.name == "old"
    decision = app.send(confirmation())
    await Worker(app).run_until_idle()
    assert old.sent == [decision.id] and app.channel.sent == old.sent  # its own attributes still reachable


async def test_a_channel_without_medium_is_adapted_as_a_whatsapp_channel_and_keeps_its_pacing(make):
    class PreMediumChannel:  # written against the protocol before medium existed
        name = "paced"

        def __init__(self) -> None:
            self.paced: list[str] = []
            self.sent: list[str] = []

        async def pace(self, message: OutboundSend) -> None:
            self.paced.append(message.outbox_id)

        async def send(self, message: OutboundSend) -> str:
            self.sent.append(message.outbox_id)
            return "wamid.paced"

        async def reconcile(self, outbox_id: str) -> Any:
            return None

        async def aclose(self) -> None:
            return None

    old = PreMediumChannel()
    with pytest.warns(DeprecationWarning, match="PreMediumChannel has no medium attribute"):
        app = consented(make(channel=old))
    assert isinstance(app.channel, LegacyChannel) and app.channel.medium == WHATSAPP
    decision = app.send(confirmation())
    await Worker(app).run_until_idle()
    assert old.paced == old.sent == [decision.id]


def test_channels_send_on_whatsapp_unless_they_say_otherwise():
    class Mail(BaseChannel):
        name = "mail"
        medium = EMAIL

    assert FakeWhatsApp().medium == WHATSAPP and Mail().medium == EMAIL
    assert isinstance(Mail(), Channel)
    assert OutboundSend("o1", "+15551234567", TextContent(body="hi"), "utility").medium == WHATSAPP
    assert {WHATSAPP, EMAIL, SMS} == {"whatsapp", "email", "sms"}


def test_a_proper_channel_is_used_as_given(make):
    fake = FakeWhatsApp()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app = make(channel=fake)
    assert app.channel is fake
    other = FakeWhatsApp()
    assert app.use_channel(other) is fake and app.channel is other


# --- neutral outcomes: the core reacts to them, never to a vendor's codes ----------------------------------

async def sent_message(app: Connectzap) -> dict[str, Any]:
    decision = app.send(confirmation())
    await Worker(app).run_until_idle()
    return app.message(decision.id)


def failed_status(row: dict[str, Any], *, source: str = "sms_bridge", **fields: Any) -> Event:
    status = MessageStatus(wamid=row["wamid"], status="failed", timestamp=datetime.now(UTC), recipient=PHONE,
                           outbox_id=row["id"], **fields)
    return Event.of(EventKind.MESSAGE_STATUS, status, source=source, dedupe_key=f"{row['wamid']}:failed")


async def test_a_failed_status_acts_on_its_neutral_outcome_from_any_source(make):
    app = consented(make(channel=FakeWhatsApp()))
    row = await sent_message(app)
    app.ingest([failed_status(row, outcome="opted_out")])
    await Worker(app).run_until_idle()
    record = app.consent(PHONE)[Category.MARKETING]
    assert (record.granted, record.source) == (False, "sms_bridge:opted_out")


async def test_a_vendor_error_code_without_an_outcome_changes_nothing(make):
    app = consented(make(channel=FakeWhatsApp()))
    row = await sent_message(app)
    app.ingest([failed_status(row, errors=[{"code": 131050, "title": "User stopped marketing messages"}])])
    await Worker(app).run_until_idle()
    assert Category.MARKETING not in app.consent(PHONE)
    assert app.message(row["id"])["error_code"] == "131050"  # still recorded on the message


async def test_a_send_refused_as_unreachable_marks_the_contact(make):
    fake = FakeWhatsApp()
    app = consented(make(channel=fake))
    fake.fail_next(SkippableDeliveryError("no such user", code="unreachable"))  # no vendor code at all
    row = await sent_message(app)
    assert (row["status"], row["reason"]) == ("failed", "unreachable")
    assert app.send(confirmation("2")).reason == "unreachable"


# --- what the sender makes of each answer ------------------------------------------------------------------

@pytest.mark.parametrize(("error", "result"), [
    (SendingPausedError("token expired"), SendResult.PAUSED),
    (AmbiguousDeliveryError("timeout"), SendResult.UNKNOWN),
    (PacedError("slot", retry_after=1), SendResult.PACED),
    (RetriableDeliveryError("429"), SendResult.RETRY),
    (SkippableDeliveryError("stop", code="opted_out"), SendResult.UNDELIVERABLE),
    (FatalDeliveryError("bad template"), SendResult.FAILED),
    (RuntimeError("a bug in a channel"), SendResult.RETRY),
])
def test_every_answer_has_one_send_result(error, result):
    assert classify(error) is result


async def test_an_unexpected_channel_error_is_retried_with_its_text_on_record(make):
    class BuggyChannel(BaseChannel):
        name = "buggy"

        async def send(self, message: OutboundSend) -> str:
            raise RuntimeError("a bug in a channel")

    app = consented(make(channel=BuggyChannel()))
    decision = app.send(confirmation())
    frozen = time.time()  # the retry's backoff never runs out inside the run, however slow the machine
    with use_clock(lambda: frozen):
        await Worker(app).run_until_idle()
    row = app.message(decision.id)
    assert (row["status"], row["attempts"], row["error_details"]) == ("queued", 1, "a bug in a channel")


# --- a simulation never sends ----------------------------------------------------------------------------------

def test_a_simulation_takes_the_rehearsal_channel_even_with_live_credentials(make):
    from connectzap.core.simulation import Simulation
    live = {"access_token": "EAAG-not-a-real-token", "phone_number_id": "106540352242922", "app_secrets": ["s"],
            "verify_token": "v"}
    assert make("live", connectors={"whatsapp": live}).channel.name == "whatsapp"  # the real engine: Cloud API
    rehearsing = make("rehearsal", connectors={"whatsapp": live}, simulation=Simulation())
    assert isinstance(rehearsing.channel, SandboxChannel)
    with registered_plugin(ConnectorRegistration(SendingConnector)):
        # a connector with only a live channel is never used by a simulation
        only_live = make("only-live", connectors={**NO_WHATSAPP, "test_sender": {}}, simulation=Simulation())
    assert isinstance(only_live.channel, NoChannel) and "rehearsal channel" in (only_live.channel_missing or "")


# --- wrappers pass every part of the protocol through ---------------------------------------

class EveryPart(BaseChannel):
    """A channel that answers every optional part differently from BaseChannel's defaults."""

    name = "every-part"
    medium = SMS

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def pace(self, message: OutboundSend) -> None:
        self.calls.append(("pace", message.outbox_id))

    async def send(self, message: OutboundSend) -> str:
        return f"id-{message.outbox_id}"

    async def reconcile(self, outbox_id: str) -> Any:
        return f"id-{outbox_id}"

    async def mark_read(self, wamid: str, *, typing: bool = False, phone_number_id: str | None = None) -> bool:
        self.calls.append(("mark_read", (wamid, typing, phone_number_id)))
        return True

    def messages_per_second(self) -> float | None:
        return 7.0

    def refusal(self, message: OutboundSend, at: float) -> Any:
        return ("quiet", at)

    async def aclose(self) -> None:
        self.calls.append(("aclose", None))


def test_every_part_a_channel_declares_is_passed_through_by_the_wrapper_base():
    """A new optional part on BaseChannel that WrappedChannel does not forward would answer the
    default for every wrapped channel (as MeteredChannel once did for read receipts under serve)."""
    from connectzap.core.channel import WrappedChannel
    parts = {n for n, v in vars(BaseChannel).items() if callable(v) and not n.startswith("_")}
    assert parts >= {"pace", "send", "reconcile", "mark_read", "messages_per_second", "refusal", "aclose"}
    assert parts <= set(vars(WrappedChannel)), parts - set(vars(WrappedChannel))


async def test_the_metered_channel_keeps_read_receipts_pacing_rules_and_medium():
    from connectzap.core.metrics import MeteredChannel, Metrics
    inner = EveryPart()
    metered = MeteredChannel(inner, Metrics())
    message = OutboundSend(outbox_id="m1", recipient=PHONE, content=TextContent(body="hi"), category="utility",
                           medium=SMS)
    assert metered.medium == SMS and metered.name == "every-part"
    await metered.pace(message)
    assert await metered.send(message) == "id-m1"
    assert await metered.reconcile("m1") == "id-m1"
    assert await metered.mark_read("wamid.in", typing=True, phone_number_id="pn1") is True
    assert metered.messages_per_second() == 7.0 and metered.refusal(message, 5.0) == ("quiet", 5.0)
    await metered.aclose()
    assert inner.calls == [("pace", "m1"), ("mark_read", ("wamid.in", True, "pn1")), ("aclose", None)]
