"""The generic webhook connector: ``POST /webhooks/generic/{name}`` in, signed subscriptions out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from ...core.errors import SignatureError
from ...core.models import Event
from ...core.connector import OutboundCall
from ...core.signatures import verify_hmac, verify_shared_secret, verify_standard
from ..base import Connector, WebhookRequest, WebhookResponse
from . import subscriptions
from .mapping import MappedSource, decode_body
from .settings import AuthSpec, GenericSettings

if TYPE_CHECKING:
    from ...core.app import Connectzap
    from ...core.context import EventContext


def verify(auth: AuthSpec, request: WebhookRequest) -> None:
    """Raise :class:`SignatureError` unless ``request`` carries a valid signature or secret."""
    secrets = auth.secret_values
    if auth.scheme == "hmac":
        assert auth.header is not None
        verify_hmac(request.body, request.header(auth.header), secrets, encoding=auth.encoding, prefix=auth.prefix,
                    algo=auth.algorithm)
    elif auth.scheme == "standard":
        verify_standard(request.header("webhook-id"), request.header("webhook-timestamp"),
                        request.header("webhook-signature"), request.body, secrets,
                        tolerance=auth.tolerance_seconds)
    else:
        given = request.query.get(auth.query) if auth.query else request.header(auth.header or "x-webhook-secret")
        verify_shared_secret(given, secrets)


class GenericConnector(Connector):
    name = "generic"
    title = "Generic webhooks"
    settings_model = GenericSettings
    routes = ("/webhooks/generic/{name}",)

    settings: GenericSettings

    def __init__(self, settings: GenericSettings, app: Connectzap) -> None:
        super().__init__(settings, app)
        self.sources = {name: MappedSource(name, spec) for name, spec in settings.sources.items()}
        self.deliverer = subscriptions.Deliverer()

    # --- inbound ------------------------------------------------------------------------

    def _source(self, request: WebhookRequest) -> MappedSource | None:
        return self.sources.get(request.path_params.get("name", ""))

    def handshake(self, request: WebhookRequest) -> WebhookResponse | None:
        if self._source(request) is None:
            return WebhookResponse(status=404, body={"error": "unknown_source",
                                                     "detail": "no generic webhook source with this name"})
        return None

    def verify_request(self, request: WebhookRequest) -> None:
        source = self._source(request)
        if source is None:  # handshake answers first; never accept a request for an unknown source
            raise SignatureError("unknown source")
        verify(source.spec.auth, request)

    def parse(self, request: WebhookRequest) -> list[Event]:
        source = self._source(request)
        assert source is not None
        payload = decode_body(request.body, request.header("content-type"))
        return source.events(payload, body=request.body, webhook_id=request.header("webhook-id"))

    # --- outbound -----------------------------------------------------------------------

    def delivery_targets(self, kind: str) -> dict[str, Callable[[Any, EventContext], Awaitable[Any]]]:
        return {subscriptions.target_name(name): partial(self._deliver, name)
                for name, spec in self.settings.subscriptions.items() if kind in spec.events}

    async def _deliver(self, subscription: str, payload: Any, ctx: EventContext) -> None:
        spec = self.settings.subscriptions[subscription]
        event = await asyncio.to_thread(self._event, ctx.event_id)
        await self.deliverer.post(subscription, spec, event, ctx.event_id)

    def _event(self, event_id: int) -> Event:
        with self.app.db.read() as conn:
            return subscriptions.load_event(conn, event_id)

    def replays(self, target: str) -> bool:
        # every attempt and replay carries the same webhook-id: receivers drop the copy
        return target.startswith(subscriptions.TARGET_PREFIX) and \
            target.removeprefix(subscriptions.TARGET_PREFIX) in self.settings.subscriptions

    async def rehearse(self, target: str, kind: str, payload: Any, ctx: EventContext) -> list[OutboundCall]:
        name = target.removeprefix(subscriptions.TARGET_PREFIX)
        spec = self.settings.subscriptions[name]
        event = await asyncio.to_thread(self._event, ctx.event_id)
        request = subscriptions.request_for(name, spec, event, ctx.event_id)
        return [OutboundCall("POST", spec.url, json.loads(request.body),
                             headers={**request.headers, "webhook-signature": "v1,**********"},
                             note=f"subscription {name}")]

    async def aclose(self) -> None:
        await self.deliverer.aclose()
