"""Webhook ingress benchmark (run by hand, not a test): signed WhatsApp webhooks per second that
`connectzap serve` verifies and journals durably, with p50/p99 acknowledgement latency.

    .venv/bin/python bench/webhook_ingress.py                 # SQLite, 10 s, 32 connections
    .venv/bin/python bench/webhook_ingress.py --seconds 20 --connections 64
    .venv/bin/python bench/webhook_ingress.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
    .venv/bin/python bench/webhook_ingress.py --workers      # workers running in the same process

What it does:
1. writes a temporary config (WhatsApp app secret, API key) and starts `connectzap serve --port 0`;
2. starts the load generator as a *second process*: it signs N distinct inbound-message webhooks
   up front, then keeps C keep-alive connections busy on loopback (closed loop: a connection
   sends its next request when the previous answer arrived) for a bounded time and request count,
   recording the time from sending a request to reading its full answer;
3. the moment the generator has finished, sends SIGKILL to the server (no shutdown, no flush) and
   counts the events in the journal: every acknowledged (200) delivery must be there.

The load generator speaks HTTP/1.1 over asyncio streams directly: a full client library costs
more CPU per request than the server does, and on a 2-core machine it would measure itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP_SECRET = "bench-app-secret"
API_KEY = "bench-api-key-0123456789"
PATH = "/webhooks/whatsapp"
WABA_ID = "419561257915477"  # the business account and number the webhooks speak for
PHONE_NUMBER_ID = "106540352242922"


# --- the load generator (runs in its own process) ---------------------------------------------

def signed_bodies(count: int, numbers: int = 5000, user_ids: bool = False) -> list[tuple[bytes, str]]:
    """``user_ids``: each contact also carries a business-scoped user id, as Meta now sends (pywa
    4.5 raises KeyError without one, see bench/compare_pywa.py)."""
    from connectzap.connectors.whatsapp.signatures import sign_meta
    out = []
    now = int(time.time())
    for i in range(count):
        wa_id = f"49151{10000000 + i % numbers:08d}"
        contact = {"profile": {"name": "Bench"}, "wa_id": wa_id}
        if user_ids:
            contact["user_id"] = f"US.{10**19 + i % numbers}"
        body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
                "contacts": [contact],
                "messages": [{"from": wa_id, "id": f"wamid.bench.{os.getpid()}.{i}", "timestamp": str(now),
                              "type": "text", "text": {"body": f"order status please #{i}"}}]}}]}]},
                          separators=(",", ":")).encode()
        out.append((body, sign_meta(body, APP_SECRET)))
    return out


async def generate(host: str, port: int, connections: int, seconds: float, max_requests: int,
                   numbers: int) -> dict:
    bodies = signed_bodies(max_requests, numbers)
    requests = [(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: " + f"{host}:{port}".encode()
                 + b"\r\nContent-Type: application/json\r\nX-Hub-Signature-256: " + sig.encode()
                 + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body) for body, sig in bodies]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def connection() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline and next_index < len(requests):
                request = requests[next_index]
                next_index += 1
                sent = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - sent)
                status = int(head[9:12])
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    quantile = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else [0] * 99
    return {"requests": len(latencies), "statuses": statuses, "acknowledged": statuses.get(200, 0),
            "seconds": round(elapsed, 3), "per_second": round(statuses.get(200, 0) / elapsed, 1),
            "p50_ms": round(quantile[49] * 1000, 2), "p99_ms": round(quantile[98] * 1000, 2),
            "max_ms": round(latencies[-1] * 1000, 2) if latencies else 0, "connections": connections}


def run_generator(args: argparse.Namespace) -> None:
    try:
        import uvloop
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        result = runner.run(generate(args.host, args.port, args.connections, args.seconds, args.max_requests,
                                     args.numbers))
    print(json.dumps(result))


# --- the coordinator ---------------------------------------------------------------------------

def start_server(folder: Path, database_url: str | None, workers: bool,
                 log_level: str, whatsapp: dict[str, object] | None = None) -> tuple[subprocess.Popen[str], str]:
    """``whatsapp``: more [connectors.whatsapp] settings (e.g. credentials and a Graph stand-in's URL)."""
    database = f'[database]\nurl = "{database_url}"\n' if database_url else ""
    more = "".join(f"{key} = {json.dumps(value)}\n" for key, value in (whatsapp or {}).items())
    config = folder / "bench.toml"
    config.write_text(f'data_dir = "{folder}"\n{database}[api]\nkeys = ["{API_KEY}"]\n[sandbox]\nquiet = true\n'
                      f'[connectors.whatsapp]\napp_secrets = ["{APP_SECRET}"]\nverify_token = "bench"\n{more}')
    command = [str(Path(sys.executable).with_name("connectzap")), "--config", str(config), "serve", "--port", "0",
               "--log-level", log_level]
    if not workers:
        command.append("--no-workers")
    # The log goes to a file, as an operator's would: a pipe nobody reads would stall the server.
    log = folder / "serve.log"
    with log.open("w") as sink:
        server = subprocess.Popen(command, stderr=sink, stdout=subprocess.DEVNULL, text=True,
                                  env={**os.environ, "CONNECTZAP_LOAD_PLUGINS": ""})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        for line in log.read_text().splitlines():
            if "serving on " in line:
                return server, line.split("serving on ", 1)[1].split()[0]
        time.sleep(0.05)
    raise SystemExit("server did not start:\n" + log.read_text())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def journaled(folder: Path, database_url: str | None) -> int:
    from sqlalchemy import func, select

    from connectzap.core.settings import Settings
    from connectzap.core.store.database import Database
    from connectzap.core.store.schema import events
    url = database_url or Settings(data_dir=folder).database_url
    db = Database(url)
    with db.read() as conn:
        count = conn.execute(select(func.count()).select_from(events).where(events.c.source == "whatsapp")).scalar_one()
    db.dispose()
    return int(count)


def fresh_postgres_schema(url: str) -> str:
    from connectzap.testing.apps import _postgres_schema_url
    return _postgres_schema_url(url)


def coordinate(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="cz-bench-"))
    database_url = fresh_postgres_schema(args.database_url) if args.database_url else None
    server, url = start_server(folder, database_url, args.workers, args.log_level)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    cpu_before = cpu_seconds(server.pid)
    try:
        generator = subprocess.run([sys.executable, __file__, "--generate", "--host", host, "--port", port,
                                    "--connections", str(args.connections), "--seconds", str(args.seconds),
                                    "--max-requests", str(args.max_requests), "--numbers", str(args.numbers)],
                                   capture_output=True, text=True, check=True)
    finally:
        cpu_used = cpu_seconds(server.pid) - cpu_before
        server.send_signal(signal.SIGKILL)  # right after the last 200: no graceful anything
        server.wait()
    result = json.loads(generator.stdout)
    # CPU the server spent per request: a figure that holds even when other work shares the machine.
    result["server_cpu_us_per_request"] = round(cpu_used / max(result["requests"], 1) * 1e6, 1)
    result["load_average_1m"] = os.getloadavg()[0]
    result["journaled_after_sigkill"] = journaled(folder, database_url)
    result["database"] = "postgresql" if database_url else "sqlite"
    result["workers_in_process"] = args.workers
    result["log_level"] = args.log_level
    result["distinct_numbers"] = args.numbers
    result["every_ack_durable"] = result["journaled_after_sigkill"] == result["acknowledged"]
    print(json.dumps(result, indent=2))
    if not result["every_ack_durable"]:
        raise SystemExit("LOST: acknowledged deliveries missing from the journal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--numbers", type=int, default=5000,
                        help="Distinct customer numbers the webhooks cycle through (default 5000).")
    parser.add_argument("--database-url", help="PostgreSQL base URL (a fresh schema is used); default SQLite")
    parser.add_argument("--workers", action="store_true", help="Run the workers inside serve as well.")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="serve --log-level (default info, as serve runs: one line per webhook).")
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        run_generator(args)
    else:
        coordinate(args)


if __name__ == "__main__":
    main()
