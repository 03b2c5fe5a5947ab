"""Helpers for the generic webhook tests: the doc examples, posting through the edge, a local receiver."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from connectzap.core.connector import WebhookResponse
from connectzap.core import ingress
from connectzap.core.app import Connectzap
from connectzap.core.store.schema import deliveries, events, outbox
from connectzap.testing import webhook_request

EXAMPLES = Path(__file__).parent / "payloads" / "generic"

def example_config(name: str) -> dict[str, Any]:
    """The ``connectors`` table of ``tests/payloads/generic/<name>.toml`` (also shown in the docs)."""
    return dict(tomllib.loads((EXAMPLES / f"{name}.toml").read_text())["connectors"])

def example_body(name: str) -> bytes:
    return (EXAMPLES / f"{name}.json").read_bytes()

def post(app: Connectzap, source: str, body: bytes, headers: dict[str, str] | None = None,
         query: dict[str, str] | None = None, content_type: str = "application/json") -> WebhookResponse:
    request = webhook_request(f"/webhooks/generic/{source}", body, headers=headers, query=query,
                              path_params={"name": source}, content_type=content_type)
    return ingress.handle(app.connectors["generic"], request, app.ingest)

def journaled(app: Connectzap) -> int:
    with app.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())

def journal_kinds(app: Connectzap) -> list[str]:
    with app.db.read() as conn:
        return [r[0] for r in conn.execute(select(events.c.kind).order_by(events.c.id))]

def make_due(app: Connectzap) -> None:
    """Move time forward for everything waiting: retries and scheduled messages become due now."""
    with app.db.begin() as conn:
        conn.execute(deliveries.update().where(deliveries.c.status == "pending").values(next_attempt_at=0))
        conn.execute(events.update().where(events.c.status == "pending").values(next_attempt_at=0))
        conn.execute(outbox.update().where(outbox.c.status == "queued").values(next_attempt_at=0))

def outbox_rows(app: Connectzap) -> list[dict[str, Any]]:
    with app.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(outbox).order_by(outbox.c.created_at, outbox.c.id))]

@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers from a script."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    """Status codes to answer, in order; when used up, ``then`` is answered."""
    then: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.received if 200 <= r["answered"] < 300]

@asynccontextmanager
async def receiver(answers: list[int] | None = None, then: int = 200,
                   headers: dict[str, str] | None = None) -> AsyncIterator[Receiver]:
    state = Receiver(url="", answers=list(answers or []), then=then, headers=dict(headers or {}))

    async def handle(request: web.Request) -> web.Response:
        status = state.answers.pop(0) if state.answers else state.then
        state.received.append({"headers": {k.lower(): v for k, v in request.headers.items()},
                               "body": await request.read(), "answered": status})
        return web.Response(status=status, headers=state.headers if status >= 400 else None)

    server = web.Application()
    server.router.add_post("/hook", handle)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.url = f"http://{host}:{port}/hook"
    try:
        yield state
    finally:
        await runner.cleanup()
