"""The console's automation page: what each automation plugin is set to do (its section's
``console_summary``), business hours (open now, next opening) and the conversations
people handle now, each released here with the function ``connectzap conversations release`` runs
(:meth:`~connectzap.core.app.Connectzap.release`), checked for CSRF and audited."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio.from_thread
from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response

from ..core.app import Connectzap
from ..core.business_hours import DAYS
from ..core.conversations import HandledConversation
from ..core.errors import ConnectzapError, NotFoundError
from ..core.models import Category
from ..core.phones import mask, to_e164
from ..core.plugin_settings import PluginSettings
from . import sessions
from .pages import _CONTACT_KEY, _address, _see, action, page, router
from .rendering import render


@dataclass
class HandledRow:
    """A conversation a person handles, with who it is with as far as the store can still tell."""

    handled: HandledConversation
    subject: str | None


def _subject(engine: Connectzap, handled: HandledConversation) -> str | None:
    """The masked contact of the event whose hook handed it over, while that event's payload is kept."""
    if handled.event_id is None:
        return None
    try:
        return engine.event(handled.event_id).subject
    except NotFoundError:
        return None


SHOWN_CHARACTERS = 160


def shortened(text: str) -> str:
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS - 1] + "…"


def plugin_summaries(engine: Connectzap) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each configured plugin section's :meth:`~connectzap.core.plugin_settings.PluginSettings.console_summary`,
    long values shortened; sections with nothing to show are left out."""
    out = []
    for name, section in sorted(engine.plugin_settings.items()):
        try:
            lines = section.console_summary()
        except Exception as exc:  # noqa: BLE001 - one section's trouble must not hide the page
            lines = [("summary", f"unavailable ({type(exc).__name__})")]
        if lines:
            out.append((name, [(label, shortened(value)) for label, value in lines]))
    return out


def automation(request: Request, engine: Connectzap, session: sessions.Session, **extra: Any) -> Response:
    hours = engine.business_hours
    now = datetime.now(UTC)
    opening = hours.next_opening(now) if hours.configured else None
    rows = [HandledRow(h, _subject(engine, h)) for h in engine.handled_by_people()]
    q = request.query_params
    return render(request, engine, session, "automation.html", nav="automation", hours=hours,
                  schedule=[(day, getattr(hours.settings, day)) for day in DAYS],
                  open_now=hours.is_open(now), opening=opening,
                  opening_local=opening.astimezone(hours.zone) if opening else None,
                  handled=rows, plugins=plugin_summaries(engine), done=q.get("done"), error=q.get("error"),
                  categories=[c.value for c in Category], optin=bool(link_makers(engine)), **extra)


def link_makers(engine: Connectzap) -> list[PluginSettings]:
    """The configured plugin sections that make consent links (``PluginSettings.makes_consent_links``)."""
    return [section for _, section in sorted(engine.plugin_settings.items()) if section.makes_consent_links()]


def optin_link(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    """``connectzap optin link`` / ``GET /v1/optin/qr``: the plugin's declared
    :meth:`~connectzap.PluginSettings.consent_link` makes (or finds again) the link and remembers its
    keyword; the page shows the ``wa.me`` address and its QR code (SVG)."""
    keyword = form.get("keyword", "").strip()[:40]
    makers = link_makers(engine)
    try:
        if not makers:
            raise ConnectzapError("no loaded plugin makes opt-in links")
        if form.get("category") not in {c.value for c in Category} or not keyword:
            raise ConnectzapError("choose a category and type a keyword")
        made = anyio.from_thread.run(partial(makers[0].consent_link, engine, keyword=keyword,
                                             category=Category(form["category"])))
    except ConnectzapError as exc:
        return automation(request, engine, session, optin_error=exc.message, status=422)
    engine.operators.record(session.actor, "optin_link", keyword, form["category"], _address(request))
    qr = "data:image/svg+xml;base64," + base64.b64encode(made.qr_svg).decode("ascii")
    return automation(request, engine, session, optin_url=made.url, optin_qr=qr, optin_keyword=keyword)


def release(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    """``connectzap conversations release``: the number is typed again (the page never had it) and
    must be the row's contact, so the conversation released is the one the operator chose."""
    key = form.get("contact") if _CONTACT_KEY.fullmatch(form.get("contact", "")) else None
    try:
        e164 = to_e164(form.get("phone", ""), form.get("country") or None)
        if key is None or engine.contact_key(e164) != key:
            raise ConnectzapError("that number is not this conversation's contact")
    except ConnectzapError as exc:
        return _see("/console/automation?" + urlencode({"error": exc.message}))
    changed = engine.release(e164, by=f"console:{session.who}")
    said = "given back to the bot" if changed else "already with the bot"
    engine.operators.record(session.actor, "conversation_release", mask(e164), said, _address(request))
    return _see("/console/automation?" + urlencode({"done": f"{mask(e164)}: {said}"}))


router.add_api_route("/automation", page(automation), methods=["GET"])
router.add_api_route("/automation/release", action(release), methods=["POST"])
router.add_api_route("/automation/optin-link", action(optin_link), methods=["POST"])
