"""``connectzap init`` and ``connectzap doctor``: a starter config, and an offline check of it."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import click

from .base import Ctx, cli, pass_ctx


@cli.command()
@click.argument("path", default="connectzap.toml", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write a commented starter config to PATH."""
    target = Path(path)
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; use --force to overwrite")
    target.write_text(resources.files("connectzap").joinpath("starter.toml").read_text())
    click.echo(f"wrote {target}; run: connectzap --config {target} doctor")


@cli.command()
@pass_ctx
def doctor(obj: Ctx) -> None:
    """Check the configuration offline: settings, connectors, database, secrets."""
    from ..core.settings import redacted
    settings = obj.settings()
    click.echo(f"config: {settings.config_path or '(built-in defaults)'}")
    app = obj.app()
    click.echo(f"database: {app.db.dialect} ({'reachable' if app.db.ping() else 'UNREACHABLE'})")
    click.echo(f"channel: {app.channel.name}")
    if app.paused():
        click.echo(f"warning: sending is PAUSED: {app.paused()} (fix it, then: connectzap resume)")
    click.echo("connectors: " + (", ".join(sorted(app.connectors)) or "(none)"))
    cached = app.templates()
    click.echo(f"templates cached: {len(cached)} ({sum(t.status == 'APPROVED' for t in cached)} approved)")
    from ..core.plugins import load_failures
    problems = [f"plugin {f.name}: {f.error}" for f in load_failures()]
    if app.channel_missing:
        problems.append(app.channel_missing)
    if not settings.api.keys:
        click.echo("note: api.keys is empty: `serve` uses the generated key in "
                   f"{settings.data_dir / 'api-key'}")
    for p in problems:
        click.echo(f"warning: {p}")
    if os.environ.get("CONNECTZAP_DOCTOR_SHOW"):
        click.echo(json.dumps(redacted(settings.model_dump()), indent=2, default=str))
    click.echo("ok" if not problems else f"{len(problems)} warning(s)")

