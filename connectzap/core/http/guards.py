"""Protections every request passes: body size limit, ``nosniff``, authenticated, JSON-only API routes.

The size limit is enforced while the body is read -- from ``Content-Length`` before reading
anything, and by counting chunks for chunked uploads -- so an oversized body is refused
before any of it is parsed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import authenticate
from .errors import error_response

NOSNIFF = (b"x-content-type-options", b"nosniff")


class EdgeGuard:
    """Pure ASGI middleware: adds ``X-Content-Type-Options: nosniff`` and limits body size."""

    def __init__(self, app: ASGIApp, max_body_bytes: int,
                 larger: list[tuple[re.Pattern[str], int]] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.larger = larger if larger is not None else []
        """(path, bytes): POST routes that take bigger uploads; an extension adds its own while mounted."""

    def limit(self, scope: Scope) -> int:
        if scope.get("method") == "POST":
            for path, most in self.larger:
                if path.fullmatch(scope.get("path", "")):
                    return most
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append(NOSNIFF)
                message = {**message, "headers": headers}
            await send(message)

        limit = self.limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            response = error_response(413, "payload_too_large", f"the body is larger than {limit} bytes")
            await response(scope, receive, send_with_nosniff)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"the body is larger than {limit} bytes")
            return message

        await self.app(scope, counting_receive, send_with_nosniff)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class ApiRoute(APIRoute):
    """A ``/v1`` route: the API key is checked first, then that every query parameter is one the
    route knows, then (for routes with a body) that the body is JSON (415 otherwise) -- all before
    the body is read or parsed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_body = self.body_field is not None
        known = _query_names(self.dependant)
        allowed = ", ".join(sorted(known)) or "none"

        async def checked(request: Request) -> Response:
            authenticate(request, request.app.state.api_keys)
            if any(name not in known for name in request.query_params):
                # A misspelt filter must not silently widen a listing to everything.
                raise RequestValidationError([{"loc": ("query",), "msg": f"unknown query parameter; allowed: "
                                               f"{allowed}", "type": "extra_forbidden"}])
            if takes_body and not is_json(request.headers.get("content-type")):
                raise HTTPException(415, "send the body as application/json")
            return await handler(request)

        return checked


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names
