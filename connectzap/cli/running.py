"""``connectzap serve``, ``connectzap worker`` and ``connectzap resume``: running the service."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import click

from ..core import logs
from .base import Ctx, cli, pass_ctx
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


@cli.command()
@click.option("--no-dispatch", is_flag=True, help="Only send; do not run event hooks.")
@click.option("--no-send", is_flag=True, help="Only run event hooks; do not send.")
@log_level_option
@log_format_option
@pass_ctx
def worker(obj: Ctx, no_dispatch: bool, no_send: bool, log_level: str, log_format: str) -> None:
    """Run workers (dispatcher and sender) until SIGTERM or Ctrl-C; in-flight work is finished first."""
    from ..core.worker import Worker
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
        await w.run(stop, dispatch=not no_dispatch, send=not no_send)
        await app.aclose()

    asyncio.run(main())


# --- serve ---------------------------------------------------------------------------------

@cli.command()
@click.option("--host", default=None, help="Listen address (default: api.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Listen port (default: api.port, 8000; 0 picks a free port).")
@click.option("--no-workers", is_flag=True, help="Only the HTTP service; run `connectzap worker` elsewhere.")
@log_level_option
@log_format_option
@pass_ctx
def serve(obj: Ctx, host: str | None, port: int | None, no_workers: bool, log_level: str, log_format: str) -> None:
    """Run the HTTP service (webhooks + REST API) and the workers until SIGTERM or Ctrl-C.

    Shutdown is graceful: requests in flight are answered, queued webhooks journaled and the
    workers finish what they hold before the process exits.
    """
    from ..core.server import ensure_api_key, listen
    from ..core.server import serve as run_server
    app = obj.app()
    refuse_unready(app)  # never a dead letter at the first real order
    api = app.settings.api
    host, port = host or api.host, api.port if port is None else port
    listener = listen(host, port)  # an address in use fails here, before anything else is said
    generated = ensure_api_key(app.settings)
    _configure_logging(app, log_level, log_format)
    if generated is not None:
        logs.announce(f"REST API key (no api.keys configured): {generated}", api_key_file=str(generated))

    def announce(url: str) -> None:
        workers = "without workers" if no_workers else "with workers"
        webhooks = sorted(app.connectors)
        logs.announce(f"connectzap serving on {url} ({app.db.dialect}, channel {app.channel.name}, {workers}); "
                      f"webhooks: {', '.join(webhooks) or 'none'}", url=url, database=app.db.dialect,
                      channel=app.channel.name, workers=not no_workers, webhooks=webhooks)

    run_server(app, host=host, port=port, run_workers=not no_workers, announce=announce, listener=listener)


@cli.command()
@pass_ctx
def resume(obj: Ctx) -> None:
    """Resume sending after it was paused (e.g. WhatsApp said the access token expired)."""
    app = obj.app()
    reason = app.paused()
    if reason is None:
        click.echo("sending is not paused")
        return
    app.set_paused(None)
    click.echo(f"sending resumed (it was paused: {reason})")

