"""The one clock the engine reads (windows, leases, backoff, consent times).

Tests swap it with :func:`use_clock` to move time forward without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_source: Callable[[], float] = time.time


def now() -> float:
    """Seconds since the epoch (UTC)."""
    return _source()


def utcnow() -> datetime:
    return datetime.fromtimestamp(_source(), UTC)


@contextmanager
def use_clock(source: Callable[[], float]) -> Iterator[None]:
    """Read time from ``source`` inside the block (tests only)."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous
