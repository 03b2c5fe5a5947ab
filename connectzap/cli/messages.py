"""``connectzap messages ...``: outbound messages and why they were refused."""

from __future__ import annotations

import json

import click

from ..core.phones import mask
from .base import Ctx, cli, fmt_time, pass_ctx


@cli.group()
def messages() -> None:
    """Inspect outbound messages."""


@messages.command("list")
@click.option("--phone")
@click.option("--status")
@click.option("--limit", default=50, show_default=True)
@pass_ctx
def messages_list(obj: Ctx, phone: str | None, status: str | None, limit: int) -> None:
    """List recent messages, newest first."""
    rows = obj.app().messages(phone=phone, status=status, limit=limit)
    for r in rows:
        what = r["template_name"] or r["content_type"]
        click.echo(f"{r['id']} {fmt_time(r['created_at'])} {r['status']:9} {what}"
                   + (f" reason={r['reason']}" if r["reason"] else ""))
    if not rows:
        click.echo("no messages")


@messages.command("show")
@click.argument("message_id")
@pass_ctx
def messages_show(obj: Ctx, message_id: str) -> None:
    """Show one message. Its text and number are gone once it is finished."""
    row = obj.app().message(message_id)
    shown = {k: v for k, v in row.items() if k not in ("request_hash", "claimed_by", "claimed_until")}
    shown["recipient"] = mask(row["recipient"]) if row["recipient"] else None
    shown["content"] = json.loads(row["content"]) if row["content"] else None
    for k in ("created_at", "updated_at", "not_before", "next_attempt_at"):
        shown[k] = fmt_time(row[k])
    click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
