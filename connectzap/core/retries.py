"""How long to wait before the next attempt: one rule for event deliveries and sends."""

from __future__ import annotations

import random


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter in [0.5, 1.5) of the nominal delay."""
    nominal = min(cap, base * (2.0 ** max(attempts - 1, 0)))
    return nominal * (0.5 + random.random())

