"""A thin async wrapper over the synchronous ``hubspot-api-client`` SDK.

* The SDK blocks (urllib3), so every call runs in a thread (``asyncio.to_thread``).
* Each SDK attribute access such as ``client.crm.contacts.basic_api`` builds a new
  configuration and connection pool, so the API objects are built once and kept.
* ``host`` is set on the SDK's configuration from ``api_base_url``, so a local fake can stand in.
* The SDK does not retry (and urllib3 never retries POST), so retries are ours: 429 (its
  ``policyName`` says whether the ten-second or the daily budget ran out), 5xx and 477 with
  ``Retry-After``. Short waits are retried inline; longer ones raise
  :class:`RetriableDeliveryError` with ``retry_after`` so the dispatcher reschedules the delivery.
* A small limiter keeps us under the per-10-seconds budget and the search API's 4 requests/s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypedDict

import urllib3

from ...core.errors import DeliveryError, FatalDeliveryError, RetriableDeliveryError, SkippableDeliveryError
from .settings import HubSpotSettings

log = logging.getLogger("connectzap.hubspot")

RETRIABLE_STATUSES = frozenset({477, 500, 502, 503, 504, 521, 522, 523, 524})


# --- rate limiting ---------------------------------------------------------------------------

class SlidingWindow:
    """At most ``limit`` acquisitions in any ``window`` seconds. Thread-safe, loop-agnostic:
    :meth:`reserve` books a slot and says how long to wait for it."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._slots: deque[float] = deque()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        with self._lock:
            t = self.clock()
            while self._slots and self._slots[0] <= t - self.window:
                self._slots.popleft()
            start = t if len(self._slots) < self.limit else self._slots[-self.limit] + self.window
            self._slots.append(start)
            return max(0.0, start - t)


class Limiter:
    """The app's ten-second budget, the search budget, and a shared pause after a 429."""

    def __init__(self, per_10_seconds: int, search_per_second: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.burst = SlidingWindow(per_10_seconds, 10.0, clock)
        # 4 requests per second as "1 per 1/4 s" would be stricter than needed; count per second.
        self.search = SlidingWindow(max(1, int(search_per_second)), 1.0, clock) if search_per_second >= 1 \
            else SlidingWindow(1, 1.0 / search_per_second, clock)
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self.clock() + seconds)

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self.clock())

    def reserve(self, search: bool) -> float:
        wait = self.burst.reserve()
        if search:
            wait = max(wait, self.search.reserve())
        return wait


# --- classifying failures -----------------------------------------------------------------------

@dataclass(frozen=True)
class Failure:
    """What a HubSpot error response means for us."""

    status: int
    retriable: bool
    retry_after: float | None
    policy: str | None
    category: str | None
    message: str
    correlation_id: str | None


_DIGITS = re.compile(r"\+?\d[\d ()-]{5,}\d")


def _scrub(text: str) -> str:
    """Error messages may echo property values: hide anything that looks like a phone number."""
    return _DIGITS.sub("<number>", text)[:300]


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if str(key).lower() == name.lower():
            return str(value)
    return None


def classify(status: int, headers: Any, body: Any, *, daily_retry: float = 3600.0) -> Failure:
    """Read an error response: retriable or not, after how long, and a log-safe message."""
    data: dict[str, Any] = {}
    if isinstance(body, (bytes, str)) and body:
        try:
            parsed = json.loads(body)
            data = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            data = {}
    retry_after: float | None = None
    raw_after = _header(headers, "Retry-After")
    if raw_after:
        try:
            retry_after = max(0.0, float(raw_after))
        except ValueError:
            retry_after = None
    policy = data.get("policyName")
    retriable = status == 429 or status in RETRIABLE_STATUSES
    if status == 429 and retry_after is None:
        retry_after = daily_retry if policy == "DAILY" else 10.0
    return Failure(status=status, retriable=retriable, retry_after=retry_after, policy=policy,
                   category=data.get("category") or data.get("errorType"),
                   message=_scrub(str(data.get("message") or "")),
                   correlation_id=data.get("correlationId") or _header(headers, "X-HubSpot-Correlation-Id"))


class _ErrorFields(TypedDict):
    """What every error made from a failure carries, whatever its kind."""

    http_status: int
    vendor_code: int | str
    trace_id: str | None
    details: str | None


def to_error(failure: Failure, action: str) -> DeliveryError:
    """The connectzap error for a failure, by what the dispatcher should do."""
    what = f"HubSpot {action} failed ({failure.status}"
    what += f" {failure.policy}" if failure.policy else ""
    what += f" {failure.category}" if failure.category else ""
    what += ")" + (f": {failure.message}" if failure.message else "")
    common: _ErrorFields = {"http_status": failure.status, "vendor_code": failure.category or failure.status,
                            "trace_id": failure.correlation_id, "details": failure.message or None}
    if failure.retriable:
        code = "hubspot_daily_limit" if failure.policy == "DAILY" else "hubspot_busy"
        return RetriableDeliveryError(what, retry_after=failure.retry_after, code=code, **common)
    if failure.status == 401:
        return FatalDeliveryError(what + " -- check the private app access token", code="hubspot_auth", **common)
    if failure.status == 403:
        return FatalDeliveryError(what + " -- the private app lacks a scope or the portal lacks the feature",
                                  code="hubspot_forbidden", **common)
    if failure.status == 404:
        return HubSpotNotFound(what, **common)
    return SkippableDeliveryError(what, code="hubspot_rejected", **common)


class HubSpotNotFound(SkippableDeliveryError):
    """The object does not exist (deleted or merged away)."""

    code = "hubspot_not_found"


def _api_failure(exc: Exception) -> tuple[int, Any, Any] | None:
    """(status, headers, body) when ``exc`` is one of the SDK's per-package ApiExceptions."""
    status = getattr(exc, "status", None)
    if type(exc).__module__.startswith("hubspot.") and isinstance(status, int):
        return status, getattr(exc, "headers", None), getattr(exc, "body", None)
    return None


# --- the client -------------------------------------------------------------------------------------

class HubSpotClient:
    """One per connector: SDK API objects built once, calls off the loop, our retries and limits."""

    def __init__(self, settings: HubSpotSettings, *, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.settings = settings
        self.limiter = Limiter(settings.requests_per_10_seconds, settings.search_requests_per_second)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"<HubSpotClient {self.settings.api_base_url}>"

    @cached_property
    def sdk(self) -> Any:
        from hubspot import HubSpot
        token = self.settings.access_token.get_secret_value() if self.settings.access_token else None
        # Extra keyword arguments are set on each generated Configuration: this moves the base URL.
        return HubSpot(access_token=token, host=self.settings.api_base_url.rstrip("/"))

    @cached_property
    def contacts(self) -> Any:
        return self.sdk.crm.contacts.basic_api

    @cached_property
    def contact_batch(self) -> Any:
        return self.sdk.crm.contacts.batch_api

    @cached_property
    def lists(self) -> Any:
        return self.sdk.crm.lists.lists_api

    @cached_property
    def list_memberships(self) -> Any:
        return self.sdk.crm.lists.memberships_api

    @cached_property
    def contact_search(self) -> Any:
        return self.sdk.crm.contacts.search_api

    @cached_property
    def properties(self) -> Any:
        return self.sdk.crm.properties.core_api

    @cached_property
    def communications(self) -> Any:
        return self.sdk.crm.objects.communications.basic_api

    @cached_property
    def communication_search(self) -> Any:
        return self.sdk.crm.objects.communications.search_api

    @cached_property
    def calls(self) -> Any:
        return self.sdk.crm.objects.calls.basic_api

    @cached_property
    def call_search(self) -> Any:
        return self.sdk.crm.objects.calls.search_api

    @cached_property
    def notes(self) -> Any:
        return self.sdk.crm.objects.notes.basic_api

    @cached_property
    def note_batch(self) -> Any:
        return self.sdk.crm.objects.notes.batch_api

    @cached_property
    def note_search(self) -> Any:
        return self.sdk.crm.objects.notes.search_api

    async def call(self, action: str, function: Callable[..., Any], *args: Any, search: bool = False,
                   creates: bool = False, **kwargs: Any) -> Any:
        """Run one SDK call with rate limiting and retries; raise connectzap errors on failure.

        ``creates``: the call creates something, so only a 429 (HubSpot did nothing) is retried
        inline; after a timeout or a 5xx the caller must first check what exists.
        """
        kwargs.setdefault("_request_timeout", self.settings.timeout_seconds)
        attempt = 0
        while True:
            paused = self.limiter.paused_for()
            if paused > self.settings.inline_retry_max_seconds:
                raise RetriableDeliveryError(f"HubSpot {action}: rate limited, waiting {paused:.0f}s",
                                             retry_after=paused, code="hubspot_busy")
            wait = max(paused, self.limiter.reserve(search))
            if wait:
                await self._sleep(wait)
            failure: Failure | None = None
            try:
                return await asyncio.to_thread(function, *args, **kwargs)
            except urllib3.exceptions.HTTPError as exc:
                error: DeliveryError = RetriableDeliveryError(
                    f"HubSpot {action}: no answer ({type(exc).__name__})", code="hubspot_unreachable")
            except Exception as exc:
                answered = _api_failure(exc)
                if answered is None:
                    raise
                failure = classify(*answered, daily_retry=self.settings.daily_limit_retry_seconds)
                error = to_error(failure, action)
                if failure.status == 429:
                    self.limiter.pause(failure.retry_after if failure.retry_after is not None else 10.0)
            if not isinstance(error, RetriableDeliveryError):
                raise error
            delay = error.retry_after if error.retry_after is not None else 0.5 * (attempt + 1)
            safe_to_repeat = not creates or (failure is not None and failure.status == 429)
            if (not safe_to_repeat or attempt >= self.settings.max_inline_retries
                    or delay > self.settings.inline_retry_max_seconds
                    or (failure is not None and failure.policy == "DAILY")):
                raise error
            attempt += 1
            log.info("%s; retrying in %.1fs (%d/%d)", error.message, delay, attempt,
                     self.settings.max_inline_retries)
            await self._sleep(delay)

__all__ = ["HubSpotClient", "HubSpotNotFound", "Limiter", "SlidingWindow", "classify", "to_error"]
