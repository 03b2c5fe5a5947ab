"""Twilio's errors, classified into connectzap's exception tree by what to do next.

Twilio answers a refused request with JSON ``{"code", "message", "more_info", "status"}``; its
``code`` is the number in Twilio's error dictionary (twilio.com/docs/api/errors) and is what the
table below is built on. Twilio's ``message`` is never copied into an error: it often quotes the
recipient's number (``The 'To' number +1... is not a valid phone number``), and an error's text
ends up on the message row and in logs. Each error keeps ``vendor_code`` and ``http_status``.

* ``retry``  -- 429 (20429), 5xx, or a request that never left: again after ``retry_after``.
* ``skip``   -- this recipient cannot get SMS: an invalid or non-mobile number (``unreachable``),
  a recipient who texted STOP (``opted_out``), a destination the account may not send to.
* ``paused`` -- the credentials or the sender are wrong: every further send would fail alike.
* ``fatal``  -- this request is wrong (an empty or too long body).
* no answer after the request was written -- ``unknown``: the message may be out; never resent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from ...core.errors import (AmbiguousDeliveryError, DeliveryError, FatalDeliveryError, RetriableDeliveryError,
                            SendingPausedError, SkippableDeliveryError)
from ...core.models import DeliveryOutcome
from ...core.retries import retry_after_header

AUTHENTICATE = 20003
TOO_MANY_REQUESTS = 20429
INVALID_TO = 21211
NOT_MOBILE = 21614
UNSUBSCRIBED = 21610

OUTCOMES: dict[int, DeliveryOutcome] = {
    INVALID_TO: DeliveryOutcome.UNREACHABLE,
    NOT_MOBILE: DeliveryOutcome.UNREACHABLE,
    UNSUBSCRIBED: DeliveryOutcome.OPTED_OUT,   # the recipient texted STOP: Twilio blocks every message to them
    30003: DeliveryOutcome.UNREACHABLE,        # status callbacks: unreachable destination handset
    30005: DeliveryOutcome.UNREACHABLE,        # unknown destination handset (the number does not exist)
    30006: DeliveryOutcome.UNREACHABLE,        # landline or unreachable carrier
}
"""Twilio codes that say something about the recipient, as the core's neutral outcomes."""

SKIP: dict[int, str] = {
    **{code: outcome.value for code, outcome in OUTCOMES.items()},
    21408: "region_not_enabled",    # the account's geo permissions do not cover the destination
    21612: "not_routable",          # the 'To' number cannot be reached from the 'From' number
    30004: "blocked",               # status callbacks: the message was blocked (handset or carrier)
    30007: "carrier_filtered",      # the carrier filtered it as spam
    30034: "unregistered_sender",   # US A2P 10DLC: the sending number is not registered
}
"""Codes that fail this one message; the value becomes the message's reason."""

PAUSE: dict[int, str] = {
    AUTHENTICATE: "auth_failed",          # wrong account SID or auth token
    20404: "account_not_found",           # the account (or the messaging service) does not exist
    21212: "invalid_sender",              # 'From' is not a valid number
    21606: "invalid_sender",              # 'From' is not an SMS-capable number of this account
    21659: "invalid_sender",              # 'From' is not a Twilio number
    21703: "invalid_messaging_service",   # the messaging service has no senders
}
"""Credentials, account or sender broken: every further send would fail the same way."""

FATAL: dict[int, str] = {
    21602: "empty_body",
    21617: "body_too_long",               # longer than 1,600 characters
}

TITLES: dict[int, str] = {
    AUTHENTICATE: "authentication failed: check account_sid and auth_token",
    20404: "the account or messaging service was not found",
    TOO_MANY_REQUESTS: "too many requests",
    INVALID_TO: "the recipient is not a valid phone number",
    NOT_MOBILE: "the recipient is not a mobile number",
    UNSUBSCRIBED: "the recipient unsubscribed (texted STOP) from this sender",
    21408: "sending to this region is not enabled for the account",
    21612: "the recipient cannot be reached from this sender",
    21212: "the sender ('From') is not a valid phone number",
    21606: "the sender ('From') cannot send SMS from this account",
    21659: "the sender ('From') is not a Twilio number",
    21703: "the messaging service has no senders",
    21602: "the message body is empty",
    21617: "the message body is longer than 1,600 characters",
    30003: "unreachable destination handset",
    30004: "message blocked",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
    30007: "filtered by the carrier",
    30008: "unknown error",
    30034: "the sending number is not registered for US A2P 10DLC",
}
"""Our own words for the codes we name: Twilio's ``message`` may quote the number, these never do."""

RETRY_SECONDS = 1.0
"""Wait after a 429 that came without ``Retry-After``."""


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def describe(code: int | None) -> str:
    """A line about Twilio error ``code`` without any of the request's data."""
    if code is None:
        return "Twilio answered with an error"
    return f"Twilio error {code}: {TITLES.get(code, 'see twilio.com/docs/api/errors/' + str(code))}"


def outcome_of(code: int | str | None) -> DeliveryOutcome | None:
    """The neutral outcome of Twilio error ``code`` (on a send or a failed status), if it has one."""
    number = _int(code)
    return OUTCOMES.get(number) if number is not None else None


def failure_reason(code: int | str | None) -> str:
    """The reason a ``failed``/``undelivered`` status with Twilio error ``code`` leaves on its message."""
    number = _int(code)
    if number is None:
        return "undelivered"
    return SKIP.get(number) or PAUSE.get(number) or FATAL.get(number) or f"twilio_{number}"


def classify(http_status: int, payload: Any, headers: Mapping[str, str] | None = None) -> DeliveryError:
    """An error answer of the REST API (status + parsed JSON, or anything else) as one exception."""
    code = _int(payload.get("code")) if isinstance(payload, dict) else None
    fields: dict[str, Any] = {"vendor_code": code, "http_status": http_status}
    message = describe(code) if code is not None else f"Twilio answered HTTP {http_status}"
    if http_status == 429 or code == TOO_MANY_REQUESTS or http_status >= 500:
        wait = retry_after_header((headers or {}).get("retry-after"))
        if wait is None and (http_status == 429 or code == TOO_MANY_REQUESTS):
            wait = RETRY_SECONDS
        return RetriableDeliveryError(message, retry_after=wait,
                                      code="rate_limited" if http_status == 429 else "retry", **fields)
    if code in SKIP:
        return SkippableDeliveryError(message, code=SKIP[code], **fields)
    if code in PAUSE or (code is None and http_status in (401, 403)):
        return SendingPausedError(message, code=PAUSE.get(code or 0, "auth_failed"), **fields)
    return FatalDeliveryError(message, code=FATAL.get(code or 0, f"twilio_{code}" if code else f"http_{http_status}"),
                              **fields)


def from_transport(exc: Exception) -> DeliveryError:
    """A send that got no answer: retriable only when the request surely never left (no connection,
    no free connection in the pool); any later failure may hide a message Twilio accepted."""
    text = type(exc).__name__
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)):
        return RetriableDeliveryError(f"Twilio unreachable ({text})", code="unreachable_api")
    return AmbiguousDeliveryError(f"no answer from Twilio; the message may have been sent ({text})", code="unknown")
