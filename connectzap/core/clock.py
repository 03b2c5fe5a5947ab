"""The one clock the engine reads (windows, leases, backoff, consent times), and the one way a
time is written out (:func:`iso_utc`).

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


def iso_utc(when: datetime, timespec: str = "auto") -> str:
    """``when`` as ISO 8601 in UTC, written ``Z`` (``2026-12-05T21:40:27.220279Z``), as pydantic
    writes the REST API's times: exports, reports, logs and outgoing payloads read the same. A naive
    time is taken as UTC; ``timespec`` is :meth:`datetime.isoformat`'s."""
    aware = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.isoformat(timespec=timespec).removesuffix("+00:00") + "Z"


@contextmanager
def use_clock(source: Callable[[], float]) -> Iterator[None]:
    """Read time from ``source`` inside the block (tests only)."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous
