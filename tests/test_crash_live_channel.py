"""SIGKILL a real ``serve`` five times while it sends through the live Cloud API channel.

``serve`` runs as the README starts it (``connectzap --config FILE serve --port N``), its WhatsApp
connector configured with an access token and ``api_base_url`` pointing at the local Graph
stand-in (:class:`connectzap.testing.fake_graph.FakeGraph`). The stand-in counts every accepted
send by its ``biz_opaque_callback_data`` and posts a signed ``sent`` status webhook for each back
to ``serve`` -- retrying while ``serve`` is dead, as Meta does. The live channel cannot be asked
whether a message went out, so after each kill only the hand-off mark and the status webhooks can
tell; what neither settles, ``workers.unknown_policy = "resend"`` settles after the grace period.

Afterwards: every order's message was accepted by the stand-in exactly once (none lost, none
twice), every message is ``sent`` (nothing left ``unknown``), and its text and number are erased.
Each kill also measures how many messages it left ambiguous (handed off, unanswered) against those
it left claimed but never handed off (simply queued again); the numbers go to stdout (``-s``).

``serve`` is a supervisor with the edge and the workers as child processes; a kill is SIGKILL to
all of them at once, as a power cut, ``docker kill`` or the kernel's OOM killer on the container
would do (SIGKILL to the supervisor alone would only make the children drain and exit cleanly).

The run size is ``CONNECTZAP_CRASH_MESSAGES`` (default below; see the constant for why not 10,000).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import serve_support
from serve_support import (CRASH_PLUGIN, config_file, crash_plugin_env, database_url, free_port, gone, journal_orders,
                           wait_for)
from sqlalchemy import func, select

from connectzap import Connectzap
from connectzap.core.settings import load_settings
from connectzap.core.store.schema import events, outbox
from connectzap.testing.apps import drop_postgres_schema
from connectzap.testing.fake_graph import FakeGraph

pytestmark = pytest.mark.slow

# The issue asks for 10,000. On the 2-core machine shared with other jobs (load 12-16), 10,000 took
# 10 minutes (SQLite, 2026-12-02; docs/whatsapp-sending.md has the runs and PostgreSQL's); 1,000 is
# what fits beside the rest of the suite. CONNECTZAP_CRASH_MESSAGES=10000 runs the size.
MESSAGES = int(os.environ.get("CONNECTZAP_CRASH_MESSAGES", "1000"))
KILLS = 5
# Each wait allows 5 minutes plus half a second per message it waits for (about 2 orders a second, the
# slowest rate measured on the shared machine): enough for 1,000 and for 10,000 alike.
SEGMENT_TIMEOUT = 300 + 0.5 * MESSAGES / (KILLS + 1)
GRACE = 45.0  # workers.unknown_grace_seconds: long enough for the stand-in's retried statuses to land
APP_SECRET = "crash-live-app-secret"
TOKEN = "crash-live-token"


@dataclass
class Run:
    config: Path
    env: dict[str, str]
    port: int
    database_url: str
    stderr: Path
    kills: list[dict[str, int]] = field(default_factory=list)


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    # A round trip of 20 ms keeps requests in flight at every kill, so each kill meets the crash
    # paths (handed off and unanswered) instead of sometimes landing between two batches.
    with FakeGraph(token=TOKEN, record=False, latency_ms=20) as fake:
        yield fake


@pytest.fixture
def run(backend: str, tmp_path: Path, graph: FakeGraph) -> Iterator[Run]:
    url = database_url(backend, tmp_path)
    port = free_port()
    config = config_file(tmp_path / "connectzap.toml", data_dir=tmp_path / "data", database_url=url, rest=f"""
[privacy]
hash_secret = "crash-live-secret-0123456789"
[workers]
lease_seconds = 3
poll_interval_seconds = 0.05
batch_size = 100
unknown_policy = "resend"
unknown_grace_seconds = {GRACE}
[connectors.whatsapp]
access_token = "{TOKEN}"
phone_number_id = "106540352242922"
app_secrets = ["{APP_SECRET}"]
verify_token = "crash-live-verify"
api_base_url = "{graph.url}"
messages_per_second = 1000
pair_spacing_seconds = 0
daily_unique_recipients = 1000000
timeout_seconds = 10
""")
    graph.report_statuses(f"http://127.0.0.1:{port}/webhooks/whatsapp", APP_SECRET, statuses=("sent",))
    yield Run(config, crash_plugin_env(tmp_path), port, url, tmp_path / "serve-stderr.log")
    drop_postgres_schema(url)


def start_serve(r: Run) -> subprocess.Popen[bytes]:
    return serve_support.start_serve(r.config, r.env, r.stderr, "--port", str(r.port), "--log-level", "warning")


def kill_all(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL serve and its children together; return once none runs (the port is free again)."""
    children = [int(pid) for pid in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    for pid in (proc.pid, *children):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(10)
    deadline = time.monotonic() + 10
    while not all(map(gone, children)):
        assert time.monotonic() < deadline, "serve's children outlived a SIGKILL"
        time.sleep(0.01)


def left_by_kill(app: Connectzap, graph: FakeGraph) -> dict[str, int]:
    """What a kill left claimed: handed off or not, and of the handed-off ones, how many the
    stand-in really accepted (the rest never got there)."""
    with app.db.read() as conn:
        rows = conn.execute(select(outbox.c.id, outbox.c.handed_off_at).where(outbox.c.status == "sending")).all()
    accepted = graph.accepted()
    handed_off = [r.id for r in rows if r.handed_off_at is not None]
    return {"claimed_not_handed_off": sum(1 for r in rows if r.handed_off_at is None),
            "ambiguous": len(handed_off), "ambiguous_really_sent": sum(1 for m in handed_off if accepted[m])}


def finished(app: Connectzap, graph: FakeGraph) -> bool:
    with app.db.read() as conn:
        pending = conn.execute(select(func.count()).select_from(events)
                               .where(events.c.status == "pending")).scalar_one()
        open_ = conn.execute(select(func.count()).select_from(outbox).where(
            outbox.c.status.in_(("queued", "sending", "unknown", "accepted")))).scalar_one()
        made = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
    return made == MESSAGES and open_ == 0 and pending == 0 and graph.unreported == 0


def test_five_sigkills_of_serve_on_the_live_channel_lose_nothing_send_nothing_twice_leave_nothing_unknown(
        run: Run, graph: FakeGraph) -> None:
    journal_orders(run.config, MESSAGES)
    observer = Connectzap(load_settings(run.config))
    try:
        for k in range(1, KILLS + 1):
            proc = start_serve(run)
            point = MESSAGES * k // (KILLS + 1)
            wait_for(lambda p=point: sum(graph.accepted().values()) >= p, f"{point} sends", SEGMENT_TIMEOUT,
                     proc=proc, log=run.stderr)
            kill_all(proc)
            run.kills.append(left_by_kill(observer, graph))
        assert sum(graph.accepted().values()) < MESSAGES, "serve finished before the last kill"

        proc = start_serve(run)
        try:
            wait_for(lambda: finished(observer, graph), "every message to be settled", SEGMENT_TIMEOUT + GRACE,
                     proc=proc, log=run.stderr)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, run.stderr.read_text()[-3000:]

        with observer.db.read() as conn:
            order_events = conn.execute(select(events.c.status, func.count()).where(events.c.source == "shop")
                                        .group_by(events.c.status)).all()
            rows = conn.execute(select(outbox.c.id, outbox.c.idempotency_key, outbox.c.status, outbox.c.reason,
                                       outbox.c.recipient, outbox.c.content)).all()
        accepted = graph.accepted()
        print(f"\n{MESSAGES} messages, {KILLS} SIGKILLs ({observer.db.dialect}); left by each kill: {run.kills}; "
              f"resent after the grace period: {sum(1 for r in rows if r.reason == 'resent_unconfirmed')}")
        assert order_events == [("done", MESSAGES)]  # no event lost, none dead
        assert sorted(r.idempotency_key for r in rows) == sorted(f"{CRASH_PLUGIN}:order:{n}" for n in range(MESSAGES))
        reasons = {r.id: r.reason for r in rows}
        twice = [(m, reasons.get(m)) for m, n in accepted.items() if n > 1]
        assert twice == []  # nothing sent twice
        assert set(accepted) == {r.id for r in rows}  # nothing lost: every message reached the stand-in
        assert Counter(r.status for r in rows) == {"sent": MESSAGES}  # settled by its status, none unknown
        assert [r.id for r in rows if r.recipient is not None or r.content is not None] == []  # erased
        # The crash paths ran: some kill caught messages claimed but never handed off (re-queued).
        assert sum(k["claimed_not_handed_off"] + k["ambiguous"] for k in run.kills) > 0
    finally:
        observer.close()
