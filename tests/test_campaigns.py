"""Campaigns: the state machine, admission through the gate, outcomes, pause/resume/cancel."""

from __future__ import annotations

import asyncio
import io
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import func, select

from connectzap import Category, ConsentChange, Connectzap
from connectzap.core.campaigns import Action, State, read_file
from connectzap.core.campaigns.states import TRANSITIONS, after, allowed
from connectzap.core.errors import ConflictError
from connectzap.core.store.schema import outbox
from connectzap.core.worker import Worker
from connectzap.testing import FakeWhatsApp, make_app, run, seed_template

NUMBERS = [f"+49151123456{n:02d}" for n in range(8)]


def grant(app, phone: str, granted: bool = True) -> None:
    app.set_consent(ConsentChange(phone=phone, category=Category.MARKETING, granted=granted, source="test",
                                  proof="signed up at the till"))


def campaign_with(app, numbers: list[str], **options):
    seed_template(app, "spring_sale", "Hi {{1}}, the spring sale starts today", category="MARKETING")
    made = app.campaigns.create("spring", {"name": "spring_sale", "language": "en"}, **options)
    text = "phone,1\n" + "".join(f"{n},Ana{i}\n" for i, n in enumerate(numbers))
    loaded = app.campaigns.load_audience(made.id, read_file(io.StringIO(text), "csv", app.secret))
    assert loaded.added == len(numbers)
    return made


def campaign_messages(app, campaign_id: str, status: str | None = None) -> int:
    stmt = select(func.count()).select_from(outbox).where(outbox.c.cancel_key == f"campaign:{campaign_id}")
    if status:
        stmt = stmt.where(outbox.c.status == status)
    with app.db.read() as conn:
        return conn.execute(stmt).scalar_one()


# --- the state machine's table -------------------------------------------------------------------

@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", list(Action))
def test_every_state_and_action_is_allowed_exactly_as_the_table_says(state: State, action: Action) -> None:
    sources, target = TRANSITIONS[action]
    if state in sources:
        assert after(state, action) is target and allowed(state, action)
    else:
        with pytest.raises(ConflictError, match=f"cannot {action.value} a campaign that is {state.value}"):
            after(state, action)
        assert not allowed(state, action)


def test_final_states_allow_nothing() -> None:
    for state in (State.FINISHED, State.CANCELLED):
        assert not any(allowed(state, action) for action in Action)


# --- end to end ------------------------------------------------------------------------------------

def test_a_campaign_sends_to_the_consented_and_records_why_the_others_were_refused(app) -> None:
    fake = FakeWhatsApp()
    app.use_channel(fake)
    for phone in NUMBERS[:3]:
        grant(app, phone)
    grant(app, NUMBERS[3], granted=False)
    made = campaign_with(app, NUMBERS[:5])
    app.campaigns.control(made.id, Action.START)
    run(app)
    assert sorted("+" + body["to"] for body in fake.sent()) == NUMBERS[:3]
    assert [b["template"]["components"][0]["parameters"][0]["text"] for b in fake.sent()] == ["Ana0", "Ana1", "Ana2"]
    view = app.campaigns.get(made.id)
    assert view.state == State.FINISHED
    assert view.outcomes == {"refused": 2, "sent": 3}
    results = {r["phone"]: r for r in app.campaigns.results(made.id)}
    assert results["+49*********03"]["reason"] == "opted_out"
    assert results["+49*********04"]["reason"] == "no_consent"
    # nobody's number or parameters are kept once refused; the sent ones keep theirs until settled
    from connectzap.core.store.schema import campaign_recipients
    with app.db.read() as conn:
        kept = dict(conn.execute(select(campaign_recipients.c.masked, campaign_recipients.c.recipient)).all())
    assert kept["+49*********03"] is None and kept["+49*********04"] is None
    app.ingest(fake.status_events("sent", "delivered"))
    run(app)
    assert app.campaigns.get(made.id).outcomes == {"refused": 2, "delivered": 3}
    with app.db.read() as conn:
        assert [r for r in conn.execute(select(campaign_recipients.c.recipient, campaign_recipients.c.params))
                if r[0] or r[1]] == []


def test_a_failed_message_records_the_channels_code_and_title(app) -> None:
    fake = FakeWhatsApp()
    app.use_channel(fake)
    grant(app, NUMBERS[0])
    made = campaign_with(app, NUMBERS[:1])
    fake.fail_next("fatal")
    app.campaigns.control(made.id, Action.START)
    run(app)
    [result] = app.campaigns.results(made.id)
    assert result["outcome"] == "failed"
    assert result["error_title"] == "fake WhatsApp failure: fatal" and result["error_code"]


def test_a_cancelled_campaign_follows_what_was_already_on_its_way(app) -> None:
    """Messages sent before the cancel (nothing left to take back) are still followed: their
    recipients show ``sent``, not ``queued`` for ever with their numbers kept."""
    fake = FakeWhatsApp()
    app.use_channel(fake)
    for phone in NUMBERS[:2]:
        grant(app, phone)
    made = campaign_with(app, NUMBERS[:2])
    app.campaigns.control(made.id, Action.START)
    app.campaigns.run_once()
    asyncio.run(Worker(app).send_once())
    assert len(fake.sent()) == 2
    app.campaigns.control(made.id, Action.CANCEL)
    app.campaigns.run_once()
    assert app.campaigns.get(made.id).outcomes == {"sent": 2}


# --- the hypothesis state machine ----------------------------------------------------------------

def restarted(app: Connectzap, folder: Path, channel: FakeWhatsApp) -> tuple[Connectzap, Worker]:
    """The process stops and starts again: a new engine and worker on the same database."""
    url = app.settings.database_url
    app.close()
    again = make_app(folder, channel=channel, database_url=url)
    return again, Worker(again)


class CampaignMachine(RuleBasedStateMachine):
    """Random starts, pauses, resumes, cancels, engine rounds, sends, opt-outs and restarts (a new
    engine and worker on the same database): the campaign follows the state table, nothing is
    admitted while paused, a cancel leaves nothing queued, nobody gets the campaign twice or without
    consent, and a resumed campaign reaches everyone."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp())
        self.fake = FakeWhatsApp()
        self.app = make_app(self.folder, channel=self.fake)
        self.worker = Worker(self.app)
        self.state = State.DRAFT
        self.revoked_at: dict[str, int] = {}  # number -> sends recorded when the opt-out came

    @initialize(consented=st.sets(st.sampled_from(NUMBERS), min_size=1))
    def audience(self, consented: set[str]) -> None:
        self.consented = consented
        for phone in consented:
            grant(self.app, phone)
        self.campaign = campaign_with(self.app, NUMBERS).id

    @rule(action=st.sampled_from([Action.START, Action.PAUSE, Action.RESUME, Action.CANCEL]))
    def control(self, action: Action) -> None:
        expected = after(self.state, action) if allowed(self.state, action) else None
        if expected is None:
            with pytest.raises(ConflictError):
                self.app.campaigns.control(self.campaign, action)
        else:
            self.state = State(self.app.campaigns.control(self.campaign, action).state)
            assert self.state is expected
        if self.state in (State.PAUSED, State.CANCELLED):
            assert campaign_messages(self.app, self.campaign, "queued") == 0

    @rule()
    def engine_round(self) -> None:
        before = campaign_messages(self.app, self.campaign)
        self.app.campaigns.run_once()
        if self.state is not State.RUNNING:
            assert campaign_messages(self.app, self.campaign) == before  # nothing admitted
        self.state = State(self.app.campaigns.get(self.campaign).state)

    @rule()
    def send(self) -> None:
        sent = len(self.fake.sent())
        asyncio.run(self._send())
        if self.state is not State.RUNNING:
            assert len(self.fake.sent()) == sent  # paused or cancelled: nothing of it was left to send

    async def _send(self) -> None:
        await self.worker.send_once()
        await self.worker.dispatch_once()

    @rule()
    def restart(self) -> None:
        self.app, self.worker = restarted(self.app, self.folder, self.fake)
        assert State(self.app.campaigns.get(self.campaign).state) is self.state

    @rule(phone=st.sampled_from(NUMBERS))
    def opt_out(self, phone: str) -> None:
        grant(self.app, phone, granted=False)
        self.consented.discard(phone)
        self.revoked_at.setdefault(phone, len(self.fake.sent()))

    @invariant()
    def nobody_twice_and_nobody_without_consent(self) -> None:
        if not hasattr(self, "campaign"):
            return
        sent = ["+" + body["to"] for body in self.fake.sent()]
        assert len(sent) == len(set(sent))
        for n, phone in enumerate(sent):
            assert phone in self.consented or n < self.revoked_at.get(phone, -1), phone

    def teardown(self) -> None:
        try:
            if hasattr(self, "campaign") and self.state not in (State.CANCELLED, State.FINISHED):
                if self.state is State.PAUSED:
                    self.app.campaigns.control(self.campaign, Action.RESUME)
                elif self.state is State.DRAFT:
                    self.app.campaigns.control(self.campaign, Action.START)
                run(self.app, self.worker)
                view = self.app.campaigns.get(self.campaign)
                assert view.state == State.FINISHED
                sent = {"+" + body["to"] for body in self.fake.sent()}
                assert self.consented <= sent  # resumed where it stopped: every consented recipient reached
                assert set(view.outcomes) <= {"sent", "refused"}
        finally:
            self.app.close()
            shutil.rmtree(self.folder, ignore_errors=True)


CampaignMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=20, deadline=None,
                                             suppress_health_check=[HealthCheck.too_slow])
test_campaign_state_machine = CampaignMachine.TestCase
