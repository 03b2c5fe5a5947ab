"""``connectzap init`` and ``connectzap doctor``: a starter config, and an offline check of it."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import click

from ..core.clock import utcnow
from ..core.settings import unknown_environment
from ..core.wording import counted
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
    for label, where in resolved_paths(settings):
        click.echo(f"  {label}: {where}")
    app = obj.app()
    click.echo(f"database: {app.db.dialect} ({'reachable' if app.db.ping() else 'UNREACHABLE'})")
    click.echo(f"channel: {app.channel.name}")
    for medium, channel in sorted(app.channels.items()):
        click.echo(f"  {medium}: {channel.name}")
    if app.paused():
        click.echo(f"warning: sending is PAUSED: {app.paused()} (fix it, then: connectzap resume)")
    click.echo("connectors: " + (", ".join(sorted(app.connectors)) or "(none)"))
    for connector in app.connectors.values():
        for note in connector.settings.doctor_notes():
            click.echo(f"  {note}")
    plugin_notes = [f"  {name}: {note}" for name, section in sorted(app.plugin_settings.items())
                    for note in section.doctor_notes()]
    if plugin_notes:
        click.echo("plugins:\n" + "\n".join(plugin_notes))
    cached = app.templates()
    click.echo(f"templates cached: {len(cached)} ({sum(t.status == 'APPROVED' for t in cached)} approved)")
    from ..core.plugins import load_failures
    problems = [f"plugin {f.name}: {f.error}" for f in load_failures()]
    problems += unknown_environment(dict(os.environ), environment_sections(app))
    today = utcnow().date()
    problems += [w for connector in app.connectors.values() for w in connector.settings.doctor_warnings(today)]
    if app.channel_missing:
        problems.append(app.channel_missing)
    if not settings.api.keys:
        click.echo("note: api.keys is empty: `serve` uses the generated key in "
                   f"{settings.data_dir / 'api-key'}")
    for p in problems:
        click.echo(f"warning: {p}")
    if os.environ.get("CONNECTZAP_DOCTOR_SHOW"):
        click.echo(json.dumps(redacted(settings.model_dump()), indent=2, default=str))
    refuse_unready(app)  # what serve and worker would refuse to run with: one line, exit 1
    click.echo("ok" if not problems else counted(len(problems), "warning"))


def environment_sections(app: Any) -> dict[str, dict[str, set[str] | None]]:
    """Connector and plugin section names with their keys (None: a section without a declared model)."""
    from ..core.hooks import collect_connectors, plugin_names
    connectors: dict[str, set[str] | None] = {
        name: set(cls.settings_model.model_fields) for name, cls in collect_connectors().items()}
    plugins: dict[str, set[str] | None] = {name: None for name in plugin_names()}
    plugins.update({name: set(type(model).model_fields) for name, model in app.plugin_settings.items()})
    return {"connectors": connectors, "plugins": plugins}


def refuse_unready(app: Any) -> None:
    """Raise a one-line ConfigurationError when the configuration names templates the cache lacks."""
    from ..core.errors import ConfigurationError
    problems = app.config_problems()
    if problems:
        raise ConfigurationError("; ".join(problems))



def resolved_paths(settings: Any) -> list[tuple[str, str]]:
    """Every file and folder this configuration reads or writes, absolute, so an operator can see
    that a cron job and ``serve`` share one database and one hash key."""
    from ..core.simulation import mask_url, sqlite_path
    url = settings.database_url
    database = sqlite_path(url)
    key_file = settings.hash_secret_file
    return [
        ("data dir", str(settings.data_dir)),
        ("database file", str(database)) if database is not None else ("database url", mask_url(url)),
        ("hash key", str(key_file) if key_file is not None else "privacy.hash_secret (from the config)"),
        ("api key", str(settings.data_dir / "api-key") if not settings.api.keys else "api.keys (from the config)"),
        ("sandbox log", str(settings.sandbox_log)),
    ]
