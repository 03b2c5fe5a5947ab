"""``connectzap campaigns ...``: one approved template to a list of customers, through the send gate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sys

import click

from ..core.wording import counted, plural
from .base import Ctx, cli, drain, pass_ctx
from .exits import CommandFailed
from .output import Column, emit, emit_json, json_option, progress

if TYPE_CHECKING:
    from ..core.campaigns.service import Draft

CAMPAIGN_COLUMNS = [Column("id"), Column("name"), Column("state"), Column("template"), Column("recipients"),
                    Column("outcomes", lambda c: _counts(c.outcomes)), Column("waiting")]
SHOWN_BAD_LINES = 20


@cli.group()
def campaigns() -> None:
    """Send a template to a list of customers: create, preview, start, pause, resume, cancel, results."""


def _counts(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in outcomes.items()) or "-"


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as 2026-12-24T09:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _params(pairs: tuple[str, ...]) -> list[str] | dict[str, str]:
    """``--param`` values: ``NAME=VALUE`` (named) or plain values (positional, in order)."""
    named = [p for p in pairs if "=" in p]
    if named and len(named) != len(pairs):
        raise click.BadParameter("give every --param as NAME=VALUE, or none of them", param_hint="--param")
    return dict(p.split("=", 1) for p in pairs) if named else list(pairs)


def _load(app: Any, target: str | Draft, audience: Any, fmt: str | None, country: str | None,
          skip_invalid: bool) -> None:
    """The file's rows into ``target``: a campaign's id (its audience replaced) or a :class:`Draft`
    (written with them, or not at all)."""
    from ..core.campaigns import BadAudience, InvalidLines, NoRecipients, format_of, read_file
    name = getattr(audience, "name", "-")
    try:
        with progress("loading", None) as bar:
            def advancing() -> Any:
                for row in read_file(audience, fmt or format_of(name), app.secret, country):
                    bar.advance(1)
                    yield row
            result = _fill(app, target, advancing(), skip_invalid)
    except BadAudience as exc:
        raise CommandFailed(f"{name}: {exc} -- {_kept(app, target)}") from None
    except NoRecipients as exc:  # a header and nothing else, or nothing but bad lines skipped
        raise CommandFailed(f"{name}: {exc.message} -- {_kept(app, target)}") from None
    except InvalidLines as exc:  # refused: nothing of the file was kept
        _show_bad_lines(name, exc.result)
        raise CommandFailed(f"{name}: {counted(exc.bad_count, 'bad line')}; fix "
                            f"{plural(exc.bad_count, 'it', 'them')} (or load the other lines with --skip-invalid)"
                            f" -- {_kept(app, target)}") from None
    _show_bad_lines(name, result)
    skipped = result.skipped_text()
    click.echo(f"audience: {counted(result.added, 'recipient')}" + (f", {skipped}" if skipped else ""))


def _fill(app: Any, target: str | Draft, rows: Any, skip_invalid: bool) -> Any:
    """Load ``rows`` (file rows, or an opened source) into ``target``: a :class:`Draft` is written
    with its whole audience in one go (a refused or killed load leaves no campaign); a campaign's id
    has its audience replaced."""
    from ..core.campaigns.service import Draft, SourceRows
    if isinstance(target, Draft):
        return app.campaigns.save(target, rows, skip_invalid=skip_invalid)[1]
    if isinstance(rows, SourceRows):
        return app.campaigns.load_source(target, rows)
    return app.campaigns.load_audience(target, rows, skip_invalid=skip_invalid)


def _show_bad_lines(name: str, result: Any) -> None:
    """The file's bad lines on stderr, each with its number and why (the first few, then how many more)."""
    for bad in result.bad[:SHOWN_BAD_LINES]:
        click.echo(f"{name}: line {bad.line}: {bad.reason}", err=True)
    if result.bad_count > SHOWN_BAD_LINES:
        click.echo(f"{name}: ... and {counted(result.bad_count - SHOWN_BAD_LINES, 'more bad line')}", err=True)


def _kept(app: Any, target: str | Draft) -> str:
    """What a refused audience leaves: no campaign for a :class:`Draft`; for a campaign, its audience
    (a replacement takes the old one's place only once loaded whole)."""
    from ..core.campaigns.service import Draft
    if isinstance(target, Draft):
        return "no campaign was created"
    kept: str = app.campaigns.kept_audience(target)
    return kept


def _field_map(pairs: tuple[str, ...]) -> list[str] | dict[str, str] | None:
    """``--param-from`` values: ``PARAM=FIELD`` (named parameters) or plain fields (positional)."""
    return _params(pairs) if pairs else None


def _open_source(app: Any, spec: str, field_map: tuple[str, ...], country: str | None) -> Any:
    from ..core.campaigns.sources import parse_from
    source, options = parse_from(spec)
    return app.campaigns.open_source(source, options, _field_map(field_map), country)


def _load_source(app: Any, target: str | Draft, opened: Any, spec: str) -> None:
    """An opened source's records into ``target`` (as :func:`_load`); a source failing mid-way keeps nothing."""
    from ..core.campaigns import NoRecipients
    try:
        result = _fill(app, target, opened, True)
    except NoRecipients as exc:  # an empty list, or no record with a usable number
        raise CommandFailed(f"{spec}: {exc.message} -- {_kept(app, target)}") from None
    for bad in result.bad[:SHOWN_BAD_LINES]:
        click.echo(f"{spec}: record {bad.line}: {bad.reason}", err=True)
    skipped = result.skipped_text(records=True)
    click.echo(f"audience from {spec}: {counted(result.added, 'recipient')}" + (f", {skipped}" if skipped else ""))


AUDIENCE = click.File("r", encoding="utf-8-sig")
FROM_HELP = ("Read the audience from a connector instead of a file: hubspot-list:LIST_ID, "
             "woocommerce:days=30,min_total=50,status=completed (see docs/campaigns.md).")
PARAM_FROM_HELP = ("With --from: a body parameter from each record's field (PARAM=FIELD for named parameters, "
                   "or the fields in order); repeat it.")
FORMAT = click.Choice(["csv", "jsonl"])


@campaigns.command("create")
@click.argument("name")
@click.option("--template", "template_name", required=True, help="An approved template's name.")
@click.option("--language", default="en", show_default=True, help="The template's language code.")
@click.option("--param", "params", multiple=True,
              help="A body parameter every recipient gets unless the audience gives it (NAME=VALUE, or plain "
                   "values in order); repeat it.")
@click.option("--audience", type=AUDIENCE, help="CSV or JSON-lines file of recipients (- for stdin).")
@click.option("--from", "from_source", metavar="SOURCE:SPEC", help=FROM_HELP)
@click.option("--param-from", "param_from", multiple=True, help=PARAM_FROM_HELP)
@click.option("--format", "fmt", type=FORMAT, help="The audience's format (default: by its file name; CSV).")
@click.option("--country", help="Country for national numbers in the audience (a row's country column wins).")
@click.option("--skip-invalid", is_flag=True, help="Load the good lines of an audience with bad ones.")
@click.option("--window", help="Send only between these local times of each recipient, e.g. 09:00-20:00.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="At most this many messages a minute.")
@click.option("--phone-number-id", help="The business number to send from (default: the configured one).")
@click.option("--marketing-api", type=click.Choice(["account", "use", "avoid"]), default="account", show_default=True,
              help="Send a marketing template through Meta's Marketing Messages API (use), the Cloud API (avoid), "
                   "or as the number's account is configured (account).")
@json_option
@pass_ctx
def campaigns_create(obj: Ctx, name: str, template_name: str, language: str, params: tuple[str, ...],
                     audience: Any, from_source: str | None, param_from: tuple[str, ...], fmt: str | None,
                     country: str | None, skip_invalid: bool, window: str | None,
                     rate: float | None, phone_number_id: str | None, marketing_api: str, as_json: bool) -> None:
    """Create a draft campaign of an approved template, with its audience. Nothing is sent until
    `connectzap campaigns start`; `preview` shows who can be reached first."""
    app = obj.app()
    if audience is not None and from_source:
        raise click.UsageError("give the audience as --audience FILE or --from SOURCE:SPEC, not both")
    # The source is opened (its first page read) before anything is written: a missing list or
    # refused credentials leave nothing behind.
    opened = _open_source(app, from_source, param_from, country) if from_source else None
    try:
        draft = app.campaigns.draft(name, {"name": template_name, "language": language, "body": _params(params)},
                                    window=window, rate_per_minute=rate, business_phone_number_id=phone_number_id,
                                    marketing_api=marketing_api)
    except BaseException as exc:
        if opened is not None:
            opened.reader.close()
        if isinstance(exc, ValueError):
            raise click.BadParameter(str(exc), param_hint="--window") from None
        raise
    # The campaign is written with its whole audience, or not at all: a refused file or source, or
    # a process killed mid-load, leaves no campaign (and no empty draft of the name).
    if audience is not None:
        _load(app, draft, audience, fmt, country, skip_invalid)
    elif opened is not None and from_source:
        _load_source(app, draft, opened, from_source)
    else:
        app.campaigns.save(draft)
    view = app.campaigns.get(draft.values["id"])
    if as_json:
        emit_json(view.as_dict())
    else:
        click.echo(f"created campaign {view.id} ({view.state}, {counted(view.recipients, 'recipient')})")


@campaigns.command("audience")
@click.argument("campaign_id", metavar="CAMPAIGN")
@click.argument("audience", type=AUDIENCE, required=False)
@click.option("--from", "from_source", metavar="SOURCE:SPEC", help=FROM_HELP)
@click.option("--param-from", "param_from", multiple=True, help=PARAM_FROM_HELP)
@click.option("--format", "fmt", type=FORMAT)
@click.option("--country")
@click.option("--skip-invalid", is_flag=True)
@pass_ctx
def campaigns_audience(obj: Ctx, campaign_id: str, audience: Any, from_source: str | None,
                       param_from: tuple[str, ...], fmt: str | None, country: str | None, skip_invalid: bool) -> None:
    """Replace a draft or scheduled campaign's audience with a CSV or JSON-lines file, or with the
    records of a connector's source (--from)."""
    app = obj.app()
    if (audience is None) == (not from_source):
        raise click.UsageError("give the audience as a FILE or as --from SOURCE:SPEC (one of them)")
    campaign = app.campaigns.resolve(campaign_id)
    if from_source:
        _load_source(app, campaign, _open_source(app, from_source, param_from, country), from_source)
    else:
        _load(app, campaign, audience, fmt, country, skip_invalid)


@campaigns.command("preview")
@click.argument("campaign_id", metavar="CAMPAIGN")
@json_option
@pass_ctx
def campaigns_preview(obj: Ctx, campaign_id: str, as_json: bool) -> None:
    """Who would get the template now and who would be refused, and why -- the send gate's own
    checks (consent for the template's category, opt-outs, the template and its parameters).
    Nothing is sent or written."""
    app = obj.app()
    preview = app.campaigns.preview(app.campaigns.resolve(campaign_id))
    if as_json:
        emit_json(preview.as_dict())
        return
    click.echo(f"{counted(preview.recipients, 'recipient')} still to send to; category {preview.category or '-'}")
    click.echo(f"  reachable now: {preview.reachable}")
    for reason, n in sorted(preview.refused.items(), key=lambda item: -item[1]):
        click.echo(f"  refused, {reason}: {n} ({preview.examples.get(reason, '')})")


@campaigns.command("start")
@click.argument("campaign_id", metavar="CAMPAIGN")
@click.option("--at", help="Start at this time (ISO 8601; UTC when no zone is given) instead of now.")
@click.option("--wait", is_flag=True, help="Run the workers here until nothing more is due (to try it out; "
                                           "`connectzap serve` sends it otherwise).")
@pass_ctx
def campaigns_start(obj: Ctx, campaign_id: str, at: str | None, wait: bool) -> None:
    """Start a campaign now (the workers send it), or schedule it with --at."""
    app = obj.app()
    view = app.campaigns.start(app.campaigns.resolve(campaign_id), _when(at))
    if wait:
        drain(app)
        view = app.campaigns.get(view.id)
    click.echo(f"campaign {view.id}: {view.state}" + (f" for {view.starts_at:%Y-%m-%d %H:%M} UTC"
                                                       if view.state == "scheduled" and view.starts_at else "")
               + (f" ({_counts(view.outcomes)})" if wait else ""))


def _control(action: str, doc: str) -> None:
    @campaigns.command(action, help=doc)
    @click.argument("campaign_id", metavar="CAMPAIGN")
    @pass_ctx
    def command(obj: Ctx, campaign_id: str) -> None:
        app = obj.app()
        view = app.campaigns.control(app.campaigns.resolve(campaign_id), action)
        click.echo(f"campaign {view.id}: {view.state}")


@campaigns.command("marketing-api")
@click.argument("campaign_id", metavar="CAMPAIGN")
@click.argument("choice", type=click.Choice(["account", "use", "avoid"]))
@json_option
@pass_ctx
def campaigns_marketing_api(obj: Ctx, campaign_id: str, choice: str, as_json: bool) -> None:
    """Change how the campaign's marketing template goes out (as `create --marketing-api`): through
    Meta's Marketing Messages API (use), the Cloud API (avoid), or as the number's account is
    configured (account). Only while it is a draft, scheduled or paused."""
    app = obj.app()
    view = app.campaigns.set_marketing_api(app.campaigns.resolve(campaign_id), choice)
    if as_json:
        emit_json(view.as_dict())
    else:
        click.echo(f"campaign {view.id} ({view.state}): marketing_api {view.marketing_api}")


_control("pause", "Stop admitting recipients; what waits in the outbox is taken back (a message already being "
                  "sent goes on).")
_control("resume", "Continue a paused campaign where it stopped.")
_control("cancel", "Stop for good: nobody else gets it, and nothing of it stays queued.")


@campaigns.command("show")
@click.argument("campaign_id", metavar="CAMPAIGN")
@click.option("--watch", is_flag=True, help="Follow it until it ends or pauses: a live progress bar with the counts "
                                            "per outcome on a terminal, a line per change otherwise.")
@json_option
@pass_ctx
def campaigns_show(obj: Ctx, campaign_id: str, watch: bool, as_json: bool) -> None:
    """A campaign's state, settings, counts per outcome, and what it waits for."""
    app = obj.app()
    view = app.campaigns.get(app.campaigns.resolve(campaign_id))
    if watch:
        view = _watch(app, view)
    if as_json:
        emit_json(view.as_dict())
        return
    columns = [Column(name) for name in ("id", "name", "state", "template", "language", "window",
                                         "rate_per_minute", "starts_at", "created_at", "started_at", "ended_at",
                                         "marketing_api", "recipients")]
    columns += [Column("outcomes", lambda c: _counts(c.outcomes)), Column("waiting")]
    emit(view, False, columns=columns)


WATCH_SECONDS = 1.0
OPEN = ("pending", "deferred", "queued")


def _line(view: Any) -> str:
    return f"{view.state}: {_counts(view.outcomes)}" + (f" -- {view.waiting}" if view.waiting else "")


def _watch(app: Any, view: Any) -> Any:
    """Show ``view`` as it changes until its campaign is no longer running or scheduled."""
    import time
    with progress(view.name, view.recipients) as bar:
        shown, last = 0, ""
        while True:
            done = view.recipients - sum(view.outcomes.get(k, 0) for k in OPEN)
            bar.advance(done - shown)
            shown = done
            line = _line(view)
            if line != last and not sys.stderr.isatty():
                click.echo(line)
            last = line
            if view.state not in ("running", "scheduled"):
                return view
            time.sleep(WATCH_SECONDS)
            view = app.campaigns.get(view.id)


@campaigns.command("report")
@click.argument("campaign_id", metavar="CAMPAIGN")
@click.option("--within", "hours", type=click.FloatRange(0, 24 * 365, min_open=True), default=24.0,
              show_default=True, help="Hours from the send within which a delivery, read or reply counts for the "
                                      "*_within rates.")
@click.option("--csv", "as_csv", is_flag=True, help="As one CSV table (outcomes with their cost, rates, codes).")
@json_option
@pass_ctx
def campaigns_report(obj: Ctx, campaign_id: str, hours: float, as_csv: bool, as_json: bool) -> None:
    """How a campaign did: counts, delivered/read/replied rates of those reached (and within
    --within hours of the send), failures by the channel's code, refusals by reason, Meta's per-message
    pricing of its messages, and their cost at the [pricing] rates."""
    app = obj.app()
    report = app.campaigns.report(app.campaigns.resolve(campaign_id), within_hours=hours)
    if as_csv:
        from ..core.campaigns import report_csv
        click.echo(report_csv(report), nl=False)
        return
    if as_json:
        emit_json(report.model_dump(mode="json"))
        return

    def pct(rate: float | None) -> str:
        return "-" if rate is None else f"{rate:.1%}"

    columns = [Column("recipients"), Column("outcomes", lambda r: _counts(r.outcomes)), Column("reached"),
               Column("delivered", lambda r: pct(r.delivered_rate)), Column("read", lambda r: pct(r.read_rate)),
               Column("replied", lambda r: pct(r.replied_rate)),
               Column(f"within {hours:g} h", lambda r: f"delivered {pct(r.delivered_within_rate)}, "
                                                       f"read {pct(r.read_within_rate)}, "
                                                       f"replied {pct(r.replied_within_rate)}"),
               Column("cost", lambda r: f"{r.cost} {r.currency}" + (
                   f" ({r.unpriced_billable} billable without a rate)" if r.unpriced_billable else "")),
               Column("cost by outcome", lambda r: ", ".join(f"{k} {v}" for k, v in r.cost_by_outcome.items()) or "-"),
               Column("failed by code", lambda r: _counts(r.failed_by_code)),
               Column("refused by reason", lambda r: _counts(r.refused_by_reason)),
               Column("pricing", lambda r: ", ".join(
                   f"{p['category']}/{p['type']}{'' if p['billable'] else ' (free)'} {p['messages']}"
                   for p in r.pricing) or "-")]
    emit(report, False, columns=columns)


@campaigns.command("list")
@json_option
@pass_ctx
def campaigns_list(obj: Ctx, as_json: bool) -> None:
    """Campaigns, newest first."""
    views = obj.app().campaigns.listing()
    if as_json:
        emit_json([v.as_dict() for v in views])
        return
    emit(views, False, columns=CAMPAIGN_COLUMNS, empty="no campaigns")


@campaigns.command("results")
@click.argument("campaign_id", metavar="CAMPAIGN")
@click.option("--csv", "as_csv", is_flag=True, help="Every recipient as CSV (masked numbers).")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-")
@json_option
@pass_ctx
def campaigns_results(obj: Ctx, campaign_id: str, as_csv: bool, output: Any, as_json: bool) -> None:
    """Each recipient's outcome, in audience order: queued, refused (with the gate's reason), sent,
    delivered, read, replied, failed (with the channel's code and title). Numbers are masked."""
    app = obj.app()
    rows = app.campaigns.all_results(app.campaigns.resolve(campaign_id))
    if as_csv:
        from ..core.campaigns import results_csv
        for chunk in results_csv(rows):
            output.write(chunk)
        return
    listed = list(rows)
    if as_json:
        emit_json(listed)
        return
    from ..core.campaigns import RESULT_COLUMNS
    emit(listed, False, columns=[Column(c) for c in RESULT_COLUMNS if c != "contact_key"], empty="no recipients")
