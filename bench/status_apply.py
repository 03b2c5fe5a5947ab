"""Status bookkeeping: how many status events the dispatchers apply per second (run by hand).

Admits ``--messages`` template messages, sends them through the sandbox channel (each gets a
wamid), then journals Meta's three statuses of every message -- ``sent``, ``delivered``, ``read``,
as the webhook edge would -- and starts ``--workers`` real worker processes (dispatchers only, no
sender) on the same database. Timed: from the moment the workers are told to go (each has started
and connected) until no event is pending. Checked afterwards: every message is ``read`` and every
status event done, once.

``--order`` says how the statuses arrive: ``waves`` (every message's ``sent``, then every
``delivered``, then every ``read`` -- a campaign), ``interleaved`` (the three of one message one
after another) or ``shuffled``.

    .venv/bin/python bench/status_apply.py --workers 1
    .venv/bin/python bench/status_apply.py --workers 3 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event, func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectzap import Category, Connectzap, ConsentChange, Event, EventKind, Outgoing, TemplateContent  # noqa: E402 - after sys.path points at this checkout
from connectzap.core.models import MessageStatus  # noqa: E402 - after sys.path points at this checkout
from connectzap.core.settings import load_settings  # noqa: E402 - after sys.path points at this checkout
from connectzap.core.store.schema import events, outbox  # noqa: E402 - after sys.path points at this checkout
from connectzap.core.worker import Worker  # noqa: E402 - after sys.path points at this checkout
from connectzap.testing import seed_template  # noqa: E402 - after sys.path points at this checkout
from connectzap.testing.apps import _postgres_schema_url, drop_postgres_schema  # noqa: E402 - after sys.path points at this checkout

STATUSES = ("sent", "delivered", "read")


def pending(app: Connectzap) -> int:
    with app.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(events)
                                .where(events.c.status == "pending")).scalar_one())


def server_cpu(pid: int) -> float:
    """CPU seconds used so far by a PostgreSQL server process on this host (/proc, Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child(config: str) -> None:
    """One worker process: connect, say ready, wait for "go", dispatch until the journal is empty."""
    app = Connectzap(load_settings(config)).start()
    worker = Worker(app)
    backends: set[int] = set()  # PostgreSQL: the server processes serving this worker, for their CPU
    if not app.db.is_sqlite:
        event.listen(app.db.engine, "connect", lambda dbapi, _record: backends.add(dbapi.info.backend_pid))
        app.db.engine.dispose()
    pending(app)  # the pool holds a live connection before the clock starts
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = time.process_time()
    server_before = {pid: server_cpu(pid) for pid in backends}

    async def drain() -> int:
        done, idle = 0, 0
        while idle < 3:
            n = await worker.dispatch_once()
            done += n
            if n:
                idle = 0
            elif pending(app) == 0:
                idle += 1
            else:
                await asyncio.sleep(0.005)  # the rest is claimed by others (or held by a key)
        return done

    done = asyncio.run(drain())
    used = time.process_time() - cpu
    server = sum(server_cpu(pid) - server_before.get(pid, 0.0) for pid in backends)
    print(json.dumps({"dispatched": done, "cpu_s": used, "server_cpu_s": server}), flush=True)
    app.close()


def prepare(app: Connectzap, total: int, order: str) -> None:
    seed_template(app, "order_confirmation", "Order {{1}} confirmed")
    phones = [f"+1650555{n:04d}" for n in range(total)]
    for phone in phones:
        app.set_consent(ConsentChange(phone=phone, category=Category.UTILITY, granted=True, source="bench",
                                      proof="bench"))
    for at in range(0, total, 500):
        app.send_many([Outgoing(to=phone, content=TemplateContent(name="order_confirmation", language="en",
                                                                  body=[str(n)]))
                       for n, phone in enumerate(phones[at:at + 500], start=at)])
    asyncio.run(Worker(app).run_until_idle(max_rounds=100_000))  # sent through the sandbox
    with app.db.read() as conn:
        sent = conn.execute(select(outbox.c.id, outbox.c.wamid).order_by(outbox.c.id)).all()
    assert len(sent) == total and all(wamid for _, wamid in sent)
    pairs = [(status, id_, wamid) for status in STATUSES for id_, wamid in sent]
    if order == "interleaved":
        pairs.sort(key=lambda p: (p[1], STATUSES.index(p[0])))
    elif order == "shuffled":
        random.Random(7).shuffle(pairs)
    statuses = [Event.of(EventKind.MESSAGE_STATUS,
                         MessageStatus(wamid=wamid, status=status, timestamp=datetime.now(UTC), outbox_id=id_),
                         source="whatsapp", dedupe_key=f"{wamid}:{status}") for status, id_, wamid in pairs]
    for at in range(0, len(statuses), 500):
        app.ingest(statuses[at:at + 500])


def run(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    base = args.database_url
    url = _postgres_schema_url(base) if base else f"sqlite:///{tmp / 'bench.db'}"
    config = tmp / "connectzap.toml"
    config.write_text(f"""
data_dir = "{tmp / 'data'}"
[database]
url = "{url}"
[privacy]
hash_secret = "status-bench-secret-0123456789abcdef"
[workers]
batch_size = {args.batch}
{f"status_batch_size = {args.status_batch}" if args.status_batch else ""}
poll_interval_seconds = 0.01
[sandbox]
quiet = true
simulate_statuses = false
""")
    app = Connectzap(load_settings(config)).start()
    try:
        prepare(app, args.messages, args.order)
        procs = [subprocess.Popen([sys.executable, __file__, "--child", str(config)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True) for _ in range(args.workers)]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        while pending(app):
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        load_after = os.getloadavg()[0]
        reports = [json.loads(proc.communicate(timeout=120)[0].strip().splitlines()[-1]) for proc in procs]
        with app.db.read() as conn:
            by_status = dict(conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all())
            done = conn.execute(select(func.count()).select_from(events)
                                .where(events.c.kind == "message_status", events.c.source == "whatsapp",
                                       events.c.status == "done")).scalar_one()
    finally:
        app.close()
        if base:
            drop_postgres_schema(url)
    statuses = 3 * args.messages
    # the sender's own "accepted" events (source connectzap) were dispatched while preparing
    if by_status != {"read": args.messages} or done != statuses or sum(r["dispatched"] for r in reports) != statuses:
        raise RuntimeError(f"not exact: outbox {by_status}, {done} events done, reports {reports}")
    return {"database": "postgresql" if base else "sqlite", "messages": args.messages, "statuses": statuses,
            "order": args.order, "workers": args.workers, "batch": args.batch,
            "status_batch": args.status_batch,
            "statuses_per_second": round(statuses / elapsed),
            "worker_cpu_ms_per_status": round(sum(r["cpu_s"] for r in reports) * 1000 / statuses, 3),
            "server_cpu_ms_per_status": round(sum(r["server_cpu_s"] for r in reports) * 1000 / statuses, 3)
            if base else None,
            "load_1min": [round(load_before, 1), round(load_after, 1)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes dispatching")
    parser.add_argument("--batch", type=int, default=50, help="workers.batch_size (50 is the default)")
    parser.add_argument("--status-batch", type=int, default=None,
                        help="workers.status_batch_size (default: the setting's default, 200)")
    parser.add_argument("--order", choices=("waves", "interleaved", "shuffled"), default="waves")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(args, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
