"""The ``connectzap`` command line, one module per command group.

Errors are one clear line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import logging

from . import (  # noqa: F401 - they register
    campaigns,
    consent,
    console,
    conversations,
    events,
    messages,
    plugins,
    running,
    sending,
    setup,
    simulate,
)
from .base import Ctx, cli, fail, pass_ctx
from .exits import CommandFailed, ExitCode
from .output import Column, emit, json_option, progress, track

__all__ = ["Column", "CommandFailed", "Ctx", "ExitCode", "cli", "emit", "fail", "json_option", "main", "pass_ctx",
           "progress", "track"]


def _install_plugin_commands() -> None:
    from ..core.hooks import register_commands
    register_commands(cli)


def main() -> None:
    # One-shot commands report outcomes themselves: only errors (a plugin that failed to load)
    # reach stderr as log lines. `serve` and `worker` set their own level (--log-level).
    logging.getLogger("connectzap").setLevel(logging.ERROR)
    try:
        _install_plugin_commands()
    except Exception as exc:  # noqa: BLE001 - a plugin's registration failure is one line like any other
        fail(exc)
    cli(prog_name="connectzap")
