"""``GET /v1/optin/qr``: the opt-in link's QR code (SVG or PNG), behind the API key."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from connectzap import Category, ConfigurationError, PayloadError

from . import links

MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}
_ERROR: dict[str, Any] = {"content": {"application/json": {}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/svg+xml": {"schema": {"type": "string"}},
                      "image/png": {"schema": {"type": "string", "format": "binary"}}},
          "headers": {"X-Optin-Link": {"description": "The wa.me link the QR code holds",
                                       "schema": {"type": "string"}}},
          "description": "The QR code"},
    409: {**_ERROR, "description": "The keyword already signs up for another category"},
    422: {**_ERROR, "description": "Invalid input, or the plugin lacks business_name or the number"},
}


def add_routes(router: APIRouter) -> None:
    @router.get("/optin/qr", tags=["opt-in"], summary="QR code of an opt-in link", response_class=Response,
                responses=RESPONSES)
    async def optin_qr(request: Request,
                       keyword: Annotated[str, Query(min_length=1, max_length=40)],
                       category: Category = Category.MARKETING,
                       format: Literal["svg", "png"] = "svg",
                       text: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
                       language: Annotated[str | None, Query(min_length=2, max_length=10)] = None,
                       number: Annotated[str | None, Query(min_length=1, max_length=64,
                                                           description="phone_number_id")] = None) -> Response:
        """The same link as ``connectzap optin link``: made (and remembered) on the first call,
        found again on the next."""
        try:
            link, url = await links.publish(request.app.state.engine, keyword=keyword, category=category, text=text,
                                            language=language, phone_number_id=number)
        except ConfigurationError as exc:  # the service runs; this request cannot be served as configured
            raise PayloadError(exc.message, code="not_configured") from None
        image = links.qr_png(url) if format == "png" else links.qr_svg(url)
        return Response(image, media_type=MEDIA_TYPES[format], headers={"X-Optin-Link": url,
                                                                       "Cache-Control": "no-store"})
