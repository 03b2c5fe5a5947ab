"""The core's rules for automatic answers (connectzap.core.arbitration), through the engine: at most
one per inbound message (the first AutomaticAnswer kind wins) even when plugins answer in different
rounds, none while a person handles the conversation, none to a stale message, a replay answered
once; a plain reply is never held back. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connectzap import (AutomaticAnswer, FatalError, InboundMessage, Outgoing, RetriableError, Settings, TextContent,
                        hookimpl, load_settings)
from connectzap.core.store.schema import deliveries, events, outbox
from connectzap.core.worker import Worker
from connectzap.testing import FakeWhatsApp, registered_plugin, sample_event

FAST_RETRIES = {"max_attempts": 3, "backoff_base_seconds": 0.001, "backoff_max_seconds": 0.001}


@pytest.fixture
def engine(make):
    return make(channel=FakeWhatsApp(), workers=FAST_RETRIES)


@dataclass
class Answerer:
    """A plugin answering every inbound message with ``body``, as an automatic answer of ``kind``
    (None: a plain reply); its first ``failures`` calls raise (``fatal``: a dead letter at once)."""

    body: str
    kind: AutomaticAnswer | None
    failures: int = 0
    fatal: bool = False
    hand_over: bool = False
    calls: int = 0

    @hookimpl
    def on_inbound_message(self, message: Any, ctx: Any) -> Outgoing:
        self.calls += 1
        if self.calls <= self.failures:
            raise (FatalError if self.fatal else RetriableError)(f"{self.body} is not ready")
        if self.hand_over:
            ctx.conversation.hand_to_human("asked for a person")
        return Outgoing(to=message.contact, content=TextContent(body=self.body), automatic=self.kind)


@contextmanager
def plugins(*answerers: Answerer) -> Iterator[None]:
    with ExitStack() as stack:
        for answerer in answerers:
            stack.enter_context(registered_plugin(answerer))
        yield


def inbound(phone: str, wamid: str, *, age: timedelta = timedelta(0), dedupe_key: str | None = None) -> Any:
    return sample_event("inbound_message", dedupe_key=dedupe_key or wamid, wamid=wamid,
                        contact={"phone": phone, "wa_id": phone.lstrip("+")},
                        timestamp=(datetime.now(UTC) - age).isoformat())


async def drain(app: Any) -> None:
    """Run the worker until no event waits (retries are due within milliseconds here)."""
    worker = Worker(app)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        await worker.run_until_idle()
        if not any(e.status == "pending" for e in app.events(limit=1000)):
            await worker.run_until_idle()
            return
        await asyncio.sleep(0.01)
    raise AssertionError("events still pending after 120 s")


def sent_bodies(app: Any, phone: str | None = None) -> list[str]:
    return [b["text"]["body"] for b in app.channel.sent()
            if b.get("type") == "text" and (phone is None or b["to"] == phone.lstrip("+"))]


def rows_of(app: Any, event_id: int) -> dict[str, dict[str, Any]]:
    """The outbox rows an event's hooks proposed, by the plugin they came from."""
    with app.db.read() as conn:
        return {r.plugin: dict(r._mapping) for r in conn.execute(
            select(outbox).where(outbox.c.source_event_id == event_id))}


PHONE = "+4915112345678"


async def test_the_first_kind_wins_and_the_others_are_refused_with_their_reason(engine):
    welcome, faq = Answerer("Welcome!", AutomaticAnswer.welcome), Answerer("We open at 9.", AutomaticAnswer.faq)
    plain = Answerer("Thanks, noted.", None)
    with plugins(welcome, faq, plain):
        [journaled] = engine.ingest([inbound(PHONE, "wamid.a1")])
        await drain(engine)
    assert sorted(sent_bodies(engine)) == ["Thanks, noted.", "We open at 9."]
    detail = engine.event(journaled.event_id)
    verdicts = {m.reason for d in detail.deliveries for m in d.messages}
    assert "automatic_superseded" in verdicts  # visible in `connectzap events show`


async def test_an_answer_waits_for_a_plugin_being_retried_and_a_higher_kind_still_wins(make):
    engine = make(channel=FakeWhatsApp(), workers={"backoff_base_seconds": 3600})
    welcome = Answerer("Welcome!", AutomaticAnswer.welcome)
    faq = Answerer("We open at 9.", AutomaticAnswer.faq, failures=1)
    with plugins(welcome, faq):
        [journaled] = engine.ingest([inbound(PHONE, "wamid.b1")])
        await Worker(engine).run_until_idle()
        # the welcome is admitted but held: the FAQ plugin has not answered yet
        assert sent_bodies(engine) == []
        assert [r["reason"] for r in rows_of(engine, journaled.event_id).values()] == ["automatic_pending"]
        with engine.db.begin() as conn:  # the retry's time comes
            conn.execute(deliveries.update().values(next_attempt_at=0))
            conn.execute(events.update().values(next_attempt_at=0))
        await drain(engine)
    assert faq.calls == 2 and sent_bodies(engine) == ["We open at 9."]


async def test_a_dead_letter_lets_the_held_answer_go(engine):
    welcome = Answerer("Welcome!", AutomaticAnswer.welcome)
    faq = Answerer("We open at 9.", AutomaticAnswer.faq, failures=5, fatal=True)
    with plugins(welcome, faq):
        engine.ingest([inbound(PHONE, "wamid.c1")])
        await drain(engine)
    assert sent_bodies(engine) == ["Welcome!"]


async def test_an_answer_held_past_the_staleness_limit_is_refused_by_the_housekeeping(make):
    # its other plugin keeps failing (retries hours apart): the answer never waits for ever
    engine = make(channel=FakeWhatsApp(), workers={"backoff_base_seconds": 3600})
    with plugins(Answerer("Welcome!", AutomaticAnswer.welcome), Answerer("Hours", AutomaticAnswer.faq, failures=9)):
        [journaled] = engine.ingest([inbound(PHONE, "wamid.x1")])
        worker = Worker(engine)
        await worker.run_until_idle()
    [held] = rows_of(engine, journaled.event_id).values()
    worker.housekeeping()
    assert rows_of(engine, journaled.event_id)[held["plugin"]]["status"] == "queued"  # not stale yet
    with engine.db.begin() as conn:
        conn.execute(outbox.update().values(created_at=time.time() - 11 * 60))
    worker.housekeeping()
    row = rows_of(engine, journaled.event_id)[held["plugin"]]
    assert (row["status"], row["reason"], row["content"]) == ("refused", "stale_inbound", None)


async def test_no_automatic_answer_while_a_person_handles_the_conversation(engine):
    faq, plain = Answerer("We open at 9.", AutomaticAnswer.faq), Answerer("Thanks, noted.", None)
    assert engine.hand_to_human(PHONE, "complaint", by="cli") is True
    assert engine.conversation(PHONE).handled_by == "human"
    with plugins(faq, plain):
        [journaled] = engine.ingest([inbound(PHONE, "wamid.d1")])
        await drain(engine)
        assert sent_bodies(engine) == ["Thanks, noted."]
        assert {r["reason"] for r in rows_of(engine, journaled.event_id).values()} == {"human_handling", None}
        assert engine.release(PHONE) is True and engine.conversation(PHONE).handled_by == "bot"
        engine.ingest([inbound(PHONE, "wamid.d2")])
        await drain(engine)
    assert sorted(sent_bodies(engine)) == ["Thanks, noted.", "Thanks, noted.", "We open at 9."]


async def test_an_automatic_answer_sent_later_or_waiting_is_refused_once_a_person_handles_it(engine):
    engine.ingest([inbound(PHONE, "wamid.h1")])  # opens the window
    await drain(engine)
    engine.hand_to_human(PHONE, "complaint")
    bot_reply = Outgoing(to=PHONE, content=TextContent(body="Bot says hi"), automatic=AutomaticAnswer.chatbot)
    assert engine.send(bot_reply).reason == "human_handling"  # a bot answering later, through the API
    engine.release(PHONE)
    queued = engine.send(bot_reply)
    assert queued.status == "queued"
    engine.hand_to_human(PHONE, "complaint")  # a person takes over while it waits in the queue
    await drain(engine)
    assert sent_bodies(engine) == []
    with engine.db.read() as conn:
        assert conn.execute(select(outbox.c.reason).where(outbox.c.id == queued.id)).scalar() == "human_handling"


async def test_a_handoff_expires(engine):
    engine.hand_to_human(PHONE, "call back", minutes=1)
    assert engine.conversation(PHONE).until is not None
    with engine.db.begin() as conn:
        from connectzap.core import conversations
        assert conversations.state(conn, engine.contact_key(PHONE), at=time.time() + 61).handled_by == "bot"
        assert conversations.erase_expired(conn, at=time.time() + 61) == 1


async def test_the_message_that_asks_for_a_person_gets_its_confirmation_and_the_next_gets_none(engine):
    keyword = Answerer("A person will answer you soon.", AutomaticAnswer.keyword, hand_over=True)
    welcome = Answerer("Welcome!", AutomaticAnswer.welcome)
    with plugins(keyword, welcome):
        engine.ingest([inbound(PHONE, "wamid.e1")])
        await drain(engine)
        assert engine.conversation(PHONE).handled_by == "human"
        assert engine.conversation(PHONE).reason == "asked for a person"
        engine.ingest([inbound(PHONE, "wamid.e2")])
        await drain(engine)
    assert sent_bodies(engine) == ["A person will answer you soon."]


async def test_a_stale_message_gets_no_automatic_answer(engine):
    faq, plain = Answerer("We open at 9.", AutomaticAnswer.faq), Answerer("Thanks, noted.", None)
    with plugins(faq, plain):
        [journaled] = engine.ingest([inbound(PHONE, "wamid.f1", age=timedelta(minutes=11))])
        await drain(engine)
    assert sent_bodies(engine) == ["Thanks, noted."]
    assert {r["reason"] for r in rows_of(engine, journaled.event_id).values()} == {"stale_inbound", None}


async def test_a_replayed_inbound_message_is_answered_once(engine):
    faq = Answerer("We open at 9.", AutomaticAnswer.faq)
    with plugins(faq):
        engine.ingest([inbound(PHONE, "wamid.g1")])
        engine.ingest([inbound(PHONE, "wamid.g1")])  # the same webhook again: one event
        # the same message reaching us under another delivery key (another route) is one message too
        [again] = engine.ingest([inbound(PHONE, "wamid.g1", dedupe_key="replayed:wamid.g1")])
        await drain(engine)
    assert sent_bodies(engine) == ["We open at 9."]
    assert [r["reason"] for r in rows_of(engine, again.event_id).values()] == ["already_answered"]


# --- the invariants, for any mix of plugins, failures and conversation states -------------------------

answerers = st.lists(
    st.builds(lambda kind, failures, fatal: Answerer("", kind, failures, fatal),
              st.sampled_from([None, *AutomaticAnswer]), st.integers(0, 4), st.booleans()),
    min_size=1, max_size=4)


EXAMPLES = itertools.count(1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answerers=answerers, human=st.sampled_from(["bot", "human", "expired"]), stale=st.booleans())
async def test_invariants_of_automatic_answers(engine, answerers, human, stale):
    n = next(EXAMPLES)  # each example its own customer and message
    phone = f"+4915112{n:06d}"
    for i, a in enumerate(answerers):
        a.body = f"{a.kind or 'plain'} {i}"
    if human != "bot":
        engine.hand_to_human(phone, "test", minutes=1)
        if human == "expired":
            from connectzap.core.store.schema import conversations
            with engine.db.begin() as conn:
                conn.execute(conversations.update().values(until=time.time() - 1))
    before = len(engine.channel.sent())
    with plugins(*answerers):
        engine.ingest([inbound(phone, f"wamid.p{n}",
                               age=timedelta(minutes=11 if stale else 0))])
        await drain(engine)
    engine.release(phone)
    bodies = [b["text"]["body"] for b in engine.channel.sent()[before:]]
    # a plugin answers once it succeeds: its first `failures` calls fail; 3 attempts in all
    answered = [a for a in answerers if a.failures < 3 and not (a.fatal and a.failures)]
    automatic_sent = [b for b in bodies if not b.startswith("plain")]
    assert len(automatic_sent) <= 1  # never two automatic answers to one message
    assert sorted(b for b in bodies if b.startswith("plain")) == sorted(a.body for a in answered if a.kind is None)
    candidates = [a for a in answered if a.kind is not None]
    if human == "human" or stale or not candidates:
        assert automatic_sent == []  # none while a person handles it, none to a stale message
    else:  # an allowed automatic answer is sent: the first kind's
        best = min(a.kind.rank for a in candidates if a.kind is not None)
        assert automatic_sent[0] in [a.body for a in candidates if a.kind is not None and a.kind.rank == best]


# --- docs/automation.md, "Automatic answers: the rules every plugin shares", as written ---------------

def test_the_docs_example_and_setting_work_as_written(tmp_path):
    doc = (Path(__file__).resolve().parents[1] / "docs" / "automation.md").read_text(encoding="utf-8")
    section = doc.split("\n## Automatic answers: the rules every plugin shares\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    (toml,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/automation.md", "exec"), namespace)
    message = InboundMessage.model_validate(inbound(PHONE, "wamid.doc", age=timedelta(0)).data
                                            | {"text": "¿Qué HORARIO tenéis?"})
    answer = namespace["on_inbound_message"](message, None)
    assert answer.automatic is AutomaticAnswer.faq and answer.reply_to == "wamid.doc"
    config = tmp_path / "connectzap.toml"
    config.write_text(toml.replace("= 10", "= 3"))
    assert load_settings(config).automation.stale_after_minutes == 3
    assert Settings().automation.stale_after_minutes == 10  # the default the doc names
