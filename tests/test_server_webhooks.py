"""The webhook edge over HTTP: verify -> journal (group commit) -> 2xx; duplicates, bad input, limits."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any, ClassVar

import pytest
from server_support import (VERIFY_TOKEN, api_engine, client_for, inbound_text, journaled, meta_signed,
                            serving)

from connectzap import hookimpl
from connectzap.core.connector import Connector, WebhookRequest
from connectzap.core.errors import PayloadError, SignatureError, StartupError
from connectzap.core.models import CancelRequest, Event, EventKind
from connectzap.core.plugins import pm
from connectzap.core.server import create_app

# --- WhatsApp (the bundled connector) ---------------------------------------------------------


async def test_signed_delivery_is_journaled_once_and_duplicates_are_acknowledged(make):
    engine = api_engine(make)
    body = inbound_text("wamid.edge-1")
    async with serving(engine) as client:
        first = await client.post("/webhooks/whatsapp", content=body, headers=meta_signed(body))
        again = await client.post("/webhooks/whatsapp", content=body, headers=meta_signed(body))
    assert first.status_code == 200 and first.json() == {"received": 1, "duplicates": 0}
    assert again.status_code == 200 and again.json() == {"received": 0, "duplicates": 1}
    assert journaled(engine, "whatsapp") == 1
    assert first.headers["x-content-type-options"] == "nosniff"


async def test_bad_signature_is_rejected_and_nothing_is_stored(make):
    engine = api_engine(make)
    body = inbound_text("wamid.edge-2")
    async with serving(engine) as client:
        forged = await client.post("/webhooks/whatsapp", content=body, headers=meta_signed(body, "wrong-secret"))
        unsigned = await client.post("/webhooks/whatsapp", content=body)
    assert forged.status_code == 401 and forged.json()["error"] == "bad_signature"
    assert unsigned.status_code == 401
    assert journaled(engine) == 0


async def test_signed_but_malformed_payload_is_422_without_echo(make):
    engine = api_engine(make)
    body = b'{"object": "whatsapp_business_account", "entry": "not-a-list-SECRET-PAYLOAD"'
    async with serving(engine) as client:
        answer = await client.post("/webhooks/whatsapp", content=body, headers=meta_signed(body))
    assert answer.status_code == 422
    assert "SECRET-PAYLOAD" not in answer.text
    assert journaled(engine) == 0


async def test_verification_handshake_answers_plain_text(make):
    engine = api_engine(make)
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY_TOKEN}
    async with serving(engine) as client:
        ok = await client.get("/webhooks/whatsapp", params=query)
        wrong = await client.get("/webhooks/whatsapp", params={**query, "hub.verify_token": "nope"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")
    assert wrong.status_code == 403 and "1158201444" not in wrong.text


async def test_concurrent_deliveries_are_all_journaled(make):
    engine = api_engine(make)
    bodies = [inbound_text(f"wamid.burst-{i}") for i in range(40)]
    async with serving(engine) as client:
        answers = await asyncio.gather(*(client.post("/webhooks/whatsapp", content=b, headers=meta_signed(b))
                                         for b in bodies))
    assert [a.status_code for a in answers] == [200] * 40
    assert journaled(engine, "whatsapp") == 40


async def test_oversized_body_is_413_before_parsing(make):
    engine = api_engine(make, api={"keys": ["k" * 20], "max_body_bytes": 1000})
    body = inbound_text("wamid.big", text="x" * 2000)

    async def chunks() -> Any:  # no Content-Length: the limit must hold while reading
        for start in range(0, len(body), 256):
            yield body[start:start + 256]

    async with serving(engine) as client:
        declared = await client.post("/webhooks/whatsapp", content=body, headers=meta_signed(body))
        streamed = await client.post("/webhooks/whatsapp", content=chunks(), headers=meta_signed(body))
    assert declared.status_code == 413 and declared.json()["error"] == "payload_too_large"
    assert streamed.status_code == 413 and "transfer-encoding" not in declared.headers
    assert journaled(engine) == 0


async def test_webhook_metrics_count_fresh_events_and_latency(make):
    engine = api_engine(make)
    body = inbound_text("wamid.metric-1")
    async with serving(engine) as client:
        for _ in range(2):
            await client.post("/webhooks/whatsapp", content=body, headers=meta_signed(body))
        text = (await client.get("/metrics")).text
    assert 'connectzap_events_received_total{source="whatsapp"} 1.0' in text
    assert 'connectzap_webhook_requests_total{source="whatsapp",status="200"} 2.0' in text
    assert 'connectzap_webhook_ack_seconds_count{source="whatsapp"} 2.0' in text


# --- a connector with path parameters that signs the URL (like HubSpot v3) --------------------

URL_SECRET = "url-signing-secret"


class UrlSignedConnector(Connector):
    """Signs method + full URL + body, and keeps what it saw so the test can look."""

    name: ClassVar[str] = "urlsigned"
    routes: ClassVar[tuple[str, ...]] = ("/webhooks/urlsigned/{shop}",)
    methods: ClassVar[tuple[str, ...]] = ("POST",)
    seen: ClassVar[list[WebhookRequest]] = []

    def verify_request(self, request: WebhookRequest) -> None:
        type(self).seen.append(request)
        expected = url_signature("POST", request.url, request.body)
        if not hmac.compare_digest(expected, request.header("x-url-signature") or ""):
            raise SignatureError("signature does not match")

    def parse(self, request: WebhookRequest) -> list[Event]:
        try:
            key = json.loads(request.body)["key"]
        except (ValueError, KeyError, TypeError):
            raise PayloadError("body needs a key", field="key") from None
        return [Event.of(EventKind.CANCEL, CancelRequest(cancel_key=key), source=self.name,
                         dedupe_key=f"{request.path_params['shop']}:{key}")]


def url_signature(method: str, url: str, body: bytes) -> str:
    return hmac.new(URL_SECRET.encode(), method.encode() + url.encode() + body, hashlib.sha256).hexdigest()


class Registers:
    def __init__(self, *classes: type[Connector]) -> None:
        self.classes = classes

    @hookimpl
    def register_connectors(self, register: Any) -> None:
        for cls in self.classes:
            register(cls)


@pytest.fixture
def url_connector() -> Any:
    plugin = Registers(UrlSignedConnector)
    pm.register(plugin, name="test-urlsigned")
    UrlSignedConnector.seen.clear()
    yield UrlSignedConnector
    pm.unregister(name="test-urlsigned")


@pytest.mark.parametrize("trusted", [False, True])
async def test_url_is_rebuilt_as_received_and_proxy_headers_need_trust(make, url_connector, trusted):
    engine = api_engine(make, connectors={"urlsigned": {}},
                        api={"keys": ["k" * 20], "trust_proxy_headers": trusted})
    body = b'{"key": "abc"}'
    public = "https://shop.example.com/webhooks/urlsigned/berlin%20mitte?x=1&y=%2F"
    local = "http://testserver/webhooks/urlsigned/berlin%20mitte?x=1&y=%2F"
    signed_for = public if trusted else local
    headers = {"x-url-signature": url_signature("POST", signed_for, body), "x-forwarded-proto": "https",
               "x-forwarded-host": "shop.example.com"}
    async with serving(engine) as client:
        answer = await client.post("/webhooks/urlsigned/berlin%20mitte?x=1&y=%2F", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    seen = url_connector.seen[-1]
    assert seen.url == signed_for
    assert seen.path_params == {"shop": "berlin mitte"} and seen.query == {"x": "1", "y": "/"}
    assert seen.body == body and seen.header("X-Forwarded-Host") == "shop.example.com"


async def test_untrusted_proxy_headers_cannot_choose_the_signed_url(make, url_connector):
    engine = api_engine(make, connectors={"urlsigned": {}})
    body = b'{"key": "abc"}'
    headers = {"x-url-signature": url_signature("POST", "https://evil.example/webhooks/urlsigned/s", body),
               "x-forwarded-proto": "https", "x-forwarded-host": "evil.example"}
    async with serving(engine) as client:
        answer = await client.post("/webhooks/urlsigned/s", content=body, headers=headers)
    assert answer.status_code == 401 and journaled(engine) == 0


async def test_two_connectors_claiming_one_route_stop_startup(make, url_connector):
    class Clash(UrlSignedConnector):
        name: ClassVar[str] = "clash"

    plugin = Registers(Clash)
    pm.register(plugin, name="test-clash")
    try:
        engine = api_engine(make, connectors={"urlsigned": {}, "clash": {}})
        with pytest.raises(StartupError, match="both claim POST /webhooks/urlsigned/{shop}"):
            create_app(engine, run_workers=False)
    finally:
        pm.unregister(name="test-clash")


async def test_journal_failure_answers_503_and_the_sender_can_retry(make, monkeypatch):
    from sqlalchemy.exc import OperationalError
    engine = api_engine(make)
    body = inbound_text("wamid.dbdown")
    app = create_app(engine, run_workers=False)

    async def database_down(events: Any) -> Any:
        raise OperationalError("INSERT ...", {}, Exception("connection refused"))

    async with client_for(app) as client:
        monkeypatch.setattr(app.state.journal_writer, "submit", database_down)
        answer = await client.post("/webhooks/whatsapp", content=body, headers=meta_signed(body))
    assert answer.status_code == 503 and answer.json()["error"] == "database_unavailable"
    assert answer.headers["retry-after"] == "5" and "INSERT" not in answer.text
