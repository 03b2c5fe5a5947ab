"""The Graph stand-in's response latency: every answer waits, side by side, as a round trip to Meta does.
And its log of accepted sends, for a benchmark in another process."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time

import httpx

from connectzap.testing.fake_graph import FakeGraph

SEND = {"messaging_product": "whatsapp", "to": "4915112345678", "type": "text", "text": {"body": "hi"}}


async def timed_sends(url: str, count: int) -> tuple[list[float], float]:
    """Send ``count`` messages at once; each one's round trip and the time for all of them."""
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer t"}) as client:
        async def one() -> float:
            started = time.perf_counter()
            answer = await client.post("/v27.0/1/messages", json=SEND)
            assert answer.status_code == 200 and answer.json()["messages"][0]["id"].startswith("wamid.")
            return time.perf_counter() - started

        started = time.perf_counter()
        each = await asyncio.gather(*(one() for _ in range(count)))
        return list(each), time.perf_counter() - started


async def test_every_answer_waits_the_latency_and_requests_wait_side_by_side():
    with FakeGraph(token="t", latency_ms=500) as fake:
        each, total = await timed_sends(fake.url, 20)
        assert min(each) >= 0.5
        # Twenty in flight take about one latency, not twenty (10 s): generous for a shared machine.
        assert total < 5
        fake.latency_ms = 0  # changed while running
        quick, _ = await timed_sends(fake.url, 1)
        assert quick[0] < 0.5
        assert len(fake.sends()) == 21


async def test_the_command_line_takes_a_latency():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "connectzap.testing.fake_graph", "--port", str(port),
                               "--token", "t", "--latency-ms", "200"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = json.loads(server.stdout.readline())["url"]
        for _ in range(200):  # the URL is printed before the socket listens
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    break
            except OSError:
                time.sleep(0.05)
        each, _ = await timed_sends(url, 3)
        assert min(each) >= 0.2
    finally:
        server.terminate()
        server.wait(10)


async def test_the_sends_log_has_a_line_per_accepted_send(tmp_path):
    log = tmp_path / "sends.log"
    with FakeGraph(token="t", sends_log=str(log)) as fake:
        fake.fail(131047, to="4915100000000")
        await timed_sends(fake.url, 2)
        async with httpx.AsyncClient(base_url=fake.url, headers={"Authorization": "Bearer t"}) as client:
            refused = await client.post("/v27.0/1/messages", json={**SEND, "to": "4915100000000"})
            assert refused.status_code == 400
        lines = log.read_text().splitlines()  # written at once: readable while the fake runs
    assert [line.split("\t")[1] for line in lines] == ["4915112345678", "4915112345678"]
    assert all(abs(float(line.split("\t")[0]) - time.time()) < 60 for line in lines)
