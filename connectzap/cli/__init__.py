"""The ``connectzap`` command line, one module per command group.

Errors are one clear line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys

import click

from ..core.errors import ConnectzapError
from . import (  # noqa: F401 - they register
    consent,
    events,
    messages,
    plugins,
    running,
    sending,
    setup,
    simulate,
)
from .base import Ctx, cli, pass_ctx

__all__ = ["Ctx", "cli", "main", "pass_ctx"]


def _install_plugin_commands() -> None:
    from ..core.hooks import register_commands
    register_commands(cli)


def main() -> None:
    try:
        _install_plugin_commands()
    except ConnectzapError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    cli(prog_name="connectzap")
