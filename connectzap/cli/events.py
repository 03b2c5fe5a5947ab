"""``connectzap events ...``: the event journal, dead letters and retries."""

from __future__ import annotations

import click

from .base import Ctx, cli, pass_ctx


@cli.group()
def events() -> None:
    """Inspect the event journal: dead letters and retries."""


@events.command("dead")
@pass_ctx
def events_dead(obj: Ctx) -> None:
    """List dead-lettered deliveries (a plugin failed every attempt)."""
    from ..core.store import journal
    app = obj.app()
    with app.db.read() as conn:
        rows = journal.dead_letters(conn)
    for r in rows:
        click.echo(f"event {r['event_id']} ({r['source']} {r['kind']}) -> {r['target']}: "
                   f"{r['attempts']} attempts, last error: {r['last_error']}")
    if not rows:
        click.echo("no dead letters")


@events.command("retry")
@click.argument("event_id", type=int)
@pass_ctx
def events_retry(obj: Ctx, event_id: int) -> None:
    """Queue an event's dead deliveries again (once the cause is fixed)."""
    from ..core.store import journal
    app = obj.app()
    with app.db.begin() as conn:
        n = journal.retry_dead(conn, event_id)
    click.echo(f"requeued {n} deliveries" if n else "nothing to retry (or its payload was already erased)")

