"""The console's connectors page: each connector's state, the last event it journaled, the webhook
URLs to paste into the vendor's settings, and the operator actions it declares
(:meth:`~connectzap.core.connector.Connector.operator_actions`) -- run here as their CLI runs them,
and recorded in the audit log. The console knows connectors only through those declared methods."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response

from ..core.app import Connectzap
from ..core.connector import Connector, OperatorAction
from ..core.errors import ConnectzapError
from ..core.wording import counted
from . import sessions
from .pages import _address, _see, action, page, router
from .rendering import render

log = logging.getLogger("connectzap.console")


@dataclass
class ConnectorView:
    """What the page shows of one connector."""

    name: str
    title: str
    problem: str | None
    facts: list[tuple[str, str]]
    last_event: datetime | None
    webhook_urls: list[str]
    actions: list[OperatorAction] = field(default_factory=list)


def public_base(request: Request, engine: Connectzap) -> str:
    """Where vendors reach this service: ``[console] public_url``, else the address this page was
    asked at (right unless a proxy rewrites it)."""
    configured = engine.settings.console.public_url
    return (configured or str(request.base_url)).rstrip("/")


def _actions(connector: Connector) -> list[OperatorAction]:
    try:
        return connector.operator_actions()
    except Exception as exc:  # noqa: BLE001 - one connector's trouble must not hide the page
        log.warning("console: %s's operator actions are unavailable: %s", connector.name, type(exc).__name__)
        return []


def view_of(engine: Connectzap, connector: Connector, base: str, dead: dict[str, int]) -> ConnectorView:
    """A connector's state: an error when its status cannot be read or deliveries to it are dead."""
    problems: list[str] = []
    try:
        facts = connector.status_lines()
    except ConnectzapError as exc:
        facts, problems = [], [f"its status cannot be read: {exc.message}"]
    except Exception as exc:  # noqa: BLE001 - shown, never raised: the other connectors still show
        facts, problems = [], [f"its status cannot be read ({type(exc).__name__})"]
    failed = dead.get(f"connector:{connector.name}", 0)
    if failed:
        problems.append(f"{counted(failed, 'delivery', 'deliveries')} to it failed every attempt (see Dead letters)")
    latest = engine.events(source=connector.name, limit=1)
    return ConnectorView(name=connector.name, title=connector.title or connector.name,
                         problem="; ".join(problems) or None, facts=facts,
                         last_event=latest[0].received_at if latest else None,
                         webhook_urls=[base + route for route in connector.routes], actions=_actions(connector))


def connectors(request: Request, engine: Connectzap, session: sessions.Session) -> Response:
    dead: dict[str, int] = {}
    for letter in engine.dead_letters(1000):
        dead[letter.target] = dead.get(letter.target, 0) + 1
    base = public_base(request, engine)
    views = [view_of(engine, c, base, dead) for _, c in sorted(engine.connectors.items())]
    q = request.query_params
    return render(request, engine, session, "connectors.html", nav="connectors", connectors=views,
                  done=q.get("done"), error=q.get("error"))


def run_action(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str]) -> Response:
    """Run one operator action a connector declares (the same function as its CLI command)."""
    name, wanted = request.path_params["name"], form.get("action", "")
    connector = engine.connectors.get(name)
    chosen = next((a for a in _actions(connector) if a.name == wanted), None) if connector else None
    if chosen is None:
        return _see("/console/connectors?" + urlencode({"error": f"{name} offers no action {wanted!r}"[:200]}))
    try:
        said = chosen.run()
    except ConnectzapError as exc:
        engine.operators.record(session.actor, f"connector_{chosen.name}", name, f"failed: {exc.message}",
                                _address(request))
        return _see("/console/connectors?" + urlencode({"error": f"{chosen.label} ({name}): {exc.message}"}))
    engine.operators.record(session.actor, f"connector_{chosen.name}", name, said, _address(request))
    return _see("/console/connectors?" + urlencode({"done": f"{chosen.label} ({name}): {said}"}))


router.add_api_route("/connectors", page(connectors), methods=["GET"])
router.add_api_route("/connectors/{name}/run", action(run_action), methods=["POST"])
