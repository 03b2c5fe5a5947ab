"""``connectzap plugins``: what is loaded, and what failed to load."""

from __future__ import annotations

import json

import click

from .base import cli


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--hook", help="Only plugins implementing this hook.")
def plugins(as_json: bool, hook: str | None) -> None:
    """List loaded plugins with distribution, version, hooks and load errors."""
    from ..core.plugins import get_plugins
    rows = [r for r in get_plugins() if hook is None or hook in r["hooks"]]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    table = Table("name", "distribution", "version", "hooks", "error")
    for r in rows:
        table.add_row(r["name"], r["distribution"] or "-", r["version"] or "-", ", ".join(r["hooks"]) or "-",
                      r["error"] or "")
    Console().print(table)
