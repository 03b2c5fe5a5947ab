"""What the dispatcher spends per inbound message event (run by hand, not a test).

    .venv/bin/python bench/dispatch_cost.py                        # SQLite, 2,000 events
    .venv/bin/python bench/dispatch_cost.py --events 5000 --profile 25
    .venv/bin/python bench/dispatch_cost.py --user-ids    # contacts carry BSUIDs, as Meta sends them now
    .venv/bin/python bench/dispatch_cost.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/dispatch_cost.py --database-url ... --lanes 1   # one dispatch loop (SQLite's default)

It journals signed-webhook-shaped inbound messages (the bodies of bench/webhook_ingress.py, parsed
by the WhatsApp connector as the edge does) into a fresh engine with the bundled plugins, then runs
one worker's dispatcher in this process until the journal is empty, and reports per event:

* the worker's CPU time (user + system of this process while dispatching; the journaling before
  is not counted),
* SQL statements sent to the database (a round trip each; an executemany counts once) and commits,
  and which statements they were (first words and table) with the wall time from sending each to
  its answer, so a change to the dispatch path shows what it saved and where a worker waits.

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
import threading
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
        self.waited: Counter[str] = Counter()  # wall seconds from sending a statement to its answer
        self.commits = 0
        self._sent = threading.local()
        sa_event.listen(engine, "before_cursor_execute", self._statement)
        sa_event.listen(engine, "after_cursor_execute", self._answered)
        sa_event.listen(engine, "commit", self._commit)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.on:
            self.statements[label(statement)] += 1
            self._sent.at = time.perf_counter()

    def _answered(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.on and getattr(self._sent, "at", None) is not None:
            self.waited[label(statement)] += time.perf_counter() - self._sent.at
            self._sent.at = None

    def _commit(self, _conn: Any) -> None:
        if self.on:
            self.commits += 1


def journal(app: Any, count: int, user_ids: bool) -> None:
    events = [e for body, _signature in signed_bodies(count, user_ids=user_ids)
              for e in parse_body(body, key_of=app.contact_key)]
    for start in range(0, len(events), 500):
        app.ingest(events[start:start + 500])


async def drain(worker: Worker, lanes: int = 1) -> int:
    """Dispatch until the journal is empty, with ``lanes`` dispatch loops at once (as
    :meth:`Worker.run` keeps ``workers.dispatch_lanes`` of them)."""
    async def lane() -> int:
        done = 0
        while n := await worker.dispatch_once():
            done += n
        return done

    total = 0
    while got := sum(await asyncio.gather(*(lane() for _ in range(lanes)))):
        total += got
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    parser.add_argument("--batch-size", type=int, default=None, help="workers.batch_size (default: the setting's)")
    parser.add_argument("--user-ids", action="store_true",
                        help="each contact also carries a BSUID (as in bench/compare_pywa.py): identities are linked")
    parser.add_argument("--lanes", type=int, default=None,
                        help="dispatch loops at once (workers.dispatch_lanes; default: the worker's, "
                             "2 on PostgreSQL, 1 on SQLite)")
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
            lanes = args.lanes or worker.dispatch_lanes()
            done = asyncio.run(drain(worker, lanes))
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
          f"batch size {app.settings.workers.batch_size}; {lanes} dispatch lane(s)"
          f"{'; contacts with BSUIDs' if args.user_ids else ''}")
    print(f"worker CPU per event: {cpu / done * 1e6:,.0f} µs (wall {wall / done * 1e6:,.0f} µs)")
    print(f"statements per event: {statements / done:.2f}; commits per event: {counting.commits / done:.3f}")
    waited = sum(counting.waited.values())
    print(f"wall time in statements per event: {waited / done * 1e6:,.0f} µs (per event, by statement below)")
    for name, n in counting.statements.most_common():
        print(f"  {n / done:7.3f}  {counting.waited[name] / done * 1e6:7,.0f} µs  {name}")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
