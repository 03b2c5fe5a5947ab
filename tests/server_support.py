"""Helpers for the HTTP service tests: an engine configured for the API, an ASGI client, signed webhooks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from connectzap.core.app import Connectzap
from connectzap.core.server import create_app
from connectzap.connectors.whatsapp.signatures import sign_meta

KEY = "test-key-0123456789abcdef"
OLD_KEY = "old-key-0123456789abcdef"
APP_SECRET = "meta-app-secret-for-tests"
VERIFY_TOKEN = "verify-token-for-tests"
PHONE = "+4915112345678"
AUTH = {"Authorization": f"Bearer {KEY}"}

SETTINGS: dict[str, Any] = {
    "api": {"keys": [KEY, OLD_KEY]},
    "connectors": {"whatsapp": {"app_secrets": [APP_SECRET], "verify_token": VERIFY_TOKEN}},
}


def api_engine(make: Callable[..., Connectzap], **overrides: Any) -> Connectzap:
    return make(**{**SETTINGS, **overrides})


@asynccontextmanager
async def client_for(app: FastAPI, *, raise_app_exceptions: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to ``app`` in-process, with the app's lifespan running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@asynccontextmanager
async def serving(engine: Connectzap, *, run_workers: bool = False) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(engine, run_workers=run_workers)) as client:
        yield client


def inbound_text(wamid: str, text: str = "hello", wa_id: str = PHONE.lstrip("+")) -> bytes:
    """A WhatsApp inbound text webhook body (the shape of Meta's reference example)."""
    body = {"object": "whatsapp_business_account", "entry": [{"id": "419561257915477", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": str(int(time.time())), "type": "text",
                          "text": {"body": text}}]}}]}]}
    return json.dumps(body, separators=(",", ":")).encode()


def meta_signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": sign_meta(body, secret), "Content-Type": "application/json"}


def journaled(engine: Connectzap, source: str | None = None) -> int:
    from sqlalchemy import func, select

    from connectzap.core.store.schema import events
    stmt = select(func.count()).select_from(events)
    if source:
        stmt = stmt.where(events.c.source == source)
    with engine.db.read() as conn:
        return int(conn.execute(stmt).scalar_one())


async def wait_until(condition: Callable[[], bool]) -> None:
    """Yield to the event loop until ``condition()`` holds (a writer's queue reached a state)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")
