"""``connectzap send``: one message through the send gate."""

from __future__ import annotations

from typing import Any

import click

from ..core.errors import RefusedError
from .base import Ctx, cli, drain, fmt_time, pass_ctx
from .exits import CommandFailed, ExitCode


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
@click.option("--channel", "medium", default="whatsapp", show_default=True,
              help="The medium: whatsapp, sms, or email (PHONE is then the email address).")
@click.option("--category", type=click.Choice(["marketing", "utility", "authentication"]),
              help="The consent the message needs (required with any --channel but whatsapp).")
@click.option("--fallback", "fallback_media", metavar="MEDIA",
              help="Media to fall back on, in order (e.g. sms,email), when WhatsApp cannot deliver it.")
@click.option("--fallback-after", "fallback_after", metavar="MINUTES", type=click.IntRange(1, 1440),
              help="Time-critical: send the fallback when the message is not delivered within MINUTES "
                   "(needs --fallback; the WhatsApp message may still arrive later).")
@click.option("--email", help="The customer's email address, for an email fallback.")
@pass_ctx
def send(obj: Ctx, phone: str, template_name: str | None, language: str, params: tuple[str, ...],
         named: tuple[str, ...], text: str | None, country: str | None, key: str | None, wait: bool,
         medium: str, category: str | None, fallback_media: str | None, fallback_after: int | None,
         email: str | None) -> None:
    """Send a template or a text to PHONE, through the send gate. PHONE may be a business-scoped
    user id (BSUID, e.g. US.13491208655302741918) for a customer known without a number, or with
    --channel email an email address."""
    from ..core.bsuids import identify
    from ..core.messages import Outgoing, TemplateContent, TextContent
    from ..core.models import Category, Contact
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
    from pydantic import ValidationError
    try:
        to = Contact(email=phone) if medium == "email" else Contact.model_validate(identify(phone, country))
        if email:
            to = to.model_copy(update={"email": email})
        outgoing = Outgoing(to=to, content=content, medium=medium, category=Category(category) if category else None,
                            fallback_media=[m.strip() for m in (fallback_media or "").split(",") if m.strip()],
                            fallback_after_minutes=fallback_after)
    except ValidationError as exc:
        raise click.UsageError("; ".join(_in_cli_words(e["msg"].removeprefix("Value error, "))
                                         for e in exc.errors())) from None
    app = obj.app()
    decision = app.send(outgoing, idempotency_key=key, source="cli")
    if not decision.accepted:
        hint = WHAT_TO_DO.get(decision.reason or "", "")
        raise RefusedError(decision.reason or "refused", f"{decision.detail or decision.reason}{hint}")
    if wait:
        drain(app)
    _report(app, app.message(decision.id), waited=wait)


CLI_WORDS = {"fallback_after_minutes": "--fallback-after", "fallback_channels": "--fallback", "to.email": "--email",
             "to.phone": "PHONE"}
"""The message model's field names as its errors quote them, and the option a CLI user typed instead."""


def _in_cli_words(message: str) -> str:
    for field, option in CLI_WORDS.items():
        message = message.replace(field, option)
    return message


WHAT_TO_DO = {
    "window_closed": " (connectzap send PHONE --template NAME; connectzap templates list shows them)",
    "no_consent": " (record the customer's opt-in first: connectzap consent grant PHONE CATEGORY --proof ...)",
    "template_unknown": " (connectzap templates sync, then connectzap templates list)",
    "template_not_in_account": (" (send it with business_phone_number_id set to a number of the account that has "
                                "it; connectzap templates list --json shows each template's waba_id)"),
    "phone_required": " (send a request_contact_info message inside the window; the number they share is linked)",
}


def _report(app: Any, row: dict[str, Any], *, waited: bool) -> None:
    """One line on stdout when the message went out (or waits as asked); one error line otherwise."""
    mid, status = row["id"], row["status"]
    why = f"{row['reason'] or row['error_code'] or 'error'}: {row['error_details'] or '-'}"
    if status == "failed":
        raise CommandFailed(f"message {mid} failed: {why}", ExitCode.FAILED)
    if status == "refused":  # the sender's re-check (e.g. an opt-out while it waited)
        raise CommandFailed(f"refused: {row['reason']}: {row['error_details']} (message {mid})", ExitCode.REFUSED)
    if status == "unknown":
        raise CommandFailed(f"WhatsApp did not confirm message {mid} ({row['error_details'] or 'no answer'}); it is "
                      f"never resent blindly: its status webhook settles it (connectzap messages show {mid})",
                      ExitCode.FAILED)
    if status == "queued" and waited:
        paused = app.paused()
        if paused:
            raise CommandFailed(f"sending is paused ({paused}): message {mid} waits in the queue; fix the cause, then "
                          "connectzap resume", ExitCode.FAILED)
        if row["attempts"] and row["error_details"]:
            raise CommandFailed(f"message {mid} not sent: {row['error_details']}; it stays queued and a running "
                          "`connectzap serve` or `connectzap worker` retries it", ExitCode.UNAVAILABLE)
    scheduled = f" (scheduled for {fmt_time(row['not_before'])} UTC)" if status == "queued" and row["not_before"] \
        else ""
    click.echo(f"{mid} {status}" + (f" {row['wamid']}" if row["wamid"] else "") + scheduled)


def _split_named(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep:
        raise click.UsageError(f"--named takes NAME=VALUE, got {item!r}")
    return name, value

