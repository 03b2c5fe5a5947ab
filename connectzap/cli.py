"""The ``connectzap`` command line. Errors are one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sys
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import click

from .core.errors import ConnectzapError
from .core.phones import mask


class Ctx:
    def __init__(self, config: str | None) -> None:
        self.config = config
        self._app: Any = None

    def settings(self) -> Any:
        from .core.settings import load_settings
        return load_settings(self.config)

    def app(self, **kwargs: Any) -> Any:
        if self._app is None:
            from .core.app import Connectzap
            self._app = Connectzap(self.settings(), **kwargs).start()
        return self._app


pass_ctx = click.make_pass_decorator(Ctx)


class Group(click.Group):
    """Turns connectzap errors (and anything unexpected) into one line on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConnectzapError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001
            if os.environ.get("CONNECTZAP_DEBUG"):
                raise
            click.echo(f"error: unexpected {type(exc).__name__}: {exc} (set CONNECTZAP_DEBUG=1 for details)",
                       err=True)
            sys.exit(2)


@click.group(cls=Group)
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="CONNECTZAP_CONFIG",
              help="TOML config file (default: $CONNECTZAP_CONFIG, else built-in defaults).")
@click.version_option(package_name="connectzap")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """connectzap: consented WhatsApp messages from your shop and CRM."""
    ctx.obj = Ctx(config)


# --- init / doctor -------------------------------------------------------------------------

@cli.command()
@click.argument("path", default="connectzap.toml", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write a commented starter config to PATH."""
    target = Path(path)
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; use --force to overwrite")
    target.write_text(resources.files("connectzap").joinpath("starter.toml").read_text())
    click.echo(f"wrote {target}; run: connectzap --config {target} doctor")


@cli.command()
@pass_ctx
def doctor(obj: Ctx) -> None:
    """Check the configuration offline: settings, connectors, database, secrets."""
    from .core.settings import redacted
    settings = obj.settings()
    click.echo(f"config: {settings.config_path or '(built-in defaults)'}")
    app = obj.app()
    click.echo(f"database: {app.db.dialect} ({'reachable' if app.db.ping() else 'UNREACHABLE'})")
    click.echo(f"channel: {app.channel.name}")
    if app.paused():
        click.echo(f"warning: sending is PAUSED: {app.paused()} (fix it, then: connectzap resume)")
    click.echo("connectors: " + (", ".join(sorted(app.connectors)) or "(none)"))
    from .core import templates
    with app.db.read() as conn:
        cached = templates.all_templates(conn)
    click.echo(f"templates cached: {len(cached)} ({sum(t.status == 'APPROVED' for t in cached)} approved)")
    from .core.plugins import load_failures
    problems = [f"plugin {f.name}: {f.error}" for f in load_failures()]
    if not settings.api.keys:
        click.echo("note: api.keys is empty: `serve` uses the generated key in "
                   f"{settings.data_dir / 'api-key'}")
    for p in problems:
        click.echo(f"warning: {p}")
    if os.environ.get("CONNECTZAP_DOCTOR_SHOW"):
        click.echo(json.dumps(redacted(settings.model_dump()), indent=2, default=str))
    click.echo("ok" if not problems else f"{len(problems)} warning(s)")


# --- worker --------------------------------------------------------------------------------

@cli.command()
@click.option("--no-dispatch", is_flag=True, help="Only send; do not run event hooks.")
@click.option("--no-send", is_flag=True, help="Only run event hooks; do not send.")
@pass_ctx
def worker(obj: Ctx, no_dispatch: bool, no_send: bool) -> None:
    """Run workers (dispatcher and sender) until SIGTERM or Ctrl-C; in-flight work is finished first."""
    from .core.workers import Worker
    app = obj.app()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        w = Worker(app)
        click.echo(f"worker {w.id} running on {app.db.dialect}, channel {app.channel.name}", err=True)
        await w.run(stop, dispatch=not no_dispatch, send=not no_send)
        await app.aclose()

    asyncio.run(main())


# --- serve ---------------------------------------------------------------------------------

@cli.command()
@click.option("--host", default=None, help="Listen address (default: api.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Listen port (default: api.port, 8000; 0 picks a free port).")
@click.option("--no-workers", is_flag=True, help="Only the HTTP service; run `connectzap worker` elsewhere.")
@pass_ctx
def serve(obj: Ctx, host: str | None, port: int | None, no_workers: bool) -> None:
    """Run the HTTP service (webhooks + REST API) and the workers until SIGTERM or Ctrl-C.

    Shutdown is graceful: requests in flight are answered, queued webhooks journaled and the
    workers finish what they hold before the process exits.
    """
    from .core.server import ensure_api_key
    from .core.server import serve as run_server
    app = obj.app()
    api = app.settings.api
    generated = ensure_api_key(app.settings)
    if generated is not None:
        click.echo(f"REST API key (no api.keys configured): {generated}", err=True)

    def announce(url: str) -> None:
        workers = "without workers" if no_workers else "with workers"
        click.echo(f"connectzap serving on {url} ({app.db.dialect}, channel {app.channel.name}, {workers}); "
                   f"webhooks: {', '.join(sorted(app.connectors)) or 'none'}", err=True)

    run_server(app, host=host or api.host, port=api.port if port is None else port, run_workers=not no_workers,
               announce=announce)


# --- send ----------------------------------------------------------------------------------

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
    from .core.messages import Outgoing, TemplateContent, TextContent
    from .core.models import Contact
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
        _drain(app)
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


def _drain(app: Any) -> None:
    from .core.workers import Worker

    async def drain() -> None:
        try:
            await Worker(app).run_until_idle()
        finally:
            await app.channel.aclose()  # the live channel's HTTP connections belong to this event loop

    asyncio.run(drain())


# --- consent -------------------------------------------------------------------------------

@cli.group()
def consent() -> None:
    """Grant, revoke, show, import and export consent."""


def _change(phone: str, category: str, granted: bool, source: str, proof: str | None, country: str | None) -> Any:
    from .core.models import ConsentChange
    return ConsentChange(phone=phone, category=category, granted=granted, source=source, proof=proof, country=country)


CATEGORY = click.Choice(["marketing", "utility", "authentication"])


@consent.command("grant")
@click.argument("phone")
@click.argument("category", type=CATEGORY)
@click.option("--source", default="cli", show_default=True, help="Where the opt-in was collected.")
@click.option("--proof", required=True, help="The wording the customer agreed to, or a reference to it.")
@click.option("--country")
@pass_ctx
def consent_grant(obj: Ctx, phone: str, category: str, source: str, proof: str, country: str | None) -> None:
    """Record an opt-in for CATEGORY."""
    changed = obj.app().set_consent(_change(phone, category, True, source, proof, country))
    click.echo(f"{mask(phone)} {category}: granted" + ("" if changed else " (unchanged)"))


@consent.command("revoke")
@click.argument("phone")
@click.argument("category", type=CATEGORY)
@click.option("--source", default="cli", show_default=True)
@click.option("--proof", default=None)
@click.option("--country")
@pass_ctx
def consent_revoke(obj: Ctx, phone: str, category: str, source: str, proof: str | None, country: str | None) -> None:
    """Record an opt-out for CATEGORY; it wins at once, also over queued messages."""
    changed = obj.app().set_consent(_change(phone, category, False, source, proof, country))
    click.echo(f"{mask(phone)} {category}: revoked" + ("" if changed else " (unchanged)"))


@consent.command("show")
@click.argument("phone")
@click.option("--country")
@click.option("--history", is_flag=True, help="Every record, oldest first.")
@pass_ctx
def consent_show(obj: Ctx, phone: str, country: str | None, history: bool) -> None:
    """Show consent per category with its proof."""
    app = obj.app()
    records = app.consent_history(phone, country) if history else list(app.consent(phone, country).values())
    if not records:
        click.echo(f"{mask(phone)}: no consent on record")
    for r in records:
        click.echo(f"{r.category.value:15} {'granted' if r.granted else 'revoked':8} {r.at.isoformat()} "
                   f"source={r.source} proof={r.proof or '-'}")


@consent.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8"))
@click.option("--country", help="Country for national numbers in the file.")
@pass_ctx
def consent_import(obj: Ctx, csv_file: Any, country: str | None) -> None:
    """Import consent from CSV with columns phone,category,granted[,source,proof,at].

    Bad rows are reported with their line number and skipped; good rows are imported.
    """
    from pydantic import ValidationError

    from .core.models import ConsentChange
    app = obj.app()
    reader = csv.DictReader(csv_file)
    missing = {"phone", "category", "granted"} - set(reader.fieldnames or [])
    if missing:
        raise click.ClickException(f"CSV needs columns: {', '.join(sorted(missing))}")
    imported = skipped = 0
    for line, row in enumerate(reader, start=2):
        try:
            granted = str(row["granted"]).strip().lower() in ("1", "true", "yes", "y", "granted")
            data: dict[str, Any] = {"phone": row["phone"], "category": row["category"].strip().lower(),
                                    "granted": granted, "source": row.get("source") or "csv-import",
                                    "proof": row.get("proof") or None, "country": row.get("country") or country}
            if row.get("at"):
                data["at"] = row["at"]
            app.set_consent(ConsentChange.model_validate(data))
            imported += 1
        except (ValidationError, ConnectzapError, ValueError) as exc:
            skipped += 1
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            click.echo(f"line {line}: skipped: {reason}", err=True)
    click.echo(f"imported {imported}, skipped {skipped}")


@consent.command("export")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-")
@pass_ctx
def consent_export(obj: Ctx, output: Any) -> None:
    """Export the whole ledger as CSV. Contacts appear as keyed hashes: the ledger keeps no numbers."""
    from sqlalchemy import select

    from .core.store.schema import consents
    app = obj.app()
    writer = csv.writer(output)
    writer.writerow(["contact_key", "category", "granted", "source", "proof", "at"])
    with app.db.read() as conn:
        for r in conn.execute(select(consents).order_by(consents.c.at, consents.c.id)):
            writer.writerow([r.contact_key, r.category, str(bool(r.granted)).lower(), r.source, r.proof or "",
                             datetime.fromtimestamp(r.at, UTC).isoformat()])


# --- messages ------------------------------------------------------------------------------

@cli.group()
def messages() -> None:
    """Inspect outbound messages."""


def _fmt_time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


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
        click.echo(f"{r['id']} {_fmt_time(r['created_at'])} {r['status']:9} {what}"
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
        shown[k] = _fmt_time(row[k])
    click.echo(json.dumps(shown, indent=2, ensure_ascii=False))


@cli.command()
@pass_ctx
def resume(obj: Ctx) -> None:
    """Resume sending after it was paused (e.g. WhatsApp said the access token expired)."""
    app = obj.app()
    reason = app.paused()
    if reason is None:
        click.echo("sending is not paused")
        return
    app.set_paused(None)
    click.echo(f"sending resumed (it was paused: {reason})")


# --- events --------------------------------------------------------------------------------

@cli.group()
def events() -> None:
    """Inspect the event journal: dead letters and retries."""


@events.command("dead")
@pass_ctx
def events_dead(obj: Ctx) -> None:
    """List dead-lettered deliveries (a plugin failed every attempt)."""
    from .core.store import journal
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
    from .core.store import journal
    app = obj.app()
    with app.db.begin() as conn:
        n = journal.retry_dead(conn, event_id)
    click.echo(f"requeued {n} deliveries" if n else "nothing to retry (or its payload was already erased)")


# --- plugins -------------------------------------------------------------------------------

@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--hook", help="Only plugins implementing this hook.")
def plugins(as_json: bool, hook: str | None) -> None:
    """List loaded plugins with distribution, version, hooks and load errors."""
    from .core.plugins import get_plugins
    rows = [r for r in get_plugins() if hook is None or hook in r["hooks"]]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    table = Table("name", "distribution", "version", "hooks", "error")
    for r in rows:
        table.add_row(r["name"], r["distribution"] or "-", r["version"] or "-", ", ".join(r["hooks"]) or "-",
                      r["error"] or "")
    Console().print(table)


# --- simulate ------------------------------------------------------------------------------

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

    from .connectors.whatsapp.sandbox import SandboxChannel
    from .core.models import Event
    from .core.settings import describe_validation_error
    from .core.store import journal
    try:
        raw = json.load(file)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{file.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    items = raw if isinstance(raw, list) else [raw]
    settings = obj.settings()
    from .core.app import Connectzap
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
    _drain(app)
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


def _install_plugin_commands() -> None:
    from .core.dispatch import register_commands
    register_commands(cli)


def main() -> None:
    try:
        _install_plugin_commands()
    except ConnectzapError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    cli(prog_name="connectzap")
