"""Twilio's webhooks on ``POST /webhooks/sms``: the signature (a pure function over the raw request,
failing closed), status callbacks as the core's message statuses, STOP/START keywords."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from server_support import serving
from sms_support import (ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, callback, inbound_params, settings,
                         status_params)

from connectzap.connectors.sms import webhooks
from connectzap.connectors.sms.signatures import sign_twilio, url_spellings, verify_twilio
from connectzap.core.app import Connectzap
from connectzap.core.errors import PayloadError, SignatureError
from connectzap.core.models import Category, DeliveryOutcome, EventKind
from connectzap.testing import deliver

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
SID = "SM" + "a" * 32
CUSTOMER = "+14155550100"


def test_the_documented_example_signature() -> None:
    # The worked example of Twilio's webhook-security page: this URL, these parameters, token 12345.
    params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"),
              ("From", "+12349013030"), ("To", "+18005551212")]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert sign_twilio(url, params, "12345") == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    verify_twilio([url], urlencode(params).encode(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "12345")


names = st.text(alphabet=st.characters(min_codepoint=65, max_codepoint=122), min_size=1, max_size=12)
values = st.text(max_size=40).filter(lambda v: "\x00" not in v)
forms = st.dictionaries(names, values, min_size=1, max_size=8)


@given(forms, st.sampled_from([PUBLIC_URL, PUBLIC_URL + "?outbox=ob-1", "https://x.example:8443/webhooks/sms"]))
def test_a_signed_form_verifies(params: dict[str, str], url: str) -> None:
    body = urlencode(params).encode()
    verify_twilio([url], body, sign_twilio(url, parse_qsl(body.decode(), keep_blank_values=True), AUTH_TOKEN),
                  AUTH_TOKEN)


@given(forms, st.data())
def test_any_change_to_the_signed_request_is_refused(params: dict[str, str], data: st.DataObject) -> None:
    body = urlencode(params).encode()
    signature = sign_twilio(PUBLIC_URL, parse_qsl(body.decode(), keep_blank_values=True), AUTH_TOKEN)
    name = data.draw(st.sampled_from(sorted(params)))
    changed = urlencode({**params, name: params[name] + data.draw(st.text(min_size=1, max_size=3))}).encode()
    for url, raw, token in ((PUBLIC_URL, changed, AUTH_TOKEN), (PUBLIC_URL + "?outbox=x", body, AUTH_TOKEN),
                            (PUBLIC_URL, body, AUTH_TOKEN + "x")):
        with pytest.raises(SignatureError):
            verify_twilio([url], raw, signature, token)


def test_fail_closed_without_header_or_token() -> None:
    body = urlencode(status_params(SID, "sent")).encode()
    good = sign_twilio(PUBLIC_URL, parse_qsl(body.decode()), AUTH_TOKEN)
    for header, token in ((None, AUTH_TOKEN), ("", AUTH_TOKEN), ("not base64!", AUTH_TOKEN), (good, "")):
        with pytest.raises(SignatureError):
            verify_twilio([PUBLIC_URL], body, header, token)


def test_a_url_is_checked_with_and_without_its_default_port() -> None:
    assert url_spellings("https://a.example/x?y=1") == ["https://a.example/x?y=1", "https://a.example:443/x?y=1"]
    assert url_spellings("https://a.example:443/x") == ["https://a.example:443/x", "https://a.example/x"]
    assert url_spellings("http://a.example:8080/x") == ["http://a.example:8080/x"]


def parsed(params: dict[str, str], outbox: str | None = None, **options: Any) -> list[Any]:
    key_of: Callable[[str], str] = lambda e164: "key:" + e164[-4:]  # noqa: E731
    return webhooks.parse(urlencode(params).encode(), {"outbox": outbox} if outbox else {}, account_sid=ACCOUNT_SID,
                          now=NOW, key_of=key_of, opt_out=options.get("opt_out", ["STOP", "UNSUBSCRIBE"]),
                          opt_in=options.get("opt_in", ["START", "UNSTOP", "YES"]))


@pytest.mark.parametrize(("twilio_status", "status"), [
    ("queued", "accepted"), ("accepted", "accepted"), ("sending", "accepted"), ("sent", "sent"),
    ("delivered", "delivered"), ("read", "read"), ("canceled", "cancelled"),
])
def test_statuses_map_to_the_core_statuses(twilio_status: str, status: str) -> None:
    (event,) = parsed(status_params(SID, twilio_status), outbox="ob-7")
    assert (event.kind, event.source, event.dedupe_key) == (EventKind.MESSAGE_STATUS, "sms", f"{SID}:{twilio_status}")
    assert event.data["wamid"] == SID and event.data["status"] == status and event.data["outbox_id"] == "ob-7"
    assert event.data["contact_key"] == "key:0100" and "recipient" not in event.data  # no number kept


@pytest.mark.parametrize(("twilio_status", "code", "reason", "outcome"), [
    ("undelivered", "30003", "unreachable", DeliveryOutcome.UNREACHABLE),
    ("undelivered", "30007", "carrier_filtered", None),
    ("failed", "21610", "opted_out", DeliveryOutcome.OPTED_OUT),
    ("failed", "30008", "twilio_30008", None),
    ("failed", None, "failed", None),
])
def test_failures_carry_twilios_code_reason_and_outcome(twilio_status: str, code: str | None, reason: str,
                                                        outcome: DeliveryOutcome | None) -> None:
    (event,) = parsed(status_params(SID, twilio_status, error_code=code))
    assert event.data["status"] == "failed" and event.data["reason"] == reason
    assert event.data.get("outcome") == (outcome.value if outcome else None)
    assert [e["code"] for e in event.data.get("errors", [])] == ([int(code)] if code else [])
    # the number stays only where the core needs it: to record the opt-out
    assert ("recipient" in event.data) == (outcome == DeliveryOutcome.OPTED_OUT)


@pytest.mark.parametrize(("params", "field"), [
    ({**status_params(SID, "sent"), "AccountSid": "AC" + "f" * 32}, "AccountSid"),
    (status_params(SID, "exploded"), "MessageStatus"),
    ({k: v for k, v in status_params(SID, "sent").items() if k != "MessageSid"}, "MessageSid"),
    ({**status_params(SID, "sent"), "To": "not a number"}, "To"),
])
def test_malformed_callbacks_are_refused_clearly(params: dict[str, str], field: str) -> None:
    with pytest.raises(PayloadError) as raised:
        parsed(params)
    assert raised.value.field == field


@pytest.mark.parametrize("text", ["STOP", "stop", "  Stop! ", "unsubscribe", "Unsubscribe."])
def test_an_opt_out_keyword_revokes_sms_consent_in_every_category(text: str) -> None:
    events = parsed(inbound_params(text))
    assert [e.kind for e in events] == [EventKind.CONSENT_CHANGED] * 3
    assert {e.data["category"] for e in events} == {c.value for c in Category}
    assert all(e.data["granted"] is False and e.data["phone"] == CUSTOMER and e.data["source"] == "sms"
               and e.data["medium"] == "sms" for e in events)
    assert "Twilio message SM" in events[0].data["proof"]


@pytest.mark.parametrize("text", ["START", "unstop", "Yes"])
def test_an_opt_in_keyword_grants_it_again(text: str) -> None:
    events = parsed(inbound_params(text))
    assert len(events) == 3 and all(e.data["granted"] is True and e.data["medium"] == "sms" for e in events)


def test_advanced_opt_out_names_the_keyword_and_other_texts_are_inbound_messages() -> None:
    # Twilio's Advanced Opt-Out sends OptOutType for the service's own (e.g. localised) keywords
    assert all(e.data["granted"] is False for e in parsed(inbound_params("ARRET", OptOutType="STOP")))
    for text in ("ARRET", "stop sending me the newsletter please", "hello"):
        assert [(e.kind, e.data["medium"], e.data["text"]) for e in parsed(inbound_params(text))] == [
            (EventKind.INBOUND_MESSAGE, "sms", text)]


# --- through the HTTP edge ---------------------------------------------------------------------

def sms_engine(make: Callable[..., Connectzap]) -> Connectzap:
    return make(connectors={"sms": settings(status_callback_url=PUBLIC_URL)})


async def test_the_edge_accepts_a_signed_callback_and_refuses_bad_and_unsigned_ones(
        make: Callable[..., Connectzap]) -> None:
    engine = sms_engine(make)
    params = status_params(SID, "delivered")
    body = urlencode(params)
    url = "http://testserver/webhooks/sms?outbox=ob-1"
    signed = sign_twilio(url, parse_qsl(body), AUTH_TOKEN)
    form = {"content-type": "application/x-www-form-urlencoded"}
    async with serving(engine) as client:
        good = await client.post("/webhooks/sms?outbox=ob-1", content=body,
                                 headers={**form, "X-Twilio-Signature": signed})
        forged = await client.post("/webhooks/sms?outbox=ob-1", content=body.replace("delivered", "failed"),
                                   headers={**form, "X-Twilio-Signature": signed})
        other_url = await client.post("/webhooks/sms?outbox=ob-2", content=body,
                                      headers={**form, "X-Twilio-Signature": signed})
        unsigned = await client.post("/webhooks/sms?outbox=ob-1", content=body, headers=form)
    assert good.status_code == 200
    assert [r.status_code for r in (forged, other_url, unsigned)] == [401, 401, 401]
    assert AUTH_TOKEN not in forged.text + unsigned.text


def test_a_callback_signed_for_the_public_url_passes_behind_a_proxy(make: Callable[..., Connectzap]) -> None:
    engine = sms_engine(make)
    request = callback(status_params(SID, "sent"), outbox="ob-1")  # signed for PUBLIC_URL
    proxied = type(request)(**{**request.__dict__, "url": "http://10.0.0.5:8000/webhooks/sms?outbox=ob-1"})
    assert deliver(engine, "sms", proxied).status == 200
    unsigned = callback(status_params(SID, "sent"), outbox="ob-1", token=None)
    assert deliver(engine, "sms", unsigned).status in (401, 403)


KEYWORDS_OUT = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]
KEYWORDS_IN = ["START", "YES", "UNSTOP"]


@given(st.sampled_from(KEYWORDS_OUT + KEYWORDS_IN), st.data())
def test_a_keyword_counts_in_any_case_with_surrounding_punctuation(word: str, data: st.DataObject) -> None:
    cased = "".join(c.upper() if data.draw(st.booleans()) else c.lower() for c in word)
    edges = st.text(alphabet=" \t!.¡?", max_size=3)
    said = data.draw(edges) + cased + data.draw(edges)
    assert webhooks.keyword_change(said, KEYWORDS_OUT, KEYWORDS_IN) is (word in KEYWORDS_IN)
    # with another word it is a sentence, not a keyword
    other = data.draw(st.sampled_from(["please", "now", "the offers"]))
    assert webhooks.keyword_change(f"{cased} {other}", KEYWORDS_OUT, KEYWORDS_IN) is None
