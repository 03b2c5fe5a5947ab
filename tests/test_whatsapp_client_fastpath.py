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
