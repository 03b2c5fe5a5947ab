"""``connectzap serve``'s supervisor: the HTTP edge and the workers as child processes of one command.

Why processes: the edge (verify, parse, journal) and the workers (hooks, the gate, sends) are both
Python doing CPU work; in one process they take turns on one interpreter lock, so a busy dispatcher
slows the webhook answers and a burst of webhooks stalls the dispatcher. As separate processes each
gets a core.

The supervisor binds nothing and serves nothing itself. The caller hands it the command line of
every child; edge children inherit the one listening socket (bound by ``serve`` before anything
starts) and all accept on it. Each child also gets one end of a socket pair, its *lifeline*:

* the child writes one byte when it is ready (the edge listens, the worker runs);
* the supervisor reads end-of-file when the child exited (no child watcher, no polling);
* the child reads end-of-file when the supervisor is gone -- even after a SIGKILL -- and then
  drains and exits as on SIGTERM, so no orphan keeps running.

A child that dies is started again after a backoff (1 s, doubling up to 30 s; reset once it has
run for a minute). SIGTERM or SIGINT drains: edges first (stop accepting, answer what is in
flight, journal what is queued), then workers (finish what they claimed); a second signal kills
every child at once. Children run in their own process groups, so a Ctrl-C in the terminal reaches
the supervisor only and the order holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import logs

log = logging.getLogger("connectzap.supervisor")

FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
STABLE_AFTER_SECONDS = 60.0
"""A child that ran this long before it died is restarted after the first backoff again."""
EDGE_DRAIN_SECONDS = 45.0
"""uvicorn answers requests in flight for up to 30 s; then the journal writer commits its queue."""
WORKER_DRAIN_SECONDS = 60.0
"""Workers finish the events and messages they hold (a send may wait on a slow Graph API)."""


@dataclass
class ChildSpec:
    """One child the supervisor keeps running: ``role`` is ``edge`` or ``worker``; ``argv`` is its
    command line without the lifeline option (the supervisor appends ``--supervisor-fd N``)."""

    role: str
    index: int
    argv: Sequence[str]
    pass_fds: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.role} {self.index}"


@dataclass
class _Slot:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    lifeline: socket.socket | None = None
    started_at: float = 0.0
    failures: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    exit_code: int | None = None
    draining: bool = False
    """Sent SIGTERM by the drain: its exit code counts for the supervisor's."""


class Supervisor:
    """Starts the children, restarts the ones that die, drains them all on a signal.

    :meth:`run` returns the exit code: 0 when every child started and, at the end, exited 0 on its
    own; 1 when a child could not start, failed to drain in time, or a second signal forced the exit.
    """

    def __init__(self, children: Sequence[ChildSpec], *, on_ready: Callable[[], None] | None = None,
                 on_stopping: Callable[[], None] | None = None, env: dict[str, str] | None = None,
                 edge_drain_seconds: float = EDGE_DRAIN_SECONDS,
                 worker_drain_seconds: float = WORKER_DRAIN_SECONDS) -> None:
        self.slots = [_Slot(spec) for spec in children]
        self.on_ready = on_ready
        self.on_stopping = on_stopping
        self.env = env
        self.drain_seconds = {"edge": edge_drain_seconds, "worker": worker_drain_seconds}
        self.stopping = False
        self._stop = asyncio.Event()
        self._forced = asyncio.Event()
        self._serving = False
        self._start_failed = False
        self._keepers: dict[int, asyncio.Task[None]] = {}

    # --- one child --------------------------------------------------------------------------

    def _spawn(self, slot: _Slot) -> None:
        ours, theirs = socket.socketpair()
        spec = slot.spec
        argv = [*spec.argv, "--supervisor-fd", str(theirs.fileno())]
        try:
            # Own process group: a Ctrl-C in the terminal reaches the supervisor only, which then
            # drains the children in order (edges first).
            slot.process = subprocess.Popen(argv, pass_fds=(theirs.fileno(), *spec.pass_fds),
                                            stdin=subprocess.DEVNULL, env=self.env, process_group=0)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        slot.lifeline = ours
        slot.started_at = time.monotonic()
        slot.ready.clear()
        slot.exit_code = None
        log.debug("%s started (pid %s)", spec.name, slot.process.pid)

    async def _until_exit(self, slot: _Slot) -> int:
        """Wait for the child to exit (its end of the lifeline closes); set ``ready`` on the way."""
        assert slot.process is not None and slot.lifeline is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.sock_recv(slot.lifeline, 64)
            except (OSError, ValueError):  # ValueError: closed already (a restart that failed to spawn)
                data = b""
            if not data:
                break
            slot.ready.set()
        slot.lifeline.close()
        # The lifeline closes as the process ends; reaping it takes a moment at most.
        while (code := slot.process.poll()) is None:
            await asyncio.sleep(0.01)
        slot.exit_code = code
        return code

    async def _keep(self, slot: _Slot) -> None:
        """Run one child for the supervisor's lifetime: restart it (with backoff) whenever it dies."""
        while True:
            code = await self._until_exit(slot)
            if self.stopping or not self._serving:
                return  # draining, or it died before the start completed (:meth:`_run` fails then)
            lived = time.monotonic() - slot.started_at
            slot.failures = 1 if lived >= STABLE_AFTER_SECONDS else slot.failures + 1
            delay = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (slot.failures - 1))
            # Only what the operator needs: which child, how it ended, when it comes back. Never its
            # command line or environment (secrets may travel there).
            logs.emit(log, logging.WARNING, f"{slot.spec.name} exited ({_describe(code)}); restarting",
                      child=slot.spec.name, exit=_describe(code), ran_seconds=round(lived, 1),
                      restart_in_seconds=delay)
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
                return  # shutting down: it stays stopped
            except TimeoutError:
                pass
            try:
                self._spawn(slot)
            except OSError as exc:  # e.g. out of processes: the next round tries again, later
                logs.emit(log, logging.ERROR, f"{slot.spec.name} could not be started: {exc.strerror}",
                          child=slot.spec.name)

    def _send(self, slot: _Slot, sig: signal.Signals) -> None:
        process = slot.process
        if process is not None and process.poll() is None:
            if sig == signal.SIGTERM:
                slot.draining = True
            process.send_signal(sig)

    # --- all of them ------------------------------------------------------------------------

    def _signal(self, sig: signal.Signals) -> None:
        if self._stop.is_set():
            logs.emit(log, logging.WARNING, f"{sig.name} again: stopping every process now", signal=sig.name)
            self._forced.set()
            for slot in self.slots:
                self._send(slot, signal.SIGKILL)
        else:
            logs.emit(log, logging.INFO, f"{sig.name}: draining, edges first, then workers", signal=sig.name)
            self._stop.set()

    async def run(self) -> int:
        """Start, supervise until SIGTERM/SIGINT, drain; the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._signal, sig)
        try:
            for slot in self.slots:
                self._spawn(slot)
            self._keepers = {id(slot): asyncio.create_task(self._keep(slot)) for slot in self.slots}
            if await self._all_ready():
                self._serving = True
                if self.on_ready is not None:
                    self.on_ready()
                await self._stop.wait()
            # A signal during the start is a stop like any other; a child that died first, a failure.
            return await self._shutdown(failed=self._start_failed)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _all_ready(self) -> bool:
        """Every child said it is ready: True. A child that exits first, or a signal: False."""
        while not all(slot.ready.is_set() for slot in self.slots):
            dead = [slot for slot in self.slots if slot.exit_code is not None]
            for slot in dead:
                logs.emit(log, logging.ERROR, f"{slot.spec.name} failed to start ({_describe(slot.exit_code)})",
                          child=slot.spec.name, exit=_describe(slot.exit_code))
            if dead:
                self._start_failed = True
                return False
            if self._stop.is_set():
                return False
            await asyncio.sleep(0.05)
        return True

    async def _shutdown(self, failed: bool) -> int:
        self.stopping = True
        self._stop.set()  # wakes the children waiting for a restart: they stay stopped
        if self.on_stopping is not None:
            self.on_stopping()
        clean = not failed
        # Edges first, so nothing new is accepted while the workers still take what was.
        for role in ("edge", "worker"):
            clean &= await self._drain([slot for slot in self.slots if slot.spec.role == role], role)
        clean &= not self._forced.is_set()
        clean &= all(slot.exit_code == 0 for slot in self.slots if slot.draining)
        return 0 if clean else 1

    async def _drain(self, slots: list[_Slot], role: str) -> bool:
        """SIGTERM ``slots`` and wait for them; past the time allowed (or on a second signal) kill them."""
        if not slots:
            return True
        for slot in slots:
            self._send(slot, signal.SIGKILL if self._forced.is_set() else signal.SIGTERM)
        exited: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(self._keepers[id(slot)]
                                                                              for slot in slots)))
        forced: asyncio.Future[Any] = asyncio.create_task(self._forced.wait())
        done, _ = await asyncio.wait({exited, forced}, timeout=self.drain_seconds[role],
                                     return_when=asyncio.FIRST_COMPLETED)
        forced.cancel()
        if exited in done:
            return True
        if not self._forced.is_set():
            logs.emit(log, logging.ERROR, f"{role} processes did not stop within {self.drain_seconds[role]:.0f} s; "
                      "killing them", role=role)
        for slot in slots:
            self._send(slot, signal.SIGKILL)
        await exited
        return False


def _describe(code: int | None) -> str:
    """``exit code 3`` or ``killed by SIGKILL``, as Popen reports it (negative: a signal)."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# --- the child's side ---------------------------------------------------------------------------

class Lifeline:
    """A supervised child's end of its socket pair (``--supervisor-fd``): say ready, and learn when
    the supervisor is gone."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)

    def ready(self) -> None:
        try:
            self.sock.send(b"r")
        except OSError:
            pass  # the supervisor is gone already; watch() reports it

    def watch(self, on_lost: Callable[[], object]) -> None:
        """Call ``on_lost`` (in the running event loop) once the supervisor's end is closed."""
        loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                data = self.sock.recv(64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(self.sock)
                on_lost()

        loop.add_reader(self.sock, readable)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.sock)
        self.sock.close()
