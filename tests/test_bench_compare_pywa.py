"""bench/compare_pywa.py's load generator counts every answer, whatever framing the server uses.

The benchmark itself runs by hand; this drives its generator against a small aiohttp server for a
fraction of a second and checks the counts against what the server saw.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

from aiohttp import web

BENCH = Path(__file__).resolve().parent.parent / "bench" / "compare_pywa.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_pywa", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = load_bench()


class Server:
    """Answers /plain with a Content-Length body, /chunked with a chunked 201, /closing with a 200
    that closes the connection; remembers every request body it read."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.bodies: list[object] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/plain", self.plain)
        app.router.add_post("/chunked", self.chunked)
        app.router.add_post("/closing", self.closing)
        return app

    async def plain(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.seen["plain"] += 1
        return web.json_response({"ok": True})

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.seen["chunked"] += 1
        response = web.StreamResponse(status=201)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"first part, ", b"second part"):
            await response.write(part)
        await response.write_eof()
        return response

    async def closing(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen["closing"] += 1
        response = web.Response(text="bye")
        response.force_close()
        return response


async def run_against_server(requests_for: object, connections: int, seconds: float | None) -> tuple:
    server = Server()
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        requests = requests_for(port)  # type: ignore[operator]  # a callable, as the tests pass it
        # a generator that misreads an answer would wait forever for the next one
        load = await asyncio.wait_for(bench.drive("127.0.0.1", port, requests, connections, seconds), 20)
    finally:
        await runner.cleanup()
    return server, load


def three_kinds(port: int, repeat: int) -> list[bytes]:
    built = [bench.raw_request("127.0.0.1", port, path, json.dumps({"n": n}).encode(), {"X-Bench": "1"})
             for n, path in enumerate(("/plain", "/chunked", "/closing"))]
    return built * repeat


async def test_every_request_is_answered_once_and_counted_by_status() -> None:
    server, load = await run_against_server(lambda port: three_kinds(port, 10), connections=4, seconds=None)

    assert server.seen == {"plain": 10, "chunked": 10, "closing": 10}
    assert load.statuses == {200: 20, 201: 10}
    assert load.answered == 30 and len(load.latencies) == 30
    assert server.bodies == [{"n": 0}] * 10  # the body arrives whole, as built
    assert load.per_second(201) == 10 / load.seconds


async def test_a_timed_run_counts_what_the_server_answered() -> None:
    server, load = await run_against_server(lambda port: three_kinds(port, 50_000), connections=3, seconds=0.3)

    assert 0 < load.answered < 150_000
    assert load.statuses.get(200, 0) == server.seen["plain"] + server.seen["closing"]
    assert load.statuses.get(201, 0) == server.seen["chunked"]
    assert 0 <= load.quantile_ms(50) <= load.quantile_ms(99)


def test_percentiles_of_known_latencies() -> None:
    latencies = [n / 1000 for n in range(1, 101)]  # 1 ms .. 100 ms

    assert round(bench.percentile_ms(latencies, 50), 3) == 50.5
    assert round(bench.percentile_ms(latencies, 99), 3) == 99.01
    assert bench.percentile_ms([0.004], 99) == 4.0
    assert bench.percentile_ms([], 99) == 0.0


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_server_of_several_processes_is_measured_and_killed_whole() -> None:
    """CPU a child burns counts for its parent; a kill reaches the child too (a supervisor killed
    alone would leave its children serving)."""
    burn = "import time\nwhile time.process_time() < 0.3: pass\nprint('burnt', flush=True)\ntime.sleep(30)"
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {burn!r}])\n"
                               "time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    children: list[int] = []
    try:
        assert parent.stdout is not None and parent.stdout.readline() == "burnt\n"  # the child's line
        children = [pid for pid in bench.process_tree(parent.pid) if pid != parent.pid]
        assert len(children) == 1
        assert bench.tree_cpu_seconds(parent.pid) >= 0.29

        bench.stop(parent, kill=True)

        assert parent.returncode == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while alive(children[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(children[0])
    finally:
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()
