"""Send lanes sized by Little's law (connectzap.core.lanes): from the channel's rate and the send
latency the worker measures, unless ``workers.sender_lanes`` fixes them."""

from __future__ import annotations

import asyncio
import math

from hypothesis import given
from hypothesis import strategies as st

from connectzap import Category, ConsentChange, Outgoing, TemplateContent
from connectzap.core.channel import BaseChannel, OutboundSend
from connectzap.core.lanes import DEFAULT_LANES, MAX_LANES, MAX_LATENCY_SECONDS, LaneSizing
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

rates = st.floats(min_value=1.0, max_value=5000.0)
seconds = st.floats(min_value=0.0, max_value=3.0)


@given(rates, seconds, seconds, st.integers(min_value=1, max_value=300))
def test_automatic_lanes_keep_rate_times_latency_in_flight(rate, latency, overhead, batch_size):
    sizing = LaneSizing(batch_size=batch_size, send_concurrency=32, rate=rate, latency=latency, overhead=overhead)
    claim, lanes = sizing.claim_size(), sizing.lanes()
    assert sizing.concurrency() == claim  # every claimed message may be in flight: the pacer spreads them
    assert DEFAULT_LANES <= lanes <= MAX_LANES
    busy = min(latency, MAX_LATENCY_SECONDS) + min(overhead, MAX_LATENCY_SECONDS)
    if lanes < MAX_LANES:  # while one lane is paced, the others cover the round trip and the bookkeeping
        assert (lanes - 1) * claim >= rate * busy
    # and not wildly more than that: at most the margin and one lane of rounding above it
    assert (lanes - 2) * claim <= max(rate * busy * 1.5, claim)


@given(st.integers(min_value=1, max_value=16), st.one_of(st.none(), rates), seconds)
def test_configured_lanes_are_kept_whatever_is_measured(lanes, rate, latency):
    sizing = LaneSizing(batch_size=50, send_concurrency=32, fixed_lanes=lanes, rate=rate)
    sizing.observe(latency, 0.5)
    assert (sizing.lanes(), sizing.claim_size(), sizing.concurrency()) == (lanes, 50, 32)


def test_without_a_rate_the_fixed_default_shape_is_kept():
    sizing = LaneSizing(batch_size=50, send_concurrency=32)
    sizing.observe(0.9, 0.5)
    assert (sizing.lanes(), sizing.claim_size(), sizing.concurrency()) == (DEFAULT_LANES, 50, 32)


def test_lanes_follow_the_measured_latency_up_and_down():
    sizing = LaneSizing(batch_size=50, send_concurrency=32, rate=1000.0)
    assert (sizing.lanes(), sizing.claim_size()) == (2, 200)  # nothing measured yet
    for _ in range(30):
        sizing.observe(0.150, 0.05)
    assert sizing.lanes() == 1 + math.ceil(1000 * 0.2 * 1.5 / 200)
    for _ in range(30):
        sizing.observe(0.0, 0.02)
    assert sizing.lanes() == 2


class SlowChannel(BaseChannel):
    """Answers after ``latency`` seconds, limited to ``rate`` msg/s (it never paces: the test counts
    how many requests the worker has in flight at once)."""

    name = "slow"

    def __init__(self, rate: float, latency: float) -> None:
        self.rate, self.latency = rate, latency
        self.in_flight = self.most_in_flight = self.sent = 0

    def messages_per_second(self) -> float:
        return self.rate

    async def send(self, message: OutboundSend) -> str:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.latency)
        self.in_flight -= 1
        self.sent += 1
        return f"wamid.{message.outbox_id}"


def test_a_worker_adds_lanes_when_the_channel_answers_slowly_and_sends_everything_once(make):
    channel = SlowChannel(rate=100.0, latency=0.8)
    app = make(channel=channel, workers={"batch_size": 10, "poll_interval_seconds": 0.05})
    seed_template(app, "order_confirmation", "Order {{1}} confirmed")
    phones = [f"+1650555{n:04d}" for n in range(150)]
    for phone in phones:
        app.set_consent(ConsentChange(phone=phone, category=Category.UTILITY, granted=True, source="test",
                                      proof="test"))
    worker = Worker(app)
    asyncio.run(worker.run_until_idle())  # the consent events
    app.send_many([Outgoing(to=p, content=TemplateContent(name="order_confirmation", language="en", body=["1"]))
                   for p in phones])
    claim = worker.sender.claim_size()
    assert claim == 20 and worker.sender.lanes() == DEFAULT_LANES  # 100 msg/s x 0.2 s; nothing measured yet

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        while len(app.messages(status="accepted", limit=200)) < len(phones):
            await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(run())
    # 0.8 s round trips: 100 x (0.8 + bookkeeping) x 1.5 / 20 -> 7 lanes wanted; more than the two
    # default lanes' worth of requests were in flight at once
    assert worker.sender.lanes() > DEFAULT_LANES
    assert channel.most_in_flight > DEFAULT_LANES * claim
    assert channel.sent == len(phones)  # each message once, none twice
