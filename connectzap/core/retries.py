"""How long to wait before the next attempt: one rule for event deliveries and sends."""

from __future__ import annotations

import email.utils
import random

from . import clock


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter in [0.5, 1.5) of the nominal delay."""
    nominal = min(cap, base * (2.0 ** max(attempts - 1, 0)))
    return nominal * (0.5 + random.random())



def retry_after_header(value: str | None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` header (delta-seconds or an HTTP date);
    None when it is missing or unreadable."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - clock.now(), 0.0)
    except (TypeError, ValueError):
        return None
