"""Prometheus metrics for one HTTP service instance (each app gets its own registry).

* ``connectzap_events_received_total{source}`` -- fresh events journaled by the webhook edge.
* ``connectzap_webhook_requests_total{source,status}`` -- webhook requests by HTTP status.
* ``connectzap_webhook_ack_seconds{source}`` -- time from request to acknowledgement (histogram).
* ``connectzap_sends_total{outcome}`` -- channel sends: ok, retry, undeliverable, fatal, paused, unknown.
* ``connectzap_send_seconds`` -- how long the channel took per send (histogram).
* ``connectzap_queue_depth{queue}`` -- events pending and messages per outbox status, read at scrape time.
* ``connectzap_priced_messages{category,type,billable}`` -- stored messages by the ``pricing`` of their
  latest status (``marketing``/``utility``/...; ``regular``/``free_customer_service``/...), read at scrape
  time: the billable ones are what Meta charges for.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .channel import Channel, OutboundSend, WrappedChannel
from .errors import (AmbiguousDeliveryError, FatalError, RetriableError, SendingPausedError,
                     SkippableDeliveryError)
from .models import StatusValue

ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_received = Counter("connectzap_events_received", "Fresh events journaled by the webhook edge.",
                                       ["source"], registry=r)
        self.webhook_requests = Counter("connectzap_webhook_requests", "Webhook requests by answer status.",
                                        ["source", "status"], registry=r)
        self.webhook_ack = Histogram("connectzap_webhook_ack_seconds",
                                     "Time from receiving a webhook to acknowledging it.", ["source"],
                                     buckets=ACK_BUCKETS, registry=r)
        self.sends = Counter("connectzap_sends", "Channel sends by outcome.", ["outcome"], registry=r)
        self.send_latency = Histogram("connectzap_send_seconds", "Time the channel took per send.",
                                      buckets=SEND_BUCKETS, registry=r)
        self._webhook_children: dict[tuple[str, int], tuple[Any, Any, Any]] = {}
        self.queue_depth = Gauge("connectzap_queue_depth",
                                 "Events pending dispatch and messages per outbox status.", ["queue"], registry=r)
        self.priced = Gauge("connectzap_priced_messages",
                            "Stored messages by the pricing of their latest status (Meta's per-message pricing).",
                            ["category", "type", "billable"], registry=r)

    def webhook_answered(self, source: str, status: int, seconds: float, fresh_events: int) -> None:
        children = self._webhook_children.get((source, status))
        if children is None:  # looking labelled children up costs more than using them: keep them
            children = (self.webhook_requests.labels(source, str(status)), self.webhook_ack.labels(source),
                        self.events_received.labels(source))
            self._webhook_children[(source, status)] = children
        requests, ack, received = children
        requests.inc()
        ack.observe(seconds)
        if fresh_events:
            received.inc(fresh_events)

    def set_queue_depth(self, events_pending: int, messages: dict[str, int]) -> None:
        self.queue_depth.labels("events_pending").set(events_pending)
        for status in (StatusValue.QUEUED, StatusValue.SENDING, StatusValue.UNKNOWN):
            self.queue_depth.labels(f"messages_{status}").set(messages.get(status, 0))

    def set_pricing(self, counts: list[tuple[str, str, str, int]]) -> None:
        """Read at scrape time from the store, like the queue depth: every worker's statuses count."""
        self.priced.clear()
        for category, kind, billable, count in counts:
            self.priced.labels(category, kind, billable).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def send_outcome(exc: BaseException | None) -> str:
    """The sender's classification of a channel result, as a metric label."""
    if exc is None:
        return "ok"
    if isinstance(exc, SendingPausedError):
        return "paused"
    if isinstance(exc, AmbiguousDeliveryError):
        return "unknown"
    if isinstance(exc, RetriableError):
        return "retry"
    if isinstance(exc, SkippableDeliveryError):
        return "undeliverable"
    if isinstance(exc, FatalError):
        return "fatal"
    return "error"


class MeteredChannel(WrappedChannel):
    """Wraps a channel to count sends by outcome and time them; everything else passes through."""

    def __init__(self, inner: Channel, metrics: Metrics) -> None:
        super().__init__(inner)
        self.metrics = metrics

    async def send(self, message: OutboundSend) -> str:
        started = time.perf_counter()  # waiting for a pace slot is not part of the send's time
        try:
            wamid = await self.inner.send(message)
        except Exception as exc:
            self.metrics.sends.labels(send_outcome(exc)).inc()
            raise
        finally:
            self.metrics.send_latency.observe(time.perf_counter() - started)
        self.metrics.sends.labels("ok").inc()
        return wamid  # type: ignore[no-any-return]  # the inner channel's id
