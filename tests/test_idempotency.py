"""One key, one message, ever: duplicates from webhooks, the API, plugins and restarts send once.

A hypothesis search interleaves repeated deliveries of the same order webhook, the same API
idempotency key, the same plugin proposal key from different events, journaled ``send``
events with a repeated key, worker runs and engine restarts on the same database, then
counts what the channel received.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectzap import (Category, ConsentChange, Connectzap, Event, EventKind, Order, Outgoing, TemplateContent,
                        hookimpl)
from connectzap.core import clock
from connectzap.core.channel import BaseChannel, OutboundSend
from connectzap.core.plugins import pm
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

PHONE = "+4915112345678"


class CountingChannel(BaseChannel):
    name = "counting"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, message: OutboundSend) -> str:
        self.sent.append(message.outbox_id)
        return f"wamid.{secrets.token_hex(6)}"

    async def reconcile(self, outbox_id: str) -> Any:
        return None

    async def aclose(self) -> None:
        return None


class OrderPlugin:
    """One confirmation per order id, whichever event (or redelivery) mentions the order."""

    @hookimpl
    def on_order_created(self, order: Order, ctx: Any) -> None:
        assert order.customer is not None
        ctx.send(order.customer, TemplateContent(name="confirm", language="en", body=[order.id]),
                 key=f"order:{order.id}")


@pytest.fixture
def order_plugin() -> Iterator[None]:
    pm.register(OrderPlugin(), name="idempotency_order_plugin")
    yield
    pm.unregister(name="idempotency_order_plugin")


def ready(app: Connectzap) -> Connectzap:
    seed_template(app, "confirm", "Order {{1}} confirmed")
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="t", proof="box"))
    return app


def order_event(order_id: int, delivery: str) -> Event:
    return Event(kind=EventKind.ORDER_CREATED, source="shop", dedupe_key=delivery,
                 data={"id": str(order_id), "status": "processing", "customer": {"phone": PHONE}})


def template(n: int) -> TemplateContent:
    return TemplateContent(name="confirm", language="en", body=[str(n)])


ops = st.lists(st.one_of(
    st.tuples(st.just("webhook"), st.integers(0, 3)),        # the same webhook delivery again
    st.tuples(st.just("other_event"), st.integers(0, 3)),    # a new event about the same order
    st.tuples(st.just("api"), st.integers(0, 3)),            # the same Idempotency-Key again
    st.tuples(st.just("send_event"), st.integers(0, 3)),     # a journaled send, redelivered with a new id
    st.tuples(st.just("run"), st.just(0)),
    st.tuples(st.just("restart"), st.just(0)),
), min_size=1, max_size=25)


@pytest.mark.slow
def test_each_key_is_sent_exactly_once_whatever_the_interleaving(make: Callable[..., Connectzap],
                                                                  order_plugin: None) -> None:
    counter = itertools.count()

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops)
    def search(steps: list[tuple[str, int]]) -> None:
        channel = CountingChannel()
        first = ready(make(f"idem{next(counter)}", channel=channel))
        app, expected = first, set()
        opened = [first]
        try:
            for op, n in steps:
                if op == "webhook":
                    app.ingest([order_event(n, f"delivery-{n}")] * 2)
                    expected.add(f"idempotency_order_plugin:order:{n}")
                elif op == "other_event":
                    app.ingest([order_event(n, f"delivery-{n}-{secrets.token_hex(3)}")])
                    expected.add(f"idempotency_order_plugin:order:{n}")
                elif op == "api":
                    decision = app.send(Outgoing(to=PHONE, content=template(n)), idempotency_key=f"key-{n}")
                    assert decision.accepted
                    expected.add(f"api:key-{n}")
                elif op == "send_event":
                    outgoing = Outgoing(to=PHONE, content=template(n), idempotency_key=f"send-{n}")
                    app.ingest([Event.of(EventKind.SEND, outgoing, source="crm",
                                         dedupe_key=secrets.token_hex(4))])
                    expected.add(f"crm:send-{n}")
                elif op == "run":
                    asyncio.run(Worker(app).run_until_idle())
                else:  # a restart: a new engine on the same database and data directory
                    app = Connectzap(first.settings, channel=channel).start()
                    opened.append(app)
            asyncio.run(Worker(app).run_until_idle())
            counts = Counter(channel.sent)
            assert [m for m, c in counts.items() if c > 1] == []
            sent_keys = {app.message(m)["idempotency_key"] for m in counts}
            assert sent_keys == expected
        finally:
            for extra in opened[1:]:
                extra.close()

    search()


async def test_replayed_consent_notification_never_outranks_a_newer_change(make: Callable[..., Connectzap]) -> None:
    """set_consent journals a notification; when the workers reach it after a newer change with
    the same consent time, replaying it must not bring the older grant back."""

    class Listener:
        @hookimpl
        def on_consent_changed(self, change: ConsentChange, ctx: Any) -> None:
            return None

    pm.register(Listener(), name="consent_listener")
    try:
        channel = CountingChannel()
        app = make(channel=channel, workers={"batch_size": 1})
        seed_template(app, "promo", "Sale {{1}}", category="MARKETING")
        at = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
        with clock.use_clock(lambda: at.timestamp()):
            app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="form",
                                          proof="checkbox", at=at))
            app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=False, source="crm",
                                          proof="unsubscribed in the CRM", at=at))
            assert app.consent(PHONE)[Category.MARKETING].granted is False
            worker = Worker(app)
            # One event at a time, a send after each: any moment the grant came back would show.
            for _ in range(10):
                await worker.dispatch_once()
                assert app.consent(PHONE)[Category.MARKETING].granted is False
                decision = app.send(Outgoing(to=PHONE, content=TemplateContent(name="promo", language="en",
                                                                                body=["x"])))
                assert decision.reason == "opted_out"
                await worker.send_once()
        assert channel.sent == []
        assert len(app.consent_history(PHONE)) == 2  # replays add nothing to the ledger
    finally:
        pm.unregister(name="consent_listener")


async def test_the_same_consent_from_two_deliveries_is_recorded_once(app: Connectzap) -> None:
    change = ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="shop", proof="checkout",
                           at=datetime(2025, 6, 1, tzinfo=UTC))
    events = [Event(kind=EventKind.LEAD, source="crm", dedupe_key=f"lead-{n}", consents=[change],
                    data={"id": "1", "contact": {"phone": PHONE}}) for n in range(3)]
    app.ingest(events)
    await Worker(app).run_until_idle()
    assert len(app.consent_history(PHONE)) == 1
