"""Meta error classification: the research table, exactly; total over every code and status."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectzap.connectors.whatsapp import errors
from connectzap.core.errors import (AmbiguousDeliveryError, FatalDeliveryError, RetriableDeliveryError,
                                    SendingPausedError, SkippableDeliveryError)

CLASSES = {"retry": RetriableDeliveryError, "skip": SkippableDeliveryError, "paused": SendingPausedError,
           "fatal": FatalDeliveryError}


def meta_error(code, *, details="some details", trace="AbCdEf", **more):
    error = {"message": f"(#{code}) title", "type": "OAuthException", "code": code, "fbtrace_id": trace,
             "error_data": {"messaging_product": "whatsapp", "details": details}}
    error.update(more)
    return {"error": error}


@pytest.mark.parametrize("code", [130429, 131056, 4, 80007, 1, 2, 131000, 131016, 131057])
def test_retry_codes(code):
    exc = errors.classify(400, meta_error(code))
    assert type(exc) is RetriableDeliveryError
    assert (exc.vendor_code, exc.details, exc.trace_id) == (code, "some details", "AbCdEf")


def test_retry_waits_follow_the_table_and_retry_after_header_wins():
    assert errors.classify(400, meta_error(131056)).retry_after >= 6  # pair limit: ~1 msg / 6 s
    assert errors.classify(400, meta_error(4)).retry_after >= 60      # app rate limit: minutes
    assert errors.classify(500, meta_error(131000)).retry_after is None  # core backoff decides
    assert errors.classify(429, meta_error(130429), {"retry-after": "7"}).retry_after == 7.0


@pytest.mark.parametrize(("code", "reason"), [(131047, "window_closed"), (131050, "opted_out"),
                                              (131026, "unreachable"), (131049, "marketing_limited")])
def test_skippable_codes(code, reason):
    exc = errors.classify(400, meta_error(code))
    assert type(exc) is SkippableDeliveryError and exc.code == reason


@given(st.integers(min_value=132000, max_value=132999))
def test_every_132xxx_is_fatal_with_metas_details(code):
    exc = errors.classify(400, meta_error(code, details="body: number of localizable_params (2) does not match"))
    paused = {132015: "template_paused", 132016: "template_disabled"}  # tests/test_template_pausing.py
    assert type(exc) is FatalDeliveryError and exc.code == paused.get(code, "template_error")
    assert "localizable_params" in exc.details and "localizable_params" in exc.message


def test_token_expired_pauses_sending():
    exc = errors.classify(401, meta_error(190))
    assert type(exc) is SendingPausedError and exc.code == "token_expired"
    assert type(errors.classify(403, {"error": {"message": "nope"}})) is SendingPausedError


def test_is_transient_is_honoured_and_5xx_retried():
    assert type(errors.classify(400, meta_error(100))) is FatalDeliveryError
    assert type(errors.classify(400, meta_error(100, is_transient=True))) is RetriableDeliveryError
    assert type(errors.classify(502, "<html>bad gateway</html>")) is RetriableDeliveryError
    # a transient flag does not turn a recipient decision into a retry
    assert type(errors.classify(400, meta_error(131050, is_transient=True))) is SkippableDeliveryError


def test_error_data_may_be_a_plain_string():
    payload = {"error": {"message": "Invalid parameter", "code": 100, "error_subcode": 2388273,
                         "error_data": "Header handle is invalid", "fbtrace_id": "X"}}
    exc = errors.classify(400, payload)
    assert exc.details == "Header handle is invalid" and exc.data["error_subcode"] == 2388273


codes = st.one_of(st.none(), st.integers(min_value=-10, max_value=3_000_000),
                  st.sampled_from(sorted([*errors.RETRY_AFTER, *errors.SKIP, *errors.PAUSE, *errors.FATAL_REASONS])))


@given(code=codes, status=st.integers(min_value=400, max_value=599), transient=st.sampled_from([None, True, False]))
def test_classification_is_total_and_single(code, status, transient):
    payload = {"error": {"code": code, "message": "m", "fbtrace_id": "T", "is_transient": transient}}
    exc = errors.classify(status, payload)
    kind = errors.kind_of(code, status, transient)
    matching = [k for k, cls in CLASSES.items() if type(exc) is cls]
    assert matching == [kind]
    assert exc.vendor_code == code and exc.trace_id == "T" and exc.http_status == status
    if code in errors.RETRY_AFTER:
        assert kind == "retry"
    elif code in errors.SKIP:
        assert kind == "skip"


@given(st.binary(max_size=200), st.integers(min_value=400, max_value=599))
def test_any_garbage_body_still_classifies(body, status):
    exc = errors.classify(status, body)
    assert isinstance(exc, tuple(CLASSES.values()))


def test_timeouts_are_ambiguous_for_sends_only():
    request = httpx.Request("POST", "https://graph.facebook.com/v27.0/1/messages")
    read_timeout = httpx.ReadTimeout("timed out", request=request)
    assert type(errors.from_transport(read_timeout, may_have_acted=True)) is AmbiguousDeliveryError
    assert type(errors.from_transport(read_timeout, may_have_acted=False)) is RetriableDeliveryError
    refused = httpx.ConnectError("refused", request=request)
    assert type(errors.from_transport(refused, may_have_acted=True)) is RetriableDeliveryError


def test_aiohttp_dropped_connection_is_ambiguous_but_failed_connect_is_not():
    import aiohttp
    request = httpx.Request("POST", "https://graph.facebook.com/v27.0/1/messages")
    dropped = httpx.ConnectTimeout("dropped", request=request)
    dropped.__cause__ = aiohttp.ServerDisconnectedError()
    assert type(errors.from_transport(dropped, may_have_acted=True)) is AmbiguousDeliveryError
    never = httpx.TimeoutException("connect", request=request)
    never.__cause__ = aiohttp.ConnectionTimeoutError()
    assert type(errors.from_transport(never, may_have_acted=True)) is RetriableDeliveryError
