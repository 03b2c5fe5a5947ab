"""The FastAPI app factory: webhook routes from the connectors, REST ``/v1``, health, metrics.

The app's lifespan owns the group-commit writers (webhook journal, single-message admissions)
and, with ``run_workers``, a :class:`~connectzap.core.worker.Worker` in the same event loop.
On shutdown (after the server stopped accepting and answered what was in flight) the writers
commit what is queued and the worker finishes the work in hand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from ..app import Connectzap
from ..metrics import CONTENT_TYPE, MeteredChannel, Metrics
from ..version import __version__
from . import campaigns, errors, rest, webhooks
from .auth import ApiKeys
from .guards import EdgeGuard
from .admission_writer import AdmissionWriter
from .journal_writer import JournalWriter
from .schemas import Health

log = logging.getLogger("connectzap.http")

DESCRIPTION = """connectzap's REST API: send WhatsApp messages through the send gate (consent, 24-hour
window, approved templates, idempotency), read their status, manage consent with proof.
Every `/v1` request needs `Authorization: Bearer <api key>` (settings `api.keys`).
Webhook endpoints (`/webhooks/...`) come from the enabled connectors and are not listed here."""


Extension = Callable[[FastAPI], None]
"""Adds routes to the app (the operator console does); the core knows nothing of what they are."""


def create_app(engine: Connectzap, *, run_workers: bool, extensions: Sequence[Extension] = ()) -> FastAPI:
    """Build the HTTP service for a started engine. ``run_workers`` also runs a worker in-process;
    each of ``extensions`` is called with the app to add its routes."""
    if not engine.started:
        engine.start()
    writer = JournalWriter(engine.db)
    admissions = AdmissionWriter(engine.db, engine.secret, accounts=engine.business_accounts)
    metrics = Metrics()
    settings = engine.settings.api

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        writer.start()
        admissions.start()
        stop = asyncio.Event()
        worker_task: asyncio.Task[None] | None = None
        original_channels = engine.channels
        for channel in original_channels.values():  # sends made in this process are counted
            engine.use_channel(MeteredChannel(channel, metrics))
        if run_workers:
            from ..worker import Worker
            worker = Worker(engine)
            app.state.worker = worker
            worker_task = asyncio.create_task(worker.run(stop), name="connectzap-worker")
        try:
            yield
        finally:
            await writer.aclose()
            await admissions.aclose()
            stop.set()
            if worker_task is not None:
                await worker_task
            for channel in original_channels.values():
                engine.use_channel(channel)

    app = FastAPI(title="connectzap", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, openapi_tags=[{"name": "messages"}, {"name": "events"},
                                                   {"name": "consent"}, {"name": "conversations"},
                                                   {"name": "templates"}, {"name": "campaigns"},
                                                   {"name": "operations"}])
    app.state.engine = engine
    app.state.api_keys = ApiKeys(settings.keys)
    app.state.metrics = metrics
    app.state.journal_writer = writer
    app.state.admission_writer = admissions
    errors.install(app)
    app.state.larger_bodies = []  # (path pattern, bytes): routes an extension lets take bigger uploads
    app.add_middleware(EdgeGuard, max_body_bytes=settings.max_body_bytes, larger=app.state.larger_bodies)
    app.include_router(rest.router)
    app.include_router(campaigns.router)
    app.include_router(rest.plugin_router())
    webhooks.mount(app, engine.connectors, writer, metrics, settings.trust_proxy_headers)
    for extend in extensions:
        extend(app)

    @app.get("/healthz", response_model=Health, tags=["operations"], summary="Health of the service",
             responses={503: {"model": Health, "description": "Something needs attention"}})
    async def healthz() -> Any:
        health = await run_in_threadpool(engine.health)
        body = Health.model_validate(health).model_dump(mode="json")
        return JSONResponse(body, status_code=200 if health["ok"] else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format"},
                        503: {"model": errors.ErrorBody, "description": "Database unavailable"}})
    async def metrics_endpoint(request: Request) -> Response:
        depths = await run_in_threadpool(engine.queue_depths)
        metrics.set_queue_depth(depths.events_pending, depths.messages)
        metrics.set_pricing(depths.priced)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app
