"""``connectzap messages ...``: outbound messages and why they were refused."""

from __future__ import annotations

import click

from ..core import media
from ..core.models import StatusValue
from ..core.views import MessageView
from .base import Ctx, cli, pass_ctx
from .output import Column, TimeParam, emit, json_option

MESSAGE_COLUMNS = [
    Column("id"), Column("created", "created_at"), Column("status"), Column("on", "medium"), Column("to", "recipient"),
    Column("message", lambda m: m.template_name or m.content_type), Column("reason"),
    Column("scheduled", "not_before"),
]


def _medium(value: str | None) -> str | None:
    try:
        return media.checked(value) if value is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.group()
def messages() -> None:
    """Inspect outbound messages."""


@messages.command("list")
@click.option("--phone", help="Only messages to this number.")
@click.option("--country", help="Country for a national --phone, e.g. DE.")
@click.option("--status", type=click.Choice([s.value for s in StatusValue]), help="Only messages in this status.")
@click.option("--channel", "medium", callback=lambda _c, _p, v: _medium(v),
              help="Only messages going out on this medium: whatsapp, email, sms, ...")
@click.option("--fallback-of", metavar="ID", help="Only the fallbacks (admitted or refused) of this message.")
@click.option("--since", type=TimeParam(), help="Created at or after: ISO 8601, or an age such as 2h or 7d.")
@click.option("--until", type=TimeParam(), help="Created before: ISO 8601, or an age.")
@click.option("--before", "before_id", metavar="ID", help="Page on: only messages older than this one.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
@pass_ctx
def messages_list(obj: Ctx, phone: str | None, country: str | None, status: str | None, medium: str | None,
                  fallback_of: str | None, since: float | None, until: float | None, before_id: str | None,
                  limit: int, as_json: bool) -> None:
    """List messages, newest first: status, the medium, masked recipient, the refusal or failure reason."""
    from ..core.phones import to_e164
    app = obj.app()
    rows = app.messages(phone=to_e164(phone, country) if phone else None, status=status, since=since, until=until,
                        before_id=before_id, medium=medium, fallback_of=fallback_of, limit=limit)
    emit([MessageView.of(r) for r in rows], as_json, columns=MESSAGE_COLUMNS, empty="no messages")


@messages.command("show")
@click.argument("message_id")
@json_option
@pass_ctx
def messages_show(obj: Ctx, message_id: str, as_json: bool) -> None:
    """Show one message and why it was refused or failed. Its text and number are gone once it is finished."""
    view = MessageView.of(obj.app().message(message_id))
    columns = [Column(name) for name in MessageView.model_fields if name not in ("content", "detail", "reason")]
    columns[2:2] = [Column("reason"), Column("detail")]
    columns.append(Column("content", lambda m: "erased" if m.content is None else "kept until it is finished"))
    emit(view, as_json, columns=columns)


UNKNOWN_COLUMNS = [
    Column("id"), Column("unknown since", "unknown_since"), Column("age", lambda m: _age(m.age_seconds)),
    Column("to", "recipient"), Column("message", lambda m: m.template_name or m.content_type),
    Column("reason"), Column("then", lambda m: f"{m.then} at {m.settles_at:%Y-%m-%d %H:%M:%S} UTC"),
]


@messages.command("unknown")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@json_option
@pass_ctx
def messages_unknown(obj: Ctx, limit: int, as_json: bool) -> None:
    """Messages that may or may not have been sent, the longest-waiting first: how long they have
    been unknown, and what workers.unknown_policy does to them unless a status webhook comes first."""
    emit(obj.app().unknown_messages(limit), as_json, columns=UNKNOWN_COLUMNS, empty="no unknown messages")


@messages.command("settle")
@click.argument("message_id")
@pass_ctx
def messages_settle(obj: Ctx, message_id: str) -> None:
    """Settle an unknown message now instead of at the end of its grace period: workers.unknown_policy
    resends it (a duplicate if it did go out after all) or fails it as unconfirmed."""
    done = obj.app().settle_unknown(message_id)
    if done is None:
        raise click.ClickException(f"message {message_id} is not unknown (a status may have settled it)")
    click.echo("queued to be resent" if done == "resend" else "failed as unconfirmed")


def _age(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
