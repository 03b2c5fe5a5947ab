"""Every error the HTTP service answers, in one place: JSON, a stable code, never the payload.

``{"error": "<code>", "detail": "<one readable line>"}`` -- plus ``field`` when one input
field is to blame and ``errors`` (location and message per problem) for validation errors.
Values the client sent are never echoed back: they may hold personal data or secrets.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (ConflictError, ConnectzapError, FatalError, NotFoundError, PayloadError, RefusedError,
                      RetriableError, SignatureError, SkippableError)

log = logging.getLogger("connectzap.http")

HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_request",
    429: "too_many_requests", 500: "internal_error", 503: "unavailable",
}

# The one mapping from the engine's exception tree to HTTP statuses; the first match wins.
STATUS_FOR_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (SignatureError, 401),
    (NotFoundError, 404),
    (ConflictError, 409),
    (RefusedError, 422),
    (PayloadError, 422),
    (SkippableError, 422),
    (RetriableError, 503),
    (FatalError, 503),
    (ConnectzapError, 400),
)


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the service."""

    error: str
    detail: str
    field: str | None = None
    id: str | None = None
    errors: list[ErrorItem] | None = None


def error_response(status: int, code: str | None = None, detail: str | None = None, *,
                   headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": code or HTTP_CODES.get(status, "error"),
                            "detail": detail or (code or HTTP_CODES.get(status, "error")).replace("_", " ")}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=headers)


def status_for(exc: BaseException) -> int:
    for cls, status in STATUS_FOR_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def validation_items(errors: list[Any]) -> list[dict[str, Any]]:
    """Location, message and type of each problem -- without pydantic's ``input`` (the payload)."""
    return [{"loc": [p if isinstance(p, int) else str(p) for p in err.get("loc", ())],
             "msg": str(err.get("msg", "invalid")), "type": str(err.get("type", "invalid"))} for err in errors]


def validation_response(errors: list[Any]) -> JSONResponse:
    items = validation_items(errors)
    if any(i["type"] == "json_invalid" for i in items):
        return error_response(400, "bad_json", "the body is not valid JSON")
    first = items[0] if items else {"loc": [], "msg": "invalid"}
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "request"
    return error_response(422, "invalid_request", f"{where}: {first['msg']}", errors=items)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into a JSON error."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail else None
        code = HTTP_CODES.get(exc.status_code)
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such route"
        if exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed here"
        return error_response(exc.status_code, code, detail, headers=dict(exc.headers or {}) or None)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(list(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _validation(request: Request, exc: ValidationError) -> JSONResponse:
        return validation_response(exc.errors(include_input=False))

    @app.exception_handler(ConnectzapError)
    async def _engine(request: Request, exc: ConnectzapError) -> JSONResponse:
        status = status_for(exc)
        headers = None
        if isinstance(exc, RetriableError):
            headers = {"Retry-After": str(int(exc.retry_after or 5))}
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc.message)
        return error_response(status, exc.code, exc.message, field=exc.field if isinstance(exc, PayloadError) else None,
                              headers=headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s: database error: %s", request.method, request.url.path, type(exc).__name__)
        return error_response(503, "database_unavailable", "the database is not answering; try again",
                              headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s: unexpected error", request.method, request.url.path)
        return error_response(500, "internal_error", "an unexpected error occurred; it was logged")
