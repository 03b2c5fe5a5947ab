"""``connectzap events ...``: every event, what it became and why; dead letters and retries."""

from __future__ import annotations

import click

from ..core.models import EventKind
from ..core.wording import counted
from .base import Ctx, cli, pass_ctx
from .output import Column, TimeParam, emit, emit_json, json_option, text

EVENT_COLUMNS = [
    Column("id"), Column("received", "received_at"), Column("source"), Column("kind"), Column("status"),
    Column("subject", lambda e: e.subject or f"(payload {e.payload})"), Column("outcome"),
]
DELIVERY_COLUMNS = [
    Column("target"), Column("status"), Column("attempts"), Column("outcome"),
]
DEAD_COLUMNS = [
    Column("event", "event_id"), Column("source"), Column("kind"), Column("target"), Column("attempts"),
    Column("last error", "last_error"), Column("since", "updated_at"),
]


@cli.group()
def events() -> None:
    """What each event became, and why: messages sent or refused, skips, retries, dead letters."""


@events.command("list")
@click.option("--source", help="Only events from this source (woocommerce, hubspot, whatsapp, generic, api...).")
@click.option("--kind", type=click.Choice([k.value for k in EventKind]), help="Only events of this kind.")
@click.option("--status", type=click.Choice(["pending", "done", "dead"]), help="Only events in this state.")
@click.option("--since", type=TimeParam(), help="Received at or after: ISO 8601, or an age such as 2h or 7d.")
@click.option("--until", type=TimeParam(), help="Received before: ISO 8601, or an age.")
@click.option("--before", "before_id", type=click.IntRange(1), metavar="ID",
              help="Page on: only events older than this one.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
@pass_ctx
def events_list(obj: Ctx, source: str | None, kind: str | None, status: str | None, since: float | None,
                until: float | None, before_id: int | None, limit: int, as_json: bool) -> None:
    """List events, newest first, each with what it became in one line."""
    rows = obj.app().events(source=source, kind=kind, status=status, since=since, until=until, before_id=before_id,
                            limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    emit(rows, as_json, columns=EVENT_COLUMNS, empty="no events")
    if more and not as_json:
        click.echo(f"more: connectzap events list --before {rows[-1].id}", err=True)


@events.command("show")
@click.argument("event_id", type=click.IntRange(1))
@json_option
@pass_ctx
def events_show(obj: Ctx, event_id: int, as_json: bool) -> None:
    """Show one event and each of its deliveries: the core's bookkeeping, every plugin and connector,
    with status, attempts, last error, the messages proposed and the gate's verdict on each."""
    event = obj.app().event(event_id)
    if as_json:
        emit_json(event)
        return
    emit(event, False, columns=[
        Column("id"), Column("source"), Column("kind"), Column("dedupe key", "dedupe_key"), Column("status"),
        Column("subject"), Column("payload"), Column("received", "received_at"),
        Column("completed", "completed_at"), Column("attempts"), Column("outcome")])
    rows = []
    for d in event.deliveries:
        rows.append({"target": d.target, "status": d.status, "attempts": d.attempts, "outcome": d.outcome})
        for m in d.messages:
            verdict = m.status + (f" ({m.reason})" if m.reason else "")
            rows.append({"target": f"  message {m.id}", "status": verdict, "attempts": "",
                         "outcome": f"{m.what} to {m.recipient or 'erased number'}"
                                    + (f", scheduled for {text(m.not_before)}" if m.not_before else "")
                                    + (f": {m.detail}" if m.detail else "")})
    click.echo()
    emit(rows, False, columns=DELIVERY_COLUMNS, empty="no deliveries yet (no worker has picked it up)")
    if event.status == "dead":
        click.echo(f"\nonce the cause is fixed: connectzap events retry {event.id}")


@events.command("dead")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@json_option
@pass_ctx
def events_dead(obj: Ctx, limit: int, as_json: bool) -> None:
    """List dead-lettered deliveries (a plugin or connector failed every attempt)."""
    emit(obj.app().dead_letters(limit), as_json, columns=DEAD_COLUMNS, empty="no dead letters")


@events.command("retry")
@click.argument("event_id", type=int, required=False)
@click.option("--target", metavar="NAME",
              help="Retry every dead delivery of this receiver: a plugin, `core` or `connector:NAME`.")
@pass_ctx
def events_retry(obj: Ctx, event_id: int | None, target: str | None) -> None:
    """Queue an event's dead deliveries again, or (--target) all of one plugin's, once the cause is fixed."""
    if event_id is None and target is None:
        raise click.UsageError("name an EVENT_ID, or --target for every dead delivery of one plugin")
    n = obj.app().retry_dead(event_id, target=target)
    click.echo(f"requeued {counted(n, 'delivery', 'deliveries')}" if n
               else "nothing to retry (or its payload was already erased)")
