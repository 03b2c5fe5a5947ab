"""The SMS channel against a local stand-in of Twilio's REST API: what is sent, how each Twilio
answer lands in the error tree, text templates, the segment limit and quiet hours."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sms_support import AUTH_TOKEN, FROM, PUBLIC_URL, Answer, TwilioStandIn, settings, twilio_error

from connectzap.connectors.sms.channel import TwilioSmsChannel, quiet_hours_wait
from connectzap.connectors.sms.client import TwilioClient
from connectzap.connectors.sms.settings import SmsSettings
from connectzap.core.channel import NOT_SUPPORTED, SMS, Channel, MediumRules, OutboundSend
from connectzap.core.errors import (AmbiguousDeliveryError, FatalDeliveryError,
                                    PhoneRequiredError, RetriableDeliveryError, SendingPausedError,
                                    SkippableDeliveryError)
from connectzap.core.messages import MediaContent, MediaRef, TemplateContent, TextContent
from connectzap.core.models import DeliveryOutcome

CUSTOMER = "+14155550100"


@pytest.fixture
def twilio() -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as stand_in:
        yield stand_in


def channel_for(stand_in: TwilioStandIn | None, **extra: Any) -> TwilioSmsChannel:
    base = stand_in.url if stand_in is not None else "http://127.0.0.1:9"
    return TwilioSmsChannel(SmsSettings(**settings(api_base_url=base, **extra)))


def outbound(content: Any = None, *, to: str = CUSTOMER, category: str = "utility",
             outbox_id: str = "ob-1") -> OutboundSend:
    return OutboundSend(outbox_id=outbox_id, recipient=to, content=content or TextContent(body="Your code is 1234"),
                        category=category, medium=SMS)


async def test_a_text_is_posted_as_a_form_with_basic_auth(twilio: TwilioStandIn) -> None:
    channel = channel_for(twilio, status_callback_url=PUBLIC_URL)
    assert isinstance(channel, Channel) and channel.medium == "sms"
    sid = await channel.send(outbound())
    await channel.aclose()
    assert sid == twilio.created[0]["sid"] and sid.startswith("SM")
    (call,) = twilio.calls
    assert call.auth == (settings()["account_sid"], AUTH_TOKEN)
    assert call.form == {"To": CUSTOMER, "From": FROM, "Body": "Your code is 1234",
                         "StatusCallback": f"{PUBLIC_URL}?outbox=ob-1"}


async def test_a_messaging_service_sends_instead_of_a_number(twilio: TwilioStandIn) -> None:
    service = "MG" + "ab" * 16
    channel = TwilioSmsChannel(SmsSettings(**{**settings(api_base_url=twilio.url), "from_number": None,
                                              "messaging_service_sid": service}))
    await channel.send(outbound())
    await channel.aclose()
    assert twilio.calls[0].form["MessagingServiceSid"] == service and "From" not in twilio.calls[0].form
    assert "StatusCallback" not in twilio.calls[0].form  # no status_callback_url: none asked for


@pytest.mark.parametrize(("to", "error", "code", "outcome"), [
    ("+15005550001", SkippableDeliveryError, "unreachable", DeliveryOutcome.UNREACHABLE),
    ("+15005550009", SkippableDeliveryError, "unreachable", DeliveryOutcome.UNREACHABLE),
    ("+15005550004", SkippableDeliveryError, "opted_out", DeliveryOutcome.OPTED_OUT),
    ("+15005550002", SkippableDeliveryError, "not_routable", None),
    ("+15005550003", SkippableDeliveryError, "region_not_enabled", None),
])
async def test_recipient_errors_skip_the_message(twilio: TwilioStandIn, to: str, error: type[Exception], code: str,
                                                 outcome: DeliveryOutcome | None) -> None:
    channel = channel_for(twilio)
    with pytest.raises(error) as raised:
        await channel.send(outbound(to=to))
    await channel.aclose()
    assert raised.type is error
    assert raised.value.code == code
    assert (DeliveryOutcome(code) if code in DeliveryOutcome._value2member_map_ else None) == outcome
    assert to not in str(raised.value), "Twilio's message quotes the number; ours must not"


async def test_wrong_credentials_pause_sending(twilio: TwilioStandIn) -> None:
    channel = TwilioSmsChannel(SmsSettings(**settings(api_base_url=twilio.url, auth_token="not-the-token")))
    with pytest.raises(SendingPausedError) as raised:
        await channel.send(outbound())
    await channel.aclose()
    assert (raised.value.code, raised.value.vendor_code, raised.value.http_status) == ("auth_failed", 20003, 401)
    assert "not-the-token" not in str(raised.value) and "not-the-token" not in repr(channel)


@pytest.mark.parametrize(("answer", "code", "retry_after"), [
    (Answer(429, twilio_error(429, 20429, "Too Many Requests"), {"Retry-After": "7"}), "rate_limited", 7.0),
    (Answer(429, twilio_error(429, 20429, "Too Many Requests")), "rate_limited", 1.0),
    (Answer(500, twilio_error(500, 20500, "Internal Server Error")), "retry", None),
    (Answer(503, {}, {"Retry-After": "30"}), "retry", 30.0),
])
async def test_rate_limits_and_server_errors_are_retried(twilio: TwilioStandIn, answer: Answer, code: str,
                                                         retry_after: float | None) -> None:
    twilio.script.append(answer)
    channel = channel_for(twilio)
    with pytest.raises(RetriableDeliveryError) as raised:
        await channel.send(outbound())
    await channel.aclose()
    assert (raised.value.code, raised.value.retry_after) == (code, retry_after)


async def test_a_connection_dropped_after_the_request_is_ambiguous(twilio: TwilioStandIn) -> None:
    twilio.script.append(Answer(drop=True))
    channel = channel_for(twilio)
    with pytest.raises(AmbiguousDeliveryError) as raised:
        await channel.send(outbound())
    await channel.aclose()
    assert raised.value.code == "unknown" and len(twilio.calls) == 1
    assert await channel.reconcile("ob-1") is NOT_SUPPORTED  # the status callback (?outbox=) settles it


async def test_a_read_timeout_is_ambiguous_and_a_failed_connect_is_retried() -> None:
    def timing_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    config = SmsSettings(**settings(api_base_url="http://twilio.invalid"))
    channel = TwilioSmsChannel(config, TwilioClient(config, transport=httpx.MockTransport(timing_out)))
    with pytest.raises(AmbiguousDeliveryError):
        await channel.send(outbound())
    await channel.aclose()
    refused = channel_for(None)  # nothing listens there: the request never left
    with pytest.raises(RetriableDeliveryError) as raised:
        await refused.send(outbound())
    await refused.aclose()
    assert raised.value.code == "unreachable_api"


async def test_other_errors_fail_the_message(twilio: TwilioStandIn) -> None:
    twilio.script.append(Answer(400, twilio_error(400, 21617, "The concatenated message body exceeds the 1600 "
                                                              "character limit.")))
    twilio.script.append(Answer(400, twilio_error(400, 21999, "Something new")))
    channel = channel_for(twilio)
    codes = []
    for _ in range(2):
        with pytest.raises(FatalDeliveryError) as raised:
            await channel.send(outbound())
        codes.append(raised.value.code)
    await channel.aclose()
    assert codes == ["body_too_long", "twilio_21999"]


async def test_a_template_renders_its_sms_text_in_the_language(twilio: TwilioStandIn) -> None:
    templates = {"order_shipped": {"en": "Order {{ order }} ships today. {{ greeting }}",
                                   "de": "Bestellung {{ p1 }} ist unterwegs <{{ p2 }}>"}}
    channel = channel_for(twilio, templates=templates)
    await channel.send(outbound(TemplateContent(name="order_shipped", language="en_US",
                                                body={"order": "#1001", "greeting": "Thanks & bye <3"})))
    await channel.send(outbound(TemplateContent(name="order_shipped", language="de", body=["#1002", "A&B"])))
    await channel.aclose()
    # no autoescape: an SMS is plain text
    assert [c.form["Body"] for c in twilio.calls] == ["Order #1001 ships today. Thanks & bye <3",
                                                      "Bestellung #1002 ist unterwegs <A&B>"]


@pytest.mark.parametrize(("content", "code"), [
    (TemplateContent(name="missing", language="en"), "no_sms_template"),
    (TemplateContent(name="order_shipped", language="fr"), "no_sms_template"),
    (TemplateContent(name="order_shipped", language="en"), "template_parameters"),
])
async def test_a_template_without_sms_text_is_skipped_and_nothing_sent(twilio: TwilioStandIn, content: Any,
                                                                       code: str) -> None:
    channel = channel_for(twilio, templates={"order_shipped": {"en": "Order {{ order }}"}})
    with pytest.raises(SkippableDeliveryError) as raised:
        await channel.send(outbound(content))
    await channel.aclose()
    assert raised.value.code == code and twilio.calls == []


async def test_what_cannot_go_by_sms_is_refused_before_sending(twilio: TwilioStandIn) -> None:
    channel = channel_for(twilio)
    with pytest.raises(FatalDeliveryError) as raised:
        await channel.send(outbound(MediaContent(type="image", media=MediaRef(link="https://example.com/a.png"))))
    assert raised.value.code == "unsupported_type"
    with pytest.raises(PhoneRequiredError):
        await channel.send(outbound(to="US.13491208655302741918"))
    with pytest.raises(FatalDeliveryError) as raised:
        await channel.send(replace(outbound(), medium="whatsapp"))
    assert raised.value.code == "wrong_medium"
    await channel.aclose()
    assert twilio.calls == []


async def test_a_text_over_max_segments_is_refused_with_the_count(twilio: TwilioStandIn,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    channel = channel_for(twilio, max_segments=2)
    caplog.set_level(logging.INFO, "connectzap.connectors.sms")
    await channel.send(outbound(TextContent(body="a" * 160)))  # one GSM-7 segment
    await channel.send(outbound(TextContent(body="a" * 306)))  # two GSM-7 segments
    with pytest.raises(FatalDeliveryError) as raised:
        await channel.send(outbound(TextContent(body="a" * 307)))
    assert raised.value.code == "too_many_segments" and "3 SMS segments" in raised.value.message
    with pytest.raises(FatalDeliveryError):
        await channel.send(outbound(TextContent(body="ú" * 135)))  # UCS-2: 3 segments of 67
    await channel.aclose()
    assert len(twilio.calls) == 2
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert ": 1 segment, GSM-7" in logged and ": 2 segments, GSM-7" in logged
    assert CUSTOMER not in logged and "aaaa" not in logged, "no number and no text in logs"


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="exactly one of from_number and messaging_service_sid"):
        SmsSettings(**{**settings(), "from_number": None})
    with pytest.raises(ValueError, match="AC followed by 32 hex"):
        SmsSettings(**settings(account_sid="AC123"))
    with pytest.raises(ValueError, match="template 'x' \\(en\\)"):
        SmsSettings(**settings(templates={"x": {"en": "{{ broken"}}))
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        SmsSettings(**settings(marketing_send_window="late"))
    shown = repr(SmsSettings(**settings())) + str(SmsSettings(**settings()).model_dump())
    assert AUTH_TOKEN not in shown
    assert SmsSettings(**settings(from_number="MyShop")).from_number == "MyShop"
    notes = SmsSettings(**settings(status_callback_url=PUBLIC_URL)).doctor_notes()
    assert notes == [f"sends from {FROM}; status callbacks on; marketing window 08:00-21:00; at most 10 segments"]
    one = SmsSettings(**settings(max_segments=1)).doctor_notes()
    assert one[0].endswith("; at most 1 segment")  # not "1 segments"
    assert AUTH_TOKEN not in " ".join(notes)


def _at(hour: int, minute: int = 0, zone: str = "UTC") -> float:
    from zoneinfo import ZoneInfo
    return datetime(2026, 12, 3, hour, minute, tzinfo=ZoneInfo(zone)).astimezone(UTC).timestamp()


def test_marketing_waits_for_the_recipients_morning_other_categories_do_not() -> None:
    config = SmsSettings(**settings(marketing_send_window="08:00-21:00"))
    berlin = "+4915112345678"
    night = _at(23, 30, "Europe/Berlin")
    wait = quiet_hours_wait(config, outbound(to=berlin, category="marketing"), night)
    assert wait is not None and night + wait >= _at(8, 0, "Europe/Berlin") + 86400
    assert night + wait <= _at(8, 5, "Europe/Berlin") + 86400
    assert quiet_hours_wait(config, outbound(to=berlin, category="utility"), night) is None
    assert quiet_hours_wait(config, outbound(to=berlin, category="marketing"), _at(12, 0, "Europe/Berlin")) is None
    # 23:30 in Berlin is 17:30 in New York: the window is open there
    assert quiet_hours_wait(config, outbound(to="+12125550123", category="marketing"), night) is None
    off = SmsSettings(**settings(marketing_send_window=None))
    assert quiet_hours_wait(off, outbound(to=berlin, category="marketing"), night) is None


def test_quiet_hours_are_the_channels_declared_rule() -> None:
    channel = channel_for(None)
    assert isinstance(channel, MediumRules)
    night = _at(2, 0, "Europe/Berlin")
    refusal = channel.refusal(outbound(to="+4915112345678", category="marketing"), night)
    assert refusal is not None and refusal.reason == "quiet_hours" and refusal.retry_at is not None
    assert _at(8, 0, "Europe/Berlin") <= refusal.retry_at <= _at(8, 5, "Europe/Berlin")  # waits, is not refused
    assert "08:00-21:00" in refusal.detail
    assert channel.refusal(outbound(to="+4915112345678", category="utility"), night) is None

async def test_the_cassette_of_twilios_reference_answers() -> None:
    import vcr

    cassettes = Path(__file__).resolve().parents[1] / "cassettes" / "twilio"
    replay = vcr.VCR(cassette_library_dir=str(cassettes), record_mode="none", filter_headers=["authorization"],
                     match_on=["method", "uri", "body"])
    channel = TwilioSmsChannel(SmsSettings(**settings()))  # the real base URL: only the cassette answers
    with replay.use_cassette("message_create.yaml") as cassette:
        sid = await channel.send(outbound())
        with pytest.raises(SkippableDeliveryError) as raised:
            await channel.send(outbound(to="+15005550001"))
    await channel.aclose()
    assert sid == "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    assert (raised.value.code, raised.value.vendor_code) == ("unreachable", 21211)
    assert cassette.all_played


@given(st.integers(min_value=400, max_value=599), st.one_of(st.none(), st.integers(min_value=10000, max_value=99999)),
       st.text(min_size=1, max_size=60), st.one_of(st.none(), st.sampled_from(["5", "0", "soon"])))
def test_every_twilio_error_lands_in_one_branch_of_the_tree_without_twilios_text(
        status: int, code: int | None, message: str, retry_after: str | None) -> None:
    from connectzap.connectors.sms.errors import classify
    payload = {"code": code, "message": f"{message} +14155550100", "status": status}
    error = classify(status, payload, {"retry-after": retry_after} if retry_after else None)
    kinds = [isinstance(error, k) for k in (RetriableDeliveryError, SkippableDeliveryError, SendingPausedError,
                                           FatalDeliveryError)]
    assert kinds.count(True) == (2 if isinstance(error, SendingPausedError) else 1)  # paused is fatal too
    assert isinstance(error, RetriableDeliveryError) == (status == 429 or status >= 500 or code == 20429)
    assert "+14155550100" not in str(error) and error.vendor_code == code and error.http_status == status
