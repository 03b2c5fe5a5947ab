"""Event claims per second: what ordering keys cost the dispatcher's claim (run by hand).

Journals ``--events`` order events in a fresh database, then ``--claimers`` threads claim batches
(``journal.claim``, batch ``--batch``) and close each claimed event at once with one UPDATE, until the
journal is empty. No hook runs: the figure is the claim path alone (select, key locks, lease).

``--keys 0`` journals events without an ordering key (the claim as it was before keys existed);
``--keys N`` spreads them over N keys (``--keys 100`` for 5,000 events: 50 events per order).

    .venv/bin/python bench/claim_throughput.py --keys 0
    .venv/bin/python bench/claim_throughput.py --keys 5000 --claimers 3
    .venv/bin/python bench/claim_throughput.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from connectzap import Event, EventKind, Order
from connectzap.core.store import journal
from connectzap.core.store.schema import events
from connectzap.testing.apps import drop_postgres_schema, make_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--keys", type=int, default=0, help="distinct ordering keys (0: none)")
    parser.add_argument("--claimers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        app = make_app(Path(tmp), database_url=url)
        try:
            batch = []
            for n in range(args.events):
                extra = {"ordering_key": f"bench:order:{n % args.keys}"} if args.keys else {}
                batch.append(Event.of(EventKind.ORDER_UPDATED, Order(id=str(n % max(args.keys, 1)), status="s"),
                                      source="bench", dedupe_key=str(n), **extra))
            for at in range(0, len(batch), 1000):
                app.ingest(batch[at:at + 1000])

            claims = [0] * args.claimers
            claimed = [0] * args.claimers

            def claimer(index: int) -> None:
                empty = 0
                while empty < 3:
                    with app.db.begin() as conn:
                        rows = journal.claim(app.db, conn, f"bench-{index}", args.batch, 60)
                    claims[index] += 1
                    if not rows:
                        empty += 1
                        continue
                    empty = 0
                    claimed[index] += len(rows)
                    with app.db.begin() as conn:
                        conn.execute(events.update().where(events.c.id.in_([r["id"] for r in rows]))
                                     .values(status="done", claimed_by=None, claimed_until=None))

            threads = [threading.Thread(target=claimer, args=(i,)) for i in range(args.claimers)]
            started, cpu = time.perf_counter(), time.process_time()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            print(json.dumps({
                "database": app.db.dialect, "events": args.events, "keys": args.keys, "claimers": args.claimers,
                "batch": args.batch, "claimed": sum(claimed), "claim_transactions": sum(claims),
                "events_per_second": round(sum(claimed) / wall), "claims_per_second": round(sum(claims) / wall),
                "process_cpu_ms_per_event": round(cpu * 1000 / max(sum(claimed), 1), 3),
            }))
            assert sum(claimed) == args.events, "an event was claimed twice or never"
        finally:
            app.close()
            drop_postgres_schema(app.db.url)


if __name__ == "__main__":
    main()
