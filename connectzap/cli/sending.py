"""``connectzap send``: one message through the send gate."""

from __future__ import annotations

import sys
from typing import Any

import click

from .base import Ctx, cli, drain, pass_ctx


@cli.command()
@click.argument("phone")
@click.option("--template", "template_name", help="Approved template name.")
@click.option("--language", default="en", show_default=True)
@click.option("--param", "params", multiple=True, help="Positional body parameter (repeat).")
@click.option("--named", multiple=True, help="Named body parameter NAME=VALUE (repeat).")
@click.option("--text", help="Free-form text (only inside the 24-hour window).")
@click.option("--country", help="Country for a national number, e.g. DE.")
@click.option("--key", help="Idempotency key: the same key never sends twice.")
@click.option("--wait/--no-wait", default=True, help="Run the workers until the message is handled.")
@pass_ctx
def send(obj: Ctx, phone: str, template_name: str | None, language: str, params: tuple[str, ...],
         named: tuple[str, ...], text: str | None, country: str | None, key: str | None, wait: bool) -> None:
    """Send a template or a text to PHONE, through the send gate."""
    from ..core.messages import Outgoing, TemplateContent, TextContent
    from ..core.models import Contact
    if bool(template_name) == bool(text):
        raise click.UsageError("give exactly one of --template or --text")
    if template_name:
        body: Any = list(params)
        if named:
            if params:
                raise click.UsageError("use either --param or --named, not both")
            body = dict(_split_named(n) for n in named)
        content: Any = TemplateContent(name=template_name, language=language, body=body)
    else:
        content = TextContent(body=text or "")
    app = obj.app()
    decision = app.send(Outgoing(to=Contact.model_validate({"phone": phone, "country": country}), content=content),
                        idempotency_key=key, source="cli")
    if not decision.accepted:
        click.echo(f"refused: {decision.reason} ({decision.detail})", err=True)
        sys.exit(3)
    if wait:
        drain(app)
    row = app.message(decision.id)
    click.echo(f"{decision.id} {row['status']}" + (f" {row['wamid']}" if row["wamid"] else "")
               + (f" ({row['reason']}: {row['error_details']})" if row["reason"] else ""))
    if row["status"] == "failed":
        sys.exit(4)


def _split_named(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep:
        raise click.UsageError(f"--named takes NAME=VALUE, got {item!r}")
    return name, value

