"""Per-event CPU as the store grows: 10 k versus 1 M finished rows in the journal and outbox (run by hand).

For each ``--sizes`` value, a fresh database is filled (one SQL statement per table: a generated
series, not a Python loop) with that many finished events, their ``core`` deliveries and as many
read messages, and the planner's statistics are updated. Then, on that database, measured:

* **statuses**: ``--work`` accepted messages get their ``sent``, ``delivered``, ``read`` status
  events, applied by a worker's dispatcher (``dispatch_once`` until none is pending);
* **inbound**: ``--work`` inbound text messages dispatched (the core's bookkeeping and the bundled
  plugins' hooks, as configured by default);
* **outbox claims**: ``--work`` queued messages claimed 50 at a time (``outbox.claim``, the sender's claim);
* **event claims over a backlog**: ``--backlog`` pending status events, 20 claims of 50 each
  (``journal.claim``), the claimed events closed in the claim's transaction so the next claim
  sees the same backlog.

Each figure is CPU per event of this process (the dispatcher's threads included) and, on
PostgreSQL on this host, of the server processes serving it (/proc, Linux). The ratio between the
sizes is what the ±20 % criterion of issue #15 is about.

    .venv/bin/python bench/growth.py
    .venv/bin/python bench/growth.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, text, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectzap import Contact, Event, EventKind, InboundMessage  # noqa: E402 - after sys.path points at this checkout
from connectzap.core.models import MessageStatus  # noqa: E402 - after sys.path points at this checkout
from connectzap.core.store import journal, outbox  # noqa: E402 - after sys.path points at this checkout
from connectzap.core.store.schema import events  # noqa: E402 - after sys.path points at this checkout
from connectzap.core.worker import Worker  # noqa: E402 - after sys.path points at this checkout
from connectzap.testing.apps import drop_postgres_schema, make_app  # noqa: E402 - after sys.path points at this checkout


def series(app: Any, count: int) -> str:
    """A CTE ``s(n)`` of 0 .. count-1 in this database's dialect."""
    if app.db.is_sqlite:
        return f"WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {count - 1}) "
    return f"WITH s(n) AS (SELECT generate_series(0, {count - 1})) "


def fill(app: Any, rows: int) -> None:
    """``rows`` finished events (done, payload erased), one done ``core`` delivery each, and ``rows``
    read messages (content erased): a store that has been running a while."""
    t = time.time() - 86400
    with app.db.begin() as conn:
        conn.execute(text(series(app, rows) + "INSERT INTO events (source, dedupe_key, kind, payload, status, "
                          "attempts, next_attempt_at, received_at, completed_at) SELECT 'whatsapp', 'old' || n, "
                          f"'message_status', NULL, 'done', 1, {t}, {t}, {t} FROM s"))
        conn.execute(text("INSERT INTO deliveries (event_id, target, status, attempts, next_attempt_at, updated_at) "
                          f"SELECT id, 'core', 'done', 1, {t}, {t} FROM events"))
        conn.execute(text(series(app, rows) + "INSERT INTO outbox (id, idempotency_key, request_hash, contact_key, "
                          "category, content_type, status, wamid, next_attempt_at, attempts, created_at, updated_at) "
                          "SELECT 'old' || n, 'old' || n, 'h', 'c' || (n % 5000), 'utility', 'template', 'read', "
                          f"'wamid.old' || n, {t}, 1, {t}, {t} FROM s"))
    analyze(app)


def analyze(app: Any) -> None:
    """Update the planner's statistics of the tables measured (only these: on PostgreSQL a bare
    ANALYZE would visit every schema of the database)."""
    with app.db.engine.connect() as conn:
        for table in ("events", "deliveries", "outbox"):
            conn.execute(text(f"ANALYZE {table}"))
        conn.commit()


def messages(app: Any, prefix: str, count: int, status: str) -> list[tuple[str, str]]:
    """``count`` messages in ``status`` written directly (what the sender would have left): (id, wamid)."""
    t = time.time()
    made = [(f"{prefix}{n}", f"wamid.{prefix}{n}") for n in range(count)]
    with app.db.begin() as conn:
        outbox.add_many(app.db, conn, [
            {"id": id_, "idempotency_key": id_, "request_hash": "h", "contact_key": f"c{n % 5000}",
             "category": "utility", "content_type": "template", "status": status,
             "wamid": wamid if status != "queued" else None, "next_attempt_at": t, "attempts": 0,
             "created_at": t, "updated_at": t} for n, (id_, wamid) in enumerate(made)])
    return made


class Meter:
    """CPU of this process and, on PostgreSQL, of the server processes serving its connections."""

    def __init__(self, app: Any) -> None:
        self.backends: set[int] = set()
        if not app.db.is_sqlite:
            event.listen(app.db.engine, "connect", lambda dbapi, _record: self.backends.add(dbapi.info.backend_pid))
            app.db.engine.dispose()

    def server(self) -> dict[int, float]:
        out = {}
        for pid in self.backends:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return out

    def measure(self, work: Callable[[], int]) -> dict[str, float]:
        server, cpu = self.server(), time.process_time()
        count = work()
        used = time.process_time() - cpu
        served = sum(v - server.get(pid, 0.0) for pid, v in self.server().items())
        return {"events": count, "cpu_ms": round(used * 1000 / count, 3),
                **({"server_cpu_ms": round(served * 1000 / count, 3)} if self.backends else {})}


def drain(worker: Worker) -> int:
    async def run() -> int:
        done = 0
        while n := await worker.dispatch_once():
            done += n
        return done
    return asyncio.run(run())


def statuses(app: Any, worker: Worker, count: int) -> Callable[[], int]:
    now = datetime.now(UTC)
    app.ingest([Event.of(EventKind.MESSAGE_STATUS, MessageStatus(wamid=wamid, status=status, timestamp=now),
                         source="whatsapp", dedupe_key=f"{wamid}:{status}")
                for status in ("sent", "delivered", "read") for _, wamid in messages(app, "s", count, "accepted")])
    return lambda: drain(worker)


def inbound(app: Any, worker: Worker, count: int) -> Callable[[], int]:
    now = datetime.now(UTC)
    app.ingest([Event.of(EventKind.INBOUND_MESSAGE,
                         InboundMessage(wamid=f"wamid.in{n}", contact=Contact(phone=f"+1650555{n % 10000:04d}"),
                                        type="text", text="hello", timestamp=now),
                         source="whatsapp", dedupe_key=f"in{n}") for n in range(count)])
    return lambda: drain(worker)


def outbox_claims(app: Any, count: int) -> Callable[[], int]:
    messages(app, "q", count, "queued")

    def claim_all() -> int:
        claimed = 0
        while True:
            with app.db.begin() as conn:
                n = len(outbox.claim(app.db, conn, "growth", 50, 60))
            if not n:
                return claimed
            claimed += n
    return claim_all


def backlog_claims(app: Any, backlog: int) -> Callable[[], int]:
    now = datetime.now(UTC)
    for at in range(0, backlog, 5000):
        app.ingest([Event.of(EventKind.MESSAGE_STATUS, MessageStatus(wamid=f"wamid.b{n}", status="sent", timestamp=now),
                             source="whatsapp", dedupe_key=f"b{n}") for n in range(at, min(at + 5000, backlog))])
    analyze(app)

    def twenty_claims() -> int:
        claimed = 0
        for _ in range(20):
            with app.db.begin() as conn:
                ids = [row["id"] for row in journal.claim(app.db, conn, "growth", 50, 60)]
                conn.execute(update(events).where(events.c.id.in_(ids)).values(status="done"))
            claimed += len(ids)
        return claimed
    return twenty_claims


def run(args: argparse.Namespace, size: int, tmp: Path) -> dict[str, Any]:
    directory = tmp / str(size)
    directory.mkdir()
    app = make_app(directory, database_url=args.database_url or f"sqlite:///{directory / 'growth.db'}",
                   sandbox={"quiet": True, "simulate_statuses": False})
    try:
        started = time.perf_counter()
        fill(app, size)
        filled = time.perf_counter() - started
        meter = Meter(app)
        worker = Worker(app)
        out: dict[str, Any] = {"stored_rows": size, "fill_s": round(filled, 1), "load_1min": os.getloadavg()[0]}
        out["statuses"] = meter.measure(statuses(app, worker, args.work))
        out["inbound"] = meter.measure(inbound(app, worker, args.work))
        out["outbox_claims"] = meter.measure(outbox_claims(app, args.work))
        out["event_claims_over_backlog"] = {"backlog": args.backlog,
                                            **meter.measure(backlog_claims(app, args.backlog))}
        return out
    finally:
        app.close()
        drop_postgres_schema(app.db.url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--work", type=int, default=1000, help="messages / events measured at each size")
    parser.add_argument("--backlog", type=int, default=1000, help="pending events under the claims measured")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(args, size, Path(tmp)) for size in args.sizes]
    for result in results:
        print(json.dumps(result), flush=True)
    first = results[0]
    for result in results[1:]:
        ratios = {what: round(result[what]["cpu_ms"] / first[what]["cpu_ms"], 2)
                  for what in ("statuses", "inbound", "outbox_claims", "event_claims_over_backlog")}
        print(json.dumps({"cpu_ratio": f"{result['stored_rows']:,} / {first['stored_rows']:,} rows", **ratios}))


if __name__ == "__main__":
    main()
