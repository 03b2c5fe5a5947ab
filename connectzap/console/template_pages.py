"""The console's Templates page: the template cache the send gate checks (filtered by account,
status, category and language); sync and create through the connector's
:meth:`~connectzap.core.connector.Connector.template_management` (what ``connectzap templates
sync|create`` run), with a preview of the new template's message; and a test send, admitted by
the gate like any send (``connectzap send PHONE --template ...``). Each action needs the form's
CSRF token and is recorded in the audit log."""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import urlencode

import anyio.from_thread
from fastapi import Request
from fastapi.responses import Response

from ..core.app import Connectzap
from ..core.connector import TemplateManagement
from ..core.errors import ConflictError, ConnectzapError, NotFoundError, PayloadError
from ..core.messages import Outgoing, TemplateContent
from ..core.models import Contact
from ..core.phones import mask, to_e164
from ..core.views import MessageView
from . import sessions, template_forms
from .campaigns import _body, _template_choices
from .pages import _MESSAGE_ID, _address, _see, action, page, router
from .rendering import render

CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
FILTERS = ("account", "status", "category", "quality", "language")


def manager(engine: Connectzap) -> TemplateManagement | None:
    """The first connector (by name) that manages templates (the WhatsApp connector, live or sandbox)."""
    for _, connector in sorted(engine.connectors.items()):
        found = connector.template_management()
        if found is not None:
            return found
    return None


def _body_text(components: list[dict[str, Any]]) -> str | None:
    return next((c.get("text") for c in components if str(c.get("type", "")).upper() == "BODY"), None)


def templates(request: Request, engine: Connectzap, session: sessions.Session, *, status: int = 200,
              **context: Any) -> Response:
    """The page; an action that is refused renders it again with its form as typed and its errors."""
    q = request.query_params
    cached = sorted(engine.templates(), key=lambda t: (t.name, t.language, t.waba_id or ""))
    chosen = {k: q.get(k, "") for k in FILTERS}
    rows = [t for t in cached if (not chosen["account"] or (t.waba_id or "") == chosen["account"])
            and all(not chosen[k] or getattr(t, k) == chosen[k] for k in FILTERS[1:])]
    managed = manager(engine)
    sent = q.get("sent") if _MESSAGE_ID.fullmatch(q.get("sent", "")) else None
    try:
        sent_view = MessageView.of(engine.message(sent)) if sent else None
    except NotFoundError:
        sent_view = None
    context.setdefault("form", {"category": "UTILITY", "language": "en", "parameter_format": "POSITIONAL"})
    return render(request, engine, session, "templates.html", status=status, nav="templates", templates=rows,
                  bodies={(t.waba_id, t.name, t.language): _body_text(t.components) for t in rows},
                  several_accounts=engine.business_accounts is not None, filters=chosen,
                  choices={k: sorted({(getattr(t, k) if k != "account" else t.waba_id) or "" for t in cached} - {""})
                           for k in FILTERS},
                  accounts=managed.accounts() if managed else [], managed=managed is not None,
                  categories=CATEGORIES, approved=_template_choices(engine), sent=sent_view,
                  done=q.get("done"), error=q.get("error"), **context)


def _account(managed: TemplateManagement, wanted: str) -> str | None:
    """The account a form names (one of the manager's), or None when there is only one."""
    names = [a.name for a in managed.accounts()]
    if wanted in names:
        return wanted
    if len(names) == 1 and not wanted:
        return None
    raise PayloadError("account: choose one of " + ", ".join(names), field="account")


def sync(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    """``connectzap templates sync [--account A]``: the same function, on the server's event loop."""
    managed = manager(engine)
    if managed is None:
        return _see("/console/templates?" + urlencode({"error": "no connector manages templates"}))
    wanted = form.get("account", "")[:128]
    try:
        lines = anyio.from_thread.run(partial(managed.sync, _account(managed, wanted)))
    except ConnectzapError as exc:
        engine.operators.record(session.actor, "templates_sync", wanted or None, f"failed: {exc.message}",
                                _address(request))
        return _see("/console/templates?" + urlencode({"error": f"sync failed: {exc.message}"}))
    said = "; ".join(lines)
    engine.operators.record(session.actor, "templates_sync", wanted or None, said, _address(request))
    return _see("/console/templates?" + urlencode({"done": said}))


def create(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    """``connectzap templates create FILE``: the form is the file. "Preview" checks it by the same
    rules and shows the message; "Submit" also submits it for review."""
    managed = manager(engine)
    kept = {k: form.get(k, "")[:2000] for k in template_forms.FIELDS}
    definition = template_forms.definition(kept)
    shown = template_forms.preview(kept)

    def again(exc: ConnectzapError, status: int) -> Response:
        field = template_forms.field_of(exc.field) if isinstance(exc, PayloadError) else None
        return templates(request, engine, session, status=status, form=kept, preview=shown,
                         create_error=exc.message, create_field=field)

    if managed is None:
        return again(ConnectzapError("no connector manages templates"), 409)
    try:
        account = _account(managed, kept["account"])
        managed.check(definition)
        if form.get("do") == "preview":
            return templates(request, engine, session, form=kept, preview=shown)
        said = anyio.from_thread.run(partial(managed.create, definition, account))
    except PayloadError as exc:
        return again(exc, 422)
    except ConflictError as exc:
        return again(exc, 409)
    except ConnectzapError as exc:  # the vendor refused it: its code and title are in the message
        engine.operators.record(session.actor, "template_create", definition["name"], f"failed: {exc.message}",
                                _address(request))
        return again(exc, 502)
    engine.operators.record(session.actor, "template_create", definition["name"], said, _address(request))
    return _see("/console/templates?" + urlencode({"done": said}))


def test_send(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    """``connectzap send PHONE --template NAME --language L --param ...``: through the gate, which
    refuses a number without consent (the message is recorded refused, with its reason)."""
    name, _, language = form.get("template", "").partition("|")
    kept = {k: form.get(k, "")[:2000] for k in ("template", "params", "country")}

    def again(why: str, field: str) -> Response:
        return templates(request, engine, session, status=422, send_form=kept, send_error=why, send_field=field)

    if not name or not language:
        return again("Choose a template.", "template")
    body = _body(kept["params"])
    if isinstance(body, str):
        return again(body, "params")
    try:
        e164 = to_e164(form.get("phone", ""), kept["country"].strip().upper() or None)
    except ConnectzapError as exc:
        return again(exc.message, "phone")
    content = TemplateContent.model_validate({"name": name, "language": language, "body": body})
    decision = engine.send(Outgoing(to=Contact(phone=e164), content=content), source="console")
    said = f"{name} ({language}): {decision.status}" + (f", {decision.reason}" if decision.reason else "")
    engine.operators.record(session.actor, "template_test_send", mask(e164), f"message {decision.id}: {said}",
                            _address(request))
    return _see("/console/templates?" + urlencode({"sent": decision.id}) + "#test-send")


router.add_api_route("/templates", page(templates), methods=["GET"])
router.add_api_route("/templates/sync", action(sync), methods=["POST"])
router.add_api_route("/templates/create", action(create), methods=["POST"])
router.add_api_route("/templates/test-send", action(test_send), methods=["POST"])
