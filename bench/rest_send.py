"""REST send benchmark (run by hand, not a test): template messages per second the gate admits
through a real `connectzap serve`, one per request (POST /v1/messages) versus in batches
(POST /v1/messages/batch).

    .venv/bin/python bench/rest_send.py                       # SQLite; all modes below
    .venv/bin/python bench/rest_send.py --messages 20000 --numbers 5000
    .venv/bin/python bench/rest_send.py --modes 0x32 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/cz_bench   # an empty database of its own

A mode is BATCHxCONNECTIONS: 0x32 is one message per request from 32 concurrent clients.
On PostgreSQL the database is seeded once and the outbox emptied before each mode.

Each mode gets a fresh copy of one seeded SQLite database (the order template, a utility opt-in
for every customer number) and its own `serve --no-workers` process, so only admission is measured:
the sender would compete for the same two cores. Every message carries its own idempotency key,
as a campaign's would. The client writes HTTP/1.1 over asyncio streams itself (keep-alive, closed
loop: a connection sends its next request when the previous answer arrived); a client library
would spend more CPU than the server on a 2-core machine. After each mode the outbox is counted:
every message answered as queued must be there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webhook_ingress import API_KEY, cpu_seconds, start_server  # noqa: E402  (the same serve, started the same way)

HASH_SECRET = "bench-hash-secret-0123456789"  # consents are keyed by it: seeding and serve must agree
TEMPLATE = "order_confirmation"


def phone(n: int) -> str:
    return f"+1650555{n:04d}"


def seed(folder: Path, numbers: int) -> Path:
    """A migrated SQLite database with the template and the opt-ins; returns the file."""
    seed_database(folder, numbers, f"sqlite:///{folder / 'seed.db'}")
    return folder / "seed.db"


def seed_database(folder: Path, numbers: int, database_url: str) -> str:
    """Seed ``database_url``; returns the URL seeded (on PostgreSQL, a schema of its own in that database)."""
    from connectzap import Category, ConsentChange
    from connectzap.testing import make_app, run, seed_template
    app = make_app(folder, database_url=database_url, privacy={"hash_secret": HASH_SECRET})
    seed_template(app, TEMPLATE, "Hi {{1}}, order {{2}} is confirmed.")
    for n in range(numbers):
        app.set_consent(ConsentChange(phone=phone(n), category=Category.UTILITY, granted=True, source="bench",
                                      proof="ticked 'send me order updates'"))
    run(app)  # the consent events are dispatched here, not by the workers of a measured serve
    url = app.settings.database_url
    app.close()
    return url


def message(n: int, numbers: int) -> dict:
    return {"to": phone(n % numbers), "idempotency_key": f"campaign-2026-11-order-{n:07d}",
            "content": {"type": "template", "name": TEMPLATE, "language": "en", "body": ["Ana", f"{n:07d}"]}}


def request(host: str, port: int, path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def load(host: str, port: int, requests: list[tuple[bytes, int]], connections: int,
               batched: bool) -> dict:
    """Send ``requests`` (raw bytes, messages in it) over ``connections``; count what was queued."""
    queued = 0
    statuses: dict[int, int] = {}
    next_index = 0

    async def connection() -> None:
        nonlocal next_index, queued
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < len(requests):
                raw, _ = requests[next_index]
                next_index += 1
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line[15:]) for line in head.split(b"\r\n")
                              if line[:15].lower() == b"content-length:")
                answer = await reader.readexactly(length)
                status = int(head[9:12])
                statuses[status] = statuses.get(status, 0) + 1
                if batched and status == 200:
                    queued += json.loads(answer)["accepted"]
                elif status == 202:
                    queued += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return {"seconds": round(elapsed, 2), "queued": queued, "statuses": statuses,
            "messages_per_second": round(queued / elapsed, 1)}


def outbox_count(database: Path | str, status: str | None = None, *, empty: bool = False) -> int:
    """Messages in the outbox of a SQLite file or a database URL (with ``status``: only those, e.g.
    "accepted" by the Graph API; with ``empty``, deleted first: a fresh start on PostgreSQL)."""
    from sqlalchemy import delete, func, select

    from connectzap.core.store.database import Database
    from connectzap.core.store.schema import outbox
    db = Database(database if isinstance(database, str) else f"sqlite:///{database}")
    query = select(func.count()).select_from(outbox)
    if status is not None:
        query = query.where(outbox.c.status == status)
    with db.begin() as conn:
        if empty:
            conn.execute(delete(outbox))
        count = conn.execute(query).scalar_one()
    db.dispose()
    return int(count)


def run_mode(seeded: Path, folder: Path, *, batch: int, connections: int, messages: int, numbers: int,
             log_level: str, database_url: str | None) -> dict:
    folder.mkdir()
    if database_url:
        outbox_count(database_url, empty=True)
    else:
        shutil.copy(seeded, folder / "connectzap.db")
        database_url = f"sqlite:///{folder / 'connectzap.db'}"
    server, url = start_server(folder, database_url, workers=False, log_level=log_level)
    host, port_text = url.removeprefix("http://").rsplit(":", 1)
    port = int(port_text)
    items = [message(n, numbers) for n in range(messages)]
    if batch:
        requests = [(request(host, port, "/v1/messages/batch", json.dumps({"messages": items[at:at + batch]}).encode()),
                     len(items[at:at + batch])) for at in range(0, messages, batch)]
    else:
        requests = [(request(host, port, "/v1/messages", json.dumps(item).encode()), 1) for item in items]
    try:
        cpu_before = cpu_seconds(server.pid)
        result = asyncio.run(load(host, port, requests, connections, batched=bool(batch)))
        # On a shared machine the rate depends on what else runs; the server's CPU per message does not.
        result["server_cpu_ms_per_message"] = round((cpu_seconds(server.pid) - cpu_before) * 1000 / messages, 3)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    result["stored"] = outbox_count(database_url)
    result["mode"] = f"batch of {batch}" if batch else "one per request"
    result["connections"] = connections
    result["largest_body_bytes"] = max(len(raw) for raw, _ in requests)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="Messages per mode (default 10000).")
    parser.add_argument("--numbers", type=int, default=2_000, help="Distinct customers with an opt-in.")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="serve --log-level (default info, as serve runs).")
    parser.add_argument("--modes", default="0x16,0x32,100x1,100x4,1000x1,1000x2",
                        help="BATCHxCONNECTIONS, comma-separated; batch 0 is one message per request.")
    parser.add_argument("--database-url", help="A PostgreSQL database of the bench's own (default: SQLite "
                                               "files in a temporary folder).")
    args = parser.parse_args()
    os.environ["CONNECTZAP_PRIVACY__HASH_SECRET"] = HASH_SECRET  # serve inherits the environment
    modes = [tuple(int(n) for n in mode.split("x")) for mode in args.modes.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="cz-bench-rest-"))
    try:
        started = time.perf_counter()
        seeded = folder / "seed.db"
        seeded_url = seed_database(folder, args.numbers, args.database_url or f"sqlite:///{seeded}")
        print(f"seeded {args.numbers} opt-ins in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        results = []
        for batch, connections in modes:
            result = run_mode(seeded, folder / f"batch{batch}-c{connections}", batch=batch, connections=connections,
                              messages=args.messages, numbers=args.numbers, log_level=args.log_level,
                              database_url=seeded_url if args.database_url else None)
            print(json.dumps(result), file=sys.stderr)
            results.append(result)
        print(f"\n{'mode':<18} {'connections':>11} {'queued/s':>9} {'seconds':>8} {'stored':>7} "
              f"{'server CPU ms/msg':>17}")
        for r in results:
            print(f"{r['mode']:<18} {r['connections']:>11} {r['messages_per_second']:>9} {r['seconds']:>8} "
                  f"{r['stored']:>7} {r['server_cpu_ms_per_message']:>17}")
        print(f"\nload average (1 min): {os.getloadavg()[0]:.2f}; cores: {os.cpu_count()}")
        if any(r["stored"] != r["queued"] or r["queued"] != args.messages for r in results):
            raise SystemExit("MISMATCH: not every message was queued and stored")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
