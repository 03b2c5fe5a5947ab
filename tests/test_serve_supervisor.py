"""`connectzap serve` as users start it: a supervisor with the HTTP edge and the workers as child
processes. Real processes throughout: the children exist, a webhook the edge accepted is dispatched
by a worker process, a killed child comes back, and SIGTERM drains without losing an event."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from serve_support import CONNECTZAP, gone, sandbox_serve_config, wait_for
from server_support import APP_SECRET, KEY, inbound_text, meta_signed
from sqlalchemy import select

from connectzap.core.app import Connectzap
from connectzap.core.store.schema import events, workers

pytestmark = pytest.mark.slow


class Supervised:
    """`connectzap serve` with its stderr in a file (no pipe to fill up while nobody reads it)."""

    def __init__(self, config: Path, *options: str) -> None:
        self.log = config.with_name("serve-stderr.log")
        env = {**os.environ, "CONNECTZAP_LOAD_PLUGINS": ""}  # bundled plugins only
        with self.log.open("wb") as stderr:
            self.process = subprocess.Popen([str(CONNECTZAP), "--config", str(config), "serve", "--port", "0",
                                             *options], stdout=subprocess.DEVNULL, stderr=stderr, env=env)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def url(self, within: float = 120) -> str:
        line = wait_for(lambda: next((x for x in self.output().splitlines() if "serving on " in x), None)
                        or self._alive(), "the serving line", within)
        return line.split("serving on ", 1)[1].split()[0]

    def _alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"serve exited ({self.process.returncode}):\n{self.output()}")

    def children(self) -> dict[int, str]:
        """pid -> ``edge`` or ``worker``, from /proc."""
        pid = self.process.pid
        listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        found = {}
        for child in map(int, listed):
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            found[child] = "edge" if b"serve" in argv else "worker" if b"worker" in argv else "?"
        return found

    def stop(self, within: float = 120) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def statuses(engine: Connectzap) -> dict[str, str]:
    """dedupe key (the wamid) -> journal status."""
    with engine.db.read() as conn:
        rows = conn.execute(select(events.c.dedupe_key, events.c.status).where(events.c.source == "whatsapp"))
        return {key: status for key, status in rows}


def worker_pids(engine: Connectzap) -> set[int]:
    with engine.db.read() as conn:
        return set(conn.execute(select(workers.c.pid)).scalars())


def post_webhook(client: httpx.Client, wamid: str) -> httpx.Response:
    body = inbound_text(wamid, "hello")
    return client.post("/webhooks/whatsapp", content=body, headers=meta_signed(body))


@pytest.fixture
def served(make: Callable[..., Connectzap]) -> Iterator[tuple[Connectzap, Callable[..., Supervised]]]:
    engine = make()  # creates the database (or PostgreSQL schema) the processes share
    started: list[Supervised] = []

    def start(*options: str) -> Supervised:
        s = Supervised(sandbox_serve_config(Path(engine.settings.data_dir), engine.db.url), *options)
        started.append(s)
        return s

    yield engine, start
    for s in started:
        if s.process.poll() is None:
            s.process.kill()
            s.process.wait()


def test_serve_runs_edge_and_workers_as_processes_and_a_worker_dispatches_what_the_edge_took(served):
    engine, start = served
    s = start("--workers", "2")
    try:
        base = s.url()
        children = s.children()
        assert sorted(children.values()) == ["edge", "worker", "worker"], children
        with httpx.Client(base_url=base, timeout=30) as client:
            answer = post_webhook(client, "wamid.supervised-1")
        assert answer.status_code == 200 and answer.json() == {"received": 1, "duplicates": 0}
        wait_for(lambda: statuses(engine).get("wamid.supervised-1") == "done", "the event dispatched")
        # Only worker processes run a Worker (the edge takes webhooks, the supervisor holds no engine).
        workers_seen = {pid for pid, role in children.items() if role == "worker"}
        assert worker_pids(engine) == workers_seen
    finally:
        code = s.stop()
    assert code == 0, s.output()
    assert all(gone(pid) for pid in children), s.output()
    assert "Traceback" not in s.output()


def test_a_killed_child_is_started_again_and_serving_goes_on(served):
    engine, start = served
    s = start("--workers", "1")
    try:
        base = s.url()
        before = s.children()
        worker = next(pid for pid, role in before.items() if role == "worker")
        edge = next(pid for pid, role in before.items() if role == "edge")
        os.kill(worker, signal.SIGKILL)
        os.kill(edge, signal.SIGKILL)

        def replaced() -> dict[int, str] | None:
            now = s.children()
            fresh = {pid: role for pid, role in now.items() if pid not in before}
            return now if sorted(fresh.values()) == ["edge", "worker"] else None

        wait_for(replaced, "both children started again", within=120)
        # The same port: the supervisor holds the listening socket, the new edge accepts on it.
        with httpx.Client(base_url=base, timeout=30) as client:
            answer = wait_for(lambda: _try(lambda: post_webhook(client, "wamid.after-restart")), "the new edge")
        assert answer.status_code == 200
        wait_for(lambda: statuses(engine).get("wamid.after-restart") == "done", "dispatched by the new worker")
        log = s.output()
        assert "worker 1 exited (killed by SIGKILL); restarting" in log
        assert "edge 1 exited (killed by SIGKILL); restarting" in log
        assert KEY not in log and APP_SECRET not in log
    finally:
        code = s.stop()
    assert code == 0, s.output()


def _try(call: Callable[[], httpx.Response]) -> httpx.Response | None:
    try:
        return call()
    except httpx.TransportError:
        return None


def test_sigterm_drains_every_acknowledged_event_is_kept_and_all_children_exit(served):
    engine, start = served
    s = start("--workers", "1")
    acked: list[str] = []
    failed: list[str] = []
    firing = threading.Event()
    try:
        base = s.url()
        children = s.children()

        def fire(lane: int) -> None:
            # Keep posting until the edge is gone: some requests land in the middle of the drain.
            with httpx.Client(base_url=base, timeout=30) as client:
                n = 0
                while True:
                    wamid = f"wamid.drain-{lane}-{n}"
                    n += 1
                    try:
                        answer = post_webhook(client, wamid)
                    except httpx.TransportError:
                        failed.append(wamid)
                        return
                    (acked if answer.status_code == 200 else failed).append(wamid)
                    firing.set()

        lanes = [threading.Thread(target=fire, args=(lane,), daemon=True) for lane in range(4)]
        for lane in lanes:
            lane.start()
        firing.wait(60)
        wait_for(lambda: len(acked) >= 40, "webhooks acknowledged under load")
    finally:
        code = s.stop()
    for lane in lanes:
        lane.join(30)
    assert code == 0, s.output()
    assert all(gone(pid) for pid in children), s.output()
    kept = statuses(engine)
    # Nothing acknowledged is lost: dispatched, or durably pending for the next start.
    assert {kept.get(wamid) for wamid in acked} <= {"done", "pending"}, s.output()
    assert sum(kept[w] == "done" for w in acked) > 0
    assert worker_pids(engine) == set()  # the workers said goodbye (no stale heartbeat row)
    assert "draining, edges first, then workers" in s.output()


def test_in_process_mode_runs_one_process_and_refuses_several(served):
    engine, start = served
    s = start("--in-process")
    try:
        s.url()
        assert s.children() == {}  # one process: no supervisor, no children
    finally:
        assert s.stop() == 0, s.output()
    usage = subprocess.run([str(CONNECTZAP), "serve", "--in-process", "--workers", "2"], capture_output=True,
                           text=True, timeout=120)
    assert usage.returncode == 2 and "--in-process runs one edge" in usage.stderr
