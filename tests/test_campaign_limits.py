"""The limits a campaign's engine keeps: its rate, each recipient's send window in their own time
zone, the per-user marketing limit (back off, never resend at once), and the channel's limits
(a campaign larger than today's messaging limit waits and continues the next day, and says so)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connectzap.connectors.whatsapp.errors import SKIP
from connectzap.core.campaigns import Action, engine
from connectzap.core.campaigns.send_window import is_open, next_open, parse_window, zones_of
from connectzap.core.channel import OutboundSend
from connectzap.core.clock import use_clock
from connectzap.core.errors import PacedError
from connectzap.core.store.schema import campaign_recipients, outbox
from connectzap.testing import FakeWhatsApp, run
from test_campaigns import NUMBERS, campaign_with, grant


class Clock:
    def __init__(self, at: datetime) -> None:
        self.t = at.timestamp()

    def __call__(self) -> float:
        return self.t


def sent_numbers(fake: FakeWhatsApp) -> list[str]:
    return ["+" + body["to"] for body in fake.sent()]


# --- the send window ----------------------------------------------------------------------------

def test_zones_come_from_the_numbers_region() -> None:
    assert zones_of("+4915112345678") == ("Europe/Berlin",)
    assert zones_of("+14155550123") == ("America/Los_Angeles",)
    assert zones_of("+5511987654321") == ("America/Sao_Paulo",)


@pytest.mark.parametrize("text", ["9-21", "09:00", "25:00-08:00", "09:00-09:00", "09:00-21:60"])
def test_a_malformed_window_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_window(text)


ZONE_SETS = st.sampled_from([(), ("Europe/Berlin",), ("America/Sao_Paulo",), ("Asia/Kolkata",),
                             ("Australia/Perth", "Australia/Sydney"), zones_of("+79161234567")])


@given(zones=ZONE_SETS, at=st.floats(1.7e9, 1.9e9), start=st.integers(0, 1439), length=st.integers(30, 1200))
@settings(max_examples=300, deadline=None)
def test_the_window_opens_at_the_first_open_time(zones: tuple[str, ...], at: float, start: int, length: int) -> None:
    end = (start + length) % 1440
    opens = next_open(zones, at, start, end)
    assert at <= opens < at + 2 * 86400
    assert is_open(zones, opens, start, end, strict=False)
    if is_open(zones, at, start, end):
        assert opens == at
    # nothing earlier (at the 5-minute resolution) was open in every zone
    t = (at // 60 + 1) * 60
    while t + 300 <= opens:
        assert not is_open(zones, t, start, end)
        t += 300


def test_recipients_are_admitted_only_inside_their_own_send_window(app) -> None:
    fake = FakeWhatsApp()
    app.use_channel(fake)
    german, brazilian = NUMBERS[0], "+5511987654321"
    for phone in (german, brazilian):
        grant(app, phone)
    clock = Clock(datetime(2026, 12, 2, 22, 30, tzinfo=UTC))  # 23:30 in Berlin, 19:30 in Sao Paulo
    with use_clock(clock):
        made = campaign_with(app, [german, brazilian], window="09:00-21:00")
        app.campaigns.control(made.id, Action.START)
        run(app)
        assert sent_numbers(fake) == [brazilian]
        with app.db.read() as conn:
            due = conn.execute(select(campaign_recipients.c.due_at)
                               .where(campaign_recipients.c.outcome == "pending")).scalar_one()
        assert datetime.fromtimestamp(due, UTC) == datetime(2026, 12, 3, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
        assert "due at 2026-12-03 08:00 UTC" in (app.campaigns.get(made.id).waiting or "")
        clock.t = due - 60
        run(app)
        assert sent_numbers(fake) == [brazilian]
        clock.t = due
        run(app)
        assert sent_numbers(fake) == [brazilian, german]
        assert app.campaigns.get(made.id).state == "finished"


# --- the campaign's rate -------------------------------------------------------------------------

def test_the_campaign_rate_spaces_the_send_times(app) -> None:
    for phone in NUMBERS:
        grant(app, phone)
    clock = Clock(datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    with use_clock(clock):
        made = campaign_with(app, NUMBERS, rate_per_minute=30)  # one every 2 s
        app.campaigns.control(made.id, Action.START)
        app.campaigns.run_once()
        with app.db.read() as conn:
            times = [r[0] for r in conn.execute(select(outbox.c.next_attempt_at).order_by(outbox.c.next_attempt_at))]
        # 10 s ahead at most: the slots at 0, 2, ..., 10 s
        assert [t - clock.t for t in times] == [0, 2, 4, 6, 8, 10]
        app.campaigns.run_once()  # nothing more until the given-out times pass
        with app.db.read() as conn:
            assert len(conn.execute(select(outbox.c.id)).all()) == 6
        clock.t += 4
        app.campaigns.run_once()
        with app.db.read() as conn:
            times = [r[0] for r in conn.execute(select(outbox.c.next_attempt_at).order_by(outbox.c.next_attempt_at))]
        assert [t - times[0] for t in times] == [0, 2, 4, 6, 8, 10, 12, 14]


# --- the per-user marketing limit (WhatsApp 131049) ---------------------------------------------------

def test_the_whatsapp_connector_names_131049_as_the_engine_expects() -> None:
    assert SKIP[131049] == engine.PER_USER_LIMIT


def test_a_per_user_limit_defers_the_recipient_with_growing_delays_then_fails(app) -> None:
    fake = FakeWhatsApp()
    app.use_channel(fake)
    grant(app, NUMBERS[0])
    clock = Clock(datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    with use_clock(clock):
        made = campaign_with(app, NUMBERS[:1])
        fake.fail_next("marketing_limited", times=3)
        app.campaigns.control(made.id, Action.START)
        run(app)
        assert len(fake.attempts) == 1
        for n, delay in enumerate(engine.BACKOFFS, start=2):
            run(app)
            assert len(fake.attempts) == n - 1  # never an immediate resend
            assert app.campaigns.results(made.id)[0]["outcome"] == "deferred"
            clock.t += delay - 1
            run(app)
            assert len(fake.attempts) == n - 1  # not a second early
            clock.t += 1
            run(app)
            assert len(fake.attempts) == n
        attempts = fake.attempts
        [result] = app.campaigns.results(made.id)
        assert len({a.outbox_id for a in attempts}) == 3  # each try a new message, through the gate
        assert result["outcome"] == "failed" and result["reason"] == "marketing_limited"
        assert result["error_code"] == "131049"
        assert app.campaigns.get(made.id).state == "finished"


# --- the channel's limits: a campaign larger than today's messaging limit ------------------------------

class DailyLimit(FakeWhatsApp):
    """A channel whose messaging limit allows ``per_day`` recipients until the clock's next day."""

    def __init__(self, clock: Clock, per_day: int) -> None:
        super().__init__()
        self.clock, self.per_day, self.used = clock, per_day, {}

    async def pace(self, message: OutboundSend) -> None:
        day = int(self.clock() // 86400)
        if self.used.get(day, 0) >= self.per_day:
            raise PacedError("messaging limit reached", retry_after=(day + 1) * 86400 - self.clock())
        self.used[day] = self.used.get(day, 0) + 1


@pytest.mark.parametrize("in_flight", [2, engine.IN_FLIGHT], ids=["cap reached", "fewer left than the cap"])
def test_a_campaign_beyond_todays_limit_waits_for_the_next_window_and_says_so(app, monkeypatch, in_flight) -> None:
    """Also when fewer recipients are left than the in-flight cap: all are admitted and the limit
    holds them in the outbox (the campaign said nothing then: none was left to admit, the cap not reached)."""
    monkeypatch.setattr(engine, "IN_FLIGHT", in_flight)
    clock = Clock(datetime(2026, 12, 2, 20, 0, tzinfo=UTC))
    fake = DailyLimit(clock, per_day=3)
    app.use_channel(fake)
    for phone in NUMBERS[:5]:
        grant(app, phone)
    with use_clock(clock):
        made = campaign_with(app, NUMBERS[:5])
        app.campaigns.control(made.id, Action.START)
        run(app)
        assert len(fake.sent()) == 3
        run(app)
        view = app.campaigns.get(made.id)
        assert view.state == "running" and view.outcomes == {"queued": 2, "sent": 3}
        assert view.waiting == ("2 messages wait in the outbox; the channel's limits (the messaging limit, throughput) "
                                "hold them until 2026-12-03 00:00 UTC, and the campaign continues then")
        clock.t = datetime(2026, 12, 3, 0, 0, 1, tzinfo=UTC).timestamp()
        run(app)
        view = app.campaigns.get(made.id)
        assert sorted(sent_numbers(fake)) == NUMBERS[:5]
        assert view.state == "finished" and view.waiting is None
