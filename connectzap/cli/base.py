"""The root ``connectzap`` group and what every command shares: the engine, time and error formats."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from typing import Any

import click

from ..core.errors import ConnectzapError


class Ctx:
    def __init__(self, config: str | None) -> None:
        self.config = config
        self._app: Any = None

    def settings(self) -> Any:
        from ..core.settings import load_settings
        return load_settings(self.config)

    def app(self, **kwargs: Any) -> Any:
        if self._app is None:
            from ..core.app import Connectzap
            self._app = Connectzap(self.settings(), **kwargs).start()
        return self._app


pass_ctx = click.make_pass_decorator(Ctx)


class Group(click.Group):
    """Turns connectzap errors (and anything unexpected) into one line on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConnectzapError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("CONNECTZAP_DEBUG"):
                raise
            click.echo(f"error: unexpected {type(exc).__name__}: {exc} (set CONNECTZAP_DEBUG=1 for details)",
                       err=True)
            sys.exit(2)


@click.group(cls=Group)
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="CONNECTZAP_CONFIG",
              help="TOML config file (default: $CONNECTZAP_CONFIG, else built-in defaults).")
@click.version_option(package_name="connectzap")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """connectzap: consented WhatsApp messages from your shop and CRM."""
    ctx.obj = Ctx(config)



def fmt_time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def drain(app: Any) -> None:
    """Run the workers until nothing is due (``send --wait``, ``simulate``)."""
    from ..core.worker import Worker

    async def run() -> None:
        try:
            await Worker(app).run_until_idle()
        finally:
            await app.channel.aclose()  # the live channel's HTTP connections belong to this event loop

    asyncio.run(run())
