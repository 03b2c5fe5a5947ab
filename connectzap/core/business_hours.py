"""Business hours: when the business answers, as a weekly schedule in its own time zone.

``[business_hours]`` in the config file::

    timezone = "Europe/Madrid"            # IANA name
    monday = ["09:00-14:00", "16:00-20:00"]
    friday = ["09:00-14:00", "22:00-02:00"]   # a range may run past midnight
    holidays = ["2026-12-25", "2027-01-01"]

The ranges are wall-clock times in ``timezone``: ``09:00-14:00`` means 09:00 to 14:00 on the
business's clocks, whatever their offset from UTC that day (so a DST change moves the opening in
UTC, not on the clock). An instant is open when the local wall time falls inside a range of the
day the range starts on -- ``22:00-02:00`` on Friday covers Friday 22:00 to Saturday 02:00 -- and
that day is not a holiday (a holiday cancels the ranges that start on it). A wall time that a
spring-forward skips never occurs; one a fall-back repeats counts both times.

:class:`BusinessHours` answers :meth:`~BusinessHours.is_open` and
:meth:`~BusinessHours.next_opening`; hooks reach it as ``ctx.business_hours``, the app as
``app.business_hours``. Without any range the business counts as always open.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_MINUTES = 24 * 60
WEEK_MINUTES = 7 * DAY_MINUTES
HORIZON_DAYS = 800
"""How far :meth:`BusinessHours.next_opening` looks ahead (two years and some holidays)."""

_RANGE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def _range(text: str) -> str:
    """``HH:MM-HH:MM`` (24 h clock, ``24:00`` allowed as an end); an end at or before the start runs
    past midnight; equal ends are refused (use ``00:00-24:00`` for a whole day)."""
    match = _RANGE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a time range like \"09:00-14:00\"")
    sh, sm, eh, em = (int(part) for part in match.groups())
    if sh > 23 or sm > 59 or eh > 24 or em > 59 or (eh == 24 and em):
        raise ValueError(f"{text!r} has a time that does not exist (hours 00-23, minutes 00-59; 24:00 as an end)")
    if sh * 60 + sm == (eh * 60 + em) % DAY_MINUTES and not (eh == 24 and sh == 0 and sm == 0):
        raise ValueError(f"{text!r} is empty: it starts where it ends")
    return text.strip()


TimeRange = Annotated[str, AfterValidator(_range)]


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. \"Europe/Madrid\")") from None
    return name


ZoneName = Annotated[str, AfterValidator(_zone)]
"""A settings field holding an IANA time zone name, refused at start when the zone is unknown."""


def _minutes(text: str) -> tuple[int, int]:
    """A validated range as (start minute of the day, length in minutes)."""
    start_text, end_text = text.split("-")
    start = int(start_text[:2]) * 60 + int(start_text[3:])
    end = int(end_text[:2]) * 60 + int(end_text[3:])
    return start, (end - start) % DAY_MINUTES or DAY_MINUTES


class BusinessHoursSettings(BaseModel):
    """``[business_hours]``: the weekly schedule, its time zone and the holidays; checked at start
    (an unknown time zone, a malformed or empty range, two ranges that overlap)."""

    model_config = ConfigDict(extra="forbid")

    timezone: ZoneName = "UTC"
    """IANA time zone name (``Europe/Madrid``, ``America/Sao_Paulo``) the ranges are written in."""
    monday: list[TimeRange] = Field(default_factory=list)
    tuesday: list[TimeRange] = Field(default_factory=list)
    wednesday: list[TimeRange] = Field(default_factory=list)
    thursday: list[TimeRange] = Field(default_factory=list)
    friday: list[TimeRange] = Field(default_factory=list)
    saturday: list[TimeRange] = Field(default_factory=list)
    sunday: list[TimeRange] = Field(default_factory=list)
    holidays: list[date] = Field(default_factory=list)
    """Local dates on which the business does not open (ranges starting on them are cancelled)."""

    @model_validator(mode="after")
    def _no_overlap(self) -> BusinessHoursSettings:
        spans: list[tuple[int, int, str]] = []  # [start, end) in minutes of the week, Monday 00:00 = 0
        for index, day in enumerate(DAYS):
            for text in getattr(self, day):
                start, length = _minutes(text)
                begin = index * DAY_MINUTES + start
                end = begin + length
                label = f"{day} {text}"
                if end > WEEK_MINUTES:  # Sunday night into Monday: both pieces
                    spans += [(begin, WEEK_MINUTES, label), (0, end - WEEK_MINUTES, label)]
                else:
                    spans.append((begin, end, label))
        spans.sort()
        for (_, end, first), (begin, _, second) in zip(spans, spans[1:], strict=False):
            if begin < end:
                raise ValueError(f"{first} overlaps {second}")
        return self

    def schedule(self) -> BusinessHours:
        return BusinessHours(self)


class BusinessHours:
    """The schedule as pure functions of an instant (aware datetimes; a naive one is UTC)."""

    def __init__(self, settings: BusinessHoursSettings | None = None) -> None:
        self.settings = settings or BusinessHoursSettings()
        self.zone = ZoneInfo(self.settings.timezone)
        self.holidays = frozenset(self.settings.holidays)
        self.ranges: tuple[tuple[tuple[int, int], ...], ...] = tuple(
            tuple(sorted(_minutes(text) for text in getattr(self.settings, day))) for day in DAYS)

    @cached_property
    def configured(self) -> bool:
        """Whether any range is set; an unconfigured schedule is always open."""
        return any(self.ranges)

    def is_open(self, at: datetime) -> bool:
        """Whether the business is open at the instant ``at``."""
        if not self.configured:
            return True
        wall = self._wall(at)
        for day in (wall.date() - timedelta(days=1), wall.date()):
            if any(start <= wall < start + length for start, length in self._starts(day)):
                return True
        return False

    def next_opening(self, at: datetime) -> datetime | None:
        """The first instant at or after ``at`` at which the business is open (``at`` itself when
        open), in UTC -- ``.astimezone(hours.zone)`` gives the business's clock (kept out of the
        result: an aware time in a repeated hour never compares equal to one in another zone) --
        or None when nothing opens within two years."""
        at = _aware(at)
        if self.is_open(at):
            return at.astimezone(UTC)
        # Closed now, it opens at a range's start (either time a fall-back repeats it) or at a
        # clock change that moves the wall time into a range; the first such instant that is open.
        first_day = self._wall(at).date() - timedelta(days=1)
        pending: list[datetime] = []
        for offset in range(HORIZON_DAYS):
            day = first_day + timedelta(days=offset)
            pending += [c for c in self._candidates(day) if c > at]
            # Instants of later days come after this day's local midnight minus any clock change.
            settled = datetime.combine(day, time(), self.zone).astimezone(UTC)
            ready = sorted(c for c in pending if c < settled)
            for candidate in ready:
                if self.is_open(candidate):
                    return candidate
            pending = [c for c in pending if c >= settled]
        return None

    def _candidates(self, day: date) -> list[datetime]:
        out: list[datetime] = []
        for start, _length in self._starts(day):
            for fold in (0, 1):
                out.append(start.replace(tzinfo=self.zone, fold=fold).astimezone(UTC))
        change = self._clock_change(day)
        if change is not None:
            out.append(change)
        return out

    def _starts(self, day: date) -> list[tuple[datetime, timedelta]]:
        """The ranges starting on ``day`` as (naive local start, wall-clock length)."""
        if day in self.holidays:
            return []
        midnight = datetime.combine(day, time())
        return [(midnight + timedelta(minutes=start), timedelta(minutes=length))
                for start, length in self.ranges[day.weekday()]]

    def _clock_change(self, day: date) -> datetime | None:
        """The instant the zone's UTC offset changes within ``day`` (local), if it does."""
        low = int(datetime.combine(day, time(), self.zone).timestamp()) - 3 * 3600
        high = low + 30 * 3600
        before = _offset(low, self.zone)
        if _offset(high, self.zone) == before:
            return None
        while high - low > 1:  # offsets change on whole seconds: the first second of the new one
            middle = (low + high) // 2
            if _offset(middle, self.zone) == before:
                low = middle
            else:
                high = middle
        return datetime.fromtimestamp(high, UTC)

    def _wall(self, at: datetime) -> datetime:
        return _aware(at).astimezone(self.zone).replace(tzinfo=None)

    def __repr__(self) -> str:
        return f"<BusinessHours {self.settings.timezone}{'' if self.configured else ' (always open)'}>"


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _offset(timestamp: int, zone: ZoneInfo) -> timedelta | None:
    return datetime.fromtimestamp(timestamp, zone).utcoffset()
