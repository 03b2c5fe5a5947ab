"""The webhook edge, framework-free: handshake -> verify -> parse -> minimise -> journal -> answer.

Nothing is processed inline. A bad signature is rejected before anything is stored; a payload
that does not parse is rejected with the field that failed and nothing is journaled; a
repeated delivery is acknowledged and ignored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from . import minimize
from .connector import Connector, WebhookRequest, WebhookResponse
from .errors import PayloadError, SignatureError
from .models import Event
from .store.journal import Journaled


def _error(status: int, code: str, detail: str, field: str | None = None) -> WebhookResponse:
    body: dict[str, object] = {"error": code, "detail": detail}
    if field:
        body["field"] = field
    return WebhookResponse(status=status, body=body)


def prepare(connector: Connector, request: WebhookRequest) -> WebhookResponse | list[Event]:
    """Everything before journaling. Returns a response to send now, or the events to journal."""
    answered = connector.handshake(request)
    if answered is not None:
        return answered
    try:
        connector.verify_request(request)
    except SignatureError as exc:  # logged by the edge with the answer, once per webhook
        return _error(401, "bad_signature", exc.message)
    try:
        events = connector.parse(request)
    except PayloadError as exc:
        return _error(422, exc.code, exc.message, exc.field)
    return minimize.for_journal(events, connector.app.secret)  # nothing stored that the work does not need


def acknowledge(connector: Connector, request: WebhookRequest, results: list[Journaled]) -> WebhookResponse:
    fresh = sum(1 for r in results if not r.duplicate)
    return connector.accepted(request, fresh, len(results) - fresh)


def handle(connector: Connector, request: WebhookRequest,
           journal: Callable[[list[Event]], list[Journaled]]) -> WebhookResponse:
    prepared = prepare(connector, request)
    if isinstance(prepared, WebhookResponse):
        return prepared
    return acknowledge(connector, request, journal(prepared))


async def handle_async(connector: Connector, request: WebhookRequest,
                       journal: Callable[[list[Event]], Awaitable[list[Journaled]]]) -> WebhookResponse:
    prepared = prepare(connector, request)
    if isinstance(prepared, WebhookResponse):
        return prepared
    return acknowledge(connector, request, await journal(prepared))
