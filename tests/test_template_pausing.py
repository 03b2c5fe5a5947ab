"""Template pacing and pausing: a held send is pending, a paused template's messages wait (no request
to the channel) until Meta lifts the pause, a disabled one's are refused, and error 132015 fails a
message with a clear reason. Webhook fixtures are built from Meta's reference (tests/payloads/whatsapp/README.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectzap import Category, ConsentChange, Outgoing, TemplateContent
from connectzap.connectors.whatsapp import errors, webhooks
from connectzap.core import clock
from connectzap.core.errors import FatalDeliveryError
from connectzap.core.worker import Worker
from connectzap.testing import seed_template
from connectzap.testing.fake_graph import FakeGraph

FIXTURES = Path(__file__).parent / "payloads" / "whatsapp"
PHONE = "+4915112345678"


def webhook(app: Any, name: str, **replace: str) -> None:
    """Journal the events of fixture ``name`` as the webhook edge would (after the signature check)."""
    text = (FIXTURES / f"{name}.json").read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    app.ingest(webhooks.parse_body(text.encode()))


def shipped() -> TemplateContent:
    return TemplateContent(name="order_shipped", language="en", body=["42"])


def ready(app: Any, status: str = "APPROVED") -> None:
    seed_template(app, "order_shipped", "Order {{1}} is on its way.", status=status)
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="t", proof="box"))


async def test_paused_template_waits_without_a_request_and_goes_when_the_pause_ends(app):
    ready(app)
    webhook(app, "template_paused")
    await Worker(app).run_until_idle()
    decision = app.send(Outgoing(to=PHONE, content=shipped()))
    assert (decision.status, decision.reason) == ("queued", "template_paused")
    await Worker(app).run_until_idle()
    assert app.channel.sent() == []  # nothing went to the channel
    row = app.message(decision.id)
    assert (row["status"], row["reason"], row["attempts"]) == ("queued", "template_paused", 0)

    webhook(app, "template_unpaused")  # Meta lifts the pause: status APPROVED again
    await Worker(app).run_until_idle()
    assert [body["template"]["name"] for body in app.channel.sent()] == ["order_shipped"]
    row = app.message(decision.id)
    assert row["status"] in ("accepted", "sent", "delivered") and row["reason"] is None


async def test_a_scheduled_message_released_from_a_pause_still_waits_for_its_time(app):
    now = [1_900_000_000.0]
    with clock.use_clock(lambda: now[0]):
        ready(app)
        webhook(app, "template_paused")
        await Worker(app).run_until_idle()
        later = datetime.fromtimestamp(now[0] + 3600, UTC)
        decision = app.send(Outgoing(to=PHONE, content=shipped(), not_before=later))
        assert (decision.status, decision.reason) == ("queued", "template_paused")

        webhook(app, "template_unpaused")  # the pause ends before the message is due
        await Worker(app).run_until_idle()
        assert app.channel.sent() == [] and app.message(decision.id)["status"] == "queued"

        now[0] += 3600  # its time comes
        await Worker(app).run_until_idle()
        assert [body["template"]["name"] for body in app.channel.sent()] == ["order_shipped"]


async def test_message_queued_before_the_pause_waits_too(app):
    ready(app)
    decision = app.send(Outgoing(to=PHONE, content=shipped()))
    assert (decision.status, decision.reason) == ("queued", None)
    webhook(app, "template_paused")
    await Worker(app).run_until_idle()
    assert app.channel.sent() == [] and app.message(decision.id)["reason"] == "template_paused"


async def test_disabled_template_refuses_the_waiting_messages(app):
    ready(app, status="PAUSED")
    decision = app.send(Outgoing(to=PHONE, content=shipped()))
    await Worker(app).run_until_idle()
    webhook(app, "template_disabled")
    await Worker(app).run_until_idle()
    row = app.message(decision.id)
    assert (row["status"], row["reason"]) == ("refused", "template_not_approved")
    assert app.channel.sent() == []
    later = app.send(Outgoing(to=PHONE, content=shipped()))
    assert (later.status, later.reason) == ("refused", "template_not_approved")


async def test_paused_template_still_needs_consent_and_exact_parameters(app):
    seed_template(app, "order_shipped", "Order {{1}} is on its way.", status="PAUSED")
    assert app.send(Outgoing(to=PHONE, content=shipped())).reason == "no_consent"
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="t", proof="box"))
    wrong = TemplateContent(name="order_shipped", language="en", body=["42", "extra"])
    assert app.send(Outgoing(to=PHONE, content=wrong)).reason == "param_mismatch"


# --- a send answered held_for_quality_assessment --------------------------------------------------

@pytest.fixture
def fake():
    with FakeGraph(token="test-token") as server:
        yield server


def live(fake: FakeGraph) -> dict[str, Any]:
    return {"whatsapp": {"access_token": "test-token", "phone_number_id": "106540352242922", "waba_id": "waba1",
                         "app_secrets": ["secret"], "verify_token": "verify", "api_base_url": fake.url,
                         "messages_per_second": 1000, "pair_spacing_seconds": 0, "daily_unique_recipients": None,
                         "timeout_seconds": 2}}


@pytest.mark.parametrize("held", ["held_for_quality_assessment", "paused"])
async def test_held_send_is_pending_not_failed_then_settled_by_its_statuses(make, fake, held):
    app = make(connectors=live(fake))
    ready(app)
    fake.message_status = held
    decision = app.send(Outgoing(to=PHONE, content=shipped()))
    await Worker(app).run_until_idle()
    row = app.message(decision.id)
    assert (row["status"], row["reason"]) == ("accepted", held)
    assert len(fake.sends()) == 1
    webhook(app, "status_delivered", **{"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJPVVRCT1VORDAwMDEA": row["wamid"],
                                        "msg_01JZ0000000000000000000001": decision.id})
    await Worker(app).run_until_idle()
    await app.aclose()
    row = app.message(decision.id)
    assert (row["status"], row["reason"]) == ("delivered", held)  # it stays on record that it was held


async def test_plain_acceptance_leaves_no_reason(make, fake):
    app = make(connectors=live(fake))
    ready(app)
    decision = app.send(Outgoing(to=PHONE, content=shipped()))
    await Worker(app).run_until_idle()
    await app.aclose()
    assert (app.message(decision.id)["status"], app.message(decision.id)["reason"]) == ("accepted", None)


# --- error 132015: a paused template's held message was dropped -----------------------------------

async def test_132015_status_fails_the_message_with_a_clear_reason(make, fake):
    app = make(connectors=live(fake))  # accepted, and no status until the test posts one
    ready(app)
    fake.message_status = "held_for_quality_assessment"
    decision = app.send(Outgoing(to=PHONE, content=shipped()))
    await Worker(app).run_until_idle()
    wamid = app.message(decision.id)["wamid"]
    webhook(app, "status_failed_132015", OUTBOX_ID=decision.id,
            **{"wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA": wamid})
    await Worker(app).run_until_idle()
    await app.aclose()
    row = app.message(decision.id)
    assert (row["status"], row["reason"], row["error_code"]) == ("failed", "template_paused", "132015")
    assert "paused" in row["error_details"] and "not resent" in row["error_details"]


def test_132015_and_132016_answers_are_fatal_with_their_own_reasons():
    for code, reason in ((132015, "template_paused"), (132016, "template_disabled")):
        error = errors.classify(400, {"error": {"code": code, "message": "Template is Paused"}})
        assert isinstance(error, FatalDeliveryError) and (error.code, error.vendor_code) == (reason, code)
        assert error.details == errors.EXPLANATIONS[code]
    other = errors.classify(400, {"error": {"code": 132000, "message": "params"}})
    assert other.code == "template_error" and other.details is None
