"""The send window in each recipient's own time: quiet hours follow the customer, not the server.

A number's time zones come from phonenumbers' time-zone data for its region (a German mobile is
``Europe/Berlin``; a US number's area code names its zone; some regions span several). The window
is open for a recipient when the local time is inside it in *every* zone their number may be in,
so nobody is woken up. A number whose zones have no common open time (one spanning most of Russia
with a short window) is held to its zones' widest reach instead: open while any of them is open --
the alternative would be never sending to it at all.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

STEP = 300.0
"""The resolution of :func:`next_open` (seconds): windows start on the minute, so 5 minutes at most late."""
HORIZON = 2 * 86400.0

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_window(text: str) -> tuple[int, int]:
    """``"09:00-21:00"`` as minutes after midnight; a window may wrap past midnight (``22:00-06:00``)."""
    parts = text.replace(" ", "").split("-")
    found = [_HHMM.match(p) for p in parts] if len(parts) == 2 else []
    if len(found) != 2 or not all(found):
        raise ValueError(f"send window {text!r} is not HH:MM-HH:MM (e.g. 09:00-21:00)")
    start, end = (int(m.group(1)) * 60 + int(m.group(2)) for m in found if m)
    if start == end:
        raise ValueError(f"send window {text!r} is empty")
    return start, end


def shown(start: int | None, end: int | None) -> str | None:
    if start is None or end is None:
        return None
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def zones_of(e164: str) -> tuple[str, ...]:
    """The IANA zones ``e164`` may be in; empty when the data does not say."""
    try:
        return zones_of_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return ()


def zones_of_number(number: phonenumbers.PhoneNumber) -> tuple[str, ...]:
    """:func:`zones_of` a number already parsed (an audience parses each number once for all it needs)."""
    found = number_zones.time_zones_for_number(number)
    return tuple(z for z in found if z != number_zones.UNKNOWN_TIMEZONE and _zone(z) is not None)


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _inside(minute: int, start: int, end: int) -> bool:
    return start <= minute < end if start < end else minute >= start or minute < end


def _open_in(zone: str, at: float, start: int, end: int) -> bool:
    local = datetime.fromtimestamp(at, _zone(zone) or UTC)
    return _inside(local.hour * 60 + local.minute, start, end)


def is_open(zones: tuple[str, ...], at: float, start: int, end: int, *, strict: bool = True) -> bool:
    """Whether the window is open at ``at`` in every one of ``zones`` (``strict``) or in any.
    No zones known: the window is read in UTC."""
    if not zones:
        return _open_in("UTC", at, start, end)
    check = all if strict else any
    return check(_open_in(z, at, start, end) for z in zones)


@lru_cache(maxsize=4096)
def _next_open(zones: tuple[str, ...], at: int, start: int, end: int) -> float:
    for strict in (True, False):
        t = float(at)
        while t < at + HORIZON:
            if is_open(zones, t, start, end, strict=strict):
                return t
            t += STEP
    return float(at)  # a window open at no time in two days cannot be: parse_window refuses empty ones


def next_open(zones: tuple[str, ...], at: float, start: int, end: int) -> float:
    """The earliest time from ``at`` on when the window is open for a number in ``zones`` (``at``
    itself when open now). Cached per minute, so a tick over many recipients of a few regions
    computes each region once."""
    if is_open(zones, at, start, end):
        return at
    return max(at, _next_open(zones, int(at // 60 * 60), start, end))


def local_time(zones: tuple[str, ...], at: float) -> str:
    """``at`` in the first of ``zones``, for messages that say when a recipient's window opens."""
    zone = _zone(zones[0]) if zones else None
    return datetime.fromtimestamp(at, zone or UTC).strftime("%Y-%m-%d %H:%M %Z")

