"""``connectzap webhook test`` (a mapping, offline) and ``connectzap webhooks`` (outbound deliveries)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from pydantic import ValidationError

from ...cli.output import Column, emit, json_option
from ...core.errors import ConfigurationError, PayloadError
from ...core.phones import scrub
from ...core.views import utc
from ...core.wording import counted
from .settings import GenericSettings


def install(cli: click.Group) -> None:
    cli.add_command(webhook)
    cli.add_command(webhooks)


def _obj() -> Any:
    return click.get_current_context().find_root().obj


def generic_settings(settings: Any) -> GenericSettings:
    section = settings.connector_section("generic")
    if not section:
        raise ConfigurationError("the configuration has no [connectors.generic] section")
    try:
        return GenericSettings.model_validate(section)
    except ValidationError as exc:
        from ...core.settings import describe_validation_error
        raise ConfigurationError(f"connector generic cannot start: "
                                 f"{describe_validation_error(exc, 'connectors.generic')}") from None


@click.group()
def webhook() -> None:
    """Try generic webhook sources offline."""


@webhook.command("test")
@click.argument("name")
@click.argument("file", type=click.File("rb"))
@click.option("--form", is_flag=True, help="FILE is an HTML form post (application/x-www-form-urlencoded).")
@click.option("--webhook-id", help="Pretend the request carried this webhook-id header (Standard Webhooks).")
def webhook_test(name: str, file: Any, form: bool, webhook_id: str | None) -> None:
    """Show the events FILE would become when posted to source NAME (no signature check, nothing stored).

    Prints the events as JSON, or the 422 answer the endpoint would give, naming the field.
    """
    from ...core.phones import set_default_region
    from .mapping import MappedSource, decode_body
    settings = _obj().settings()
    set_default_region(settings.phones.default_region)
    generic = generic_settings(settings)
    spec = generic.sources.get(name)
    if spec is None:
        known = ", ".join(sorted(generic.sources)) or "none"
        raise click.ClickException(f"no source {name!r} in [connectors.generic.sources] (configured: {known})")
    body = file.read()
    content_type = "application/x-www-form-urlencoded" if form else "application/json"
    try:
        events = MappedSource(name, spec).events(decode_body(body, content_type), body=body, webhook_id=webhook_id)
    except PayloadError as exc:
        click.echo(json.dumps({"status": 422, "error": exc.code, "detail": exc.message, "field": exc.field},
                              indent=2))
        sys.exit(1)
    click.echo(json.dumps([e.model_dump(mode="json") for e in events], indent=2, ensure_ascii=False))


@click.group()
def webhooks() -> None:
    """Outbound webhook subscriptions: deliveries, dead letters, replays."""


DELIVERY_COLUMNS = [
    Column("event", "event_id"), Column("kind"), Column("subscription"), Column("status"), Column("attempts"),
    Column("updated", "updated_at"),
    Column("next try", lambda r: r["next_attempt_at"] if r["status"] == "pending" and r["attempts"] else None),
    Column("last error", "last_error"),
]


@webhooks.command("deliveries")
@click.option("--status", type=click.Choice(["pending", "done", "dead"]))
@click.option("--subscription", help="Only this subscription.")
@click.option("--limit", default=50, show_default=True)
@json_option
def webhooks_deliveries(status: str | None, subscription: str | None, limit: int, as_json: bool) -> None:
    """List deliveries to subscriptions, newest first."""
    from . import subscriptions
    app = _obj().app()
    with app.db.read() as conn:
        rows = subscriptions.listing(conn, status=status, subscription=subscription, limit=limit)
    for row in rows:
        row["updated_at"], row["next_attempt_at"] = utc(row["updated_at"]), utc(row["next_attempt_at"])
        row["last_error"] = scrub(row["last_error"]) if row["last_error"] else None
    emit(rows, as_json, columns=DELIVERY_COLUMNS, empty="no deliveries")


@webhooks.command("replay")
@click.argument("event_id", type=int)
@click.option("--subscription", help="Only this subscription (default: every one the event went to).")
def webhooks_replay(event_id: int, subscription: str | None) -> None:
    """Queue EVENT_ID again for delivery (a dead letter after the receiver was fixed, or a re-send)."""
    from . import subscriptions
    count = subscriptions.replay(_obj().app(), event_id, subscription)
    click.echo(f"event {event_id}: {counted(count, 'delivery', 'deliveries')} queued again; "
               "running workers send it on their next round")
