"""The console's routes: login, the overview, messages and events -- each page reads through the
engine's methods and :mod:`connectzap.core.views`, each action is the CLI's engine method, checked
for CSRF and recorded in the audit log."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from ..core.app import Connectzap, QueueDepths, Throughput
from ..core.errors import ConnectzapError, NotFoundError
from ..core.consent import change as consent_change
from ..core.consent_files import PROOF_REQUIRED, proof_missing
from ..core.media import EMAIL, SMS, WHATSAPP
from ..core.media import NAME as MEDIUM_NAME
from ..core.models import Category, EventKind, StatusValue
from ..core.phones import mask, to_e164
from ..core.views import MessageView, utc
from ..core.windows import WINDOW_SECONDS, is_open
from ..core.wording import counted
from . import passwords, sessions
from .rendering import HEADERS, render

log = logging.getLogger("connectzap.console")

STATIC = Path(__file__).with_name("static")
LOGIN_WINDOW_SECONDS = 900.0
DAY = 86400.0
SINCE_CHOICES = {"1h": 3600.0, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
PAGE_SIZE = 50
_CONTACT_KEY = re.compile(r"[0-9a-f]{32}")
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


UPLOADS = re.compile(r"/console/campaigns(/[A-Za-z0-9_-]{1,64}/audience)?|/console/contacts/import")
"""The console's file uploads (a campaign's audience, a consent file): allowed up to ``console.max_upload_bytes``."""


def mount(app: FastAPI) -> None:
    """Add the console's routes to the HTTP service of ``app.state.engine``."""
    app.include_router(router)
    app.state.larger_bodies.append((UPLOADS, app.state.engine.settings.console.max_upload_bytes))


router = APIRouter(prefix="/console", include_in_schema=False)


def _engine(request: Request) -> Connectzap:
    engine: Connectzap = request.app.state.engine
    return engine


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form body (every console form is one): the first value of each field."""
    parsed = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items()}


def _safe_next(value: str | None) -> str:
    """Where to go after logging in: a console path only (never another site)."""
    if value and value.startswith("/console") and "//" not in value and "\\" not in value:
        return value
    return "/console"


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _see("/console/login?" + urlencode({"next": target}))


# --- pages and actions: who may see and do ---------------------------------------------------------------

def page(build: Callable[[Request, Connectzap, sessions.Session], Response]) -> Callable[..., Any]:
    """A GET page: logged in, or sent to the login page. The page is built in the thread pool
    (the engine's reads block)."""
    async def handler(request: Request) -> Response:
        engine = _engine(request)
        session = await run_in_threadpool(sessions.current, request, engine)
        if session is None:
            return _to_login(request)
        return await run_in_threadpool(build, request, engine, session)
    handler.__name__ = build.__name__
    return handler


def _refusal(request: Request, engine: Connectzap, session: sessions.Session | None,
             form: dict[str, str]) -> Response | None:
    """Why a POST may not act (403), or None: it needs a live session and the form's CSRF token."""
    if session is None:
        return render(request, engine, None, "refused.html", status=403,
                      why="Your session has ended. Log in again, then repeat what you did.")
    if not sessions.csrf_ok(engine, session.token, form.get("csrf")):
        return render(request, engine, session, "refused.html", status=403,
                      why="This form is out of date (or did not come from this console). Reload the "
                          "page and try again.")
    return None


def action(do: Callable[[Request, Connectzap, sessions.Session, dict[str, str]], Response]) -> Callable[..., Any]:
    """A POST action: a live session and the form's CSRF token, or 403 and nothing done."""
    async def handler(request: Request) -> Response:
        engine = _engine(request)
        session = await run_in_threadpool(sessions.current, request, engine)
        form = await _form(request)
        refusal = _refusal(request, engine, session, form)
        if refusal is not None or session is None:
            return refusal or Response(status_code=403)
        return await run_in_threadpool(do, request, engine, session, form)
    handler.__name__ = do.__name__
    return handler


Upload = Callable[[Request, Connectzap, sessions.Session, dict[str, str], dict[str, UploadFile]], Response]


def upload_action(do: Upload) -> Callable[..., Any]:
    """A multipart POST action (a form with a file): checked like :func:`action`. The files are
    spooled by the parser (to disk past a megabyte), so ``do`` reads them as streams."""
    async def handler(request: Request) -> Response:
        engine = _engine(request)
        session = await run_in_threadpool(sessions.current, request, engine)
        if session is None:  # nothing of a stranger's upload is read
            return _refusal(request, engine, None, {}) or Response(status_code=403)
        if not (request.headers.get("content-type") or "").startswith("multipart/form-data"):
            return await action(lambda *_: Response(status_code=415))(request)
        async with request.form(max_files=1, max_fields=50) as parsed:
            form = {k: v for k, v in parsed.items() if isinstance(v, str)}
            files = {k: v for k, v in parsed.items() if isinstance(v, UploadFile)}
            refusal = _refusal(request, engine, session, form)
            if refusal is not None or session is None:
                return refusal or Response(status_code=403)
            return await run_in_threadpool(do, request, engine, session, form, files)
    handler.__name__ = do.__name__
    return handler


# --- logging in and out ---------------------------------------------------------------------------------------

@router.get("/login")
async def login_page(request: Request) -> Response:
    engine = _engine(request)
    if await run_in_threadpool(sessions.current, request, engine) is not None:
        return _see(_safe_next(request.query_params.get("next")))
    return _login_form(request, engine)


def _login_form(request: Request, engine: Connectzap, *, error: str | None = None, status: int = 200,
                name: str = "") -> Response:
    binding = sessions.login_binding(request)
    response = render(request, engine, None, "login.html", status=status, error=error, name=name,
                      login_csrf=sessions.csrf_token(engine, binding),
                      next=_safe_next(request.query_params.get("next")))
    sessions.set_login_binding(engine, response, binding)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    engine = _engine(request)
    form = await _form(request)
    if not sessions.csrf_ok(engine, request.cookies.get(sessions.LOGIN_COOKIE), form.get("csrf")):
        return _login_form(request, engine, status=403, error="The login form was out of date: try again.")
    name, password, key = form.get("name", "").strip()[:64], form.get("password", ""), form.get("api_key", "")
    address = _address(request)
    tried = name or "api key"
    ops = engine.operators
    settings = engine.settings.console
    if await run_in_threadpool(ops.failed_logins, tried, address, LOGIN_WINDOW_SECONDS) >= settings.login_attempts:
        return _login_form(request, engine, status=429, name=name,
                           error="Too many failed logins: wait 15 minutes, then try again.")
    if key:
        actor = "api key" if request.app.state.api_keys.accepts(key) else None
    elif name and password:
        stored = await run_in_threadpool(ops.password_hash, name)
        ok = await run_in_threadpool(passwords.check_password, stored, password)
        actor = f"user:{name}" if ok else None
    else:
        return _login_form(request, engine, status=400, name=name,
                           error="Enter your user name and password, or an API key.")
    if actor is None:
        await run_in_threadpool(ops.record, "anonymous", "login_failed", tried, None, address)
        log.warning("console: failed login for %s", tried)
        return _login_form(request, engine, status=401, name=name, error="That did not match: try again.")
    response = _see(_safe_next(form.get("next")))
    await run_in_threadpool(sessions.start, engine, response, actor)
    await run_in_threadpool(ops.record, actor, "login", None, None, address)
    return response


def logout(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    response = _see("/console/login")
    sessions.end(engine, response, session)
    engine.operators.record(session.actor, "logout", address=_address(request))
    return response


# --- the overview -----------------------------------------------------------------------------------------------

def overview(request: Request, engine: Connectzap, session: sessions.Session) -> Response:
    health = engine.health()
    depths = engine.queue_depths() if health["database"] == "ok" else None
    outcomes = engine.message_counts(time.time() - DAY) if depths is not None else {}
    flow = _flow_rows(engine.throughput()) if depths is not None else []
    facts: list[tuple[str, str, str]] = []
    for name, connector in sorted(engine.connectors.items()):
        try:
            facts += [(name, label, value) for label, value in connector.status_lines()]
        except Exception as exc:  # noqa: BLE001 - one connector's trouble must not hide the page
            facts.append((name, "status", f"unavailable ({type(exc).__name__})"))
    return render(request, engine, session, "overview.html", nav="overview", health=health, depths=depths,
                  depth_rows=_depth_rows(depths) if depths is not None else [],
                  outcomes=sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0])),
                  outcomes_total=sum(outcomes.values()), facts=facts, flow=flow,
                  audit=engine.operators.audit_log(10))


@router.get("/live")
async def live(request: Request) -> Response:
    """The overview's changing numbers, for its script to refresh in place (the page works without)."""
    engine = _engine(request)
    if await run_in_threadpool(sessions.current, request, engine) is None:
        return JSONResponse({"error": "log in"}, status_code=401, headers=HEADERS)

    def read() -> dict[str, Any]:
        depths = engine.queue_depths()
        outcomes = engine.message_counts(time.time() - DAY)
        numbers: dict[str, float] = {f"depth-{status}": n for status, n in _depth_rows(depths)}
        numbers.update({f"outcome-{status}": n for status, n in outcomes.items()})
        numbers["outcome-total"] = sum(outcomes.values())
        numbers.update({f"flow-{name}": per_minute for name, _label, per_minute in _flow_rows(engine.throughput())})
        return {"numbers": numbers, "paused": engine.paused()}

    return JSONResponse(await run_in_threadpool(read), headers=HEADERS)


def _flow_rows(flow: Throughput) -> list[tuple[str, str, float]]:
    """The overview's throughput lines: (id, what, per minute over the last five minutes)."""
    return [("events", "events received", flow.per_minute(flow.events_received)),
            ("admitted", "messages admitted", flow.per_minute(flow.messages_admitted)),
            ("handed-off", "messages handed to a channel", flow.per_minute(flow.messages_handed_off))]


def _depth_rows(depths: QueueDepths) -> list[tuple[str, int]]:
    """The queue depths the overview shows: what /metrics exports as ``connectzap_queue_depth``."""
    return [("events_pending", depths.events_pending)] + [
        (f"messages_{status}", depths.messages.get(status, 0)) for status in ("queued", "sending", "unknown")]


def resume(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    reason = engine.resume_sending()
    if reason is not None:
        engine.operators.record(session.actor, "resume_sending", detail=f"was paused: {reason}",
                                address=_address(request))
    return _see("/console")


# --- messages ----------------------------------------------------------------------------------------------------

def messages(request: Request, engine: Connectzap, session: sessions.Session) -> Response:
    q = request.query_params
    status = q.get("status") or None
    if status not in {s.value for s in StatusValue}:
        status = None
    contact = q.get("contact") if _CONTACT_KEY.fullmatch(q.get("contact", "")) else None
    since_choice = q.get("since") if q.get("since") in SINCE_CHOICES else None
    before = q.get("before") if _MESSAGE_ID.fullmatch(q.get("before", "")) else None
    filters: dict[str, Any] = {
        "status": status, "reason": (q.get("reason") or "").strip()[:64] or None,
        "plugin": (q.get("plugin") or "").strip()[:128] or None,
        "medium": q.get("medium") if MEDIUM_NAME.match(q.get("medium", "")) else None,
        "since": time.time() - SINCE_CHOICES[since_choice] if since_choice else None,
    }
    rows = engine.messages(contact_key=contact, before_id=before, limit=PAGE_SIZE + 1, **filters)
    views = [MessageView.of(r) for r in rows[:PAGE_SIZE]]
    kept = {k: v for k, v in {"status": status, "reason": filters["reason"], "plugin": filters["plugin"],
                              "medium": filters["medium"], "since": since_choice, "contact": contact,
                              "masked": q.get("masked") if contact else None}.items() if v}
    older = ("?" + urlencode({**kept, "before": views[-1].id})) if len(rows) > PAGE_SIZE else None
    return render(request, engine, session, "messages.html", nav="messages", messages=views, filters=kept,
                  statuses=[s.value for s in StatusValue], since_choices=list(SINCE_CHOICES), older=older,
                  media=sorted({*MEDIA, *engine.channels}), search_error=q.get("search_error"))


def search_number(request: Request, engine: Connectzap, session: sessions.Session,
                  form: dict[str, str]) -> Response:
    """The number is hashed here and only its keyed hash (and a masked form) goes into the next URL:
    the full number is never in an address, a page or the store."""
    try:
        e164 = to_e164(form.get("phone", ""), form.get("country") or None)
    except ConnectzapError as exc:
        return _see("/console/messages?" + urlencode({"search_error": exc.message}))
    return _see("/console/messages?" + urlencode({"contact": engine.contact_key(e164), "masked": mask(e164)}))


def message(request: Request, engine: Connectzap, session: sessions.Session) -> Response:
    message_id = request.path_params["message_id"]
    try:
        view = MessageView.of(engine.message(message_id))
    except NotFoundError:
        return render(request, engine, session, "missing.html", status=404, nav="messages",
                      what=f"no message {message_id}")
    # the other way round from ``fallback_of``: what stood in for this one (refused tries included)
    fallbacks = [MessageView.of(r) for r in engine.messages(fallback_of=view.id, limit=20)]
    return render(request, engine, session, "message.html", nav="messages", m=view, steps=timeline(view),
                  fallbacks=fallbacks)


def timeline(view: MessageView) -> list[tuple[str, str]]:
    """The steps of a message, each ``done``, ``now`` or ``todo``: admitted, accepted by WhatsApp,
    sent, delivered, read -- or where it stopped (refused, failed, cancelled)."""
    rank = StatusValue(view.status).rank
    steps = [("admitted", "done")]
    if view.status in (StatusValue.REFUSED, StatusValue.FAILED, StatusValue.CANCELLED):
        return [*steps, (view.status, "stopped")]
    for step in (StatusValue.ACCEPTED, StatusValue.SENT, StatusValue.DELIVERED, StatusValue.READ):
        steps.append((step.value, "done" if rank >= step.rank else "todo"))
    if view.status in (StatusValue.QUEUED, StatusValue.SENDING, StatusValue.UNKNOWN):
        steps.insert(1, (view.status, "now"))
    return steps


def unknown(request: Request, engine: Connectzap, session: sessions.Session) -> Response:
    return render(request, engine, session, "unknown.html", nav="messages", unknown=engine.unknown_messages(200),
                  policy=engine.settings.workers.unknown_policy,
                  grace=engine.settings.workers.unknown_grace_seconds, done=request.query_params.get("done"))


def settle(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    """``connectzap messages settle``: the settle policy, now."""
    message_id = request.path_params["message_id"]
    if not _MESSAGE_ID.fullmatch(message_id):
        return render(request, engine, session, "missing.html", status=404, nav="messages",
                      what=f"no message {message_id}")
    done = engine.settle_unknown(message_id)
    said = {"resend": "queued to be resent", "fail": "failed as unconfirmed"}.get(done or "",
                                                                                  "not unknown any more")
    engine.operators.record(session.actor, "settle_unknown", f"message {message_id}", said, _address(request))
    return _see("/console/messages/unknown?" + urlencode({"done": f"message {message_id}: {said}"}))


MEDIA = (WHATSAPP, EMAIL, SMS)
"""The media the contacts page offers consent for."""


# --- contacts and consent --------------------------------------------------------------------------------------

def contacts(request: Request, engine: Connectzap, session: sessions.Session, *, status: int = 200,
             **extra: Any) -> Response:
    """Look a contact up by the keyed hash a search made; consent per category, its history, the window
    (``extra``: what an import on this page says)."""
    q = request.query_params
    contact = q.get("contact") if _CONTACT_KEY.fullmatch(q.get("contact", "")) else None
    context: dict[str, Any] = {"contact": contact, "masked": q.get("masked") if contact else None,
                               "error": q.get("error"), "done": q.get("done"), "categories": list(Category),
                               "media": list(MEDIA)}
    if contact:
        last = engine.last_inbound(contact)
        by_medium = engine.consent_by_medium(key=contact)
        # WhatsApp's rows always (the default medium); another medium's once it has a record
        shown = {WHATSAPP: by_medium.get(WHATSAPP, {}), **by_medium}
        context.update(current=shown[WHATSAPP], by_medium=shown, history=engine.consent_history(key=contact),
                       window_closes=utc(last + WINDOW_SECONDS) if last is not None else None,
                       window_open=is_open(last))
    return render(request, engine, session, "contacts.html", status=status, nav="contacts", **context, **extra)


def _contact_url(engine: Connectzap, e164: str, **extra: str) -> str:
    return "/console/contacts?" + urlencode({"contact": engine.contact_key(e164), "masked": mask(e164), **extra})


def look_up(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    try:
        e164 = to_e164(form.get("phone", ""), form.get("country") or None)
    except ConnectzapError as exc:
        return _see("/console/contacts?" + urlencode({"error": exc.message}))
    return _see(_contact_url(engine, e164))


def change_consent(request: Request, engine: Connectzap, session: sessions.Session,
                   form: dict[str, str]) -> Response:
    """``connectzap consent grant|revoke``: the same change, recorded with the operator as its source
    unless another is given. A grant needs its proof (the rule every way of granting applies)."""
    granted = form.get("action") == "grant"
    proof = form.get("proof", "").strip() or None
    source = form.get("source", "").strip()[:100] or f"console:{session.who}"
    back = form.get("back") if _CONTACT_KEY.fullmatch(form.get("back", "")) else None
    try:
        e164 = to_e164(form.get("phone", ""), form.get("country") or None)
        if form.get("category") not in {c.value for c in Category}:
            raise ConnectzapError("choose a category")
        if proof_missing(granted, proof):
            raise ConnectzapError(PROOF_REQUIRED)
        medium = form.get("medium") or WHATSAPP
        if medium not in MEDIA:
            raise ConnectzapError("choose a medium")
        change = consent_change(e164, form["category"], granted, source, proof, medium=medium)
    except ConnectzapError as exc:
        extra = {"contact": back, "masked": form.get("masked", "")} if back else {}
        return _see("/console/contacts?" + urlencode({**extra, "error": exc.message}))
    changed = engine.set_consent(change)
    verb = "granted" if granted else "revoked"
    on = "" if change.medium == WHATSAPP else f" on {change.medium}"  # WhatsApp's reads as before media existed
    said = f"{change.category.value}{on} {verb}" + ("" if changed else " (unchanged)")
    engine.operators.record(session.actor, f"consent_{'grant' if granted else 'revoke'}",
                            f"{mask(e164)} {change.category.value}{on}", said, _address(request))
    return _see(_contact_url(engine, e164, done=f"{mask(e164)}: {said}"))


# --- events and dead letters ---------------------------------------------------------------------------------

def events(request: Request, engine: Connectzap, session: sessions.Session) -> Response:
    q = request.query_params
    status = q.get("status") if q.get("status") in ("pending", "done", "dead") else None
    source = (q.get("source") or "").strip()[:64] or None
    kind = q.get("kind") if q.get("kind") in {k.value for k in EventKind} else None
    since_choice = q.get("since") if q.get("since") in SINCE_CHOICES else None
    before = int(q["before"]) if q.get("before", "").isdigit() else None
    rows = engine.events(source=source, status=status, kind=kind, before_id=before, limit=PAGE_SIZE + 1,
                         since=time.time() - SINCE_CHOICES[since_choice] if since_choice else None)
    kept = {k: v for k, v in {"status": status, "source": source, "kind": kind, "since": since_choice}.items() if v}
    older = ("?" + urlencode({**kept, "before": rows[PAGE_SIZE - 1].id})) if len(rows) > PAGE_SIZE else None
    return render(request, engine, session, "events.html", nav="events", events=rows[:PAGE_SIZE], filters=kept,
                  older=older, kinds=[k.value for k in EventKind], since_choices=list(SINCE_CHOICES))


def event(request: Request, engine: Connectzap, session: sessions.Session) -> Response:
    raw = request.path_params["event_id"]
    try:
        detail = engine.event(int(raw)) if raw.isdigit() else None
    except NotFoundError:
        detail = None
    if detail is None:
        return render(request, engine, session, "missing.html", status=404, nav="events", what=f"no event {raw}")
    # a replay needs the payload (a delivered event keeps it for privacy.retention_hours only)
    replayable = {d.target for d in detail.deliveries
                  if detail.payload == "kept" and d.status != "pending" and engine.replayable(d.target)}
    return render(request, engine, session, "event.html", nav="events", e=detail, replayable=replayable,
                  done=request.query_params.get("done"), error=request.query_params.get("error"))


def dead(request: Request, engine: Connectzap, session: sessions.Session) -> Response:
    letters = engine.dead_letters(500)
    by_target: dict[str, int] = {}
    for letter in letters:
        by_target[letter.target] = by_target.get(letter.target, 0) + 1
    return render(request, engine, session, "dead.html", nav="dead", letters=letters,
                  targets=sorted(by_target.items()), done=request.query_params.get("done"))


def retry_event(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    raw = request.path_params["event_id"]
    if not raw.isdigit():
        return render(request, engine, session, "missing.html", status=404, nav="events", what=f"no event {raw}")
    n = counted(engine.retry_dead(int(raw)), "delivery", "deliveries")
    engine.operators.record(session.actor, "retry_dead", f"event {raw}", f"{n} requeued", _address(request))
    back = form.get("back") if form.get("back") in ("dead", "event") else "dead"
    url = f"/console/events/{raw}" if back == "event" else "/console/dead"
    return _see(url + "?" + urlencode({"done": f"requeued {n} of event {raw}"}))


def replay(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    """``connectzap webhooks replay EVENT_ID --subscription NAME``: one finished outbound webhook
    delivery queued again (:meth:`~connectzap.core.app.Connectzap.replay_delivery`), same webhook-id."""
    raw = request.path_params["event_id"]
    if not raw.isdigit():
        return render(request, engine, session, "missing.html", status=404, nav="events", what=f"no event {raw}")
    target = form.get("target", "").strip()[:128]
    try:
        was = engine.replay_delivery(int(raw), target)
    except ConnectzapError as exc:
        return _see(f"/console/events/{raw}?" + urlencode({"error": exc.message}))
    engine.operators.record(session.actor, "delivery_replay", f"event {raw} to {target}", f"was {was}, queued again",
                            _address(request))
    return _see(f"/console/events/{raw}?" + urlencode({"done": f"{target}: queued again (it was {was})"}))


def retry_target(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    target = form.get("target", "").strip()[:128]
    if not target:
        return _see("/console/dead")
    n = counted(engine.retry_dead(target=target), "delivery", "deliveries")
    engine.operators.record(session.actor, "retry_dead", target, f"{n} requeued", _address(request))
    return _see("/console/dead?" + urlencode({"done": f"requeued {n} of {target}"}))


# --- assets ----------------------------------------------------------------------------------------------------

@router.get("/static/{name}")
async def static(name: str) -> Response:
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        return Response(status_code=404)
    return FileResponse(path, headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"})


router.add_api_route("", page(overview), methods=["GET"])
router.add_api_route("/messages", page(messages), methods=["GET"])
router.add_api_route("/messages/unknown", page(unknown), methods=["GET"])
router.add_api_route("/messages/{message_id}", page(message), methods=["GET"])
router.add_api_route("/events", page(events), methods=["GET"])
router.add_api_route("/events/{event_id}", page(event), methods=["GET"])
router.add_api_route("/dead", page(dead), methods=["GET"])
router.add_api_route("/contacts", page(contacts), methods=["GET"])
router.add_api_route("/logout", action(logout), methods=["POST"])
router.add_api_route("/contacts/lookup", action(look_up), methods=["POST"])
router.add_api_route("/contacts/consent", action(change_consent), methods=["POST"])
router.add_api_route("/resume", action(resume), methods=["POST"])
router.add_api_route("/messages/search", action(search_number), methods=["POST"])
router.add_api_route("/messages/{message_id}/settle", action(settle), methods=["POST"])
router.add_api_route("/events/{event_id}/retry", action(retry_event), methods=["POST"])
router.add_api_route("/events/{event_id}/replay", action(replay), methods=["POST"])
router.add_api_route("/dead/retry", action(retry_target), methods=["POST"])
