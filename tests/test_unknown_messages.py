"""No message stays ``unknown`` for ever.

A message is ``unknown`` only when its request may have left the process: a crash before the
hand-off mark re-queues it, a crash after leaves it ``unknown``. A status webhook settles an
unknown message at once; after ``workers.unknown_grace_seconds`` without one,
``workers.unknown_policy`` resends it (same outbox id, so the same ``biz_opaque_callback_data``)
or fails it as ``unconfirmed`` and tells ``on_message_status``. Time moves by the engine's clock.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from server_support import AUTH, KEY, serving

from connectzap import Category, ConsentChange, Connectzap, Event, EventKind, Outgoing, TemplateContent, hookimpl
from connectzap.core import clock
from connectzap.core.channel import NOT_SUPPORTED
from connectzap.core.handoff import HandOffMarks
from connectzap.core.models import MessageStatus
from connectzap.core.plugins import pm
from connectzap.core.settings import WorkerSettings
from connectzap.core.store import outbox
from connectzap.core.worker import Worker
from connectzap.testing import seed_template
from connectzap.testing.fakes import FakeWhatsApp

PHONES = [f"+4915112345{n:03d}" for n in range(6)]
GRACE = 600.0


class LiveLike(FakeWhatsApp):
    """Like the Cloud API channel: it cannot be asked whether a message went out."""

    async def reconcile(self, outbox_id: str) -> Any:
        return NOT_SUPPORTED

    def sends_of(self, message_id: str) -> int:
        return sum(1 for a in self.attempts if a.outbox_id == message_id and a.wamid)


class Clock:
    def __init__(self) -> None:
        self.t = 1_900_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def tick() -> Iterator[Clock]:
    source = Clock()
    with clock.use_clock(source):
        yield source


class StatusListener:
    def __init__(self) -> None:
        self.seen: list[MessageStatus] = []

    @hookimpl
    def on_message_status(self, status: MessageStatus, ctx: Any) -> None:
        self.seen.append(status)


@pytest.fixture
def listener() -> Iterator[StatusListener]:
    plugin = StatusListener()
    pm.register(plugin, name="unknown_status_listener")
    yield plugin
    pm.unregister(name="unknown_status_listener")


def admitted(make: Any, channel: FakeWhatsApp, settings: dict[str, Any] | None = None,
             **workers: Any) -> tuple[Connectzap, list[str]]:
    app = make(channel=channel, workers={"lease_seconds": 30, "unknown_grace_seconds": GRACE, **workers},
               **(settings or {}))
    seed_template(app, "order_confirmation", "Order {{1}} confirmed")
    ids = []
    for n, phone in enumerate(PHONES):
        app.set_consent(ConsentChange(phone=phone, category=Category.UTILITY, granted=True, source="test",
                                      proof="checkbox"))
        decision = app.send(Outgoing(to=phone, content=TemplateContent(name="order_confirmation", language="en",
                                                                       body=[str(n)])))
        ids.append(decision.id)
    return app, ids


def die_mid_batch(app: Connectzap, handed_off: list[str]) -> None:
    """What a SIGKILLed worker leaves: every message claimed ``sending``, some marked handed off."""
    with app.db.begin() as conn:
        claimed = outbox.claim(app.db, conn, "dead-worker", 100, lease=30)
        assert outbox.hand_off(conn, handed_off, "dead-worker") == set(handed_off)
    assert len(claimed) == len(PHONES)


def status(app: Connectzap, message_id: str) -> str:
    return str(app.message(message_id)["status"])


async def test_only_handed_off_messages_become_unknown_after_a_crash(make: Any, tick: Clock) -> None:
    channel = LiveLike()
    app, ids = admitted(make, channel)
    die_mid_batch(app, handed_off=ids[:2])
    tick.t += 31  # the dead worker's lease runs out
    worker = Worker(app)
    await worker.run_until_idle()
    await app.aclose()
    assert [status(app, m) for m in ids] == ["unknown"] * 2 + ["accepted"] * 4
    # The four that never left the dead worker were sent once; the two that may have were not resent.
    assert [channel.sends_of(m) for m in ids] == [0, 0, 1, 1, 1, 1]
    for m in ids[:2]:
        row = app.message(m)
        assert (row["reason"], row["unknown_since"]) == ("crashed_mid_send", tick.t)
        assert row["recipient"] is not None and row["content"] is not None  # kept until settled


async def test_a_status_webhook_settles_an_unknown_message_at_once_and_erases_it(make: Any, tick: Clock) -> None:
    channel = LiveLike()
    app, ids = admitted(make, channel)
    die_mid_batch(app, handed_off=[ids[0]])
    tick.t += 31
    await Worker(app).run_until_idle()
    assert status(app, ids[0]) == "unknown"
    app.ingest([Event.of(EventKind.MESSAGE_STATUS,
                         MessageStatus(wamid="wamid.late", status="sent", timestamp=datetime.now(UTC),
                                       outbox_id=ids[0]), source="whatsapp", dedupe_key="wamid.late:sent")])
    await Worker(app).run_until_idle()
    tick.t += GRACE + 1  # well past the grace period: it was settled, nothing resends it
    await Worker(app).run_until_idle()
    await app.aclose()
    row = app.message(ids[0])
    assert (row["status"], row["wamid"], row["recipient"], row["content"]) == ("sent", "wamid.late", None, None)
    assert channel.sends_of(ids[0]) == 0
    assert app.unknown_messages() == []


async def test_a_status_received_in_time_but_not_yet_applied_holds_the_policy_back(make: Any, tick: Clock) -> None:
    """After a restart the statuses may wait behind a backlog: one that arrived within the grace
    period settles its message, however late it is applied; the resend waits for it."""
    channel = LiveLike()
    app, ids = admitted(make, channel, unknown_policy="resend")
    die_mid_batch(app, handed_off=ids[:2])
    tick.t += 31
    await Worker(app).run_until_idle()
    tick.t += GRACE - 10  # ids[0]'s status arrives in time; nothing applies it yet
    app.ingest([Event.of(EventKind.MESSAGE_STATUS,
                         MessageStatus(wamid="wamid.first", status="sent", timestamp=datetime.now(UTC),
                                       outbox_id=ids[0]), source="whatsapp", dedupe_key="wamid.first:sent")])
    tick.t += 20  # the grace period is over, the status still waits in the journal
    await Worker(app).recover_once()
    assert [status(app, m) for m in ids[:2]] == ["unknown", "unknown"]  # neither resent: statuses lag
    await Worker(app).run_until_idle()  # applies the status, then settles what no status came for
    await app.aclose()
    assert (status(app, ids[0]), channel.sends_of(ids[0])) == ("sent", 0)
    assert (status(app, ids[1]), channel.sends_of(ids[1])) == ("accepted", 1)


async def test_resend_policy_resends_once_after_the_grace_period_with_the_same_callback_data(
        make: Any, tick: Clock) -> None:
    channel = LiveLike()
    app, ids = admitted(make, channel, unknown_policy="resend")
    die_mid_batch(app, handed_off=ids[:3])
    tick.t += 31
    became_unknown = tick.t
    await Worker(app).run_until_idle()
    tick.t = became_unknown + GRACE - 1  # not yet
    await Worker(app).run_until_idle()
    assert [status(app, m) for m in ids[:3]] == ["unknown"] * 3
    assert [channel.sends_of(m) for m in ids[:3]] == [0, 0, 0]
    tick.t = became_unknown + GRACE + 1
    await Worker(app).run_until_idle()
    tick.t += GRACE * 10
    await Worker(app).run_until_idle()
    await app.aclose()
    assert [status(app, m) for m in ids] == ["accepted"] * 6
    assert [channel.sends_of(m) for m in ids] == [1] * 6
    resent = [a.body for a in channel.attempts if a.outbox_id in ids[:3]]
    assert sorted(b["biz_opaque_callback_data"] for b in resent) == sorted(ids[:3])
    assert app.message(ids[0])["reason"] == "resent_unconfirmed"


async def test_settle_now_applies_the_policy_before_the_grace_period(make: Any, tick: Clock) -> None:
    """``connectzap messages settle`` and the console's Settle now: the same policy, at once, once."""
    channel = LiveLike()
    app, ids = admitted(make, channel, unknown_policy="resend")
    die_mid_batch(app, handed_off=ids[:2])
    tick.t += 31
    await Worker(app).run_until_idle()
    assert [status(app, m) for m in ids[:2]] == ["unknown"] * 2
    assert app.settle_unknown(ids[0]) == "resend"  # well inside its grace period
    assert app.settle_unknown(ids[0]) is None  # queued now: not unknown any more
    assert app.settle_unknown(ids[2]) is None  # accepted: nothing to settle
    await Worker(app).run_until_idle()
    await app.aclose()
    assert (status(app, ids[0]), channel.sends_of(ids[0])) == ("accepted", 1)
    assert (status(app, ids[1]), channel.sends_of(ids[1])) == ("unknown", 0)  # the other one still waits
    assert app.message(ids[0])["reason"] == "resent_unconfirmed"


async def test_settle_now_with_the_fail_policy_fails_and_tells_the_hooks(
        make: Any, tick: Clock, listener: StatusListener) -> None:
    channel = LiveLike()
    app, ids = admitted(make, channel, unknown_policy="fail")
    die_mid_batch(app, handed_off=ids[:1])
    tick.t += 31
    await Worker(app).run_until_idle()
    assert app.settle_unknown(ids[0]) == "fail"
    await Worker(app).run_until_idle()
    await app.aclose()
    row = app.message(ids[0])
    assert (row["status"], row["reason"], row["recipient"]) == ("failed", "unconfirmed", None)
    assert [s.status for s in listener.seen if s.outbox_id == ids[0]] == ["failed"]


async def test_fail_policy_fails_unconfirmed_erases_and_tells_on_message_status(
        make: Any, tick: Clock, listener: StatusListener) -> None:
    channel = LiveLike()
    app, ids = admitted(make, channel, unknown_policy="fail")
    die_mid_batch(app, handed_off=ids[:2])
    tick.t += 31
    await Worker(app).run_until_idle()
    tick.t += GRACE - 1
    await Worker(app).run_until_idle()
    assert [s.status for s in listener.seen if s.outbox_id in ids[:2]] == []
    tick.t += 2
    await Worker(app).run_until_idle()
    await app.aclose()
    for m in ids[:2]:
        row = app.message(m)
        assert (row["status"], row["reason"], row["recipient"], row["content"]) == ("failed", "unconfirmed", None, None)
        assert channel.sends_of(m) == 0
    failed = [s for s in listener.seen if s.status == "failed"]
    assert sorted(s.outbox_id or "" for s in failed) == sorted(ids[:2])
    assert {str(s.errors[0].code) for s in failed} == {"unconfirmed"}
    assert {s.recipient for s in failed} == {None}  # named by contact key, never by number
    assert {s.contact_key for s in failed} == {app.contact_key(p) for p in PHONES[:2]}


async def test_a_message_that_cannot_be_resent_fails_instead(make: Any, tick: Clock) -> None:
    """resend, but the message used up its attempts: the policy still settles it."""
    channel = LiveLike()
    app, ids = admitted(make, channel, unknown_policy="resend", max_attempts=1)
    die_mid_batch(app, handed_off=[ids[0]])
    tick.t += 31
    await Worker(app).run_until_idle()
    tick.t += GRACE + 1
    await Worker(app).run_until_idle()
    await app.aclose()
    assert (status(app, ids[0]), app.message(ids[0])["reason"]) == ("failed", "unconfirmed")
    assert channel.sends_of(ids[0]) == 0


async def test_a_send_that_times_out_is_unknown_then_settled_by_the_policy(make: Any, tick: Clock) -> None:
    channel = LiveLike()
    app, ids = admitted(make, channel, unknown_policy="resend")
    channel.fail_next("ambiguous")
    await Worker(app).run_until_idle()
    unknown = [m for m in ids if status(app, m) == "unknown"]
    assert len(unknown) == 1 and app.message(unknown[0])["unknown_since"] == tick.t
    tick.t += GRACE + 1
    await Worker(app).run_until_idle()
    await app.aclose()
    assert status(app, unknown[0]) == "accepted"
    assert len([a for a in channel.attempts if a.outbox_id == unknown[0]]) == 2  # the timeout, then the resend


async def test_unknown_messages_are_listed_with_their_age_and_what_settles_them(make: Any, tick: Clock) -> None:
    app, ids = admitted(make, LiveLike(), unknown_policy="fail")
    die_mid_batch(app, handed_off=ids[:2])
    tick.t += 31
    await Worker(app).run_until_idle()
    tick.t += 90
    listed = app.unknown_messages()
    await app.aclose()
    assert sorted(u.id for u in listed) == sorted(ids[:2])
    assert {u.age_seconds for u in listed} == {90.0}
    assert {u.then for u in listed} == {"fail"}
    assert {u.settles_at.timestamp() for u in listed} == {tick.t - 90 + GRACE}
    assert all(u.recipient and PHONES[0][-3:] not in u.recipient for u in listed if u.id == ids[0])


async def test_a_sender_whose_lease_ran_out_before_the_hand_off_does_not_send(make: Any, tick: Clock) -> None:
    """Recovery re-queues a claimed message that was never handed off; if its first sender was only
    slow (not dead), that sender must not send it too: its hand-off mark fails and it lets go."""
    channel = LiveLike()
    app, ids = admitted(make, channel)
    slow = Worker(app)
    claimed = await asyncio.to_thread(slow.sender._claim_outbox, slow.sender.claim_size())
    assert len(claimed) == len(PHONES)
    tick.t += 31  # the slow sender's lease runs out while it waits for its slots
    await Worker(app).recover_once()
    assert {status(app, m) for m in ids} == {"queued"}
    outcomes = [await slow.sender._send_one(channel, row, message) for row, message in claimed]
    assert {o.result.value for o in outcomes} == {"lost"} and channel.attempts == []
    await asyncio.to_thread(slow.sender._record, channel, outcomes)  # records nothing for lost ones
    assert {status(app, m) for m in ids} == {"queued"}
    await Worker(app).run_until_idle()
    await app.aclose()
    assert [channel.sends_of(m) for m in ids] == [1] * len(ids)


async def test_a_failed_hand_off_mark_sends_nothing() -> None:
    """If the mark cannot be stored, the request must not go: its waiters all get the error."""
    def broken(ids: list[str]) -> set[str]:
        raise RuntimeError("disk full")

    marks = HandOffMarks(broken)
    results = await asyncio.gather(*(marks.mark(f"m{n}") for n in range(5)), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError] * 5


async def test_hand_off_marks_are_group_committed_and_durable_before_they_return() -> None:
    written: list[list[str]] = []
    returned: list[str] = []

    def write(ids: list[str]) -> set[str]:
        assert not set(ids) & set(returned)
        written.append(ids)
        return {m for m in ids if m != "m7"}  # m7's claim was lost: it is not marked

    marks = HandOffMarks(write)

    async def one(message_id: str) -> bool:
        marked = await marks.mark(message_id)
        assert any(message_id in group for group in written)  # stored before the send may start
        returned.append(message_id)
        return marked

    answers = await asyncio.gather(*(one(f"m{n}") for n in range(40)))
    assert [n for n, marked in enumerate(answers) if not marked] == [7]
    assert sorted(m for group in written for m in group) == sorted(f"m{n}" for n in range(40))
    assert len(written) < 40  # the ones that waited during a write went together
    assert max(len(group) for group in written) > 1


def test_the_old_resend_setting_still_works_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match="unknown_policy"):
        old = WorkerSettings(resend_unknown_after_seconds=120)
    assert (old.unknown_policy, old.unknown_grace_seconds) == ("resend", 120)
    assert (WorkerSettings().unknown_policy, WorkerSettings().unknown_grace_seconds) == ("resend", 3600)
    with pytest.raises(ValueError, match="unknown_policy"):
        WorkerSettings(unknown_policy="ignore")  # type: ignore[arg-type]


async def test_cli_and_rest_show_unknown_messages_with_their_age(make: Any, tmp_path: Path, tick: Clock) -> None:
    app, ids = admitted(make, LiveLike(), {"api": {"keys": [KEY]}})
    die_mid_batch(app, handed_off=[ids[0]])
    with app.db.begin() as conn:  # what recovery does after the lease (tested above)
        outbox.mark_unknown(conn, ids[0], reason="crashed_mid_send")
    config = tmp_path / "cli.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.settings.database_url}"\n'
                      '[workers]\nunknown_grace_seconds = 600\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CONNECTZAP_"))}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "connectzap", "--config", str(config), "messages", "unknown", "--json"],
        env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [m["id"] for m in listed] == [ids[0]]
    assert (listed[0]["then"], listed[0]["reason"]) == ("resend", "crashed_mid_send")
    since = datetime.fromisoformat(listed[0]["unknown_since"]).timestamp()
    assert since == app.message(ids[0])["unknown_since"] == tick.t
    assert datetime.fromisoformat(listed[0]["settles_at"]).timestamp() == since + 600
    assert listed[0]["age_seconds"] >= 0
    assert PHONES[0] not in done.stdout and PHONES[0][1:] not in done.stdout
    async with serving(app) as client:
        page = await client.get("/v1/messages", params={"status": "unknown"}, headers=AUTH)
    await app.aclose()
    assert page.status_code == 200, page.text
    shown = page.json()["messages"]
    assert [(m["id"], m["status"]) for m in shown] == [(ids[0], "unknown")]
    assert datetime.fromisoformat(shown[0]["unknown_since"]).timestamp() == since
