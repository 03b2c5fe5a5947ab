"""connectzap side by side with pywa, in one run (by hand, not a test): template sends per second
against one Graph stand-in, and signed inbound webhooks per second with p50/p99 latency.

Set-up, once. The harness installs nothing. pywa runs in a virtual environment of its own, as a
subprocess (its dependencies never meet connectzap's pins); connectzap runs from the project's::

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install pywa==4.5.0 fastapi 'uvicorn[standard]'

Then::

    .venv/bin/python bench/compare_pywa.py --pywa-python /tmp/bench-venv/bin/python --quick
    .venv/bin/python bench/compare_pywa.py --pywa-python /tmp/bench-venv/bin/python \\
        --messages 10000 --seconds 20
    .venv/bin/python bench/compare_pywa.py --quick --graph-latency-ms 150   # Meta's round trip

What runs, in this order, against ONE Graph stand-in (connectzap.testing.fake_graph in its own
process, answering at once or after ``--graph-latency-ms``) and with ONE load generator (HTTP/1.1
written over asyncio streams, uvloop when present: keep-alive connections, requests built before
the clock starts, closed loop):

1. pywa's ``send_template`` loop: pywa_async's client, ``--pywa-tasks`` tasks sending in a loop
   (no limiter, no durability, no consent check), to the stand-in;
2. connectzap's whole path through ``POST /v1/messages/batch`` and then ``POST /v1/messages``: a
   `connectzap serve` (workers included) whose WhatsApp connector points at the same stand-in, the
   limiter at Meta's 1,000 msg/s, every recipient with a utility opt-in recorded beforehand; timed
   from the first request until the stand-in has accepted every message (the outbox says
   ``accepted``). One distinct recipient per message, so Meta's pair spacing never waits;
3. pywa's webhook server (pywa_async with a FastAPI app, run by uvicorn as uvicorn's CLI would:
   httptools and uvloop, no access log; signatures checked with the app secret) against
   `connectzap serve` started as the README starts it (its workers included, log level info),
   both fed the same signed webhooks by the same generator over ``--webhook-connections``
   connections. Every contact carries a business-scoped ``user_id``: pywa 4.5 raises
   ``KeyError: 'user_id'`` on contacts without one. Both are measured alike: ``--warm-up`` webhooks
   first (outside the clock, waited for until handled), then the load, then the wait until every
   acknowledged webhook is handled (pywa's handler counted it, connectzap's dispatcher finished it);
   the CPU per event covers the load and that wait, start-up never.

Latencies mean what each side answers: pywa's send latency is one Graph round trip; connectzap's is
the REST request (admission: the gate's verdict, durably queued), its throughput the whole path.
The figures are ratios first: on a shared machine, absolute numbers move with the neighbours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

# Only the standard library at module level: the pywa half of this file runs in pywa's own venv.
ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
TEMPLATE = "order_confirmation"
GRAPH_VERSION = "v27.0"


# --- the load generator ------------------------------------------------------------------------

@dataclass
class Load:
    """What a run of :func:`drive` saw: answers by status and the latency of each."""

    seconds: float
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return len(self.latencies)

    def per_second(self, *statuses: int) -> float:
        count = sum(self.statuses.get(s, 0) for s in statuses) if statuses else self.answered
        return count / self.seconds if self.seconds else 0.0

    def quantile_ms(self, q: int) -> float:
        """The ``q``-th percentile of the latencies, in ms."""
        return percentile_ms(self.latencies, q)


def percentile_ms(latencies: Sequence[float], q: int) -> float:
    if len(latencies) < 2:
        return latencies[0] * 1000 if latencies else 0.0
    return statistics.quantiles(latencies, n=100, method="inclusive")[q - 1] * 1000


def raw_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One HTTP/1.1 POST as bytes, built once, written as often as needed."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             *(f"{name}: {value}" for name, value in headers.items()), f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return its status and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    length, chunked, keep = 0, False, True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = value.strip().lower() != b"close"
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF (size 0: the final CRLF)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return int(head[9:12]), keep


async def drive(host: str, port: int, requests: Sequence[bytes], connections: int,
                seconds: float | None = None) -> Load:
    """Send ``requests`` in order over ``connections`` keep-alive connections, closed loop (each
    connection sends its next request when the previous answer is in), until all are answered or
    ``seconds`` have passed. A connection the server closes is opened again."""
    load = Load(seconds=0.0)
    next_index = 0
    started = time.perf_counter()
    deadline = started + seconds if seconds is not None else float("inf")

    async def connection() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < len(requests) and time.perf_counter() < deadline:
                request = requests[next_index]
                next_index += 1
                sent = time.perf_counter()
                writer.write(request)
                status, keep = await _read_answer(reader)
                load.latencies.append(time.perf_counter() - sent)
                load.statuses[status] = load.statuses.get(status, 0) + 1
                if not keep:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    load.seconds = time.perf_counter() - started
    return load


def run_fast(coroutine: Callable[[], Awaitable[T]]) -> T:
    """Run on uvloop when it is installed (less client CPU), else on asyncio's own loop."""
    try:
        import uvloop
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        return runner.run(coroutine())  # type: ignore[arg-type]  # a coroutine, as Runner.run wants


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants, live or reaped (Linux /proc):
    a server of several processes is measured whole. Per message it is the figure that holds when
    other work shares the machine."""
    return sum(process_tree(pid).values())


def process_tree(pid: int) -> dict[int, float]:
    """A process and its live descendants, each with the CPU seconds it and its reaped children used."""
    parents: dict[int, int] = {}
    spent: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        one = int(stat.parent.name)
        parents[one] = int(fields[1])
        spent[one] = sum(int(f) for f in fields[11:15]) / tick  # utime, stime, and of reaped children
    family = {pid}
    for one in spent:
        ancestor = one
        while ancestor not in family and ancestor in parents and ancestor > 1:
            ancestor = parents[ancestor]
        if ancestor in family:
            family.add(one)
    return {one: spent[one] for one in family if one in spent}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout:.0f} s")


# --- pywa's side (runs in pywa's venv: imports pywa, never connectzap) ------------------------

def recipient(n: int) -> str:
    return f"1650555{n:04d}"  # the numbers bench/rest_send.py seeds opt-ins for, without the "+"


async def pywa_send(graph_url: str, token: str, phone_id: str, messages: int, tasks: int) -> dict[str, Any]:
    import httpx
    import pywa
    from pywa_async import WhatsApp
    from pywa_async.errors import WhatsAppError
    from pywa_async.types.templates import BodyText, TemplateLanguage

    # pywa_async's own default is a bare httpx.AsyncClient(), whose pool keeps 20 idle connections:
    # with more tasks it would close and reopen connections all the time. Sized to the tasks, as
    # pywa's docs invite ("use a custom client"), and as connectzap sizes its own pool.
    session = httpx.AsyncClient(limits=httpx.Limits(max_connections=tasks, max_keepalive_connections=tasks))
    wa = WhatsApp(phone_id=phone_id, token=token, session=session, api_version=GRAPH_VERSION.removeprefix("v"))
    session.base_url = httpx.URL(f"{graph_url}/{GRAPH_VERSION}")  # pywa sets graph.facebook.com; the stand-in
    latencies: list[float] = []
    failures = 0
    next_index = 0

    async def sender() -> None:
        nonlocal next_index, failures
        while next_index < messages:
            n = next_index
            next_index += 1
            sent = time.perf_counter()
            try:
                await wa.send_template(to=recipient(n), name=TEMPLATE, language=TemplateLanguage.ENGLISH,
                                       params=[BodyText.params("Ana", f"{n:07d}")])
            except (WhatsAppError, httpx.HTTPError):  # counted: the coordinator refuses a run with any
                failures += 1
                continue
            latencies.append(time.perf_counter() - sent)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(sender() for _ in range(tasks)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await session.aclose()
    return {"pywa": pywa.__version__, "sent": len(latencies), "failures": failures, "seconds": elapsed,
            "per_second": len(latencies) / elapsed, "cpu_us": cpu / max(len(latencies), 1) * 1e6,
            "p50_ms": percentile_ms(latencies, 50),
            "p99_ms": percentile_ms(latencies, 99)}


HANDLED_PATH = "/bench/handled"


def pywa_webhook_server(port: int, app_secret: str, path: str, waba_id: str, phone_id: str) -> None:
    """pywa's FastAPI webhook under uvicorn until SIGTERM. Its message handler counts, as a bot's
    cheapest handler would; GET HANDLED_PATH tells the count (uvicorn ends the process by the signal
    it caught, so nothing can be printed after it)."""
    import pywa
    import uvicorn
    from fastapi import FastAPI
    from pywa_async import WhatsApp

    handled = 0
    app = FastAPI()
    wa = WhatsApp(phone_id=phone_id, waba_id=waba_id, server=app, webhook_endpoint=path, verify_token="bench",
                  app_secret=app_secret, validate_updates=True)

    @wa.on_message()
    async def count(_: WhatsApp, message: Any) -> None:
        nonlocal handled
        handled += 1

    @app.get(HANDLED_PATH)
    async def how_many() -> dict[str, Any]:
        return {"handled": handled, "pywa": pywa.__version__}

    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)).run()


def get_json(port: int, path: str) -> Any:
    """A GET on loopback (http.client: outside any timed run)."""
    from http.client import HTTPConnection
    connection = HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


# --- the coordinator (the project's venv) ------------------------------------------------------

def bench_modules() -> Any:
    """bench/'s own modules: the same serve, seed and stand-in as the other benchmarks use."""
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT))
    import rest_send
    import send_throughput
    import webhook_ingress
    return rest_send, send_throughput, webhook_ingress


def in_bench_venv(pywa_python: str, *arguments: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([pywa_python, __file__, *arguments], text=True, **popen)


def stop(process: subprocess.Popen[Any], kill: bool = False) -> None:
    """SIGTERM (the server stops its own children), or SIGKILL to it and every descendant (a
    supervisor killed alone would leave its children serving)."""
    if not kill:
        process.send_signal(signal.SIGTERM)
    else:
        for pid in process_tree(process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    process.wait(timeout=60)


def send_with_pywa(pywa_python: str, graph_url: str, messages: int, tasks: int) -> dict[str, Any]:
    _, send_throughput, _ = bench_modules()
    process = in_bench_venv(pywa_python, "--pywa-send", graph_url, "--messages", str(messages),
                            "--pywa-tasks", str(tasks), "--token", send_throughput.TOKEN,
                            "--phone-id", send_throughput.NUMBER, stdout=subprocess.PIPE)
    out, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"pywa's send loop failed ({process.returncode})")
    result: dict[str, Any] = json.loads(out)
    if result["failures"]:
        raise SystemExit(f"pywa: {result['failures']} sends failed")
    return result


def send_with_connectzap(seeded: Path, folder: Path, graph_url: str, messages: int, batch: int,
                         connections: int) -> dict[str, Any]:
    """``batch`` 0: one message per POST /v1/messages; else POST /v1/messages/batch of ``batch``."""
    import shutil

    rest_send, send_throughput, webhook_ingress = bench_modules()
    folder.mkdir()
    database = folder / "connectzap.db"
    shutil.copy(seeded, database)
    whatsapp = {key: value for key, value in send_throughput.section(graph_url).items()
                if key not in ("app_secrets", "verify_token")}  # start_server writes those
    whatsapp["messages_per_second"] = 1000.0
    server, url = webhook_ingress.start_server(folder, f"sqlite:///{database}", workers=True, log_level="info",
                                               whatsapp=whatsapp)
    host, port_text = url.removeprefix("http://").rsplit(":", 1)
    port = int(port_text)
    auth = {"Authorization": f"Bearer {webhook_ingress.API_KEY}"}
    items = [rest_send.message(n, messages) for n in range(messages)]
    if batch:
        bodies = [json.dumps({"messages": items[at:at + batch]}).encode() for at in range(0, messages, batch)]
        requests = [raw_request(host, port, "/v1/messages/batch", body, auth) for body in bodies]
    else:
        requests = [raw_request(host, port, "/v1/messages", json.dumps(item).encode(), auth) for item in items]
    try:
        cpu = tree_cpu_seconds(server.pid)
        started = time.perf_counter()
        load = run_fast(lambda: drive(host, port, requests, connections))
        admitted = time.perf_counter()
        limit = admitted + 60 + messages / 100
        while (accepted := rest_send.outbox_count(database, "accepted")) < messages and time.perf_counter() < limit:
            time.sleep(0.05)
        finished = time.perf_counter()
        cpu = tree_cpu_seconds(server.pid) - cpu
    finally:
        stop(server)
    answered_ok = load.statuses.get(200 if batch else 202, 0)
    if answered_ok != len(requests) or accepted != messages:
        raise SystemExit(f"connectzap ({'batch' if batch else 'single'}): statuses {load.statuses}, "
                         f"{accepted} of {messages} accepted by the stand-in")
    return {"per_second": messages / (finished - started), "admitted_per_second": messages / (admitted - started),
            "cpu_us": cpu / messages * 1e6, "p50_ms": load.quantile_ms(50), "p99_ms": load.quantile_ms(99),
            "requests": len(requests)}


def webhook_requests(count: int, port: int) -> list[bytes]:
    _, _, webhook_ingress = bench_modules()
    return [raw_request("127.0.0.1", port, webhook_ingress.PATH, body, {"X-Hub-Signature-256": signature})
            for body, signature in webhook_ingress.signed_bodies(count, user_ids=True)]


def until(done: Callable[[], bool], timeout: float) -> float:
    """Poll ``done`` until it says yes (or ``timeout`` seconds pass); the seconds it took."""
    started = time.perf_counter()
    while not done() and time.perf_counter() - started < timeout:
        time.sleep(0.02)
    return time.perf_counter() - started


def measured(server: subprocess.Popen[Any], port: int, count: int, warm_up: int, connections: int, seconds: float,
             caught_up: Callable[[int], bool]) -> tuple[Load, float, float]:
    """The same for both servers: ``warm_up`` webhooks first (each server's first requests import and
    compile what later ones reuse), waited for until handled (``caught_up(n)``: the server has handled
    all ``n`` acknowledged so far), outside the clock; then the timed load, and the wait until the
    server has handled what it acknowledged. Returns the load, the server's CPU seconds over the load
    *and* that wait (the work a webhook causes is counted whole, the handling a server defers
    included), and the seconds of that wait."""
    requests = webhook_requests(warm_up + count, port)
    warm = run_fast(lambda: drive("127.0.0.1", port, requests[:warm_up], min(connections, 4)))
    until(lambda: caught_up(warm.statuses.get(200, 0)), 120)
    cpu = tree_cpu_seconds(server.pid)
    load = run_fast(lambda: drive("127.0.0.1", port, requests[warm_up:], connections, seconds))
    acknowledged = warm.statuses.get(200, 0) + load.statuses.get(200, 0)
    drained = until(lambda: caught_up(acknowledged), 300)
    cpu = tree_cpu_seconds(server.pid) - cpu
    return load, cpu, drained


def webhooks_to_pywa(pywa_python: str, count: int, warm_up: int, connections: int, seconds: float) -> dict[str, Any]:
    _, _, webhook_ingress = bench_modules()
    port = free_port()
    server = in_bench_venv(pywa_python, "--pywa-webhooks", str(port), "--app-secret", webhook_ingress.APP_SECRET,
                           "--waba-id", webhook_ingress.WABA_ID, "--phone-id", webhook_ingress.PHONE_NUMBER_ID)
    try:
        wait_for_port(port, server)
        load, cpu, drained = measured(server, port, count, warm_up, connections, seconds,
                                      lambda n: get_json(port, HANDLED_PATH)["handled"] >= n)
        answer = get_json(port, HANDLED_PATH)
    finally:
        stop(server)
    return {**figures(load, cpu, drained), "handled": answer["handled"] - warm_up, "pywa": answer["pywa"]}


def webhooks_to_connectzap(folder: Path, database_url: str | None, count: int, warm_up: int, connections: int,
                           seconds: float) -> dict[str, Any]:
    _, _, webhook_ingress = bench_modules()
    folder.mkdir()
    url_of_schema = webhook_ingress.fresh_postgres_schema(database_url) if database_url else None
    server, url = webhook_ingress.start_server(folder, url_of_schema, workers=True, log_level="info")
    port = int(url.rsplit(":", 1)[1])
    journal = webhook_ingress.JournalCounts(url_of_schema or webhook_ingress.sqlite_url(folder))

    def caught_up(n: int) -> bool:
        total, finished = journal.counts()
        return total >= n and finished >= total

    try:
        load, cpu, drained = measured(server, port, count, warm_up, connections, seconds,
                                      caught_up)
    finally:
        stop(server, kill=True)  # what was acknowledged must be journaled (and, waited for, dispatched)
        journal.close()
    journaled = webhook_ingress.journaled(folder, url_of_schema) - warm_up
    return {**figures(load, cpu, drained), "journaled": journaled,
            "database": "postgresql" if database_url else "sqlite"}


def figures(load: Load, cpu: float, drained: float) -> dict[str, Any]:
    """``per_second``: acknowledged during the load; ``handled_per_second``: the same events over the
    load and the wait until the server had handled every one (what a server sustains)."""
    acknowledged = load.statuses.get(200, 0)
    return {"per_second": load.per_second(200), "cpu_us": cpu / max(acknowledged, 1) * 1e6,
            "handled_per_second": acknowledged / (load.seconds + drained) if load.seconds else 0.0,
            "drain_seconds": drained, "p50_ms": load.quantile_ms(50), "p99_ms": load.quantile_ms(99),
            "acknowledged": acknowledged, "statuses": load.statuses}


def coordinate(args: argparse.Namespace) -> None:
    rest_send, send_throughput, _ = bench_modules()
    os.environ["CONNECTZAP_PRIVACY__HASH_SECRET"] = rest_send.HASH_SECRET  # serve inherits it; seed() uses it
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    started_at = datetime.now(UTC)
    parts = set(args.parts.split(","))
    folder = Path(tempfile.mkdtemp(prefix="cz-bench-pywa-"))
    sends: list[tuple[str, dict[str, Any], str, bool]] = []
    hooks: list[tuple[str, dict[str, Any], str, bool]] = []
    pywa_version = "?"
    try:
        if "sends" in parts:
            graph, graph_url = send_throughput.start_fake("--latency-ms", str(args.graph_latency_ms))
            try:
                clock = time.perf_counter()
                seeded = rest_send.seed(folder, args.messages)
                print(f"seeded {args.messages} opt-ins in {time.perf_counter() - clock:.1f} s", file=sys.stderr)
                pywa_send = send_with_pywa(args.pywa_python, graph_url, args.messages, args.pywa_tasks)
                pywa_version = pywa_send["pywa"]
                print("pywa send_template loop:", json.dumps(pywa_send), file=sys.stderr)
                batch = send_with_connectzap(seeded, folder / "batch", graph_url, args.messages, args.batch_size,
                                             args.batch_connections)
                print("connectzap REST batch:", json.dumps(batch), file=sys.stderr)
                single = send_with_connectzap(seeded, folder / "single", graph_url, args.messages, 0,
                                              args.single_connections)
                print("connectzap REST single:", json.dumps(single), file=sys.stderr)
            finally:
                stop(graph)
            sends = [(f"pywa send_template loop, {args.pywa_tasks} tasks (send latency)", pywa_send, "msg/s", False),
                     (f"connectzap whole path, REST batch of {args.batch_size}, {args.batch_connections} connections "
                      "(request latency)", batch, "msg/s", True),
                     (f"connectzap whole path, single REST, {args.single_connections} connections "
                      "(request latency)", single, "msg/s", True)]
        if "webhooks" in parts:
            count = args.webhook_requests or int(args.seconds * 5000)
            pywa_hooks = webhooks_to_pywa(args.pywa_python, count, args.warm_up, args.webhook_connections,
                                          args.seconds)
            print("pywa webhooks:", json.dumps(pywa_hooks), file=sys.stderr)
            pywa_version = pywa_hooks["pywa"]
            cz_hooks = webhooks_to_connectzap(folder / "webhooks", args.database_url, count, args.warm_up,
                                              args.webhook_connections, args.seconds)
            print("connectzap webhooks:", json.dumps(cz_hooks), file=sys.stderr)
            database = "PostgreSQL" if args.database_url else "SQLite"
            hooks = [("pywa webhook server (FastAPI, uvicorn)", pywa_hooks, "events/s", False),
                     (f"connectzap serve, as the README starts it ({database})", cz_hooks, "events/s", True)]
            if pywa_hooks["handled"] != pywa_hooks["acknowledged"]:
                print(f"note: pywa's handler saw {pywa_hooks['handled']} of {pywa_hooks['acknowledged']} "
                      "acknowledged webhooks", file=sys.stderr)
            if cz_hooks["journaled"] != cz_hooks["acknowledged"]:
                raise SystemExit("LOST: acknowledged webhooks missing from connectzap's journal")
    finally:
        import shutil
        shutil.rmtree(folder, ignore_errors=True)
    print(report(args, command, started_at, pywa_version, sends, hooks))


def report(args: argparse.Namespace, command: str, started_at: datetime, pywa_version: str,
           sends: list[tuple[str, dict[str, Any], str, bool]],
           hooks: list[tuple[str, dict[str, Any], str, bool]]) -> str:
    """Two tables, each with pywa's row first and connectzap's compared with it."""
    def rows(measured: list[tuple[str, dict[str, Any], str, bool]], handled: bool) -> list[str]:
        out = []
        base = measured[0][1]
        for what, figure, unit, compared in measured:
            ratios = "-"
            if compared:
                ratios = (f"{figure['per_second'] / base['per_second']:.2f}x, "
                          f"CPU {figure['cpu_us'] / base['cpu_us']:.2f}x")
            more = f" {figure['handled_per_second']:,.0f} ({figure['drain_seconds']:.1f} s) |" if handled else ""
            out.append(f"| {what} | {figure['per_second']:,.0f} {unit} |{more} {figure['p50_ms']:.1f} | "
                       f"{figure['p99_ms']:.1f} | {figure['cpu_us']:,.0f} | {ratios} |")
        return out

    lines = [
        f"date: {started_at:%Y-%m-%d %H:%M} UTC; command: {command}",
        f"machine: {os.cpu_count()} cores, load average (1 min) at the end {os.getloadavg()[0]:.2f}; "
        f"pywa {pywa_version}",
    ]
    if sends:
        lines += [
            f"{args.messages:,} template sends (one recipient each); Graph stand-in answering after "
            f"{args.graph_latency_ms:g} ms", "",
            "| what | throughput | p50 ms | p99 ms | CPU µs each | connectzap / pywa (throughput, CPU) |",
            "|---|---|---|---|---|---|", *rows(sends, handled=False), ""]
    if hooks:
        lines += [
            f"webhooks for {args.seconds:g} s over {args.webhook_connections} connections, after "
            f"{args.warm_up} to warm up; handled/s: the events over the load and the wait until the server had "
            "handled them all (that wait in brackets); CPU over both", "",
            "| what | acknowledged/s | handled/s (drain) | p50 ms | p99 ms | CPU µs each | "
            "connectzap / pywa (acknowledged, CPU) |",
            "|---|---|---|---|---|---|---|", *rows(hooks, handled=True)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pywa-python", default="/tmp/bench-venv/bin/python",
                        help="The Python of the venv pywa is installed in (see the set-up above).")
    parser.add_argument("--quick", action="store_true",
                        help="A short run: 1,000 messages, 5 s of webhooks per server (overrides both).")
    parser.add_argument("--messages", type=int, default=10_000, help="Template sends per system (max 10,000).")
    parser.add_argument("--pywa-tasks", type=int, default=32, help="Concurrent pywa send loops (default 32).")
    parser.add_argument("--graph-latency-ms", type=float, default=0.0,
                        help="The Graph stand-in waits this long before every answer (150: a realistic round trip).")
    parser.add_argument("--batch-size", type=int, default=100, help="Messages per POST /v1/messages/batch.")
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--single-connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0, help="Webhook run length per server.")
    parser.add_argument("--webhook-connections", type=int, default=16)
    parser.add_argument("--webhook-requests", type=int, default=0,
                        help="Distinct signed webhooks built beforehand (default 5,000 per second of run).")
    parser.add_argument("--warm-up", type=int, default=200,
                        help="Webhooks each server gets (and handles) before the clock starts (default 200).")
    parser.add_argument("--parts", default="sends,webhooks",
                        help="What to run: sends, webhooks, or both (default sends,webhooks).")
    parser.add_argument("--database-url", default=None,
                        help="connectzap's webhooks on PostgreSQL (a fresh schema of this database); default SQLite.")
    # the pywa half, started by the coordinator in pywa's venv
    parser.add_argument("--pywa-send", metavar="GRAPH_URL", help=argparse.SUPPRESS)
    parser.add_argument("--pywa-webhooks", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--phone-id", help=argparse.SUPPRESS)
    parser.add_argument("--waba-id", help=argparse.SUPPRESS)
    parser.add_argument("--app-secret", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pywa_send:
        result = run_fast(lambda: pywa_send(args.pywa_send, args.token, args.phone_id, args.messages,
                                            args.pywa_tasks))
        print(json.dumps(result))
    elif args.pywa_webhooks:
        pywa_webhook_server(args.pywa_webhooks, args.app_secret, "/webhooks/whatsapp", args.waba_id, args.phone_id)
    else:
        if args.quick:
            args.messages, args.seconds = 1_000, 5.0
        if not 0 < args.messages <= 10_000:
            raise SystemExit("--messages: 1 to 10,000 (one distinct recipient each)")
        coordinate(args)


if __name__ == "__main__":
    main()
