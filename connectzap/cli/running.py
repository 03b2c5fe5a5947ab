"""``connectzap serve``, ``connectzap worker`` and ``connectzap resume``: running the service."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from typing import Any

import click

from ..core import heap, logs
from ..core.wording import counted
from .base import Ctx, cli, pass_ctx
from .exits import CommandFailed
from .setup import refuse_unready

log_level_option = click.option(
    "--log-level", type=click.Choice(logs.LEVELS), default="info", show_default=True,
    help="info: one line per webhook, send outcome, refusal and dead letter; warning: problems only.")
log_format_option = click.option(
    "--log-format", type=click.Choice(logs.FORMATS), default="text", show_default=True,
    help="json: one JSON object per line, for log shippers.")


def _configure_logging(app: Any, level: str, fmt: str) -> None:
    """Logs never show a secret: every configured one (and the hash key) is masked if it ever appears."""
    settings = app.settings
    logs.configure(level, fmt, secrets=logs.secret_values(settings, settings.connectors, settings.plugins,
                                                          app.secret))


supervisor_fd_option = click.option("--supervisor-fd", type=int, default=None, hidden=True,
                                    help="Set by `serve`'s supervisor: the child's lifeline socket.")


@cli.command()
@click.option("--no-dispatch", is_flag=True, help="Only send; do not run event hooks.")
@click.option("--no-send", is_flag=True, help="Only run event hooks; do not send.")
@log_level_option
@log_format_option
@supervisor_fd_option
@pass_ctx
def worker(obj: Ctx, no_dispatch: bool, no_send: bool, log_level: str, log_format: str,
           supervisor_fd: int | None) -> None:
    """Run workers (dispatcher and sender) until SIGTERM or Ctrl-C; in-flight work is finished first."""
    from ..core.supervisor import Lifeline
    from ..core.worker import Worker
    lifeline = Lifeline(supervisor_fd) if supervisor_fd is not None else None
    app = obj.app()
    refuse_unready(app)
    _configure_logging(app, log_level, log_format)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        w = Worker(app)
        logs.announce(f"worker {w.id} running on {app.db.dialect}, channel {app.channel.name}", worker=w.id,
                      database=app.db.dialect, channel=app.channel.name)
        if lifeline is not None:  # under `serve`: say so, and stop (draining) if the supervisor is gone
            lifeline.watch(stop.set)
            lifeline.ready()
        heap.settle()  # what started lives as long as the process: out of the collector's passes
        await w.run(stop, dispatch=not no_dispatch, send=not no_send)
        await app.aclose()

    from ..core.event_loop import loop_factory
    with asyncio.Runner(loop_factory=loop_factory()) as runner:  # uvloop when installed, as the edge
        runner.run(main())


# --- serve ---------------------------------------------------------------------------------

@cli.command()
@click.option("--host", default=None, help="Listen address (default: api.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Listen port (default: api.port, 8000; 0 picks a free port).")
@click.option("--edge-processes", type=click.IntRange(1, 64), default=None,
              help="HTTP edge processes, all accepting on the one port (default: api.processes, 1).")
@click.option("--workers", "worker_processes", type=click.IntRange(0, 64), default=None,
              help="Worker processes (default: workers.processes, else one per CPU core but one, at least 1).")
@click.option("--no-workers", is_flag=True, help="Only the HTTP service; run `connectzap worker` elsewhere.")
@click.option("--in-process", is_flag=True,
              help="One process, one event loop: the edge and (unless --no-workers or --workers 0) "
                   "one worker, without a supervisor. For development and tests.")
@click.option("--listen-fd", type=int, default=None, hidden=True,
              help="Set by the supervisor: the listening socket an edge process inherits.")
@log_level_option
@log_format_option
@supervisor_fd_option
@pass_ctx
def serve(obj: Ctx, host: str | None, port: int | None, edge_processes: int | None, worker_processes: int | None,
          no_workers: bool, in_process: bool, listen_fd: int | None, log_level: str, log_format: str,
          supervisor_fd: int | None) -> None:
    """Run the HTTP service (webhooks + REST API) and the workers until SIGTERM or Ctrl-C.

    The edge and the workers are separate processes under this one (it restarts any that dies), so
    every CPU core is used. Shutdown is graceful: the edge stops accepting, answers the requests in
    flight and journals queued webhooks, then the workers finish what they hold; a second signal
    stops everything at once. One edge without workers (--no-workers) runs in this process.
    """
    from ..core.server import ensure_api_key, listen
    from ..core.server import serve as run_server
    from ..core.supervisor import Lifeline
    if in_process and ((edge_processes or 1) > 1 or (worker_processes or 0) > 1):
        raise click.UsageError("--in-process runs one edge and at most one worker; drop --edge-processes/--workers")
    lifeline = Lifeline(supervisor_fd) if supervisor_fd is not None else None
    app = obj.app()
    refuse_unready(app)  # never a dead letter at the first real order
    api = app.settings.api
    host, port = host or api.host, api.port if port is None else port
    edges = edge_processes or api.processes
    workers = 0 if no_workers else worker_processes if worker_processes is not None else default_workers(app.settings)
    # An address in use fails here, before anything else is said; a supervised edge inherits the socket.
    listener = socket.socket(fileno=listen_fd) if listen_fd is not None else listen(host, port)
    generated = ensure_api_key(app.settings)
    _configure_logging(app, log_level, log_format)
    if lifeline is not None:  # an edge under the supervisor, which announces for everyone
        run_server(app, host=host, port=port, run_workers=False, listener=listener, lifeline=lifeline,
                   extensions=http_extensions(app))
        return
    if generated is not None:
        logs.announce(f"REST API key (no api.keys configured): {generated}", api_key_file=str(generated))
    bound = listener.getsockname()
    single = in_process or (edges == 1 and workers == 0)

    def announce(url: str) -> None:
        if single:
            processes = "with workers" if workers else "without workers"
        else:
            processes = (f"{counted(edges, 'edge process', 'edge processes')} + "
                         f"{counted(workers, 'worker process', 'worker processes')}")
        webhooks = sorted(app.connectors)
        logs.announce(f"connectzap serving on {url} ({app.db.dialect}, channel {app.channel.name}, {processes}); "
                      f"webhooks: {', '.join(webhooks) or 'none'}", url=url, database=app.db.dialect,
                      channel=app.channel.name, workers=workers, edge_processes=1 if single else edges,
                      webhooks=webhooks)

    if single:
        run_server(app, host=host, port=port, run_workers=workers > 0, announce=announce, listener=listener,
                   extensions=http_extensions(app))
        return
    code = supervise(obj, app, listener, edges=edges, workers=workers, log_level=log_level, log_format=log_format,
                     on_ready=lambda: announce(f"http://{bound[0]}:{bound[1]}"))
    if code:
        raise CommandFailed("serve stopped after a failure (see the lines above)")


def http_extensions(app: Any) -> list[Any]:
    """What ``serve`` adds to the HTTP service beyond webhooks and REST: the console, when enabled."""
    if not app.settings.console.enabled:
        return []
    from ..console import mount
    return [mount]


def default_workers(settings: Any) -> int:
    """``workers.processes``, else one worker process per CPU core this process may use but one (the
    edge's), and at least one."""
    if settings.workers.processes is not None:
        return int(settings.workers.processes)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def supervise(obj: Ctx, app: Any, listener: socket.socket, *, edges: int, workers: int, log_level: str,
              log_format: str, on_ready: Any) -> int:
    """Run ``edges`` edge processes on ``listener`` and ``workers`` worker processes under a
    :class:`~connectzap.core.supervisor.Supervisor`; its exit code."""
    from ..core.supervisor import ChildSpec, Supervisor
    base = [sys.executable, "-m", "connectzap"]
    if obj.config:
        base += ["--config", os.path.abspath(obj.config)]
    logging_options = ["--log-level", log_level, "--log-format", log_format]
    host, port = listener.getsockname()[:2]
    edge = [*base, "serve", "--in-process", "--no-workers", "--host", str(host), "--port", str(port),
            "--listen-fd", str(listener.fileno()), *logging_options]
    children = [ChildSpec("edge", n + 1, edge, (listener.fileno(),)) for n in range(edges)]
    children += [ChildSpec("worker", n + 1, [*base, "worker", *logging_options]) for n in range(workers)]
    # The children open their own connections; this process keeps none while it supervises.
    app.close()
    supervisor = Supervisor(children, on_ready=on_ready, on_stopping=listener.close)
    return asyncio.run(supervisor.run())


@cli.command()
@pass_ctx
def resume(obj: Ctx) -> None:
    """Resume sending after it was paused (e.g. WhatsApp said the access token expired)."""
    reason = obj.app().resume_sending()
    if reason is None:
        click.echo("sending is not paused")
        return
    click.echo(f"sending resumed (it was paused: {reason})")

