"""What the dispatcher spends per inbound message event (run by hand, not a test).

    .venv/bin/python bench/dispatch_cost.py                        # SQLite, 2,000 events
    .venv/bin/python bench/dispatch_cost.py --events 5000 --profile 25
    .venv/bin/python bench/dispatch_cost.py --user-ids    # contacts carry BSUIDs, as Meta sends them now
    .venv/bin/python bench/dispatch_cost.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

It journals signed-webhook-shaped inbound messages (the bodies of bench/webhook_ingress.py, parsed
by the WhatsApp connector as the edge does) into a fresh engine with the bundled plugins, then runs
one worker's dispatcher in this process until the journal is empty, and reports per event:

* the worker's CPU time (user + system of this process while dispatching; the journaling before
  is not counted),
* SQL statements sent to the database (a round trip each; an executemany counts once) and commits,
  and which statements they were (first words and table), so a change to the dispatch path shows
  what it saved.

``--profile N`` also prints the N functions with the most cumulative time (cProfile).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import event as sa_event
from webhook_ingress import signed_bodies

from connectzap.connectors.whatsapp.webhooks import parse_body
from connectzap.core.worker import Worker
from connectzap.testing.apps import drop_postgres_schema, make_app

_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+\"?(\w+)", re.IGNORECASE)


def label(statement: str) -> str:
    """``SELECT events``, ``INSERT deliveries``...: the verb and the first table it names."""
    words = statement.split(None, 1)
    verb = words[0].upper() if words else "?"
    table = _TABLE.search(statement)
    return f"{verb} {table.group(1) if table else ''}".strip()


class Counting:
    """Statements (by label) and commits on an engine, while switched on."""

    def __init__(self, engine: Any) -> None:
        self.on = False
        self.statements: Counter[str] = Counter()
        self.commits = 0
        sa_event.listen(engine, "before_cursor_execute", self._statement)
        sa_event.listen(engine, "commit", self._commit)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.on:
            self.statements[label(statement)] += 1

    def _commit(self, _conn: Any) -> None:
        if self.on:
            self.commits += 1


def journal(app: Any, count: int, user_ids: bool) -> None:
    events = [e for body, _signature in signed_bodies(count, user_ids=user_ids)
              for e in parse_body(body, key_of=app.contact_key)]
    for start in range(0, len(events), 500):
        app.ingest(events[start:start + 500])


async def drain(worker: Worker) -> int:
    done = 0
    while True:
        n = await worker.dispatch_once()
        if n == 0:
            return done
        done += n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    parser.add_argument("--batch-size", type=int, default=None, help="workers.batch_size (default: the setting's)")
    parser.add_argument("--user-ids", action="store_true",
                        help="each contact also carries a BSUID (as in bench/compare_pywa.py): identities are linked")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the top N functions (cumulative)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        settings: dict[str, Any] = {}
        if args.batch_size:
            settings["workers"] = {"batch_size": args.batch_size}
        app = make_app(Path(tmp), database_url=args.database_url, **settings)
        try:
            journal(app, args.events, args.user_ids)
            worker = Worker(app)
            counting = Counting(app.db.engine)
            profiler = cProfile.Profile() if args.profile else None
            counting.on = True
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            done = asyncio.run(drain(worker))
            if profiler:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            counting.on = False
        finally:
            app.close()
            if args.database_url:
                drop_postgres_schema(app.settings.database_url)

    statements = sum(counting.statements.values())
    print(f"database: {'PostgreSQL' if args.database_url else 'SQLite'}; events dispatched: {done}; "
          f"batch size {app.settings.workers.batch_size}{'; contacts with BSUIDs' if args.user_ids else ''}")
    print(f"worker CPU per event: {cpu / done * 1e6:,.0f} µs (wall {wall / done * 1e6:,.0f} µs)")
    print(f"statements per event: {statements / done:.2f}; commits per event: {counting.commits / done:.3f}")
    for name, n in counting.statements.most_common():
        print(f"  {n / done:7.3f}  {name}")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
