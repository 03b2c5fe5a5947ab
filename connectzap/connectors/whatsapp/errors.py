"""Meta Graph API errors, classified into connectzap's exception tree by what to do next.

The table follows ``shared/research/whatsapp.md`` section 2 (Meta's error-code reference):
build on ``error.code`` and ``error_data.details``, never on titles. Every classified error
keeps ``vendor_code`` (Meta's code), ``details`` (``error_data.details``) and ``trace_id``
(``fbtrace_id``) so they end up on the message row.

Kinds, in the order they are decided:

* ``retry``  -- rate limits and transient server trouble: try again after ``retry_after``.
* ``skip``   -- this recipient cannot get this message (window closed, opted out, ...).
* ``paused`` -- credentials, permissions or the account are broken: nothing will go out.
* ``fatal``  -- this request is wrong (template, parameters, payload): fix it, don't retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import httpx

from ...core.errors import (AmbiguousDeliveryError, DeliveryError, FatalDeliveryError, RetriableDeliveryError,
                            SendingPausedError, SkippableDeliveryError)
from ...core.models import DeliveryOutcome
from ...core.retries import retry_after_header

Kind = Literal["retry", "skip", "paused", "fatal"]

PAIR_LIMIT = 131056
THROUGHPUT_LIMIT = 130429

# code -> seconds to wait (None: the core's exponential backoff decides)
RETRY_AFTER: dict[int, float | None] = {
    THROUGHPUT_LIMIT: 1.0,   # per-number throughput: a short pause, the pacer slows down too
    PAIR_LIMIT: 12.0,        # pair limit: ~1 msg / 6 s to one user; only this recipient waits
    4: 60.0,                 # app call-rate limit: back off for minutes
    80007: 60.0,             # WABA rate limit
    1: 30.0,                 # API unknown
    2: 60.0,                 # service temporarily down ("up to 5 minutes")
    131000: None,            # something went wrong: backoff, capped attempts
    131016: 30.0,            # service unavailable
    131057: 60.0,            # account in maintenance mode
    133016: 300.0,           # register/deregister rate limit
}

# Meta's codes that say something about the recipient, as the core's neutral outcomes: the core
# acts on these (fallback template, marketing opt-out, unreachable contact), on sends and statuses.
OUTCOMES: dict[int, DeliveryOutcome] = {
    131047: DeliveryOutcome.WINDOW_CLOSED,
    131050: DeliveryOutcome.OPTED_OUT,     # the user stopped marketing messages
    131026: DeliveryOutcome.UNREACHABLE,   # no WhatsApp account, old app, or not accepting messages
}

# code -> reason code on the message
SKIP: dict[int, str] = {
    **{code: outcome.value for code, outcome in OUTCOMES.items()},
    131049: "marketing_limited",      # "wait at least 24 hours": never resent automatically
    131021: "recipient_is_sender",
    131030: "recipient_not_allowed",  # test numbers: not in the allowed list
    130472: "marketing_experiment",
    131062: "bsuid_not_supported",
    130497: "country_restricted",
    137000: "identity_changed",
}

# Credentials, permissions or account state: every further send would fail the same way.
PAUSE: set[int] = {0, 3, 10, 190, 368, 131005, 131031, 131037, 131042, 131044, 131045}

FATAL_REASONS: dict[int, str] = {
    100: "invalid_parameter",
    131008: "missing_parameter",
    131009: "invalid_parameter",
    131048: "spam_limited",
    131051: "unsupported_type",
    131053: "media_upload_failed",
    131063: "use_marketing_messages_api",
    131064: "messaging_limited",
    135000: "meta_user_error",
}


TEMPLATE_PAUSED = 132015
TEMPLATE_DISABLED = 132016

# What a template's pause means for a message, said plainly where Meta's answer has no details.
EXPLANATIONS: dict[int, str] = {
    TEMPLATE_PAUSED: "WhatsApp paused this message's template for low quality and dropped the message it held; "
                     "it was not delivered and is not resent (the template's pause ends after 3 or 6 hours)",
    TEMPLATE_DISABLED: "WhatsApp disabled this message's template after repeated pauses; it will not be sent "
                       "again: replace the template",
    131062: "this message cannot go to a business-scoped user id (BSUID); send it to the customer's phone "
            "number, or ask for it with a request_contact_info message (docs/identities.md)",
}


def kind_of(code: int | None, http_status: int, is_transient: bool | None = None) -> Kind:
    """The one kind an error belongs to. Total: every (code, status, is_transient) has exactly one."""
    if code is not None:
        if code in RETRY_AFTER:
            return "retry"
        if code in SKIP:
            return "skip"
        if code in PAUSE or 200 <= code <= 299:
            return "paused"
    if is_transient:
        return "retry"
    if http_status >= 500 or http_status == 429:
        return "retry"
    if code is None and http_status in (401, 403):
        return "paused"
    return "fatal"


def reason_of(code: int | None, http_status: int) -> str:
    if code is None:
        return f"http_{http_status}"
    if code in SKIP:
        return SKIP[code]
    if code == TEMPLATE_PAUSED:
        return "template_paused"
    if code == TEMPLATE_DISABLED:
        return "template_disabled"
    if 132000 <= code <= 132999:
        return "template_error"
    if 2388000 <= code <= 2388999:
        return "template_rejected"
    if code == 190:
        return "token_expired"
    if code in PAUSE or 200 <= code <= 299:
        return "account_blocked" if code in (368, 131031, 131042, 131044) else "permission_denied"
    return FATAL_REASONS.get(code, "meta_error")


def failure_reason(code: int | str | None) -> str | None:
    """The reason a ``failed`` status with Meta error ``code`` leaves on its message."""
    number = _int(code)
    return reason_of(number, 400) if number is not None else None


def outcome_of(code: int | str | None) -> DeliveryOutcome | None:
    """The neutral outcome of Meta error ``code`` (on a failed status or a send), if it has one."""
    number = _int(code)
    return OUTCOMES.get(number) if number is not None else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def classify(http_status: int, payload: Any, headers: Mapping[str, str] | None = None) -> DeliveryError:
    """Turn an error response (status + parsed JSON, or anything else) into one exception."""
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    code = _int(error.get("code"))
    data = error.get("error_data")
    # error_data is an object on send errors but may be a plain string on template-API errors
    details = data.get("details") if isinstance(data, dict) else (data if isinstance(data, str) else None)
    details = details or error.get("error_user_msg") or (EXPLANATIONS.get(code) if code is not None else None)
    transient = error.get("is_transient")
    kind = kind_of(code, http_status, transient if isinstance(transient, bool) else None)
    title = error.get("message") or error.get("error_user_title") or f"HTTP {http_status}"
    message = f"WhatsApp error {code}: {title}" if code is not None else f"WhatsApp API answered {title}"
    if details and details not in message:
        message += f" ({details})"
    fields: dict[str, Any] = {"code": None, "vendor_code": code, "details": details,
                              "trace_id": error.get("fbtrace_id"), "http_status": http_status,
                              "data": {k: error[k] for k in ("type", "error_subcode") if k in error}}
    if kind == "retry":
        wait = retry_after_header((headers or {}).get("retry-after"))
        if wait is None and code is not None:
            wait = RETRY_AFTER.get(code)
        fields["code"] = "rate_limited" if code in (THROUGHPUT_LIMIT, PAIR_LIMIT, 4, 80007) else "retry"
        return RetriableDeliveryError(message, retry_after=wait, **fields)
    fields["code"] = reason_of(code, http_status)
    if kind == "skip":
        return SkippableDeliveryError(message, **fields)
    if kind == "paused":
        return SendingPausedError(message, **fields)
    return FatalDeliveryError(message, **fields)


def from_transport(exc: Exception, *, may_have_acted: bool) -> DeliveryError:
    """A request that got no answer. For a send, only errors raised before the request left are
    safe to retry; a timeout or a dropped connection afterwards may hide a delivered message."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    cause = exc.__cause__
    never_sent = isinstance(exc, (httpx.ConnectError, httpx.PoolTimeout, httpx.UnsupportedProtocol))
    if isinstance(exc, httpx.TimeoutException) and _from_aiohttp(cause):
        # httpx-aiohttp maps every aiohttp connection error to a timeout class; only a failed
        # connect is known not to have sent anything (a dropped connection may hide a send)
        never_sent = _aiohttp_connect_failure(cause)
    elif isinstance(exc, httpx.ConnectTimeout):
        never_sent = True
    if never_sent or not may_have_acted:
        return RetriableDeliveryError(f"WhatsApp API unreachable: {text}", code="unreachable_api")
    return AmbiguousDeliveryError(f"no answer from the WhatsApp API; the message may have been sent ({text})",
                                  code="unknown")


def _from_aiohttp(cause: BaseException | None) -> bool:
    return cause is not None and type(cause).__module__.startswith("aiohttp")


def _aiohttp_connect_failure(cause: BaseException | None) -> bool:
    import aiohttp
    return isinstance(cause, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
