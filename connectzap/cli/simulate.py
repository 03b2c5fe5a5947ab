"""``connectzap simulate``: what events would do -- on a scratch engine, or (``--live``) for real.

A simulation never acts: it runs on a temporary database seeded read-only from the real one
(:mod:`connectzap.core.simulation`), sends to a private sandbox, and rehearses every connector
delivery instead of making it. ``--live`` is the explicit, confirmed way to feed the events into
the real journal, where they take the normal path.
"""

from __future__ import annotations

import json
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ..core.clock import iso_utc, now, utcnow
from ..core.wording import counted
from .base import Ctx, cli, drain, pass_ctx


@cli.command()
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--real-consent", is_flag=True,
              help="Start from a read-only copy of your consent ledger, 24-hour windows and unreachable marks "
                   "(default: none; the file's \"consents\" add opt-ins).")
@click.option("--live", is_flag=True,
              help="Feed the events into the real journal instead: real sends, CRM write-backs and subscriptions.")
@click.option("--yes", is_flag=True, help="With --live: do not ask for confirmation (scripts).")
@click.option("--webhook", "webhook_path", metavar="PATH",
              help="FILE is a webhook body as a connector receives it at PATH, e.g. /webhooks/woocommerce/main.")
@click.option("--header", "headers", multiple=True, metavar="'NAME: VALUE'",
              help="With --webhook: a request header (repeat), e.g. 'X-WC-Webhook-Topic: order.created'.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
def simulate(obj: Ctx, file: Any, real_consent: bool, live: bool, yes: bool, webhook_path: str | None,
             headers: tuple[str, ...], as_json: bool) -> None:
    """Show what the event(s) in FILE would do: the gate's verdicts and why, the exact Cloud API
    requests, and the CRM and subscription calls -- without doing any of it.

    FILE holds one JSON item or a list. An item is a connectzap event,
    {"kind": "order_created", "data": {...}, "consents": [...]}, or a webhook as a connector
    receives it, {"webhook": "/webhooks/woocommerce/main", "headers": {...}, "body": {...}}.
    With --webhook PATH, FILE is the webhook's body itself. Signatures are not checked.

    The simulation runs on a scratch database seeded read-only with your template cache (and,
    with --real-consent, your consent ledger) and is discarded afterwards: your database, the
    WhatsApp Cloud API, CRMs and subscriptions are never touched, even while `serve` runs.
    """
    if yes and not live:
        raise click.UsageError("--yes only confirms --live")
    if real_consent and live:
        raise click.UsageError("--real-consent is for simulations; --live already uses the real ledger")
    if headers and not webhook_path:
        raise click.UsageError("--header goes with --webhook")
    items = [_webhook_item(webhook_path, headers, file)] if webhook_path else _read_items(file)
    settings = obj.settings()
    if live:
        app = obj.app()
        events = _events(app, items)
        if not yes:
            click.confirm(_live_question(app, len(events)), abort=True, err=True)
        report = _run(app, events, live=True)
    else:
        from ..core.simulation import scratch_engine
        with tempfile.TemporaryDirectory(prefix="connectzap-simulate-") as workdir:
            app, seeding = scratch_engine(settings, Path(workdir), with_consent=real_consent)
            try:
                report = _run(app, _events(app, items), live=False)
            finally:
                app.close()
        report.seeding = {"database": seeding.source, "found": seeding.found, "copied": seeding.rows,
                          "problem": seeding.problem, "real_consent": real_consent}
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        report.print()


# --- reading the file -----------------------------------------------------------------------

def _read_items(file: Any) -> list[dict[str, Any]]:
    try:
        raw = json.load(file)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{file.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    items = raw if isinstance(raw, list) else [raw]
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise click.ClickException(f"event {n}: expected a JSON object")
    return items


def _webhook_item(path: str, headers: tuple[str, ...], file: Any) -> dict[str, Any]:
    """A raw webhook body from FILE, as the item form holds it."""
    parsed: dict[str, str] = {}
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise click.UsageError(f"--header takes 'NAME: VALUE', got {header!r}")
        parsed[name.strip()] = value.strip()
    text = file.read()
    try:
        json.loads(text)
        kind = "application/json"
    except json.JSONDecodeError:
        kind = "application/x-www-form-urlencoded"  # a form post, or whatever the source sends
    if not any(name.lower() == "content-type" for name in parsed):
        parsed["Content-Type"] = kind
    return {"webhook": path, "headers": parsed, "body": text}


def _events(app: Any, items: list[dict[str, Any]]) -> list[Any]:
    from pydantic import ValidationError

    from ..core.errors import ConnectzapError
    from ..core.models import Event
    from ..core.settings import describe_validation_error
    out = []
    for n, item in enumerate(items):
        if "webhook" in item:
            try:
                out.extend(_webhook_events(app, item))
            except ConnectzapError as exc:
                raise click.ClickException(f"event {n}: {exc.message}") from None
            continue
        item = {"source": "simulate", "dedupe_key": f"simulate:{secrets.token_hex(8)}", **item}
        if item.get("kind") in ("inbound_message", "message_status") and isinstance(item.get("data"), dict):
            # A simulated customer message happens now (the engine's clock, which its window is read
            # by) unless the file says otherwise.
            item["data"] = {"timestamp": iso_utc(utcnow()), **item["data"]}
        try:
            event = Event.model_validate(item)
            event.payload()
        except ValidationError as exc:
            raise click.ClickException(f"event {n}: {describe_validation_error(exc)}") from None
        out.append(event)
    return out


def _webhook_events(app: Any, item: dict[str, Any]) -> list[Any]:
    """Parse a webhook the way its connector's route would (without the signature check)."""
    from ..core.connector import WebhookRequest
    from ..core.errors import PayloadError
    path = str(item["webhook"])
    for connector in app.connectors.values():
        for route in connector.routes:
            found = re.fullmatch(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route)), path)
            if found is None:
                continue
            body = item.get("body", "")
            # A string is the body as sent (bytes for the connector); anything else is JSON.
            raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
            headers.setdefault("content-type", "application/json" if not isinstance(body, str)
                               else "application/x-www-form-urlencoded")
            request = WebhookRequest(method="POST", url=f"http://simulate{path}", path=path, headers=headers,
                                     body=raw, path_params=found.groupdict(), received_at=now())
            answer = connector.handshake(request)
            if answer is not None and answer.status >= 300:
                raise PayloadError(f"{path}: the connector answers {answer.status}: {answer.body}", field="webhook")
            return [] if answer is not None else connector.parse(request)
    raise PayloadError(f"no enabled connector receives webhooks at {path}", field="webhook")


def _live_question(app: Any, count: int) -> str:
    from ..core.simulation import mask_url
    where = "the WhatsApp Cloud API" if app.channel.name != "sandbox" else "the sandbox (no WhatsApp credentials)"
    url = app.settings.database_url
    shown = url if url.startswith("sqlite") else mask_url(url)
    return (f"Feed {counted(count, 'event')} into the real journal ({shown})? "
            f"They take the normal path: sends go to {where}; CRM write-backs and subscriptions run for real")


# --- running and reporting --------------------------------------------------------------------

@dataclass
class Report:
    live: bool
    events: list[dict[str, Any]] = field(default_factory=list)
    seeding: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": "live" if self.live else "simulation", "events": self.events}
        if self.seeding is not None:
            out["seeded_from"] = self.seeding
        return out

    def print(self) -> None:
        if self.seeding is not None:
            click.echo(_seeding_line(self.seeding))
        for event in self.events:
            if not event["from_file"] and not (event["messages"] or event["calls"] or event["problems"]):
                continue
            origin = "" if event["from_file"] else " (follows)"
            click.echo(f"event {event['id']} {event['kind']} from {event['source']}{origin}"
                       + (" duplicate: ignored" if event["duplicate"] else ""))
            for effect in event["effects"]:
                click.echo(f"  {effect}")
            if event["from_file"] and not any(event[k] for k in ("effects", "problems", "messages", "calls")):
                click.echo("  nothing to record, send or call for this event")
            for problem in event["problems"]:
                click.echo(f"  {problem['target']}: {problem['status']} ({problem['detail']})")
            for m in event["messages"]:
                _print_message(m, self.live)
            for call in event["calls"]:
                what = f"{call['method']} {call['url']}" if call["method"] else "a delivery"
                note = f" ({call['note']})" if call.get("note") else ""
                click.echo(f"  WOULD CALL [{call['target']}] {what}{note}")
                if "body" in call:
                    click.echo("    " + json.dumps(call["body"], ensure_ascii=False, separators=(",", ":")))
        if not self.live:
            click.echo("simulation only: nothing was sent, stored or called (--live feeds the events in for real)")


def _seeding_line(seeding: dict[str, Any]) -> str:
    if not seeding["found"]:
        base = f"no database at {seeding['database']} yet" + (f" ({seeding['problem']})" if seeding["problem"] else "")
    else:
        copied = seeding["copied"]
        base = f"{counted(copied.get('templates', 0), 'template')} from {seeding['database']}"
        if seeding["real_consent"]:
            base += (f", {counted(copied.get('consents', 0), 'consent record')}, "
                     f"{counted(copied.get('windows', 0), 'open window')}")
    ledger = "" if seeding["real_consent"] else "; consent: only what the file carries (--real-consent copies yours)"
    return f"simulation on a scratch engine: {base}{ledger}"


def _print_message(m: dict[str, Any], live: bool) -> None:
    what = f"{m['content_type']} {m['template'] or ''}".strip() + (f" ({m['language']})" if m["language"] else "")
    head = f"{what} to {m['to']} [{m['target']}]"
    note = " (duplicate: an earlier event already proposed it)" if m["duplicate"] else ""
    if m["verdict"] == "refused":
        click.echo(f"  REFUSED {head}: {m['reason']} - {m['detail']}{note}")
    elif m["verdict"] == "failed":
        click.echo(f"  {'FAILED' if live else 'WOULD FAIL'} {head}: {m['reason']} - {m['detail']}{note}")
    elif m["verdict"] == "queued":
        when = f" until {m['not_before']}" if m["not_before"] else ""
        click.echo(f"  {'QUEUED' if live else 'WOULD QUEUE'} {head}{when}{note}")
    else:
        click.echo(f"  SENT {head} -> {m['status']}{note}" if live else f"  WOULD SEND {head}{note}")
    if m.get("request"):
        click.echo(f"    POST {m['request']['url']}")
        click.echo("    " + json.dumps(m["request"]["body"], ensure_ascii=False, separators=(",", ":")))


def _run(app: Any, events: list[Any], *, live: bool) -> Report:
    from ..core.outcomes import read_result
    from ..core.simulation import Masker, mask_url, sandbox_requests
    from ..core.store import journal
    from ..core.store.schema import events as events_table
    from sqlalchemy import select
    masker = Masker()
    _collect_numbers(events, masker)
    results = app.ingest(events)
    ours = {r.event_id: r for r in results if r.event_id is not None}
    by_id = {r.event_id: e for e, r in zip(events, results, strict=True) if r.event_id is not None}
    if live:
        _work_until_settled(app, list(ours))
    else:
        drain(app)
    requests = {} if live else sandbox_requests(app)
    report = Report(live=live)
    for event, result in zip(events, results, strict=True):
        if result.event_id is None or result.duplicate:
            report.events.append({"id": result.event_id, "kind": event.kind.value, "source": event.source,
                                  "dedupe_key": event.dedupe_key, "from_file": True, "duplicate": True,
                                  "effects": [], "problems": [], "messages": [], "calls": []})
    with app.db.read() as conn:
        query = select(events_table.c.id, events_table.c.kind, events_table.c.source, events_table.c.dedupe_key,
                       events_table.c.payload)
        # A simulation shows everything its scratch journal holds (the statuses and consent changes
        # that follow, too); the real journal is shared with everything else, so a live run shows
        # the file's own events.
        query = query.where(events_table.c.id.in_(list(ours))) if live else query
        rows = conn.execute(query.order_by(events_table.c.id)).all() if ours else []
        for row in rows:
            entry = {"id": row.id, "kind": row.kind, "source": row.source, "dedupe_key": row.dedupe_key,
                     "from_file": row.id in ours, "duplicate": False,
                     "effects": _effects(by_id.get(row.id), row.payload), "problems": [], "messages": [], "calls": []}
            for d in journal.deliveries_of(conn, row.id):
                decisions, skipped, notes, recorded = read_result(d["result"])
                if d["status"] == "pending" and not d["last_error"]:
                    entry["problems"].append({"target": d["target"], "status": "pending",
                                              "detail": "not handled yet: a running serve or worker will"})
                elif d["status"] != "done" or d["last_error"]:
                    entry["problems"].append({"target": d["target"], "status": d["status"],
                                              "detail": d["last_error"]})
                elif skipped is not None:
                    entry["problems"].append({"target": d["target"], "status": f"skipped {skipped.code}",
                                              "detail": skipped.detail})
                entry["problems"] += [{"target": d["target"], "status": n.code, "detail": n.detail} for n in notes]
                if d["target"] == "core" and "cancelled" in recorded:
                    entry["effects"].append(f"cancel: {counted(recorded['cancelled'], 'waiting message')} cancelled")
                for decision in decisions:
                    entry["messages"].append(_message(app, decision, d["target"], requests, masker))
            if app.simulation is not None:
                entry["calls"] = [{"target": r.target, **r.call.as_dict(),
                                   "url": mask_url(r.call.url) if r.call.url else None}
                                  for r in app.simulation.calls_for(row.id)]
            report.events.append(entry)
    report.events.sort(key=lambda e: e["id"] or 0)
    report.events = masker(report.events)
    return report


def _effects(event: Any, payload: str | None) -> list[str]:
    """What the core itself records for an event: the consents it carries, the window it opens."""
    from ..core.models import ConsentChange, Event, EventKind, InboundMessage
    if event is None and payload:
        event = Event.model_validate_json(payload)
    if event is None:
        return []
    changes = list(event.consents)
    out = []
    if event.kind == EventKind.CONSENT_CHANGED and not event.already_recorded:
        changes.append(ConsentChange.model_validate(event.data))
    for change in changes:
        out.append(f"consent: {change.category.value} {'opt-in' if change.granted else 'opt-out'} for "
                   f"{change.phone} from {change.source}")
    if event.kind == EventKind.INBOUND_MESSAGE:
        message = InboundMessage.model_validate(event.data)
        if message.contact.phone and message.type != "system":
            out.append(f"window: the customer's message opens the 24-hour window with {message.contact.phone}")
    return out


def _work_until_settled(app: Any, event_ids: list[int], wait_seconds: float = 30.0) -> None:
    """Run the workers until the events and their messages are handled. A running `serve` may
    hold some of them: wait (a while) for it too, instead of reporting them half done."""
    import asyncio
    import time

    from sqlalchemy import and_, func, or_, select

    from ..core.store.schema import events as events_table
    from ..core.store.schema import outbox
    from ..core.worker import Worker

    def unsettled() -> int:
        t = now()
        with app.db.read() as conn:
            busy = conn.execute(select(func.count()).select_from(events_table).where(
                events_table.c.id.in_(event_ids), events_table.c.status == "pending",
                events_table.c.next_attempt_at <= t)).scalar_one()
            busy += conn.execute(select(func.count()).select_from(outbox).where(
                outbox.c.source_event_id.in_(event_ids),
                or_(outbox.c.status == "sending",
                    and_(outbox.c.status == "queued", outbox.c.next_attempt_at <= t,
                         or_(outbox.c.not_before.is_(None), outbox.c.not_before <= t))))).scalar_one()
        return int(busy)

    async def run() -> None:
        worker = Worker(app)
        deadline = time.monotonic() + wait_seconds
        try:
            while True:
                await worker.run_until_idle()
                if not await asyncio.to_thread(unsettled) or time.monotonic() > deadline:
                    return
                await asyncio.sleep(0.2)
        finally:
            await app.channel.aclose()

    asyncio.run(run())


def _message(app: Any, decision: dict[str, Any], target: str, requests: dict[str, dict[str, Any]],
             masker: Any) -> dict[str, Any]:
    from ..core.phones import contact_key
    m = app.message(decision["id"])
    masker.add(m["recipient"])
    if m["recipient"] is None:  # a refusal keeps no number: find it among the events' numbers
        known = {contact_key("+" + digits, app.secret): "+" + digits for digits in masker.numbers}
        m = {**m, "recipient": known.get(m["contact_key"])}
    status = m["status"]
    verdict = {"refused": "refused", "failed": "failed", "queued": "queued", "cancelled": "refused"}.get(
        status, "sent")
    out = {"id": m["id"], "target": target, "verdict": verdict, "status": status, "reason": m["reason"],
           "detail": m["error_details"], "content_type": m["content_type"], "template": m["template_name"],
           "language": m["language"], "to": _masked(m["recipient"]), "duplicate": decision.get("duplicate", False),
           "not_before": _iso(m["not_before"]) if status == "queued" else None}
    body = requests.get(m["id"])
    if body is not None:
        masker.add(body.get("to"))
        out["request"] = {"url": _cloud_api_url(app, body, m["category"], m.get("business_phone_number_id"),
                                                _campaign_choice(app, m)), "body": body}
    return out


def _masked(phone: str | None) -> str:
    from ..core.phones import mask
    return mask(phone) if phone else "?"


def _iso(ts: float | None) -> str | None:
    return iso_utc(datetime.fromtimestamp(ts, UTC)) if ts else None


def _campaign_choice(app: Any, message: dict[str, Any]) -> bool | None:
    """The Marketing Messages API choice of the campaign that sent ``message`` (None: not a
    campaign's, or it leaves the choice to the account), as the sender tells the channel."""
    from ..core.campaigns.send_rules import campaign_of, rules_for
    campaign = campaign_of(message)
    if campaign is None:
        return None
    with app.db.read() as conn:
        rules = rules_for(conn, [message]).get(campaign)
    return rules.marketing_api if rules is not None else None


def _cloud_api_url(app: Any, body: dict[str, Any], category: str, number: str | None = None,
                   prefer: bool | None = None) -> str:
    """Where the live channel would POST ``body``: from ``number`` (the message's own), else from
    the default number; a marketing template by ``prefer`` (its campaign's choice), else by the
    setting of that number's account."""
    from ..connectors.whatsapp.channel import request_path
    from ..connectors.whatsapp.settings import WhatsAppSettings
    connector = app.connectors.get("whatsapp")
    settings = connector.settings if connector is not None else WhatsAppSettings()
    if prefer is None and connector is not None:
        prefer = connector.marketing_messages_api(number)
    path = request_path(settings, category, body.get("type") == "template", number, prefer)
    return f"{settings.graph_url}/{path}"


def _collect_numbers(events: list[Any], masker: Any) -> None:
    """Every phone number the events carry, so that the report masks it wherever it appears."""
    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and key in ("phone", "recipient", "wa_id", "from", "to"):
            masker.add(value)
    for event in events:
        walk(event.model_dump(mode="json"))
