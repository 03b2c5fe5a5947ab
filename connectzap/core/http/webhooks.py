"""Webhook routes: every enabled connector's ``routes``, mounted as thin, fast endpoints.

These are plain Starlette endpoints (no FastAPI body parsing or dependency injection): the
connector needs the raw bytes, and this path is the one that must answer in milliseconds.
verify -> parse -> journal (group commit) -> 2xx; nothing is processed inline.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from ..connector import Connector, WebhookRequest, WebhookResponse
from .. import ingress, logs
from ..errors import StartupError
from ..models import Event
from ..store.journal import Journaled

log = logging.getLogger("connectzap.webhooks")

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..metrics import Metrics
    from .journal_writer import JournalWriter


def received_url(request: Request, trust_proxy: bool) -> str:
    """The URL as the sender addressed it (HubSpot v3 signs it): raw path and query, as received.

    ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` are honoured only when the proxy is trusted
    (``api.trust_proxy_headers``); otherwise anyone could choose the URL we verify against.
    """
    scope = request.scope
    scheme = scope.get("scheme", "http")
    host = request.headers.get("host") or _server_host(scope)
    if trust_proxy:
        scheme = _first(request.headers.get("x-forwarded-proto")) or scheme
        host = _first(request.headers.get("x-forwarded-host")) or host
    raw_path = scope.get("raw_path") or scope["path"].encode()
    url = f"{scheme}://{host}{raw_path.decode('latin-1')}"
    query = scope.get("query_string", b"")
    return f"{url}?{query.decode('latin-1')}" if query else url


def _first(value: str | None) -> str | None:
    return value.split(",", 1)[0].strip() or None if value else None


def _server_host(scope: Scope) -> str:
    server = scope.get("server")
    if not server:
        return "localhost"
    host, port = server
    return f"{host}:{port}" if port not in (80, 443, None) else str(host)


def render(answer: WebhookResponse) -> Response:
    body = answer.body
    if isinstance(body, dict):
        return Response(json.dumps(body, separators=(",", ":")).encode(), status_code=answer.status,
                        media_type="application/json")
    if isinstance(body, str):
        body = body.encode()
    return Response(body, status_code=answer.status, media_type=answer.content_type)


def endpoint(connector: Connector, writer: JournalWriter, metrics: Metrics,
             trust_proxy: bool) -> Callable[[Request], Awaitable[Response]]:
    source = connector.name

    async def webhook(request: Request) -> Response:
        started = time.perf_counter()
        fresh = 0

        async def journal(events: list[Event]) -> list[Journaled]:
            nonlocal fresh
            results = await writer.submit(events)
            fresh = sum(1 for r in results if not r.duplicate)
            return results

        body = await request.body()
        headers: dict[str, str] = {}
        for key, value in request.scope["headers"]:  # a repeated header: the first one counts
            headers.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
        incoming = WebhookRequest(method=request.method, url=received_url(request, trust_proxy),
                                  path=request.scope["path"], headers=headers, body=body,
                                  query=dict(request.query_params), path_params=dict(request.path_params),
                                  received_at=time.time())
        answer = await ingress.handle_async(connector, incoming, journal)
        response = render(answer)
        metrics.webhook_answered(source, answer.status, time.perf_counter() - started, fresh)
        _log_answer(source, answer, fresh)
        return response

    webhook.__name__ = f"webhook_{source}"
    return webhook


def _log_answer(source: str, answer: WebhookResponse, fresh: int) -> None:
    """One line per webhook: accepted (how many new events) or refused (why)."""
    if answer.status < 400:
        if log.isEnabledFor(logging.INFO):
            body = answer.body if isinstance(answer.body, dict) else {}
            logs.emit(log, logging.INFO, "webhook accepted", source=source, status=answer.status, events=fresh,
                      duplicates=body.get("duplicates"))
        return
    body = answer.body if isinstance(answer.body, dict) else {}
    logs.emit(log, logging.WARNING, "webhook refused", source=source, status=answer.status,
              error=body.get("error"), detail=body.get("detail"), field=body.get("field"))


def mount(app: FastAPI, connectors: dict[str, Connector], writer: JournalWriter, metrics: Metrics,
          trust_proxy: bool) -> list[str]:
    """Add every connector's routes; two connectors claiming the same path and method stop start-up."""
    taken: dict[tuple[str, str], str] = {}
    mounted: list[str] = []
    for name, connector in sorted(connectors.items()):
        methods = [m.upper() for m in type(connector).methods]
        for path in type(connector).routes:
            for method in methods:
                if (path, method) in taken:
                    raise StartupError(f"connectors {taken[(path, method)]} and {name} both claim {method} {path}")
                taken[(path, method)] = name
            route = Route(path, endpoint(connector, writer, metrics, trust_proxy), methods=methods,
                          include_in_schema=False)
            app.router.routes.insert(len(mounted), route)  # matched first: this is the hot path
            mounted.append(path)
    return mounted
