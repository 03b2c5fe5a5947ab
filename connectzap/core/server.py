"""``connectzap serve``: the HTTP service and the workers in one process, one event loop.

:func:`create_app` builds the FastAPI app (see :mod:`connectzap.core.http`); :func:`serve` runs
it under uvicorn. SIGTERM or SIGINT shuts down gracefully: stop accepting connections, answer
the requests in flight, commit the journal writer's queue, let the worker finish what it holds,
close the engine -- then exit 0. A second SIGINT stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from .app import Connectzap
from .http import create_app

__all__ = ["create_app", "serve"]

log = logging.getLogger("connectzap.server")


class _Server(uvicorn.Server):
    """uvicorn's server, minus its own signal handling: :func:`serve` owns the signals, so that
    a SIGTERM ends in a clean exit 0 instead of being re-raised after shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it on Linux and macOS
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


async def run(engine: Connectzap, *, host: str, port: int, run_workers: bool,
              announce: Callable[[str], Any] | None = None, **uvicorn_options: Any) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully."""
    app = create_app(engine, run_workers=run_workers)
    options: dict[str, Any] = {"http": "httptools", "lifespan": "on", "access_log": False,
                               "log_level": "warning", "timeout_graceful_shutdown": 30,
                               "server_header": False}
    options.update(uvicorn_options)
    server = _Server(uvicorn.Config(app, host=host, port=port, **options))
    loop = asyncio.get_running_loop()

    def stop(sig: signal.Signals) -> None:
        if server.should_exit and sig == signal.SIGINT:
            server.force_exit = True
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    if server.started and announce is not None:
        bound = server.servers[0].sockets[0].getsockname()
        announce(f"http://{bound[0]}:{bound[1]}")
    try:
        await serving
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await engine.aclose()


def serve(engine: Connectzap, *, host: str, port: int, run_workers: bool = True,
          announce: Callable[[str], Any] | None = None) -> None:
    """Run :func:`run` on uvloop when available (blocking)."""
    factory = _loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(run(engine, host=host, port=port, run_workers=run_workers, announce=announce))
    if not sys.stdout.closed:
        sys.stdout.flush()
