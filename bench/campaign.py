"""A campaign's audience and admission at scale, run by hand (not a test):

    .venv/bin/python bench/campaign.py [--recipients 1000000] [--database-url postgresql+psycopg://...]
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=bsearch \\
        .venv/bin/python bench/campaign.py --recipients 2000 --callgrind
    .venv/bin/python bench/campaign.py --database-time [...]

Writes a CSV of N distinct German mobile numbers with two template parameters, grants each a
marketing opt-in (straight into the ledger: setup, not measured), then measures what a user's
campaign does: the audience streamed into the campaign (``load_audience``), and the engine's
rounds admitting every recipient into the outbox through the send gate (between rounds, untimed,
the bench takes the round's messages as sent, since no sender drains the outbox here). Prints each
phase's wall time and rate, the CPU per recipient, and the process's peak RSS. The default database
is a fresh SQLite file. ``--database-time`` adds how long the admission rounds waited on the
database: the floor under admission that no Python work can lower.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any
from pathlib import Path

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectzap.core import heap
from connectzap.core.app import Connectzap
from connectzap.core.campaigns import Action, engine, read_file
from connectzap.core.phones import contact_key
from connectzap.core.store import pipeline
from connectzap.core.store.schema import campaign_recipients as recipients
from connectzap.core.store.schema import consents
from connectzap.testing import make_app, seed_template
from connectzap.testing.apps import drop_postgres_schema


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


APP_NAME = f"connectzap-bench-{os.getpid()}"


def server_cpu(app: object, pids: list[int] | None = None) -> dict[int, float]:
    """CPU seconds of this run's PostgreSQL backends (found by application name, unless ``pids``
    names them), read from /proc where the server runs on this machine; empty on SQLite or when
    they cannot be read."""
    db = app.db  # type: ignore[attr-defined]
    if db.is_sqlite:
        return {}
    if pids is None:
        with db.read() as conn:
            pids = [r[0] for r in conn.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APP_NAME,))]
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return seconds


def server_cpu_since(app: object, before: dict[int, float]) -> str:
    after = server_cpu(app)
    if not after:
        return ""
    spent = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
    return f", PostgreSQL backends' CPU {spent:.1f} s"


def phone(i: int) -> str:
    """The bench's ``i``-th recipient: a distinct German mobile number."""
    return f"+49151{10_000_000 + i}"


def marketing_audience(app: Connectzap, folder: Path, n: int) -> Path:
    """The bench's campaign set-up, not measured: the marketing template ``december_news`` (two body
    parameters), a CSV of ``n`` recipients in ``folder`` (returned), and each one's marketing opt-in
    written straight into the consent ledger."""
    seed_template(app, "december_news", "Hi {{1}}, {{2}} off until Sunday", category="MARKETING")
    audience = folder / "audience.csv"
    with audience.open("w") as fh:
        fh.write("phone,1,2\n")
        for i in range(n):
            fh.write(f"{phone(i)},Reader {i},20%\n")
    t = time.time()
    for at in range(0, n, 10_000):
        with app.db.begin() as conn:
            conn.execute(consents.insert(), [
                dict(contact_key=contact_key(phone(i), app.secret), category="marketing", granted=True, source="bench",
                     proof="bench opt-in", at=t, recorded_at=t)
                for i in range(at, min(at + 10_000, n))])
    return audience


class DatabaseTime:
    """Wall time spent in the database's statements and commits while ``on`` (the admission rounds):
    on SQLite the library's own work, on this process's thread; on PostgreSQL the round trips and
    the server's work this process waited for. A statement counts from its execution to its first
    row (a query's remaining rows are fetched afterwards, not counted), an ``executemany`` with its
    parameters' binding. Writes sent ahead in PostgreSQL's pipeline mode (:mod:`connectzap.core.store.pipeline`)
    count as sent, and what this process then waited for them and for queries' answers asked ahead
    counts apart (``pipelined``), taken out of the statement during which it waited."""

    def __init__(self, app: Connectzap) -> None:
        self.on = False
        self.statements = self.commits = self.pipelined = 0.0
        self.by_kind: dict[str, float] = {}
        engine_ = app.db.engine
        event.listen(engine_, "before_cursor_execute", self._before)
        event.listen(engine_, "after_cursor_execute", self._after)
        dialect, commit = engine_.dialect, engine_.dialect.do_commit

        def timed_commit(dbapi_conn: Any) -> None:
            started = time.perf_counter()
            commit(dbapi_conn)
            if self.on:
                self.commits += time.perf_counter() - started

        dialect.do_commit = timed_commit  # type: ignore[method-assign,assignment]
        settle, rows = pipeline.Writes.settle, pipeline.Asked.rows

        def timed_settle(writes: pipeline.Writes) -> None:
            started = time.perf_counter()
            settle(writes)
            if self.on:
                self.pipelined += time.perf_counter() - started

        def timed_rows(asked: pipeline.Asked) -> list[tuple[Any, ...]]:
            started = time.perf_counter()
            answer = rows(asked)
            if self.on:
                self.pipelined += time.perf_counter() - started
            return answer

        pipeline.Writes.settle = timed_settle  # type: ignore[method-assign]
        pipeline.Asked.rows = timed_rows  # type: ignore[method-assign]

    def _before(self, conn: object, *_: object) -> None:
        conn.info["bench_started"] = time.perf_counter(), self.pipelined  # type: ignore[attr-defined]

    def _after(self, conn: object, _cursor: object, statement: str, *_: object) -> None:
        if self.on:
            started, pipelined = conn.info["bench_started"]  # type: ignore[attr-defined]
            spent = time.perf_counter() - started - (self.pipelined - pipelined)
            self.statements += spent
            kind = statement_kind(statement)
            self.by_kind[kind] = self.by_kind.get(kind, 0.0) + spent

    def top(self, n: int, recipients: int) -> str:
        """The ``n`` kinds of statement that took longest, in µs a recipient."""
        ranked = sorted(self.by_kind.items(), key=lambda kv: -kv[1])[:n]
        return ", ".join(f"{kind} {1e6 * spent / recipients:.0f}" for kind, spent in ranked)


def statement_kind(statement: str) -> str:
    """A statement named by what it does and to which table: ``insert outbox``, ``select consents``."""
    words = statement.split()
    verb = words[0].lower() if words else "?"
    marker = {"insert": "INTO", "update": None, "delete": "FROM", "select": "FROM"}.get(verb, "")
    if marker is None:
        table = words[1] if len(words) > 1 else "?"
    else:
        table = next((words[i + 1] for i, w in enumerate(words[:-1]) if w.upper() == marker), "?")
    return f"{verb} {table.strip('()')}"


def counted(run: Callable[[], int]) -> int:
    """``run()`` called from inside libc's ``bsearch`` (as its comparison), so that
    ``valgrind --tool=callgrind --collect-atstart=no --toggle-collect=bsearch`` counts the
    instructions of exactly these calls (nothing else here calls bsearch)."""
    result = [0]
    compare_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)

    def compare(_key: object, _item: object) -> int:
        result[0] = run()
        return 0

    key = ctypes.c_int(0)
    libc = ctypes.CDLL(None)
    libc.bsearch.restype = ctypes.c_void_p
    libc.bsearch(ctypes.byref(key), ctypes.byref(key), ctypes.c_size_t(1), ctypes.c_size_t(ctypes.sizeof(key)),
                 compare_type(compare))
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--database-url")
    parser.add_argument("--callgrind", action="store_true",
                        help="Under valgrind --tool=callgrind --collect-atstart=no --toggle-collect=bsearch: count "
                             "the instructions of the admission rounds only (repeatable where CPU time on a "
                             "shared machine is not).")
    parser.add_argument("--database-time", action="store_true",
                        help="Also print how long the admission rounds waited on the database's statements "
                             "and commits.")
    args = parser.parse_args()
    n = args.recipients
    os.environ["PGAPPNAME"] = APP_NAME  # libpq names this run's connections: their server CPU is counted
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        app = make_app(root, database_url=args.database_url or f"sqlite:///{root / 'bench.db'}",
                       privacy={"hash_secret": "bench-secret-0123456789abcdef"}, sandbox={"quiet": True})
        audience = marketing_audience(app, root, n)
        heap.settle()  # as `serve` and `worker` do once started: this process stands in for a worker
        print(f"{n} recipients on {app.db.dialect}, load average {os.getloadavg()[0]:.1f}; "
              f"setup done, peak RSS {peak_mb():.0f} MB")

        made = app.campaigns.create("bench", {"name": "december_news", "language": "en"})
        started, cpu, at_start = time.perf_counter(), time.process_time(), server_cpu(app)
        with audience.open(encoding="utf-8") as fh:
            loaded = app.campaigns.load_audience(made.id, read_file(fh, "csv", app.secret))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"audience   {elapsed:7.1f} s  {loaded.added / elapsed:8.0f} recipients/s  "
              f"(this process's CPU {cpu:.1f} s: {loaded.added / cpu:.0f}/s{server_cpu_since(app, at_start)})  "
              f"peak RSS {peak_mb():.0f} MB")

        engine.BATCH = engine.IN_FLIGHT = 2000
        app.campaigns.control(made.id, Action.START)
        # Nothing sends here: between rounds (not timed) the bench takes the round's messages as
        # sent, as a sender would, so each round's in-flight count covers one round, not the whole
        # list admitted so far (which made PostgreSQL's figure grow with the campaign).
        elapsed = cpu = 0.0
        backends: dict[int, float] = {}
        pids: list[int] | None = None
        waited = DatabaseTime(app) if args.database_time else None
        while True:
            started, spent = time.perf_counter(), time.process_time()
            before = server_cpu(app, pids)
            if waited:
                waited.on = True
            done = counted(app.campaigns.run_once) if args.callgrind else app.campaigns.run_once()
            if waited:
                waited.on = False
            elapsed += time.perf_counter() - started
            cpu += time.process_time() - spent
            after = server_cpu(app, pids)
            pids = list(after) if after else pids
            for pid, seconds in after.items():
                backends[pid] = backends.get(pid, 0.0) + seconds - before.get(pid, seconds)
            if not done:
                break
            with app.db.begin() as conn:
                conn.execute(recipients.update().where(recipients.c.campaign_id == made.id,
                                                       recipients.c.outcome == "queued").values(outcome="sent"))
        view = app.campaigns.get(made.id)
        server = f", PostgreSQL backends' CPU {sum(backends.values()):.1f} s" if backends else ""
        print(f"admission  {elapsed:7.1f} s  {n / elapsed:8.0f} recipients/s  (this process's CPU {cpu:.1f} s: "
              f"{n / cpu:.0f}/s{server}; {1e6 * (cpu + sum(backends.values())) / n:.0f} µs a recipient)  "
              f"peak RSS {peak_mb():.0f} MB  outcomes {view.outcomes}  load average {os.getloadavg()[0]:.1f}")
        if waited:
            total = waited.statements + waited.pipelined + waited.commits
            print(f"database   {total:7.1f} s of the admission's {elapsed:.1f} s waited on the database: "
                  f"statements {waited.statements:.1f} s, sent ahead {waited.pipelined:.1f} s, "
                  f"commits {waited.commits:.1f} s; {1e6 * total / n:.0f} µs a recipient")
            print(f"           by statement, µs a recipient: {waited.top(6, n)}")
        app.close()
        drop_postgres_schema(app.settings.database_url)


if __name__ == "__main__":
    main()
