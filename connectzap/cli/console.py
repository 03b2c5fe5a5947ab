"""``connectzap console ...``: the operator console's users and audit log."""

from __future__ import annotations

import re

import click

from ..core.views import utc
from .base import Ctx, cli, pass_ctx
from .output import Column, emit, json_option

NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


@cli.group("console")
def console_group() -> None:
    """Users of the web console at /console (turn it on with [console] enabled = true)."""


@console_group.command("adduser")
@click.argument("name")
@click.password_option("--password", prompt="Password", confirmation_prompt=True,
                       help="Asked for (hidden) when not given; at least 12 characters.")
@pass_ctx
def console_adduser(obj: Ctx, name: str, password: str) -> None:
    """Add a console user, or set a new password for one (their sessions stay until they expire)."""
    from ..console.passwords import hash_password
    if not NAME.fullmatch(name):
        raise click.BadParameter("letters, digits and . _ @ - only, at most 64", param_hint="NAME")
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--password") from None
    app = obj.app()
    app.operators.add_user(name, hashed)
    app.operators.record("cli", "adduser", name)
    click.echo(f"console user {name} can log in")


@console_group.command("deluser")
@click.argument("name")
@pass_ctx
def console_deluser(obj: Ctx, name: str) -> None:
    """Remove a console user and end their sessions."""
    app = obj.app()
    if not app.operators.remove_user(name):
        raise click.ClickException(f"no console user {name}")
    app.operators.record("cli", "deluser", name)
    click.echo(f"console user {name} removed")


@console_group.command("users")
@json_option
@pass_ctx
def console_users(obj: Ctx, as_json: bool) -> None:
    """List console users."""
    users = [{**u, "created_at": utc(u["created_at"])} for u in obj.app().operators.users()]
    emit(users, as_json, columns=[Column("name"), Column("created", "created_at")],
         empty="no console users (connectzap console adduser NAME)")


@console_group.command("audit")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
@pass_ctx
def console_audit(obj: Ctx, limit: int, as_json: bool) -> None:
    """What was done in the console (and failed logins), newest first."""
    rows = [{**a, "at": utc(a["at"])} for a in obj.app().operators.audit_log(limit)]
    emit(rows, as_json,
         columns=[Column("at"), Column("actor"), Column("action"), Column("target"), Column("detail"),
                  Column("address")], empty="nothing recorded")
