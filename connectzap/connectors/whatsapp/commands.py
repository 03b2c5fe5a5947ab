"""``connectzap templates ...`` and ``connectzap profile ...`` (registered through ``register_commands``).

They talk to the Graph API at ``[connectors.whatsapp] api_base_url`` (Meta, a BSP, or a local
fake) with the configured access token. Errors are one line (the root group prints them).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from ...core.errors import ConfigurationError
from ...core.hookspecs import hookimpl
from .client import GraphClient
from .settings import WhatsAppSettings

T = TypeVar("T")


def _settings(obj: Any) -> WhatsAppSettings:
    from pydantic import ValidationError

    from ...core.settings import describe_validation_error
    section = obj.settings().connector_section("whatsapp") or {}
    try:
        settings = WhatsAppSettings.model_validate(section)
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc, "connectors.whatsapp")) from None
    if not settings.live:
        raise ConfigurationError("connectors.whatsapp.access_token is not set: configure the Cloud API first")
    return settings


def _call(settings: WhatsAppSettings, work: Callable[[GraphClient], Awaitable[T]]) -> T:
    async def run() -> T:
        client = GraphClient(settings)
        try:
            return await work(client)
        finally:
            await client.aclose()
    return asyncio.run(run())


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(templates_group)
    cli.add_command(profile_group)


# --- templates -------------------------------------------------------------------------------

@click.group("templates")
def templates_group() -> None:
    """Message templates: sync the cache the send gate checks, create and delete them."""


@templates_group.command("sync")
@click.pass_obj
def templates_sync(obj: Any) -> None:
    """Fetch every template (all pages) from the business account into the cache."""
    from . import templates_api
    settings = _settings(obj)
    app = obj.app()
    kept, removed = _call(settings, lambda c: templates_api.sync(c, app))
    click.echo(f"synced {kept} templates" + (f", removed {removed} gone from the account" if removed else ""))


@templates_group.command("list")
@click.pass_obj
def templates_list(obj: Any) -> None:
    """List cached templates: name, language, status, category, parameter format."""
    from ...core import templates as cache
    app = obj.app()
    with app.db.read() as conn:
        rows = cache.all_templates(conn)
    for t in rows:
        click.echo(f"{t.name:40} {t.language:8} {t.status:10} {t.category:15} {t.parameter_format}")
    if not rows:
        click.echo("no templates cached; run: connectzap templates sync")


@templates_group.command("show")
@click.argument("name")
@click.pass_obj
def templates_show(obj: Any, name: str) -> None:
    """Show every cached language of template NAME with its components."""
    from ...core import templates as cache
    from ...core.errors import NotFoundError
    app = obj.app()
    with app.db.read() as conn:
        found = [t for t in cache.all_templates(conn) if t.name == name]
    if not found:
        raise NotFoundError(f"no cached template {name!r}; run: connectzap templates sync")
    click.echo(json.dumps([t.model_dump(mode="json") for t in found], indent=2, ensure_ascii=False))


@templates_group.command("create")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_obj
def templates_create(obj: Any, file: str) -> None:
    """Submit the template defined in FILE (JSON: name, language, category, components) for review."""
    from . import templates_api
    settings = _settings(obj)
    definition = templates_api.read_definition(file)
    app = obj.app()
    info = _call(settings, lambda c: templates_api.create(c, app, definition))
    click.echo(f"created {info.name} ({info.language}): {info.status}, {info.category}, id {info.id}")


@templates_group.command("delete")
@click.argument("name")
@click.pass_obj
def templates_delete(obj: Any, name: str) -> None:
    """Delete template NAME (every language) from the account and the cache."""
    from . import templates_api
    settings = _settings(obj)
    app = obj.app()
    removed = _call(settings, lambda c: templates_api.delete(c, app, name))
    click.echo(f"deleted {name} ({removed} cached language{'s' if removed != 1 else ''} removed)")


# --- profile ---------------------------------------------------------------------------------

@click.group("profile")
def profile_group() -> None:
    """The business profile shown to customers."""


@profile_group.command("show")
@click.pass_obj
def profile_show(obj: Any) -> None:
    """Show the business profile of the configured phone number."""
    from . import profile
    data = _call(_settings(obj), profile.show)
    for key in (*profile.FIELDS, "profile_picture_url"):
        value = data.get(key)
        if isinstance(value, list):
            value = ", ".join(value)
        click.echo(f"{key:20} {value if value not in (None, '') else '-'}")


@profile_group.command("set")
@click.option("--about")
@click.option("--address")
@click.option("--description")
@click.option("--email")
@click.option("--website", "websites", multiple=True, help="Repeat for up to two websites.")
@click.option("--vertical", help="Business category, e.g. RETAIL.")
@click.pass_obj
def profile_set(obj: Any, about: str | None, address: str | None, description: str | None, email: str | None,
                websites: tuple[str, ...], vertical: str | None) -> None:
    """Change the given profile fields; the others stay as they are."""
    from . import profile
    changes: dict[str, Any] = {k: v for k, v in (("about", about), ("address", address),
                                                 ("description", description), ("email", email),
                                                 ("vertical", vertical.upper() if vertical else None)) if v is not None}
    if websites:
        changes["websites"] = list(websites)
    settings = _settings(obj)
    _call(settings, lambda c: profile.update(c, changes))
    click.echo("profile updated: " + ", ".join(sorted(changes)))
