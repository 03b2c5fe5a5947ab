"""The HTTP service under uvicorn: one edge process (``connectzap serve`` runs several, and the
workers, under :mod:`.supervisor`), optionally with a worker in the same event loop.

:func:`create_app` builds the FastAPI app (see :mod:`connectzap.core.http`); :func:`serve` runs
it under uvicorn. SIGTERM or SIGINT shuts down gracefully: stop accepting connections, answer
the requests in flight, commit the journal writer's queue, let the worker finish what it holds,
close the engine -- then exit 0. A second SIGINT stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import SecretStr

from . import heap
from .app import Connectzap
from .errors import ConfigurationError, StartupError
from .event_loop import loop_factory
from .http import create_app
from .http.app import Extension
from .settings import Settings, create_once
from .supervisor import Lifeline

__all__ = ["create_app", "ensure_api_key", "listen", "serve"]

log = logging.getLogger("connectzap.server")


class _Server(uvicorn.Server):
    """uvicorn's server, minus its own signal handling: :func:`serve` owns the signals, so that
    a SIGTERM ends in a clean exit 0 instead of being re-raised after shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def ensure_api_key(settings: Settings) -> Path | None:
    """With no ``api.keys`` configured, use (creating it once) a random key in ``data_dir/api-key``,
    readable only by its owner, so a first ``serve`` is usable at once. Returns the file, or None
    when keys are configured."""
    if settings.api.keys:
        return None
    path = settings.data_dir / "api-key"
    key = create_once(path, lambda: secrets.token_urlsafe(32))
    if len(key) < 16:
        raise ConfigurationError(f"{path} holds no usable API key (at least 16 characters); delete it to get a new one")
    settings.api.keys = [SecretStr(key)]
    return path


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket up front, so an address in use is one clear :class:`StartupError`
    (uvicorn would log it and exit from inside the event loop)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror} (check --host or api.host)") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"port {port} on {host} is already in use (another connectzap serve?); "
                               "choose another with --port or api.port") from None
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror} (check --host or api.host)") from None
    sock.set_inheritable(True)
    return sock


async def run(engine: Connectzap, *, host: str, port: int, run_workers: bool,
              announce: Callable[[str], Any] | None = None, listener: socket.socket | None = None,
              lifeline: Lifeline | None = None, extensions: Sequence[Extension] = (),
              **uvicorn_options: Any) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully (on ``listener`` when already bound).
    Under ``serve``'s supervisor (``lifeline``): say when listening, and drain if the supervisor is gone."""
    listener = listener or listen(host, port)
    app = create_app(engine, run_workers=run_workers, extensions=extensions)
    # log_config=None: uvicorn keeps its hands off logging; `serve` configured it (connectzap.core.logs).
    options: dict[str, Any] = {"http": "httptools", "lifespan": "on", "access_log": False, "log_config": None,
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
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    if server.started:
        heap.settle()  # what started lives as long as the process: out of the collector's passes
    if server.started and announce is not None:
        bound = server.servers[0].sockets[0].getsockname()
        announce(f"http://{bound[0]}:{bound[1]}")
    if server.started and lifeline is not None:
        lifeline.watch(lambda: stop(signal.SIGTERM))
        lifeline.ready()
    try:
        await serving
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await engine.aclose()


def serve(engine: Connectzap, *, host: str, port: int, run_workers: bool = True,
          announce: Callable[[str], Any] | None = None, listener: socket.socket | None = None,
          lifeline: Lifeline | None = None, extensions: Sequence[Extension] = ()) -> None:
    """Run :func:`run` on uvloop when available (blocking)."""
    factory = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(run(engine, host=host, port=port, run_workers=run_workers, announce=announce,
                       listener=listener, lifeline=lifeline, extensions=extensions))
    if not sys.stdout.closed:
        sys.stdout.flush()
