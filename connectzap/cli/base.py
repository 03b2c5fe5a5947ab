"""The root ``connectzap`` group and what every command shares: the engine, time and error formats."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, NoReturn

import click

from .exits import EPILOG, ExitCode, describe


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
    """The root group: every failure of every command (bundled or a plugin's) becomes one line,
    ``error: ...`` on stderr, and an exit code from :class:`~.exits.ExitCode` -- never a traceback."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:  # the root's own options (subcommands are parsed inside invoke)
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            fail(exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, SystemExit):
            raise
        except BrokenPipeError:
            _quiet_stdout()
            sys.exit(ExitCode.OK)  # the reader (`| head`) has what it wanted
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(ExitCode.INTERRUPTED)
        except Exception as exc:
            if os.environ.get("CONNECTZAP_DEBUG") and not isinstance(exc, (click.ClickException, click.Abort)):
                raise
            fail(exc)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().main(*args, **kwargs)
        finally:
            try:  # what is still buffered meets a closed pipe here, after the command returned
                sys.stdout.flush()
            except BrokenPipeError:
                _quiet_stdout()
            except (ValueError, OSError):
                pass


def fail(exc: BaseException) -> NoReturn:
    """Print ``exc`` as one ``error: ...`` line and exit with its code."""
    line, code = describe(exc)
    try:
        click.echo(f"error: {line}", err=True)
    except BrokenPipeError:
        pass
    sys.exit(code)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@click.group(cls=Group, epilog=EPILOG)
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

    # The command reports what happened itself; the workers' own log lines would only repeat it.
    logger = logging.getLogger("connectzap")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        asyncio.run(run())
    finally:
        logger.setLevel(level)
