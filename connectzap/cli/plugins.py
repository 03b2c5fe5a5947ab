"""``connectzap plugins``: what is loaded, and what failed to load."""

from __future__ import annotations

import click

from .base import cli
from .output import Column, emit, json_option

PLUGIN_COLUMNS = [Column("name"), Column("distribution"), Column("version"), Column("hooks"), Column("error")]


@cli.command()
@json_option
@click.option("--hook", help="Only plugins implementing this hook.")
def plugins(as_json: bool, hook: str | None) -> None:
    """List loaded plugins with distribution, version, hooks and load errors."""
    from ..core.plugins import get_plugins
    rows = [r for r in get_plugins() if hook is None or hook in r["hooks"]]
    emit(rows, as_json, columns=PLUGIN_COLUMNS, empty="no plugins" + (f" implement {hook}" if hook else ""))
