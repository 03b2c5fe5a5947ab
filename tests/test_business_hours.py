"""Business hours: a weekly wall-clock schedule in an IANA zone, holidays, ranges past midnight.

The properties compare :class:`BusinessHours` with an independent reading of the schedule (minutes
of the week, not datetimes) on any instant, in zones with and without DST (Lord Howe's is half an
hour; Sao Paulo had DST until February 2019 and has none now), weighted towards clock changes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectzap import ConfigurationError, EventContext, InboundMessage, hookimpl, load_settings
from connectzap.core.business_hours import DAYS, BusinessHours, BusinessHoursSettings
from connectzap.testing import registered_plugin, run, sample_event

ZONES = ("Europe/Madrid", "America/Sao_Paulo", "America/New_York", "Australia/Lord_Howe", "UTC")
WEEK = 7 * 24 * 60

# Clock changes to aim at, with their zones: Madrid and New York in 2026, Sao Paulo's last two (at
# midnight), Lord Howe's half hours.
CHANGES = [("Europe/Madrid", datetime(2026, 3, 29, 1, tzinfo=UTC)),
           ("Europe/Madrid", datetime(2026, 10, 25, 1, tzinfo=UTC)),
           ("America/New_York", datetime(2026, 3, 8, 7, tzinfo=UTC)),
           ("America/New_York", datetime(2026, 11, 1, 6, tzinfo=UTC)),
           ("America/Sao_Paulo", datetime(2018, 11, 4, 3, tzinfo=UTC)),
           ("America/Sao_Paulo", datetime(2019, 2, 17, 2, tzinfo=UTC)),
           ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, tzinfo=UTC)),
           ("Australia/Lord_Howe", datetime(2026, 10, 3, 15, 30, tzinfo=UTC))]

def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@st.composite
def week_spans(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Non-overlapping [start, end) spans in minutes of the week (Monday 00:00 = 0), each at most a
    day long, on a 15-minute grid, possibly wrapping from Sunday into Monday."""
    points = sorted(draw(st.sets(st.integers(0, WEEK // 15 - 1), min_size=2, max_size=16)))
    if len(points) % 2:
        points.pop()
    turn = draw(st.integers(0, WEEK - 1)) // 15 * 15
    spans = []
    for start, end in zip(points[::2], points[1::2], strict=True):
        length = min((end - start) * 15, 24 * 60 - 15)  # a whole day is only 00:00-24:00
        spans.append(((start * 15 + turn) % WEEK, length))
    return [(start, start + length) for start, length in spans]


def settings_for(spans: list[tuple[int, int]], zone: str, holidays: list[date]) -> BusinessHoursSettings:
    days: dict[str, list[str]] = {day: [] for day in DAYS}
    for start, end in spans:
        day, begin = divmod(start, 24 * 60)
        finish = end - day * 24 * 60
        text = f"{hhmm(begin)}-{'24:00' if finish == 24 * 60 else hhmm(finish % (24 * 60))}"
        days[DAYS[day]].append(text)
    return BusinessHoursSettings(timezone=zone, holidays=holidays, **days)


def open_by_week_minutes(spans: list[tuple[int, int]], zone: str, holidays: set[date], at: datetime) -> bool:
    """The oracle: where the local wall time falls in the week, and the date its span started on."""
    local = at.astimezone(ZoneInfo(zone))
    minute = local.weekday() * 24 * 60 + local.hour * 60 + local.minute + local.second / 60
    for start, end in spans:
        into = (minute - start) % WEEK
        if into < end - start:
            started_on = local.date() - timedelta(days=(local.weekday() - start // (24 * 60)) % 7)
            if started_on not in holidays:
                return True
    return False


def near_a_change() -> st.SearchStrategy[tuple[str, datetime]]:
    return st.builds(lambda change, seconds: (change[0], change[1] + timedelta(seconds=seconds)),
                     st.sampled_from(CHANGES),
                     st.one_of(st.integers(-3 * 3600, 3 * 3600), st.integers(-36 * 3600, 36 * 3600)))


def anywhere() -> st.SearchStrategy[tuple[str, datetime]]:
    return st.tuples(st.sampled_from(ZONES), st.datetimes(min_value=datetime(2017, 1, 1),
                                                          max_value=datetime(2028, 12, 31), timezones=st.just(UTC)))


@st.composite
def schedules(draw: st.DrawFn) -> tuple[list[tuple[int, int]], str, set[date], datetime]:
    spans = draw(week_spans())
    zone, at = draw(st.one_of(near_a_change(), anywhere()))
    local = at.astimezone(ZoneInfo(zone))
    if draw(st.booleans()):  # a range starting or ending within a few hours of the instant's wall time
        here = (local.weekday() * 24 * 60 + local.hour * 60 + local.minute) // 15 * 15
        start = (here + draw(st.integers(-12, 12)) * 15) % WEEK
        extra = (start, start + draw(st.integers(1, 16)) * 15)
        spans = [extra, *(span for span in spans if not _overlap(span, extra))]
    holidays = {local.date() + timedelta(days=d) for d in draw(st.sets(st.integers(-2, 4), max_size=3))}
    return spans, zone, holidays, at


def _overlap(one: tuple[int, int], other: tuple[int, int]) -> bool:
    return any(a < d and c < b for a, b in _pieces(one) for c, d in _pieces(other))


def _pieces(span: tuple[int, int]) -> list[tuple[int, int]]:
    start, end = span
    return [(start, end)] if end <= WEEK else [(start, WEEK), (0, end - WEEK)]


@settings(max_examples=300, deadline=None)
@given(schedules())
def test_is_open_agrees_with_the_schedule_at_any_instant(case):
    spans, zone, holidays, at = case
    hours = settings_for(spans, zone, sorted(holidays)).schedule()
    assert hours.is_open(at) == open_by_week_minutes(spans, zone, holidays, at)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules())
def test_next_opening_is_open_and_nothing_before_it_is(case):
    spans, zone, holidays, at = case
    hours = settings_for(spans, zone, sorted(holidays)).schedule()
    opening = hours.next_opening(at)
    assert opening is not None and opening >= at
    assert open_by_week_minutes(spans, zone, holidays, opening)
    assert opening.utcoffset() == timedelta(0)
    if opening == at:
        return
    assert not open_by_week_minutes(spans, zone, holidays, at)
    # Ranges start on whole minutes and clocks change on them: a whole-minute scan sees every opening.
    minute = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute < opening:
        assert not open_by_week_minutes(spans, zone, holidays, minute), f"open at {minute}, before {opening}"
        minute += timedelta(minutes=1)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_madrid_opens_an_hour_earlier_in_utc_after_spring_forward():
    hours = BusinessHoursSettings(timezone="Europe/Madrid", monday=["09:00-14:00"]).schedule()
    assert hours.next_opening(utc(2026, 3, 22, 12)) == utc(2026, 3, 23, 8)   # CET, UTC+1
    assert hours.next_opening(utc(2026, 3, 29, 12)) == utc(2026, 3, 30, 7)   # CEST, UTC+2
    assert hours.next_opening(utc(2026, 10, 25, 12)) == utc(2026, 10, 26, 8)  # back to CET
    assert hours.next_opening(utc(2026, 3, 29, 12)).astimezone(hours.zone).isoformat() == "2026-03-30T09:00:00+02:00"


def test_madrid_spring_forward_skips_a_range_inside_the_gap_and_opens_one_at_the_change():
    skipped = BusinessHoursSettings(timezone="Europe/Madrid", sunday=["02:00-02:30"]).schedule()
    # 02:00-02:30 never happens on 2026-03-29: the next opening is the Sunday after.
    assert skipped.next_opening(utc(2026, 3, 28, 12)) == utc(2026, 4, 5, 0)
    cut = BusinessHoursSettings(timezone="Europe/Madrid", sunday=["02:30-04:00"]).schedule()
    assert cut.next_opening(utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1)   # 03:00 CEST, the first instant after
    assert cut.is_open(utc(2026, 3, 29, 1, 59)) and not cut.is_open(utc(2026, 3, 29, 2))


def test_madrid_fall_back_repeats_a_range_and_reopens_at_the_change():
    hours = BusinessHoursSettings(timezone="Europe/Madrid", sunday=["02:00-02:30"]).schedule()
    assert hours.is_open(utc(2026, 10, 25, 0, 10))       # 02:10 CEST
    assert not hours.is_open(utc(2026, 10, 25, 0, 45))   # 02:45 CEST
    assert hours.next_opening(utc(2026, 10, 25, 0, 45)) == utc(2026, 10, 25, 1)   # 02:00 CET, the second time
    assert hours.is_open(utc(2026, 10, 25, 1, 29)) and not hours.is_open(utc(2026, 10, 25, 1, 30))


def test_new_york_overnight_range_is_shorter_in_spring_and_longer_in_fall():
    hours = BusinessHoursSettings(timezone="America/New_York", saturday=["22:00-02:00"]).schedule()
    # 2026-03-08: 02:00 never comes (01:59:59 EST -> 03:00 EDT); the night ends at the change, 3 h long.
    assert hours.is_open(utc(2026, 3, 8, 3)) and hours.is_open(utc(2026, 3, 8, 6, 59))
    assert not hours.is_open(utc(2026, 3, 8, 7))
    # 2026-11-01: 01:00-02:00 happens twice; the night runs 5 h, until 02:00 EST.
    assert hours.is_open(utc(2026, 11, 1, 2)) and hours.is_open(utc(2026, 11, 1, 6, 59))
    assert not hours.is_open(utc(2026, 11, 1, 7))


def test_sao_paulo_has_no_dst_now_but_its_2018_change_at_midnight_is_handled():
    hours = BusinessHoursSettings(timezone="America/Sao_Paulo", monday=["09:00-18:00"],
                                  sunday=["00:00-12:00"]).schedule()
    assert hours.next_opening(utc(2026, 1, 4, 20)) == utc(2026, 1, 5, 12)   # UTC-3 in January...
    assert hours.next_opening(utc(2026, 7, 5, 20)) == utc(2026, 7, 6, 12)   # ...and in July
    # 2018-11-04: clocks jumped from 00:00 to 01:00 (UTC-2): Sunday opened at 01:00, 03:00 UTC.
    assert hours.next_opening(utc(2018, 11, 3, 12)) == utc(2018, 11, 4, 3)
    assert hours.next_opening(utc(2018, 11, 3, 12)).astimezone(hours.zone).isoformat() == "2018-11-04T01:00:00-02:00"


def test_a_holiday_cancels_the_ranges_starting_on_it_not_the_night_before():
    hours = BusinessHoursSettings(timezone="Europe/Madrid", thursday=["20:00-01:00"], friday=["09:00-14:00"],
                                  holidays=[date(2026, 12, 25)]).schedule()
    assert hours.is_open(utc(2026, 12, 24, 23, 30))      # Thursday night spills into the holiday
    assert not hours.is_open(utc(2026, 12, 25, 10))      # the holiday's own range does not happen
    assert hours.next_opening(utc(2026, 12, 25, 1)) == utc(2026, 12, 31, 19)   # next Thursday 20:00 CET


def test_without_ranges_the_business_is_always_open():
    hours = BusinessHours()
    moment = utc(2026, 6, 1, 3)
    assert not hours.configured and hours.is_open(moment) and hours.next_opening(moment) == moment


def test_a_schedule_that_never_opens_again_has_no_next_opening():
    monday = date(2026, 6, 1)
    hours = BusinessHoursSettings(monday=["09:00-10:00"],
                                  holidays=[monday + timedelta(weeks=n) for n in range(120)]).schedule()
    assert hours.next_opening(utc(2026, 5, 31)) is None


@pytest.mark.parametrize(("section", "expected"), [
    ('timezone = "Europe/Madird"', "business_hours.timezone: 'Europe/Madird' is not an IANA time zone"),
    ('monday = ["09:00-14:00", "13:00-15:00"]', "monday 09:00-14:00 overlaps monday 13:00-15:00"),
    ('sunday = ["22:00-02:00"]\nmonday = ["01:00-03:00"]', "sunday 22:00-02:00 overlaps monday 01:00-03:00"),
    ('friday = ["25:00-26:00"]', "business_hours.friday.0: '25:00-26:00' has a time that does not exist"),
    ('friday = ["9-14"]', "business_hours.friday.0: '9-14' is not a time range"),
    ('friday = ["10:00-10:00"]', "'10:00-10:00' is empty"),
    ('holidays = ["2026-13-01"]', "business_hours.holidays.0:"),
    ('fridya = ["09:00-14:00"]', "business_hours.fridya: unknown key (did you mean 'friday'?)"),
])
def test_a_config_mistake_fails_at_start_with_one_line(tmp_path: Path, section: str, expected: str):
    config = tmp_path / "connectzap.toml"
    config.write_text(f"[business_hours]\n{section}\n")
    with pytest.raises(ConfigurationError) as raised:
        load_settings(config)
    message = str(raised.value)
    assert expected in message and "\n" not in message


def test_a_whole_day_and_ranges_that_touch_are_accepted():
    hours = BusinessHoursSettings(monday=["00:00-24:00"], tuesday=["00:00-09:00", "09:00-12:00"]).schedule()
    assert hours.is_open(utc(2026, 6, 1, 23, 59)) and hours.is_open(utc(2026, 6, 2, 9))


class SaysWhetherOpen:
    def __init__(self) -> None:
        self.seen: list[tuple[bool, datetime | None]] = []

    @hookimpl
    def on_inbound_message(self, message: InboundMessage, ctx: EventContext) -> None:
        hours = ctx.business_hours
        self.seen.append((hours.is_open(message.timestamp), hours.next_opening(message.timestamp)))


def test_hooks_read_the_configured_hours_as_ctx_business_hours(make):
    app = make(business_hours={"timezone": "America/Sao_Paulo", "monday": ["09:00-18:00"]})
    listener = SaysWhetherOpen()
    with registered_plugin(listener):
        sunday_night = utc(2026, 12, 6, 23)   # 20:00 in Sao Paulo, Sunday
        app.ingest([sample_event("inbound_message", timestamp=sunday_night.isoformat())])
        run(app)
    assert listener.seen == [(False, utc(2026, 12, 7, 12))]
    assert app.business_hours.is_open(utc(2026, 12, 7, 12))
