"""The limits a campaign's engine keeps: its rate, each recipient's send window in their own time
zone, the per-user marketing limit (back off, never resend at once), and the channel's limits
(a campaign larger than today's messaging limit waits and continues the next day, and says so)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from hypothesis import strategies as st
from sqlalchemy import select

from connectzap.connectors.whatsapp.errors import SKIP
from connectzap.core.campaigns import Action, engine, rate
from connectzap.core.campaigns.send_window import is_open, next_open, parse_window, zones_of
from connectzap.core.channel import OutboundSend
from connectzap.core.clock import use_clock
from connectzap.core.errors import ConflictError, PacedError
from connectzap.core.store.schema import campaign_recipients, outbox
from connectzap.core.worker import Worker
from connectzap.testing import FakeWhatsApp, make_app, run
from test_campaigns import NUMBERS, campaign_with, grant, restarted


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


GERMAN, BRAZILIAN = NUMBERS[0], "+5511987654321"


def _berlin_and_sao_paulo(app, also: list[str] = []) -> tuple[FakeWhatsApp, str]:  # noqa: B006 - never changed
    """A consented German and Brazilian recipient (and ``also``), a campaign to them with the window
    09:00-21:00, started now (inside a test's ``use_clock``); the channel and the campaign's id."""
    fake = FakeWhatsApp()
    app.use_channel(fake)
    for phone in (GERMAN, BRAZILIAN, *also):
        grant(app, phone)
    made = campaign_with(app, [GERMAN, BRAZILIAN, *also], window="09:00-21:00")
    app.campaigns.control(made.id, Action.START)
    return fake, made.id


def test_recipients_are_admitted_only_inside_their_own_send_window(app) -> None:
    german, brazilian = GERMAN, BRAZILIAN
    clock = Clock(datetime(2026, 12, 2, 22, 30, tzinfo=UTC))  # 23:30 in Berlin, 19:30 in Sao Paulo
    with use_clock(clock):
        fake, campaign_id = _berlin_and_sao_paulo(app)
        run(app)
        assert sent_numbers(fake) == [brazilian]
        with app.db.read() as conn:
            due = conn.execute(select(campaign_recipients.c.due_at)
                               .where(campaign_recipients.c.outcome == "pending")).scalar_one()
        assert datetime.fromtimestamp(due, UTC) == datetime(2026, 12, 3, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
        assert "due at 2026-12-03 08:00 UTC" in (app.campaigns.get(campaign_id).waiting or "")
        clock.t = due - 60
        run(app)
        assert sent_numbers(fake) == [brazilian]
        clock.t = due
        run(app)
        assert sent_numbers(fake) == [brazilian, german]
        assert app.campaigns.get(campaign_id).state == "finished"


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


def test_a_message_naming_a_campaign_that_is_not_there_is_sent_as_it_is() -> None:
    """The send-time rules look campaigns up by the sender's name; one that names no campaign (its
    row gone, or a plugin so named) is neither held nor paced -- and does not stop the batch."""
    from connectzap.core.campaigns.quiet_hours import held_until
    from connectzap.core.sender import _at_campaign_rates
    row = {"id": "m1", "plugin": "campaign:gone", "contact_key": "k", "not_before": 0.0, "created_at": 0.0}
    assert held_until(None, [row], {}, 1e9) == {}  # type: ignore[arg-type]
    assert _at_campaign_rates(None, None, [(row, None)], {}, 1e9) == [(row, None)]  # type: ignore[arg-type]


def assert_keeps_the_rate(times: list[float], spacing: float) -> None:
    """In any period, no more messages than the rate allows give or take its tolerance: of the
    send ``times`` (sorted), the i-th and j-th lie at least ``(j - i) * spacing - TOLERANCE`` apart."""
    times = sorted(times)
    for i, early in enumerate(times):
        for j in range(i + 1, len(times)):
            assert times[j] - early >= (j - i) * spacing - rate.TOLERANCE - 1e-6, (i, j, times)


def test_after_an_outage_the_campaign_goes_on_at_its_rate_not_at_the_numbers_throughput(app) -> None:
    """The sender is down for an hour while the engine admits (each message its send time, 10 s
    apart): when it comes back, the messages whose send times passed leave at the campaign's rate,
    each once, not all at once."""
    fake = FakeWhatsApp()
    app.use_channel(fake)
    for phone in NUMBERS:
        grant(app, phone)
    clock = Clock(datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    with use_clock(clock):
        made = campaign_with(app, NUMBERS, rate_per_minute=6)
        app.campaigns.control(made.id, Action.START)
        for _ in range(12):  # the engine goes on for an hour; nobody sends
            app.campaigns.run_once()
            clock.t += 300
        assert app.campaigns.get(made.id).outcomes == {"queued": len(NUMBERS)}
        worker, sent_at = Worker(app), []
        for _ in range(200):
            before = len(fake.sent())
            asyncio.run(worker.send_once())
            sent_at += [clock.t] * (len(fake.sent()) - before)
            app.campaigns.run_once()
            clock.t += 1
        assert sorted(sent_numbers(fake)) == NUMBERS
        assert_keeps_the_rate(sent_at, 10.0)
        assert sent_at[-1] - sent_at[0] >= (len(NUMBERS) - 1) * 10.0 - rate.TOLERANCE
        with app.db.read() as conn:
            reasons = {r[0] for r in conn.execute(select(outbox.c.reason))}
        assert "campaign_rate" in reasons  # they waited for new send times
        assert app.campaigns.get(made.id).state == "finished"


def test_messages_the_messaging_limit_held_overnight_leave_at_the_campaigns_rate(app) -> None:
    """The day's limit holds the rest of the campaign in the outbox until the next day: then they
    leave one spacing apart, as the campaign asks, not all at once at the number's throughput."""
    clock = Clock(datetime(2026, 12, 2, 23, 59, 0, tzinfo=UTC))
    fake = DailyLimit(clock, per_day=3)
    app.use_channel(fake)
    for phone in NUMBERS[:6]:
        grant(app, phone)
    with use_clock(clock):
        made = campaign_with(app, NUMBERS[:6], rate_per_minute=6)
        app.campaigns.control(made.id, Action.START)
        worker, sent_at = Worker(app), []
        for _ in range(240):  # four minutes across midnight, a round and a send each second
            before = len(fake.sent())
            app.campaigns.run_once()
            asyncio.run(worker.send_once())
            sent_at += [clock.t] * (len(fake.sent()) - before)
            clock.t += 1
        assert sorted(sent_numbers(fake)) == NUMBERS[:6]
        after_midnight = [at for at in sent_at if at >= datetime(2026, 12, 3, tzinfo=UTC).timestamp()]
        assert len(after_midnight) == 3
        assert_keeps_the_rate(after_midnight, 10.0)


def test_a_slow_campaign_after_an_outage_says_its_rate_spaces_the_messages(app) -> None:
    """One message every two minutes, a sender down for an hour: the late messages get send times
    two minutes apart, and the campaign says its own rate holds them, not the channel."""
    fake = FakeWhatsApp()
    app.use_channel(fake)
    for phone in NUMBERS[:4]:
        grant(app, phone)
    clock = Clock(datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    with use_clock(clock):
        made = campaign_with(app, NUMBERS[:4], rate_per_minute=0.5)
        app.campaigns.control(made.id, Action.START)
        for _ in range(12):
            app.campaigns.run_once()
            clock.t += 300
        asyncio.run(Worker(app).send_once())
        assert len(fake.sent()) == 1
        app.campaigns.run_once()
        assert app.campaigns.get(made.id).waiting == (
            "3 messages wait in the outbox; the campaign's rate spaces the send times; the next is due at "
            "2026-12-02 13:02 UTC, and the campaign continues then")


class CampaignOnAClock(RuleBasedStateMachine):
    """What the machines below share: one campaign on a clock the test moves, engine rounds, sends
    (each recorded with the time it left), restarts (a new engine and worker on the same database)
    and, at the end, rounds until the campaign has finished."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp())
        self.closing = ExitStack()
        self.sent_at: list[tuple[str, float]] = []

    def start(self, at: datetime, channel: Callable[[Clock], FakeWhatsApp], consented: set[str],
              numbers: list[str], **options: Any) -> None:
        self.clock = Clock(at)
        self.closing.enter_context(use_clock(self.clock))
        self.fake = channel(self.clock)
        self.app = make_app(self.folder, channel=self.fake)
        self.worker = Worker(self.app)
        self.consented = consented
        for phone in consented:
            grant(self.app, phone)
        self.campaign_id = campaign_with(self.app, numbers, **options).id
        self.app.campaigns.control(self.campaign_id, Action.START)

    @rule()
    def engine_round(self) -> None:
        self.app.campaigns.run_once()

    @rule()
    def send(self) -> None:
        before = len(self.fake.sent())
        asyncio.run(self.worker.send_once())
        asyncio.run(self.worker.dispatch_once())
        self.sent_at += [(phone, self.clock.t) for phone in sent_numbers(self.fake)[before:]]

    @rule()
    def restart(self) -> None:
        self.app, self.worker = restarted(self.app, self.folder, self.fake)

    def check(self) -> None:
        """Nobody twice, nobody without consent; each machine adds its own limit."""
        phones = [phone for phone, _ in self.sent_at]
        assert len(phones) == len(set(phones)) and set(phones) <= self.consented

    def finish(self, rounds: int, step: float) -> None:
        """Engine rounds and sends, ``step`` seconds apart, until the campaign has finished (at most
        ``rounds``): everyone consented is reached, and the limits hold all along."""
        if self.app.campaigns.get(self.campaign_id).state == "paused":
            self.app.campaigns.control(self.campaign_id, Action.RESUME)
        for _ in range(rounds):
            if self.app.campaigns.get(self.campaign_id).state == "finished":
                break
            self.clock.t += step
            self.app.campaigns.run_once()
            self.send()
            self.app.campaigns.run_once()
            self.check()
        assert self.app.campaigns.get(self.campaign_id).state == "finished"
        assert {phone for phone, _ in self.sent_at} == self.consented

    def teardown(self) -> None:
        try:
            if hasattr(self, "fake"):
                self.finish(*self.ending)
        finally:
            if hasattr(self, "app"):
                self.app.close()
            self.closing.close()
            shutil.rmtree(self.folder, ignore_errors=True)


class RatedCampaignMachine(CampaignOnAClock):
    """A campaign with a rate, and random engine rounds, sends, pauses and resumes, restarts, and
    time that passes by a second or by hours (a sender that was down): nobody gets it twice, the
    rate holds over every period, and in the end everyone consented is reached."""

    @initialize(consented=st.sets(st.sampled_from(NUMBERS), min_size=1), per_minute=st.sampled_from([6, 20, 60]))
    def campaign(self, consented: set[str], per_minute: int) -> None:
        self.spacing = 60.0 / per_minute
        self.ending = (int(len(NUMBERS) * self.spacing) + 60, 1.0)
        self.start(datetime(2026, 12, 2, 12, 0, tzinfo=UTC), lambda clock: FakeWhatsApp(), consented, NUMBERS,
                   rate_per_minute=per_minute)

    @rule(seconds=st.sampled_from([0.5, 1, 3, 10, 600, 7200]))
    def time_passes(self, seconds: float) -> None:
        self.clock.t += seconds

    @rule(action=st.sampled_from([Action.PAUSE, Action.RESUME]))
    def control(self, action: Action) -> None:
        try:
            self.app.campaigns.control(self.campaign_id, action)
        except ConflictError:
            pass  # not allowed in the campaign's state: the state table's own test covers that

    @invariant()
    def nobody_twice_and_the_rate_holds(self) -> None:
        if hasattr(self, "fake"):
            self.check()

    def check(self) -> None:
        super().check()
        assert_keeps_the_rate([at for _, at in self.sent_at], self.spacing)


RatedCampaignMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None,
                                                  suppress_health_check=[HealthCheck.too_slow])

test_rated_campaign_state_machine = RatedCampaignMachine.TestCase


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


@pytest.mark.parametrize(("held", "held_text"), [(2, "2 messages wait"), (1, "1 message waits")])
@pytest.mark.parametrize("in_flight", [2, engine.IN_FLIGHT], ids=["cap reached", "fewer left than the cap"])
def test_a_campaign_beyond_todays_limit_waits_for_the_next_window_and_says_so(app, monkeypatch, in_flight, held,
                                                                              held_text) -> None:
    """Also when fewer recipients are left than the in-flight cap: all are admitted and the limit
    holds them in the outbox (the campaign said nothing then: none was left to admit, the cap not reached).
    One held is one message (it said "1 messages wait")."""
    monkeypatch.setattr(engine, "IN_FLIGHT", in_flight)
    clock = Clock(datetime(2026, 12, 2, 20, 0, tzinfo=UTC))
    fake = DailyLimit(clock, per_day=3)
    app.use_channel(fake)
    audience = NUMBERS[:3 + held]
    for phone in audience:
        grant(app, phone)
    with use_clock(clock):
        made = campaign_with(app, audience)
        app.campaigns.control(made.id, Action.START)
        run(app)
        assert len(fake.sent()) == 3
        run(app)
        view = app.campaigns.get(made.id)
        assert view.state == "running" and view.outcomes == {"queued": held, "sent": 3}
        assert view.waiting == (f"{held_text} in the outbox; the channel's limits (the messaging limit, throughput) "
                                "hold the next until 2026-12-03 00:00 UTC, and the campaign continues then")
        clock.t = datetime(2026, 12, 3, 0, 0, 1, tzinfo=UTC).timestamp()
        run(app)
        view = app.campaigns.get(made.id)
        assert sorted(sent_numbers(fake)) == audience
        assert view.state == "finished" and view.waiting is None


def test_the_rate_a_waiting_message_names_agrees_in_number() -> None:
    until = datetime(2026, 12, 2, 12, 0, tzinfo=UTC).timestamp()
    assert rate.why_waiting(1.0, until).startswith("the campaign sends 1 message a minute;")
    assert rate.why_waiting(0.5, until).startswith("the campaign sends 0.5 messages a minute;")
    assert rate.why_waiting(0.9999999, until).startswith("the campaign sends 1 message a minute;")  # as shown


# --- the send window, again at send time ----------------------------------------------------------

def test_a_message_whose_window_closed_while_it_waited_goes_back_to_the_campaign(app, monkeypatch) -> None:
    """Admitted at 20:59 in Berlin (the window 09:00-21:00 open), not sent before 21:00 (a sender that
    was down): the sender gives it back, erased; its recipient waits in the campaign, not in the
    outbox, until 09:00 Berlin time -- so with room for one message in flight the campaign goes on
    with the recipients whose windows are open -- and is then admitted again."""
    monkeypatch.setattr(engine, "IN_FLIGHT", 1)
    german, brazilian = GERMAN, BRAZILIAN
    other_brazilian = "+5511987654322"
    clock = Clock(datetime(2026, 12, 2, 19, 59, tzinfo=UTC))  # 20:59 in Berlin, 16:59 in Sao Paulo
    with use_clock(clock):
        fake, campaign_id = _berlin_and_sao_paulo(app, also=[other_brazilian])
        app.campaigns.run_once()
        assert app.campaigns.get(campaign_id).outcomes == {"queued": 1, "pending": 2}  # the German, admitted in time
        clock.t = datetime(2026, 12, 2, 20, 30, tzinfo=UTC).timestamp()  # 21:30 in Berlin
        worker = Worker(app)
        asyncio.run(worker.send_once())
        assert sent_numbers(fake) == []
        with app.db.read() as conn:
            given_back = conn.execute(select(outbox.c.status, outbox.c.reason, outbox.c.recipient, outbox.c.content,
                                             outbox.c.error_details)).one()
        assert given_back[:4] == ("cancelled", "quiet_hours", None, None)
        assert "09:00-21:00" in given_back.error_details and "2026-12-03 09:00 CET" in given_back.error_details
        run(app)  # the campaign takes the German back, and the outbox has room for the Brazilians
        assert sorted(sent_numbers(fake)) == sorted([brazilian, other_brazilian])
        view = app.campaigns.get(campaign_id)
        assert view.outcomes == {"pending": 1, "sent": 2}
        assert "due at 2026-12-03 08:00 UTC" in (view.waiting or "")
        clock.t = datetime(2026, 12, 3, 7, 59, tzinfo=UTC).timestamp()
        run(app)
        assert len(fake.sent()) == 2
        clock.t = datetime(2026, 12, 3, 8, 0, tzinfo=UTC).timestamp()
        run(app)
        assert sent_numbers(fake)[2:] == [german]
        assert app.campaigns.get(campaign_id).state == "finished"


# --- the state machine: windows, the messaging limit and restarts ----------------------------------

ZONED = [NUMBERS[0], NUMBERS[1], "+5511987654321", "+5511987654322", "+819012345678"]
"""Recipients in Berlin, Sao Paulo and Tokyo."""
WINDOWS = ["09:00-21:00", "22:00-06:00", "08:00-12:00"]


class WindowedCampaignMachine(CampaignOnAClock):
    """A campaign with a send window, a channel whose messaging limit allows a few recipients a day,
    and random engine rounds, sends, clock jumps (a sender that was down for minutes or hours) and
    restarts: nobody gets the campaign twice, nobody outside their own window at the moment it is
    sent, nobody beyond the day's limit, and in the end everyone consented is reached."""

    @initialize(consented=st.sets(st.sampled_from(ZONED), min_size=1), window=st.sampled_from(WINDOWS),
                hour=st.integers(0, 23), per_day=st.sampled_from([2, 50]))
    def campaign(self, consented: set[str], window: str, hour: int, per_day: int) -> None:
        self.window, self.per_day = parse_window(window), per_day
        self.ending = (8 * 6, 4 * 3600.0)  # up to eight days, four hours at a time: every window opens
        self.start(datetime(2026, 12, 2, hour, 0, tzinfo=UTC), lambda clock: DailyLimit(clock, per_day=per_day),
                   consented, ZONED, window=window)

    @rule(minutes=st.sampled_from([1, 45, 240, 600]))
    def time_passes(self, minutes: int) -> None:
        self.clock.t += minutes * 60

    @invariant()
    def nobody_twice_outside_their_window_or_beyond_the_limit(self) -> None:
        if hasattr(self, "fake"):
            self.check()

    def check(self) -> None:
        super().check()
        for phone, at in self.sent_at:
            assert next_open(zones_of(phone), at, *self.window) <= at, (phone, at)
        per_day: dict[int, int] = {}
        for _, at in self.sent_at:
            per_day[int(at // 86400)] = per_day.get(int(at // 86400), 0) + 1
        assert max(per_day.values(), default=0) <= self.per_day


WindowedCampaignMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=15, deadline=None,
                                                     suppress_health_check=[HealthCheck.too_slow])

test_windowed_campaign_state_machine = WindowedCampaignMachine.TestCase
