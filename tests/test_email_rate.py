"""The relay's sending limit: slots spaced 1/rate apart, a far slot sends the message back to the queue."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectzap.connectors.email.rate import SendRate
from connectzap.core.errors import PacedError


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
