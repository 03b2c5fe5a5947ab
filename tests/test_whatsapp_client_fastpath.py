"""GraphClient.send_message skips AsyncClient.request: it must still send what that path sent and
answer the way it answered (errors, timeouts, the token kept out of sight)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from connectzap.connectors.whatsapp import client as client_module
from connectzap.connectors.whatsapp.client import GraphClient
from connectzap.connectors.whatsapp.settings import WhatsAppSettings
from connectzap.core.errors import AmbiguousDeliveryError, RetriableDeliveryError, SkippableDeliveryError
from connectzap.testing.fake_graph import FakeGraph

NUMBER = "106540352242922"
BODY = {"messaging_product": "whatsapp", "to": "16505551234", "type": "text", "text": {"body": "olá ✓"}}


def settings(**overrides: Any) -> WhatsAppSettings:
    data: dict[str, Any] = {"access_token": "EAAG-secret-token", "phone_number_id": NUMBER, "app_secrets": ["s"],
                            "verify_token": "v", "timeout_seconds": 7}
    data.update(overrides)
    return WhatsAppSettings(**data)


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[httpx.Request], httpx.Response]], GraphClient]:
    def make(handler: Callable[[httpx.Request], httpx.Response]) -> GraphClient:
        monkeypatch.setattr(client_module, "_transport", lambda name, n: httpx.MockTransport(handler))
        return GraphClient(settings())
    return make


async def test_send_puts_on_the_wire_what_the_generic_path_puts(mocked):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"messages": [{"id": "wamid.1"}]})

    client = mocked(handler)
    for marketing in (False, True):
        route = "marketing_messages" if marketing else "messages"
        await client.request("POST", f"{NUMBER}/{route}", json_body=BODY, is_send=True)
        assert await client.send_message(NUMBER, BODY, marketing=marketing) == "wamid.1"
    await client.aclose()
    for generic, fast in (seen[0:2], seen[2:4]):
        assert (fast.method, fast.url, fast.content) == (generic.method, generic.url, generic.content)
        assert sorted(fast.headers.multi_items()) == sorted(generic.headers.multi_items())
        assert fast.extensions["timeout"] == generic.extensions["timeout"] == httpx.Timeout(7).as_dict()
    assert seen[3].url.path.endswith("/marketing_messages")


@pytest.mark.parametrize(("answer", "expected"), [
    (httpx.Response(200, json={"messaging_product": "whatsapp"}), AmbiguousDeliveryError),   # no wamid
    (httpx.Response(200, text="<html>ok</html>"), RetriableDeliveryError),                   # not JSON
    (httpx.Response(503, text="<html>down</html>"), RetriableDeliveryError),
    (httpx.Response(400, json={"error": {"code": 131026, "message": "x", "error_data": {"details": "d"}}}),
     SkippableDeliveryError),
])
async def test_answers_are_classified_as_before(mocked, answer, expected):
    client = mocked(lambda request: answer)
    with pytest.raises(expected):
        await client.send_message(NUMBER, BODY)
    await client.aclose()


async def test_a_dropped_connection_on_a_send_is_ambiguous(mocked):
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset")

    client = mocked(handler)
    with pytest.raises(AmbiguousDeliveryError) as caught:
        await client.send_message(NUMBER, BODY)
    await client.aclose()
    assert "secret-token" not in str(caught.value) + repr(client)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_the_configured_timeout_applies_to_sends(transport):
    with FakeGraph(token="test-token") as fake:
        client = GraphClient(settings(access_token="test-token", api_base_url=fake.url, transport=transport,
                                      timeout_seconds=0.3))
        assert (await client.send_message(NUMBER, BODY)).startswith("wamid.fake.")
        # The stall outlasts any plausible run: without the timeout the send would wait it out and
        # succeed. No clock is read -- the fake still holding its answer when the client gives up
        # shows the client's own timeout ended the wait.
        fake.stall(30.0, to=BODY["to"])
        asked, answered = len(fake.requests), len(fake.send_times)
        with pytest.raises(AmbiguousDeliveryError) as caught:
            await client.send_message(NUMBER, BODY)
        assert len(fake.requests) == asked + 1 and len(fake.send_times) == answered
        assert "timeout" in str(caught.value).lower() or "timed out" in str(caught.value).lower()
        assert (await client.send_message(NUMBER, BODY)).startswith("wamid.fake.")  # the pool still works
        await client.aclose()


# --- the aiohttp transport: sends go straight to its session -----------------------------------


async def test_on_aiohttp_a_send_puts_on_the_wire_what_the_generic_path_puts():
    with FakeGraph(token="test-token") as fake:
        client = GraphClient(settings(access_token="test-token", api_base_url=fake.url, transport="aiohttp"))
        for marketing in (False, True):
            route = "marketing_messages" if marketing else "messages"
            await client.request("POST", f"{NUMBER}/{route}", json_body=BODY, is_send=True)
            assert (await client.send_message(NUMBER, BODY, marketing=marketing)).startswith("wamid.fake.")
        assert client._aiohttp_send is not None  # the direct path was taken
        # one pool: the direct sends reuse the transport's connection, none is opened for them
        assert client._aiohttp_send.session is client._transport.client  # type: ignore[union-attr]
        await client.aclose()
    sent = fake.sends_from(NUMBER)
    assert len(sent) == 4
    for generic, fast in (sent[0:2], sent[2:4]):
        assert (fast.method, fast.path, fast.body) == (generic.method, generic.path, generic.body)
        assert {k.lower(): v for k, v in fast.headers.items()} == {k.lower(): v for k, v in generic.headers.items()}
    assert sent[3].path.endswith("/marketing_messages")


@pytest.mark.parametrize(("code", "http_status", "expected"), [
    (131026, 400, SkippableDeliveryError),
    (130429, 400, RetriableDeliveryError),  # throughput: try again later
])
async def test_on_aiohttp_error_answers_are_classified_as_before(code, http_status, expected):
    with FakeGraph(token="test-token") as fake:
        client = GraphClient(settings(access_token="test-token", api_base_url=fake.url, transport="aiohttp"))
        fake.fail(code, http_status=http_status, times=None)
        with pytest.raises(expected):
            await client.send_message(NUMBER, BODY)
        await client.aclose()


async def test_on_aiohttp_a_gzipped_answer_is_read_and_a_dropped_connection_is_ambiguous():
    from aiohttp import web

    async def answer(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body["to"] == "drop":
            assert request.transport is not None
            request.transport.close()  # the request arrived: it may have been acted on
            return web.Response()
        response = web.json_response({"messages": [{"id": "wamid.gz" + "x" * 2000}]})
        response.enable_compression(web.ContentCoding.gzip)
        return response

    app = web.Application()
    app.router.add_post("/v27.0/{number}/messages", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        client = GraphClient(settings(api_base_url=f"http://127.0.0.1:{port}", transport="aiohttp"))
        assert await client.send_message(NUMBER, BODY) == "wamid.gz" + "x" * 2000
        with pytest.raises(AmbiguousDeliveryError) as caught:
            await client.send_message(NUMBER, {**BODY, "to": "drop"})
        assert "secret-token" not in str(caught.value) + repr(client)
        await client.aclose()
    finally:
        await runner.cleanup()
