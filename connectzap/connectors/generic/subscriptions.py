"""Outbound subscriptions: connectzap events POSTed as JSON, signed the Standard Webhooks way.

Each subscription is its own delivery target (``connector:generic:NAME``) in the journal, so
the engine retries it with backoff, dead-letters it after ``workers.max_attempts`` and never
re-sends to a subscription that already succeeded because another one failed. The
``webhook-id`` is stable per event and subscription: receivers dedupe on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import Connection, select

from ...core.clock import iso_utc
from ...core.errors import FatalDeliveryError, NotFoundError, RetriableDeliveryError
from ...core.models import Event
from ...core.retries import retry_after_header
from ...core.signatures import sign_standard
from ...core.store.schema import deliveries, events
from .settings import SubscriptionSpec

if TYPE_CHECKING:
    from ...core.app import Connectzap

TARGET_PREFIX = "connector:generic:"


def target_name(subscription: str) -> str:
    return TARGET_PREFIX + subscription


def webhook_id(source: str, dedupe_key: str, subscription: str) -> str:
    """The same for every attempt and replay of one event to one subscription."""
    digest = hashlib.sha256(f"{source}\x00{dedupe_key}\x00{subscription}".encode()).hexdigest()[:32]
    return f"msg_{digest}"


def envelope(event: Event, event_id: int) -> dict[str, Any]:
    body: dict[str, Any] = {"type": event.kind.value, "timestamp": iso_utc(event.occurred_at),
                            "event_id": event_id, "source": event.source, "data": event.data}
    if event.previous_status is not None:
        body["previous_status"] = event.previous_status
    return body


def signed_headers(msg_id: str, body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": sign_standard(msg_id, ts, body, secret)}


def classify(response: httpx.Response, subscription: str) -> None:
    """2xx: done. 429, 408 and 5xx: retry (honouring Retry-After). Other answers: dead letter now."""
    status = response.status_code
    if 200 <= status < 300:
        return
    message = f"subscription {subscription}: receiver answered HTTP {status}"
    if status in (408, 425, 429) or status >= 500:
        raise RetriableDeliveryError(message, retry_after=retry_after_header(response.headers.get("retry-after")),
                                     http_status=status)
    raise FatalDeliveryError(message, http_status=status)


@dataclass(frozen=True)
class SignedRequest:
    body: bytes
    headers: dict[str, str]


def request_for(subscription: str, spec: SubscriptionSpec, event: Event, event_id: int) -> SignedRequest:
    """The exact body and signed headers one event is POSTed to one subscription with."""
    body = json.dumps(envelope(event, event_id), separators=(",", ":"), ensure_ascii=False).encode()
    msg_id = webhook_id(event.source, event.dedupe_key, subscription)
    return SignedRequest(body, signed_headers(msg_id, body, spec.secret.get_secret_value()))


class Deliverer:
    """POSTs events for the connector. One HTTP client per event loop (workers may run several)."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(follow_redirects=False)
            self._loop = loop
        return self._client

    async def post(self, subscription: str, spec: SubscriptionSpec, event: Event, event_id: int) -> int:
        request = request_for(subscription, spec, event, event_id)
        try:
            response = await self._http().post(spec.url, content=request.body, headers=request.headers,
                                               timeout=spec.timeout_seconds)
        except httpx.TimeoutException:
            raise RetriableDeliveryError(f"subscription {subscription}: receiver timed out") from None
        except httpx.HTTPError as exc:
            raise RetriableDeliveryError(f"subscription {subscription}: {type(exc).__name__}") from None
        classify(response, subscription)
        return response.status_code

    async def aclose(self) -> None:
        if self._client is not None:
            try:
                await self._client.aclose()
            except RuntimeError:  # its event loop is already gone
                pass
            self._client = None


# --- inspection and replay (the CLI) ------------------------------------------------------

def listing(conn: Connection, *, status: str | None = None, subscription: str | None = None,
            limit: int = 100) -> list[dict[str, Any]]:
    """Deliveries to subscriptions, newest first."""
    query = (select(deliveries.c.event_id, deliveries.c.target, deliveries.c.status, deliveries.c.attempts,
                    deliveries.c.next_attempt_at, deliveries.c.last_error, deliveries.c.updated_at,
                    events.c.kind, events.c.source)
             .join(events, events.c.id == deliveries.c.event_id)
             .where(deliveries.c.target.startswith(TARGET_PREFIX, autoescape=True)))
    if subscription:
        query = query.where(deliveries.c.target == target_name(subscription))
    if status:
        query = query.where(deliveries.c.status == status)
    rows = conn.execute(query.order_by(deliveries.c.updated_at.desc(), deliveries.c.id.desc()).limit(limit))
    return [{**dict(r._mapping), "subscription": r.target[len(TARGET_PREFIX):]} for r in rows]


def replay(app: Connectzap, event_id: int, subscription: str | None = None) -> int:
    """Queue an event again for one subscription (or every one it went to that is not still queued),
    through :meth:`Connectzap.replay_delivery`. Returns how many."""
    if subscription:
        app.replay_delivery(event_id, target_name(subscription))
        return 1
    targets = [d.target for d in app.event(event_id).deliveries
               if d.target.startswith(TARGET_PREFIX) and d.status != "pending"]
    if not targets:
        raise NotFoundError(f"event {event_id} has no finished delivery to a subscription")
    for target in targets:
        app.replay_delivery(event_id, target)
    return len(targets)


def load_event(conn: Connection, event_id: int) -> Event:
    row = conn.execute(select(events.c.payload).where(events.c.id == event_id)).first()
    if row is None or row.payload is None:
        raise NotFoundError(f"event {event_id} has no payload to deliver")
    return Event.model_validate_json(row.payload)
