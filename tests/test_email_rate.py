"""The relay's sending limit: slots spaced 1/rate apart, a far slot sends the message back to the queue;
shared through the database by every worker process."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectzap.connectors.email import EmailChannel, EmailSettings
from connectzap.connectors.email.rate import SendRate, SharedSendRate
from connectzap.core.channel import OutboundSend
from connectzap.core.errors import PacedError
from connectzap.core.messages import TextContent
from connectzap.core.store.database import Database


def test_slots_are_spaced_by_the_rate() -> None:
    rate = SendRate(4.0, max_wait=1.0)
    assert [rate.reserve(10.0) for _ in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(PacedError) as caught:
        rate.reserve(10.0)
    assert caught.value.retry_after == pytest.approx(1.25) and caught.value.code == "email_rate"
    assert rate.reserve(11.0) == pytest.approx(0.25)  # the refused one took no slot
    assert rate.reserve(20.0) == 0.0  # idle time is not saved up as a burst


@given(st.floats(0.5, 500), st.lists(st.floats(0, 5), min_size=1, max_size=50))
def test_no_two_sends_are_closer_than_the_interval(per_second: float, gaps: list[float]) -> None:
    rate, now, sent = SendRate(per_second, max_wait=3.0), 0.0, []
    for gap in gaps:
        now += gap
        try:
            sent.append(now + rate.reserve(now))
        except PacedError as exc:
            assert exc.retry_after is not None and exc.retry_after > 3.0
    assert all(b - a >= 1 / per_second - 1e-9 for a, b in zip(sent, sent[1:], strict=False))


# --- shared by every worker process on the database -------------------------------------------------

def shared(db: Database, per_second: float = 4.0, key: str = "relay:587") -> SharedSendRate:
    return SharedSendRate(db, key, per_second, max_wait=1.0)


def test_every_process_on_the_database_shares_the_limit(make: Any) -> None:
    app = make()
    other = Database(app.db.url)  # a second worker process's engine on the same database
    try:
        first, second = shared(app.db), shared(other)
        waits = [rate.reserve(10.0) for rate in (first, second, first, second, first)]
        assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
        with pytest.raises(PacedError) as caught:
            second.reserve(10.0)
        assert caught.value.retry_after == pytest.approx(1.25) and caught.value.code == "email_rate"
        assert second.reserve(11.0) == pytest.approx(0.25)  # the refused one took no slot
        assert first.reserve(20.0) == 0.0  # idle time is not saved up as a burst
        assert shared(other, key="another:465").reserve(20.0) == 0.0  # another relay has its own limit
    finally:
        other.engine.dispose()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(0.5, 500), st.lists(st.tuples(st.booleans(), st.floats(0, 2)), min_size=1, max_size=25))
def test_no_two_sends_of_any_process_are_closer_than_the_interval(make: Any, per_second: float,
                                                                  asks: list[tuple[bool, float]]) -> None:
    app = make()
    key = uuid.uuid4().hex  # each example its own relay
    rates = (shared(app.db, per_second, key), shared(app.db, per_second, key))
    now, sent = 1000.0, []
    for which, gap in asks:
        now += gap
        try:
            sent.append(now + rates[which].reserve(now))
        except PacedError as exc:
            assert exc.retry_after is not None and exc.retry_after > 1.0 - 1e-6
    sent.sort()
    assert all(b - a >= 1 / per_second - 1e-6 for a, b in zip(sent, sent[1:], strict=False))


async def test_the_connectors_channel_paces_through_the_database(make: Any) -> None:
    app = make(connectors={"email": {"host": "smtp.shop.example", "from_address": "shop@shop.example",
                                     "messages_per_second": 0.1}})
    channel = app.channels["email"]
    assert getattr(channel, "shared_rate", None) is not None
    message = OutboundSend(outbox_id="m1", recipient="ana@example.org", content=TextContent(body="x"),
                           category="utility", medium="email")
    await channel.pace(message)
    other = EmailChannel(EmailSettings(host="smtp.shop.example", from_address="shop@shop.example",
                                       messages_per_second=0.1), db=app.db)  # another worker process's
    with pytest.raises(PacedError) as caught:
        await other.pace(message)
    assert caught.value.retry_after == pytest.approx(10, abs=1)
