"""``connectzap templates ...``, ``connectzap profile ...`` and ``connectzap whatsapp limits``
(registered through ``register_commands``).

They talk to the Graph API at ``[connectors.whatsapp] api_base_url`` (Meta, a BSP, or a local
fake) with the configured access token; without one, the template commands work on the sandbox
(:mod:`.sandbox_templates`). Errors are one line (the root group prints them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from ...cli.output import Column, emit, json_option
from ...core.errors import ConfigurationError
from ...core.hookspecs import hookimpl
from ...core.wording import counted
from .client import GraphClient
from .settings import WhatsAppSettings
from .template_management import fmt_time

T = TypeVar("T")


def _whatsapp(obj: Any) -> WhatsAppSettings:
    from pydantic import ValidationError

    from ...core.settings import describe_validation_error
    section = obj.settings().connector_section("whatsapp") or {}
    try:
        return WhatsAppSettings.model_validate(section)
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc, "connectors.whatsapp")) from None


def _settings(obj: Any, account: str | None = None, number: str | None = None) -> WhatsAppSettings:
    """The settings of a command that needs the Cloud API itself: those of the account ``--account``
    or ``--number`` names (with neither, the default number's; with one account, the section)."""
    settings = _whatsapp(obj)
    if not settings.live:
        raise ConfigurationError("connectors.whatsapp.access_token is not set: configure the Cloud API first")
    return settings.account_view(account, number)


def _one_account(obj: Any, account: str | None, doing: str) -> WhatsAppSettings:
    """The named account's settings; with several accounts the name is required (``doing`` says for what)."""
    settings = _whatsapp(obj)
    if len(settings.accounts) > 1 and account is None:
        names = ", ".join(a.label for a in settings.accounts)
        raise click.UsageError(f"several accounts are configured: pass --account to {doing} ({names})")
    return _settings(obj, account)


ACCOUNT_OPTION = click.option("--account", help="Business account: its name or waba_id in "
                                                "[[connectors.whatsapp.accounts]] (see docs/several-accounts.md).")


def _call(settings: WhatsAppSettings, work: Callable[[GraphClient], Awaitable[T]]) -> T:
    async def run() -> T:
        client = GraphClient(settings)
        try:
            return await work(client)
        finally:
            await client.aclose()
    return asyncio.run(run())


def _next_step(settings: WhatsAppSettings) -> str:
    """What fills the template cache, in a command that works with this configuration."""
    if not settings.live:
        return "create one on the sandbox: connectzap templates create FILE"
    if not settings.waba_id:
        return "set waba_id in [connectors.whatsapp], then run: connectzap templates sync"
    return "run: connectzap templates sync"


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(templates_group)
    cli.add_command(profile_group)
    cli.add_command(whatsapp_group)


# --- templates -------------------------------------------------------------------------------

@click.group("templates")
def templates_group() -> None:
    """Message templates: sync the cache the send gate checks, create and delete them.

    Without Cloud API credentials they live on the sandbox, which reviews new templates as Meta
    would ([sandbox] template_approval_seconds later).
    """


@templates_group.command("sync")
@ACCOUNT_OPTION
@click.pass_obj
def templates_sync(obj: Any, account: str | None) -> None:
    """Fetch every template (all pages) from the business account (or the sandbox) into the cache;
    with several accounts, from each (or the one --account names)."""
    from . import template_management
    settings = _whatsapp(obj)
    app = obj.app()
    for line in asyncio.run(template_management.sync(app, settings, account if settings.live else None)):
        click.echo(line)


TEMPLATE_COLUMNS = [Column("name"), Column("language"), Column("status"), Column("category"),
                    Column("parameters", "parameter_format")]


@templates_group.command("list")
@json_option
@click.pass_obj
def templates_list(obj: Any, as_json: bool) -> None:
    """List cached templates: name, language, status, category, parameter format."""
    from ...core import templates as cache
    settings = _whatsapp(obj)
    app = obj.app()
    with app.db.read() as conn:
        rows = cache.all_templates(conn)
    emit(rows, as_json, columns=TEMPLATE_COLUMNS, empty=f"no templates cached; {_next_step(settings)}")
    if rows and not settings.live:
        # Notes for people: after a table on stdout; on stderr when stdout is JSON for a script.
        _sandbox_reviews(app, {(t.name, t.language): t.status for t in rows}, err=as_json)


def _sandbox_reviews(app: Any, cached: dict[tuple[str, str], str], *, err: bool = False) -> None:
    """Say when pending sandbox reviews end, and what brings their outcome into the cache."""
    from . import sandbox_templates
    for template in sandbox_templates.stored(app):
        shown = cached.get((template.name, template.language))
        if shown != "PENDING":
            continue
        when = fmt_time(template.review_at)
        if template.status() == "PENDING":
            click.echo(f"{template.name} ({template.language}): the sandbox's review ends at {when} UTC; "
                       "a running `connectzap serve` applies the outcome then (or run `connectzap templates sync` "
                       "after that)", err=err)
        else:
            click.echo(f"{template.name} ({template.language}): the sandbox's review ended at {when} UTC "
                       f"({template.status()}); run `connectzap templates sync` or start `connectzap serve` "
                       "to bring it into the cache", err=err)


@templates_group.command("show")
@click.argument("name")
@json_option
@click.pass_obj
def templates_show(obj: Any, name: str, as_json: bool) -> None:
    """Show every cached language of template NAME with its components (``--json``: as the Cloud API has them)."""
    from ...core import templates as cache
    from ...core.errors import NotFoundError
    settings = _whatsapp(obj)
    app = obj.app()
    with app.db.read() as conn:
        found = [t for t in cache.all_templates(conn) if t.name == name]
    if not found:
        raise NotFoundError(f"no cached template {name!r}; {_next_step(settings)}")
    if as_json:
        emit(found, True)
        return
    for index, template in enumerate(found):
        if index:
            click.echo()
        emit(template, False, columns=[
            Column("name"), Column("language"), Column("status"), Column("category"),
            Column("parameters", "parameter_format"), Column("id"),
            *(_component_column(c) for c in template.components)])


def _component_column(component: dict[str, Any]) -> Column:
    text = _component_text(component)
    return Column(_component_label(component), lambda _: text)


def _component_label(component: dict[str, Any]) -> str:
    kind = str(component.get("type", "component")).lower()
    return f"{kind} ({str(component['format']).lower()})" if component.get("format") else kind


def _component_text(component: dict[str, Any]) -> str:
    """A component in one line: its text, or its buttons' texts."""
    if component.get("text"):
        return " ".join(str(component["text"]).split())
    buttons = component.get("buttons") or []
    return " | ".join(f"[{b.get('type', '').lower()}] {b.get('text', '')}".strip() for b in buttons) or "-"


@templates_group.command("create")
@click.argument("file", type=click.Path(dir_okay=False))
@ACCOUNT_OPTION
@click.pass_obj
def templates_create(obj: Any, file: str, account: str | None) -> None:
    """Submit the template defined in FILE (JSON: name, language, category, components) for review
    (with several accounts, to the one --account names)."""
    from . import template_management, templates_api
    settings = _whatsapp(obj)
    definition = templates_api.read_definition(file)
    app = obj.app()
    if settings.live:
        account = _one_account(obj, account, "say where the template goes").account_label
    click.echo(asyncio.run(template_management.create(app, settings, definition, account if settings.live else None)))


@templates_group.command("ttl")
@click.argument("name")
@click.argument("seconds", type=int)
@ACCOUNT_OPTION
@click.pass_obj
def templates_ttl(obj: Any, name: str, seconds: int, account: str | None) -> None:
    """Set the time-to-live of template NAME (every language) to SECONDS: how long WhatsApp tries to
    deliver a message before dropping it. Meta's bounds: MARKETING 43200-2592000 (12 h to 30 days,
    honoured on the Marketing Messages API only), UTILITY 30-43200, AUTHENTICATION 30-900."""
    from . import templates_api
    settings = _whatsapp(obj)
    if not settings.live:
        raise click.ClickException("templates ttl needs the live Cloud API ([connectors.whatsapp] access_token)")
    app = obj.app()
    view = _one_account(obj, account, "say whose template it is")
    done = _call(view, lambda c: templates_api.set_ttl(c, app, name, seconds))
    for info in done:
        click.echo(f"{info.name} ({info.language}, {info.category}): time-to-live {seconds} s")


@templates_group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@ACCOUNT_OPTION
@click.pass_obj
def templates_delete(obj: Any, name: str, yes: bool, account: str | None) -> None:
    """Delete template NAME (every language) from the account (or the sandbox) and the cache."""
    from . import templates_api
    settings = _whatsapp(obj)
    view = _one_account(obj, account, "say which account's template to delete") if settings.live else settings
    where = ("the sandbox" if not settings.live else f"business account {view.account_label}" if settings.accounts
             else "the business account")
    if not yes:
        click.confirm(f"Delete template {name} in every language from {where}? Messages using it can no longer "
                      "be sent", abort=True, err=True)
    app = obj.app()
    if settings.live:
        removed = _call(view, lambda c: templates_api.delete(c, app, name))
    else:
        from . import sandbox_templates
        removed = sandbox_templates.delete(app, name)
    click.echo(f"deleted {name} from {where} ({counted(removed, 'cached language')} removed)")


# --- profile ---------------------------------------------------------------------------------

@click.group("profile")
def profile_group() -> None:
    """The business profile shown to customers."""


NUMBER_OPTION = click.option("--number", "phone_number_id",
                             help="Phone number id (default: [connectors.whatsapp] phone_number_id, or the first "
                                  "account's first number).")


@profile_group.command("show")
@NUMBER_OPTION
@json_option
@click.pass_obj
def profile_show(obj: Any, phone_number_id: str | None, as_json: bool) -> None:
    """Show the business profile of the configured phone number (or --number's)."""
    from . import profile
    data = _call(_settings(obj, number=phone_number_id), lambda c: profile.show(c, phone_number_id))
    shown = {key: data.get(key) for key in (*profile.FIELDS, "profile_picture_url")}
    emit(shown, as_json)


@profile_group.command("set")
@click.option("--about")
@click.option("--address")
@click.option("--description")
@click.option("--email")
@click.option("--website", "websites", multiple=True, help="Repeat for up to two websites.")
@click.option("--vertical", help="Business category, e.g. RETAIL.")
@NUMBER_OPTION
@click.pass_obj
def profile_set(obj: Any, about: str | None, address: str | None, description: str | None, email: str | None,
                websites: tuple[str, ...], vertical: str | None, phone_number_id: str | None) -> None:
    """Change the given profile fields; the others stay as they are."""
    from . import profile
    changes: dict[str, Any] = {k: v for k, v in (("about", about), ("address", address),
                                                 ("description", description), ("email", email),
                                                 ("vertical", vertical.upper() if vertical else None)) if v is not None}
    if websites:
        changes["websites"] = list(websites)
    if not changes:
        raise click.UsageError("give at least one field to change")
    profile.check(changes)  # offline, before anything is sent
    settings = _settings(obj, number=phone_number_id)
    _call(settings, lambda c: profile.update(c, changes, phone_number_id))
    click.echo("profile updated: " + ", ".join(sorted(changes)))


# --- the number's standing with Meta -----------------------------------------------------------

@click.group("whatsapp")
def whatsapp_group() -> None:
    """The WhatsApp Business number's limits and webhook routing, as Meta has them."""


@whatsapp_group.command("limits")
@click.option("--no-refresh", is_flag=True, help="Show the stored budget; do not ask the Graph API.")
@ACCOUNT_OPTION
@click.option("--number", "phone_number_id", help="Read this number's limit (its account's budget).")
@json_option
@click.pass_obj
def whatsapp_limits(obj: Any, no_refresh: bool, account: str | None, phone_number_id: str | None,
                    as_json: bool) -> None:
    """Read the messaging limit from the phone number's Graph fields, store it for every worker,
    and show the daily unique-recipient budget in force (the workers also read it at start and
    every messaging_limit_refresh_minutes). With several accounts: each account's (or the one
    --account or --number names)."""
    settings = _whatsapp(obj)
    app = obj.app()
    if not settings.live:
        click.echo("no access_token in [connectors.whatsapp]: nothing to read from the Graph API", err=True)
    if not settings.accounts:
        emit(_limit_of(app, settings, phone_number_id, refresh=settings.live and not no_refresh), as_json)
        return
    views = ([settings.account_view(account, phone_number_id)] if account or phone_number_id
             else settings.account_settings())
    shown = [{"account": view.account_label,
              **_limit_of(app, view, phone_number_id if account or phone_number_id else None, refresh=not no_refresh)}
             for view in views]
    emit(shown[0] if len(shown) == 1 else shown, as_json,
         columns=None if len(shown) == 1 else [Column(k) for k in shown[0]])


def _limit_of(app: Any, settings: WhatsAppSettings, number: str | None, *, refresh: bool) -> dict[str, Any]:
    """One account's reading (when ``refresh``) and the budget then in force."""
    import time

    from . import limits
    shown: dict[str, Any] = {"phone_number_id": number or settings.phone_number_id, "field": None, "reported": None}
    if refresh:
        reading = _call(settings, lambda c: limits.read(c, number))  # a failed request is the command's error
        limits.apply(app.db, settings, reading, time.time())
        shown.update(field=reading.field, reported=reading.reported)
    budget, source = limits.in_force(app.db, settings)
    shown.update(daily_unique_recipients=limits.shown(budget), source=source)
    return shown


@whatsapp_group.group("webhook")
def webhook_group() -> None:
    """Meta's alternate callback URL for a number or business account, so several services can
    each receive their own numbers' webhooks (see docs/whatsapp-webhooks.md)."""


@webhook_group.command("set")
@click.argument("callback_url")
@NUMBER_OPTION
@click.option("--whole-account", is_flag=True,
              help="Set it on the business account (waba_id) instead: every number without its own override.")
@click.option("--waba-id", help="Business account id for --whole-account (default: [connectors.whatsapp] waba_id).")
@ACCOUNT_OPTION
@click.option("--verify-token", prompt=True, hide_input=True,
              help="The token Meta's handshake sends to CALLBACK_URL; asked for (hidden) when not given, "
                   "and read from stdin when that is not a terminal -- better than a command line others can see.")
@click.pass_obj
def webhook_set(obj: Any, callback_url: str, phone_number_id: str | None, whole_account: bool, waba_id: str | None,
                account: str | None, verify_token: str) -> None:
    """Send the number's (or, with --whole-account, the business account's) webhooks to CALLBACK_URL.

    Meta first sends its verification handshake to CALLBACK_URL with the verify token, so the
    service there must already be running with that token."""
    from pydantic import SecretStr

    from . import webhook_override
    if phone_number_id and whole_account:
        raise click.UsageError("--number and --whole-account exclude each other")
    override = webhook_override.CallbackOverride(callback_url, SecretStr(verify_token))  # checked before sending
    if whole_account and waba_id and _whatsapp(obj).accounts:
        account = account or waba_id  # with several accounts, the WABA names the account (and its token)
    settings = (_one_account(obj, account, "say which business account") if whole_account
                else _settings(obj, account, phone_number_id))
    if whole_account:
        waba = _call(settings, lambda c: webhook_override.set_for_waba(c, override, waba_id))
        click.echo(f"business account {waba}: webhooks of numbers without their own override go to {callback_url}")
    else:
        number = _call(settings, lambda c: webhook_override.set_for_number(c, override, phone_number_id))
        click.echo(f"number {number}: webhooks go to {callback_url}")


@webhook_group.command("show")
@NUMBER_OPTION
@json_option
@click.pass_obj
def webhook_show(obj: Any, phone_number_id: str | None, as_json: bool) -> None:
    """Show the callback URL set for the number, its business account and the app, and which one
    Meta uses (the first set, in that order). Verify tokens are never shown: Meta does not return them."""
    from . import webhook_override
    shown = _call(_settings(obj, number=phone_number_id),
                  lambda c: webhook_override.show_for_number(c, phone_number_id))
    emit(shown, as_json)
