"""The query plans of the dispatcher's and sender's hot queries on a grown database (run by hand).

Fills a fresh database with ``--rows`` finished events and as many sent messages (each with a
wamid), plus a few hundred pending status events and queued messages, updates the planner's
statistics, then runs the real code paths -- the event claim (``journal.claim``), the status lookup
by wamid (``outbox.apply_statuses``), the outbox claim (``outbox.claim``) and the housekeeping's
erasure of expired payloads -- inside a transaction
that is rolled back, captures every statement they send and prints its plan (SQLite: ``EXPLAIN
QUERY PLAN``; PostgreSQL: ``EXPLAIN``).

    .venv/bin/python bench/explain_hot_queries.py --rows 100000
    .venv/bin/python bench/explain_hot_queries.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectzap.core.store import journal, outbox  # noqa: E402 - after sys.path points at this checkout
from connectzap.core.store.schema import events, outbox as outbox_table  # noqa: E402 - after sys.path points at this checkout
from connectzap.testing.apps import drop_postgres_schema, make_app  # noqa: E402 - after sys.path points at this checkout

PENDING = 300


def fill(app: Any, rows: int) -> None:
    t = time.time()
    for at in range(0, rows + PENDING, 10_000):
        chunk = range(at, min(at + 10_000, rows + PENDING))
        with app.db.begin() as conn:
            conn.execute(events.insert(), [
                {"source": "whatsapp", "dedupe_key": f"w{n}:read", "kind": "message_status",
                 "payload": json.dumps({"kind": "message_status", "source": "whatsapp", "dedupe_key": f"w{n}:read",
                                        "data": {"wamid": f"w{n}", "status": "read",
                                                 "timestamp": "2026-12-02T10:00:00Z"}}),
                 "status": "done" if n < rows else "pending", "attempts": 0, "next_attempt_at": t,
                 "received_at": t, "completed_at": t if n < rows else None} for n in chunk])
            conn.execute(outbox_table.insert(), [
                {"id": f"m{n:012d}", "idempotency_key": f"k{n}", "request_hash": "h", "contact_key": f"c{n % 5000}",
                 "category": "utility", "content_type": "template", "status": "read" if n < rows else "queued",
                 "wamid": f"w{n}",
                 "attempts": 0, "next_attempt_at": t, "created_at": t, "updated_at": t} for n in chunk])
    with app.db.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


def plans(app: Any) -> list[tuple[str, str, str]]:
    """(query, statement, plan) for every statement the three hot paths send."""
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not executemany and statement.lstrip().upper().startswith(("SELECT", "UPDATE", "INSERT")):
            sent.append((statement, parameters))

    out = []
    explain = "EXPLAIN QUERY PLAN " if app.db.is_sqlite else "EXPLAIN "
    with app.db.engine.connect() as conn:
        for name, run in (("event claim (journal.claim, batch 50)",
                           lambda c: journal.claim(app.db, c, "explain", 50, 60)),
                          ("status lookup by wamid (outbox.apply_statuses, 50 statuses)",
                           lambda c: outbox.apply_statuses(c, [outbox.StatusReport(f"w{n}", "read")
                                                                for n in range(1000, 1050)])),
                          ("outbox claim (outbox.claim, batch 50)",
                           lambda c: outbox.claim(app.db, c, "explain", 50, 60)),
                          ("housekeeping, every few seconds (journal.erase_expired, outbox.erase_expired)",
                           lambda c: (journal.erase_expired(c), outbox.erase_expired(c)))):
            sent.clear()
            event.listen(app.db.engine, "before_cursor_execute", record)
            with conn.begin() as tx:
                run(conn)
                event.remove(app.db.engine, "before_cursor_execute", record)
                for statement, parameters in list(sent):
                    cursor = conn.connection.cursor()
                    cursor.execute(explain + statement, parameters)
                    plan = "\n".join(" | ".join(str(v) for v in row) for row in cursor.fetchall())
                    out.append((name, " ".join(statement.split()), plan))
                tx.rollback()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp), database_url=args.database_url or f"sqlite:///{Path(tmp) / 'explain.db'}")
        try:
            fill(app, args.rows)
            print(f"# {app.db.dialect}, {args.rows:,} finished events and sent messages, {PENDING} pending each")
            for name, statement, plan in plans(app):
                print(f"\n## {name}\n{statement[:400]}\n{plan}")
        finally:
            app.close()
            drop_postgres_schema(app.db.url)


if __name__ == "__main__":
    main()
