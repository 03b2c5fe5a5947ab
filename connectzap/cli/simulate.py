"""``connectzap simulate``: feed events through the pipeline on the sandbox and show what happened."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from .base import Ctx, cli, drain, pass_ctx


@cli.command()
@click.argument("file", type=click.File("r", encoding="utf-8"))
@pass_ctx
def simulate(obj: Ctx, file: Any) -> None:
    """Feed the event(s) in FILE through the pipeline on the sandbox; show what was sent or refused, and why.

    FILE holds one JSON event or a list: {"kind": "order_created", "data": {...}, "consents": [...]}.
    Consent and templates come from the configured database; nothing reaches WhatsApp.
    """
    import secrets as _secrets

    from pydantic import ValidationError

    from ..connectors.whatsapp.sandbox import SandboxChannel
    from ..core.models import Event
    from ..core.settings import describe_validation_error
    from ..core.store import journal
    try:
        raw = json.load(file)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{file.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    items = raw if isinstance(raw, list) else [raw]
    settings = obj.settings()
    from ..core.app import Connectzap
    app = Connectzap(settings)
    app._channel = SandboxChannel(app)
    app.start()
    evs = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise click.ClickException(f"event {n}: expected a JSON object")
        item = {"source": "simulate", "dedupe_key": f"simulate:{_secrets.token_hex(8)}", **item}
        if item.get("kind") in ("inbound_message", "message_status") and isinstance(item.get("data"), dict):
            # A simulated customer message happens now unless the file says otherwise.
            item["data"] = {"timestamp": datetime.now(UTC).isoformat(), **item["data"]}
        try:
            event = Event.model_validate(item)
            event.payload()
        except ValidationError as exc:
            raise click.ClickException(f"event {n}: {describe_validation_error(exc)}") from None
        evs.append(event)
    results = app.ingest(evs)
    drain(app)
    with app.db.read() as conn:
        for event, result in zip(evs, results, strict=True):
            click.echo(f"event {result.event_id} {event.kind.value} ({event.dedupe_key})"
                       + (" duplicate: ignored" if result.duplicate else ""))
            if result.event_id is None:
                continue
            for d in journal.deliveries_of(conn, result.event_id):
                if d["status"] == "dead" or d["last_error"]:
                    click.echo(f"  plugin {d['target']}: {d['status']} ({d['last_error']})")
                decisions = json.loads(d["result"]) if d["result"] else None
                if isinstance(decisions, dict):  # the core's own step: a direct send
                    decisions = [decisions] if "id" in decisions else []
                for decision in decisions or []:
                    _show_message(app.message(decision["id"]), d["target"], decision.get("duplicate", False))
    click.echo(f"sandbox log: {app.settings.sandbox_log}")


def _show_message(m: dict[str, Any], target: str, duplicate: bool) -> None:
    what = f"{m['content_type']} {m['template_name'] or ''}".strip()
    note = " (duplicate: an earlier event already proposed it)" if duplicate else ""
    if m["status"] == "refused":
        click.echo(f"  REFUSED {what} [{target}]: {m['reason']} - {m['error_details']}{note}")
    elif m["status"] == "failed":
        click.echo(f"  FAILED {what} [{target}]: {m['reason']} - {m['error_details']}{note}")
    else:
        click.echo(f"  SENT {what} [{target}] -> {m['status']} {m['wamid'] or ''}{note}")
