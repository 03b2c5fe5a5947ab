"""The console's Campaigns page: list, create from an uploaded audience, preview, start, pause,
resume, cancel, follow, results -- each through :class:`connectzap.core.campaigns.Campaigns`, the
methods ``connectzap campaigns ...`` and ``/v1/campaigns`` call."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import urlencode

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from ..core.app import Connectzap
from ..core.campaigns import (Action, AudienceResult, BadAudience, BadLine, InvalidLines, NoRecipients, Recipient,
                              State, format_of, read_file, report_csv, results_csv)
from ..core.campaigns.service import EDITABLE, Draft
from ..core.campaigns.sources import parse_from
from ..core.campaigns.states import allowed
from ..core.errors import ConnectzapError, NotFoundError
from ..core.wording import counted, plural
from ..core.templates import expectation
from . import sessions
from .pages import _address, _engine, _see, action, page, router, upload_action
from .rendering import HEADERS, render

RESULTS_PAGE = 200
OPEN = ("pending", "deferred", "queued")
"""Outcomes still to come: the rest of the recipients are done (what ``campaigns show --watch`` counts)."""
_CAMPAIGN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
CONTROLS = (Action.PAUSE, Action.RESUME, Action.CANCEL)


def _template_choices(engine: Connectzap) -> list[dict[str, Any]]:
    """The approved templates in the cache, each with the audience columns its body asks for."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for t in sorted(engine.templates(), key=lambda t: (t.name, t.language)):
        if t.status == "APPROVED":
            seen.setdefault((t.name, t.language), {"value": f"{t.name}|{t.language}", "name": t.name,
                                                   "language": t.language, "category": t.category,
                                                   "params": expectation(t).body_params})
    return list(seen.values())


def campaigns(request: Request, engine: Connectzap, session: sessions.Session) -> Response:
    return _listing(request, engine, session)


def senders(engine: Connectzap) -> dict[str, str]:
    """The numbers a campaign may be sent from (phone number id -> its account's WABA) when there are
    several (docs/several-accounts.md); empty with one number: nothing to choose."""
    accounts = engine.business_accounts
    return dict(sorted(accounts.numbers.items())) if accounts is not None and len(accounts.numbers) > 1 else {}


def _listing(request: Request, engine: Connectzap, session: sessions.Session, *, status: int = 200,
             **context: Any) -> Response:
    return render(request, engine, session, "campaigns.html", status=status, nav="campaigns",
                  campaigns=engine.campaigns.listing(), templates=_template_choices(engine), senders=senders(engine),
                  sources=sorted({name for c in engine.connectors.values() for name in c.audience_sources}),
                  form=context.pop("form", {}), **context)


def _body(text: str) -> list[str] | dict[str, str] | str:
    """The default body parameters, one a line: ``NAME=VALUE`` (named) or plain values in order;
    a string says why not."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    named = [line for line in lines if "=" in line]
    if named and len(named) != len(lines):
        return "give every default parameter as NAME=VALUE, or none of them"
    return dict(line.split("=", 1) for line in lines) if named else lines


def _when(text: str) -> datetime | None | str:
    """A start time from a ``datetime-local`` field (UTC) or ISO 8601; a string says why not."""
    if not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return f"{text.strip()!r} is not a time such as 2026-12-24T09:00"
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(stream: BinaryIO) -> io.TextIOWrapper:
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")


def create(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str],
           files: dict[str, UploadFile]) -> Response:
    """``connectzap campaigns create NAME --template T --audience FILE ...``: a draft with its audience."""
    kept = {k: form.get(k, "") for k in ("name", "template", "params", "window", "rate", "country", "source",
                                         "params_from", "send_from", "marketing_api")}
    kept["skip_invalid"] = "on" if form.get("skip_invalid") else ""

    def again(error: str, bad: list[BadLine] | None = None, bad_count: int = 0) -> Response:
        return _listing(request, engine, session, status=400, form=kept, error=error, bad=bad or [],
                        bad_count=bad_count)

    upload = files.get("audience")
    name = form.get("name", "").strip()[:200]
    template_name, _, language = form.get("template", "").partition("|")
    body = _body(form.get("params", ""))
    country = form.get("country", "").strip().upper() or None
    rate_text = form.get("rate", "").strip()
    if not name:
        return again("Give the campaign a name.")
    if not template_name or not language:
        return again("Choose a template.")
    if isinstance(body, str):
        return again(body)
    sender = form.get("send_from", "").strip() or None
    if sender is not None and sender not in senders(engine):
        return again("Choose a number to send from (or the default number).")
    source = form.get("source", "").strip()
    has_file = upload is not None and bool(upload.filename)
    if has_file and source:
        return again("Give the audience as a file or as a source, not both.")
    if not has_file and not source:
        return again("Choose the audience file (CSV or JSON lines).")
    try:
        rate = float(rate_text) if rate_text else None
    except ValueError:
        return again(f"The rate {rate_text!r} is not a number of messages a minute.")
    template = {"name": template_name, "language": language, "body": body}
    window = form.get("window", "").strip() or None
    choice = form.get("marketing_api", "").strip() or None  # checked by create (use needs the API configured)
    if source:
        return _create_from_source(request, engine, session, name, template, window, rate, sender, choice, form,
                                   again)
    assert upload is not None
    skip = bool(form.get("skip_invalid"))
    draft = _draft(engine, name, template, window, rate, sender, choice)
    if isinstance(draft, str):
        return again(draft)
    try:  # the campaign is written with its audience: a refused file leaves none
        said = _load(engine, upload, country, "nothing was created",
                     lambda rows: engine.campaigns.save(draft, rows, skip_invalid=skip)[1])
    except ConnectzapError as exc:
        return again(exc.message)
    if isinstance(said, Refusal):
        return again(said.error, said.bad, said.bad_count)
    return _created(request, engine, session, draft, said)


def _create_from_source(request: Request, engine: Connectzap, session: sessions.Session, name: str,
                        template: dict[str, Any], window: str | None, rate: float | None, sender: str | None,
                        choice: str | None, form: dict[str, str], again: Callable[[str], Response]) -> Response:
    """``connectzap campaigns create NAME --from SOURCE:SPEC``: the source's first page is read
    before the campaign exists, so a missing list or refused keys create nothing."""
    spec = form.get("source", "").strip()
    field_map = _body(form.get("params_from", ""))
    if isinstance(field_map, str):
        return again(field_map.replace("default parameter", "parameter from a field"))
    country = form.get("country", "").strip().upper() or None
    try:
        source, options = parse_from(spec)
        opened = engine.campaigns.open_source(source, options, field_map or None, country)
    except ConnectzapError as exc:
        return again(f"{spec}: {exc.message}")
    draft = _draft(engine, name, template, window, rate, sender, choice)
    if isinstance(draft, str):
        opened.reader.close()
        return again(draft)
    try:  # the campaign is written with its whole audience: a source failing mid-way leaves none
        loaded = engine.campaigns.save(draft, opened)[1]
    except ConnectzapError as exc:
        return again(f"{spec}: {exc.message}" + (", nothing was created." if isinstance(exc, NoRecipients) else ""))
    skipped = loaded.skipped_text(records=True)
    said = f"{counted(loaded.added, 'recipient')} from {spec}" + (f", {skipped}" if skipped else "")
    return _created(request, engine, session, draft, said)


def _draft(engine: Connectzap, name: str, template: dict[str, Any], window: str | None, rate: float | None,
           sender: str | None, choice: str | None) -> Draft | str:
    """The new campaign, checked but not written (it is written with its audience); a string says why not."""
    try:
        return engine.campaigns.draft(name, template, window=window, rate_per_minute=rate,
                                      business_phone_number_id=sender, marketing_api=choice)
    except (ConnectzapError, ValueError) as exc:
        return exc.message if isinstance(exc, ConnectzapError) else str(exc)


def _created(request: Request, engine: Connectzap, session: sessions.Session, draft: Draft, said: str) -> Response:
    """The operator's record of a campaign written with its audience, and its page saying so."""
    campaign_id = draft.values["id"]
    engine.operators.record(session.actor, "campaign_create", f"campaign {campaign_id}", said, _address(request))
    return _see(f"/console/campaigns/{campaign_id}?" + urlencode({"done": f"created {draft.values['name']}: {said}"}))


@dataclass
class Refusal:
    """Why an uploaded audience was not loaded: the message, the bad lines shown, how many there were."""

    error: str
    bad: list[BadLine] = field(default_factory=list)
    bad_count: int = 0


def _load(engine: Connectzap, upload: UploadFile, country: str | None, kept: str,
          load: Callable[[Iterator[Recipient | BadLine]], AudienceResult]) -> str | Refusal:
    """The upload's rows through ``load`` (read once: the loader refuses a bad line, or a file
    without a single recipient, keeping nothing); what was loaded, or the refusal, ``kept`` saying
    what stays."""
    name = upload.filename or "the audience"
    text = _text(upload.file)
    try:
        loaded = load(read_file(text, format_of(name), engine.secret, country))
    except (BadAudience, UnicodeDecodeError) as exc:
        return Refusal(f"{name}: {exc}")
    except InvalidLines as exc:
        count = exc.bad_count
        return Refusal(f"{name}: {counted(count, 'bad line')}, {kept}; fix {plural(count, 'it', 'them')} "
                       "(or tick “load the other lines”).", exc.bad, count)
    except NoRecipients as exc:
        return Refusal(f"{name}: {exc.message}, {kept}.", exc.result.bad, exc.result.bad_count)
    finally:
        text.detach()
    skipped = loaded.skipped_text()
    return counted(loaded.added, "recipient") + (f", {skipped}" if skipped else "")


def replace_audience(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str],
                     files: dict[str, UploadFile]) -> Response:
    """``connectzap campaigns audience``: a draft's or scheduled campaign's new audience. A file with
    bad lines is refused before anything changes: the audience it had stays."""
    view = _found(request, engine, session)
    if isinstance(view, Response):
        return view
    upload = files.get("audience")
    if upload is None or not upload.filename:
        return _back(view.id, error="Choose the audience file (CSV or JSON lines).")
    if view.state not in EDITABLE:
        return _back(view.id, error=f"The campaign is {view.state}: its audience can only change while it is a "
                                    "draft or scheduled.")
    country = form.get("country", "").strip().upper() or None
    skip = bool(form.get("skip_invalid"))
    try:
        said = _load(engine, upload, country, "the audience is unchanged",
                     lambda rows: engine.campaigns.load_audience(view.id, rows, skip_invalid=skip))
    except ConnectzapError as exc:
        return _back(view.id, error=exc.message)
    if isinstance(said, Refusal):
        return _campaign_page(request, engine, session, view, status=400, error=said.error, bad=said.bad,
                              bad_count=said.bad_count)
    engine.operators.record(session.actor, "campaign_audience", f"campaign {view.id}", said, _address(request))
    return _back(view.id, done=f"new audience: {said}")


def _found(request: Request, engine: Connectzap, session: sessions.Session) -> Any:
    """The campaign the path names, or the not-found page."""
    raw = request.path_params["campaign_id"]
    try:
        if not _CAMPAIGN_ID.fullmatch(raw):
            raise NotFoundError(raw)
        return engine.campaigns.get(raw)
    except NotFoundError:
        return render(request, engine, session, "missing.html", status=404, nav="campaigns",
                      what=f"no campaign {raw}")


def _progress(view: Any) -> dict[str, Any]:
    """The numbers the campaign page shows and its script refreshes, by element id."""
    done = view.recipients - sum(view.outcomes.get(k, 0) for k in OPEN)
    numbers: dict[str, Any] = {"campaign-state": view.state, "campaign-done": done,
                               "campaign-recipients": view.recipients, "campaign-waiting": view.waiting or "-"}
    numbers.update({f"outcome-{k}": n for k, n in view.outcomes.items()})
    return numbers


def campaign(request: Request, engine: Connectzap, session: sessions.Session) -> Response:
    view = _found(request, engine, session)
    if isinstance(view, Response):
        return view
    q = request.query_params
    return _campaign_page(request, engine, session, view, done=q.get("done"), error=q.get("error"))


def _campaign_page(request: Request, engine: Connectzap, session: sessions.Session, view: Any, *,
                   status: int = 200, **context: Any) -> Response:
    q = request.query_params
    after = int(q["after"]) if q.get("after", "").isdigit() else 0
    rows = engine.campaigns.results(view.id, after_line=after, limit=RESULTS_PAGE + 1)
    older = ("?" + urlencode({"after": rows[RESULTS_PAGE - 1]["line"]})) if len(rows) > RESULTS_PAGE else None
    controls = [a.value for a in CONTROLS if allowed(view.state, a)]
    return render(request, engine, session, "campaign.html", status=status, nav="campaigns", c=view,
                  numbers=_progress(view), results=rows[:RESULTS_PAGE], more=older, controls=controls,
                  startable=allowed(view.state, Action.START), editable=view.state in EDITABLE,
                  live=view.state in (State.RUNNING, State.SCHEDULED), report=engine.campaigns.report(view.id),
                  **context)


def preview(request: Request, engine: Connectzap, session: sessions.Session) -> Response:
    """``connectzap campaigns preview``: the gate's checks over everyone still to be sent to."""
    view = _found(request, engine, session)
    if isinstance(view, Response):
        return view
    shown = engine.campaigns.preview(view.id)
    refused = sorted(shown.refused.items(), key=lambda kv: (-kv[1], kv[0]))
    return render(request, engine, session, "campaign_preview.html", nav="campaigns", c=view, p=shown,
                  refused=refused, startable=allowed(view.state, Action.START))


def _back(campaign_id: str, **said: str) -> Response:
    return _see(f"/console/campaigns/{campaign_id}?" + urlencode(said))


def start(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    """``connectzap campaigns start [--at]``."""
    view = _found(request, engine, session)
    if isinstance(view, Response):
        return view
    at = _when(form.get("at", ""))
    if isinstance(at, str):
        return _back(view.id, error=at)
    try:
        started = engine.campaigns.start(view.id, at)
    except ConnectzapError as exc:
        return _back(view.id, error=exc.message)
    said = started.state + (f" for {started.starts_at:%Y-%m-%d %H:%M} UTC"
                            if started.state == State.SCHEDULED and started.starts_at else "")
    engine.operators.record(session.actor, "campaign_start", f"campaign {view.id}", said, _address(request))
    return _back(view.id, done=f"{view.name}: {said}")


def control(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    """``connectzap campaigns pause|resume|cancel``."""
    view = _found(request, engine, session)
    if isinstance(view, Response):
        return view
    what = request.path_params["what"]
    if what not in {a.value for a in CONTROLS}:
        return render(request, engine, session, "missing.html", status=404, nav="campaigns", what=f"no action {what}")
    try:
        changed = engine.campaigns.control(view.id, Action(what))
    except ConnectzapError as exc:
        return _back(view.id, error=exc.message)
    engine.operators.record(session.actor, f"campaign_{what}", f"campaign {view.id}", changed.state,
                            _address(request))
    return _back(view.id, done=f"{view.name}: {changed.state}")


def results(request: Request, engine: Connectzap, session: sessions.Session) -> Response:
    """``connectzap campaigns results --csv``: the same CSV (masked numbers), streamed."""
    view = _found(request, engine, session)
    if isinstance(view, Response):
        return view
    rows: Iterator[str] = results_csv(engine.campaigns.all_results(view.id))
    return StreamingResponse(rows, media_type="text/csv", headers={
        **HEADERS, "Content-Disposition": f'attachment; filename="{view.id}-results.csv"'})


def report(request: Request, engine: Connectzap, session: sessions.Session) -> Response:
    """``connectzap campaigns report --csv``: the same table (outcomes with their cost, rates, codes)."""
    view = _found(request, engine, session)
    if isinstance(view, Response):
        return view
    return Response(report_csv(engine.campaigns.report(view.id)), media_type="text/csv", headers={
        **HEADERS, "Content-Disposition": f'attachment; filename="{view.id}-report.csv"'})


async def live(request: Request) -> Response:
    """A campaign's changing numbers for its page's script (the page works without)."""
    engine = _engine(request)
    if await run_in_threadpool(sessions.current, request, engine) is None:
        return JSONResponse({"error": "log in"}, status_code=401, headers=HEADERS)
    raw = request.path_params["campaign_id"]
    try:
        view = await run_in_threadpool(engine.campaigns.get, raw) if _CAMPAIGN_ID.fullmatch(raw) else None
    except NotFoundError:
        view = None
    if view is None:
        return JSONResponse({"error": "no such campaign"}, status_code=404, headers=HEADERS)
    return JSONResponse({"numbers": _progress(view)}, headers=HEADERS)


router.add_api_route("/campaigns", page(campaigns), methods=["GET"])
router.add_api_route("/campaigns", upload_action(create), methods=["POST"])
router.add_api_route("/campaigns/{campaign_id}", page(campaign), methods=["GET"])
router.add_api_route("/campaigns/{campaign_id}/preview", page(preview), methods=["GET"])
router.add_api_route("/campaigns/{campaign_id}/live", live, methods=["GET"])
router.add_api_route("/campaigns/{campaign_id}/results.csv", page(results), methods=["GET"])
router.add_api_route("/campaigns/{campaign_id}/report.csv", page(report), methods=["GET"])
router.add_api_route("/campaigns/{campaign_id}/audience", upload_action(replace_audience), methods=["POST"])
router.add_api_route("/campaigns/{campaign_id}/start", action(start), methods=["POST"])
router.add_api_route("/campaigns/{campaign_id}/{what}", action(control), methods=["POST"])
