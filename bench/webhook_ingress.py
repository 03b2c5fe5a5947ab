"""Webhook ingress benchmark (run by hand, not a test): signed WhatsApp webhooks per second that
`connectzap serve` verifies and journals durably, with p50/p99 acknowledgement latency.

    .venv/bin/python bench/webhook_ingress.py                 # SQLite, 10 s, 32 connections
    .venv/bin/python bench/webhook_ingress.py --seconds 20 --connections 64
    .venv/bin/python bench/webhook_ingress.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
    .venv/bin/python bench/webhook_ingress.py --workers      # serve as the README starts it (edge + workers)
    .venv/bin/python bench/webhook_ingress.py --modes no-workers,in-process,default --seconds 60 \
        --baseline-seconds 20 --connections 16     # the three side by side, ratios, a 60 s backlog trace

Modes (``--modes``, comma-separated, run one after another on fresh databases):
  no-workers   ``serve --no-workers``: the edge alone (nothing is dispatched)
  in-process   ``serve --in-process``: the edge and a worker in one process (how serve ran before)
  default      ``serve``, as the README starts it: a supervisor, 1 edge process + worker processes
  workers-N    ``serve --workers N``
Every mode with workers also traces, each second, the events accepted (journaled) and dispatched
(done) per second and the journal backlog (pending): the dispatcher keeps up when the backlog does not
grow over the run.

What it does:
1. writes a temporary config (WhatsApp app secret, API key) and starts `connectzap serve --port 0`
   in the mode asked for;
2. starts the load generator as a *second process*: it signs N distinct inbound-message webhooks
   up front, then keeps C keep-alive connections busy on loopback (closed loop: a connection
   sends its next request when the previous answer arrived) for a bounded time and request count,
   recording the time from sending a request to reading its full answer;
3. the moment the generator has finished, sends SIGKILL to the server and its children (no shutdown,
   no flush) and counts the events in the journal: every acknowledged (200) delivery must be there.

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
import threading
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
                   numbers: int, user_ids: bool = False) -> dict:
    bodies = signed_bodies(max_requests, numbers, user_ids=user_ids)
    requests = [(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: " + f"{host}:{port}".encode()
                 + b"\r\nContent-Type: application/json\r\nX-Hub-Signature-256: " + sig.encode()
                 + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body) for body, sig in bodies]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = 0
    # The bodies are signed: the load starts now (the coordinator's backlog trace starts with it).
    print("load starts", file=sys.stderr, flush=True)
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
                                     args.numbers, args.user_ids))
    print(json.dumps(result))


# --- the coordinator ---------------------------------------------------------------------------

MODES = {"no-workers": ["--no-workers"], "in-process": ["--in-process"], "default": []}


def serve_options(mode: str) -> list[str]:
    if mode.startswith("workers-"):
        return ["--workers", mode.removeprefix("workers-")]
    try:
        return MODES[mode]
    except KeyError:
        raise SystemExit(f"unknown mode {mode!r}: one of {', '.join(MODES)}, workers-N") from None


def start_server(folder: Path, database_url: str | None, workers: bool,
                 log_level: str, whatsapp: dict[str, object] | None = None,
                 mode: str | None = None) -> tuple[subprocess.Popen[str], str]:
    """``whatsapp``: more [connectors.whatsapp] settings (e.g. credentials and a Graph stand-in's URL).
    ``mode`` (see :data:`MODES`); without one, ``workers`` picks ``default`` (serve as the README
    starts it) or ``no-workers``. Stop it with :func:`kill_tree` or SIGTERM to the process."""
    database = f'[database]\nurl = "{database_url}"\n' if database_url else ""
    more = "".join(f"{key} = {json.dumps(value)}\n" for key, value in (whatsapp or {}).items())
    config = folder / "bench.toml"
    config.write_text(f'data_dir = "{folder}"\n{database}[api]\nkeys = ["{API_KEY}"]\n[sandbox]\nquiet = true\n'
                      f'[connectors.whatsapp]\napp_secrets = ["{APP_SECRET}"]\nverify_token = "bench"\n{more}')
    mode = mode or ("default" if workers else "no-workers")
    command = [str(Path(sys.executable).with_name("connectzap")), "--config", str(config), "serve", "--port", "0",
               "--log-level", log_level, *serve_options(mode)]
    # The log goes to a file, as an operator's would: a pipe nobody reads would stall the server.
    log = folder / "serve.log"
    with log.open("w") as sink:
        server = subprocess.Popen(command, stderr=sink, stdout=subprocess.DEVNULL, text=True,
                                  env={**os.environ, "CONNECTZAP_LOAD_PLUGINS": ""})
    deadline = time.monotonic() + 120  # the supervisor waits for every child: slower on a busy machine
    while time.monotonic() < deadline and server.poll() is None:
        for line in log.read_text().splitlines():
            if "serving on " in line:
                return server, line.split("serving on ", 1)[1].split()[0]
        time.sleep(0.05)
    raise SystemExit("server did not start:\n" + log.read_text())


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (serve's edge and worker processes; none in one-process modes)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def kill_tree(server: subprocess.Popen[str]) -> None:
    """SIGKILL serve and its children at once: nothing drains, nothing is flushed."""
    for pid in (server.pid, *children(server.pid)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(pid: int) -> dict[str, float]:
    """CPU seconds of serve and of each child, by role (``supervisor``/``edge``/``worker``; ``serve``
    when it is one process)."""
    kids = children(pid)
    out = {"supervisor" if kids else "serve": cpu_seconds(pid)}
    for kid in kids:
        try:
            argv = Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        role = "edge" if b"serve" in argv else "worker"
        out[f"{role}.{kid}"] = cpu_seconds(kid)
    return out


def sqlite_url(folder: Path) -> str:
    from connectzap.core.settings import Settings
    return Settings(data_dir=folder).database_url


def journaled(folder: Path, database_url: str | None) -> int:
    from sqlalchemy import func, select

    from connectzap.core.store.database import Database
    from connectzap.core.store.schema import events
    url = database_url or sqlite_url(folder)
    db = Database(url)
    with db.read() as conn:
        count = conn.execute(select(func.count()).select_from(events).where(events.c.source == "whatsapp")).scalar_one()
    db.dispose()
    return int(count)


class JournalCounts:
    """The WhatsApp events journaled and those finished (done or dead), read on demand."""

    def __init__(self, database_url: str) -> None:
        from sqlalchemy import case, func, select

        from connectzap.core.store.database import Database
        from connectzap.core.store.schema import events
        self.db = Database(database_url)
        finished = func.sum(case((events.c.status.in_(("done", "dead")), 1), else_=0))
        self.query = select(func.count(), finished).select_from(events).where(events.c.source == "whatsapp")

    def counts(self) -> tuple[int, int]:
        with self.db.read() as conn:
            total, done = conn.execute(self.query).one()
        return int(total), int(done or 0)

    def close(self) -> None:
        self.db.dispose()


def fresh_postgres_schema(url: str) -> str:
    from connectzap.testing.apps import _postgres_schema_url
    return _postgres_schema_url(url)


def backlog_sampler(database_url: str, stop: threading.Event, into: list[tuple[float, int, int]]) -> None:
    """Each second: (time, events journaled, events finished) for the WhatsApp source."""
    journal = JournalCounts(database_url)
    try:
        while not stop.is_set():
            total, done = journal.counts()
            into.append((time.monotonic(), total, done))
            stop.wait(1.0)
    finally:
        journal.close()


def trace_summary(samples: list[tuple[float, int, int]]) -> dict:
    """Per-second accepted and dispatched rates and the backlog, and whether the backlog grew."""
    rows = []
    for (t0, total0, done0), (t1, total1, done1) in zip(samples, samples[1:], strict=False):
        span = t1 - t0
        rows.append({"second": round(t1 - samples[0][0], 1), "accepted_per_s": round((total1 - total0) / span),
                     "dispatched_per_s": round((done1 - done0) / span), "backlog": total1 - done1})
    if len(rows) < 4:
        return {"per_second": rows}
    # The backlog's trend over the run's second half (the first seconds fill the pipeline):
    # least-squares slope in events per second; about 0 when the dispatcher keeps up.
    half = rows[len(rows) // 2:]
    xs = [r["second"] for r in half]
    ys = [r["backlog"] for r in half]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    accepted = samples[-1][1] - samples[0][1]
    dispatched = samples[-1][2] - samples[0][2]
    span = samples[-1][0] - samples[0][0]
    return {"accepted_per_s": round(accepted / span, 1), "dispatched_per_s": round(dispatched / span, 1),
            "backlog_end": rows[-1]["backlog"], "backlog_max": max(r["backlog"] for r in rows),
            "backlog_slope_second_half_per_s": round(slope, 1),
            # keeps up: the backlog stays bounded -- it grows by less than 2 % of the accepted rate
            "keeps_up": slope <= 0.02 * accepted / span, "per_second": rows}


def run_mode(args: argparse.Namespace, mode: str, seconds: float) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="cz-bench-"))
    database_url = fresh_postgres_schema(args.database_url) if args.database_url else None
    server, url = start_server(folder, database_url, False, args.log_level, mode=mode)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    traced = mode != "no-workers"
    samples: list[tuple[float, int, int]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=backlog_sampler, daemon=True,
                               args=(database_url or sqlite_url(folder), stop, samples))
    generator = subprocess.Popen([sys.executable, __file__, "--generate", "--host", host, "--port", port,
                                  "--connections", str(args.connections), "--seconds", str(seconds),
                                  "--max-requests", str(args.max_requests), "--numbers", str(args.numbers),
                                  *(["--user-ids"] if args.user_ids else [])],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert generator.stderr is not None
        line = generator.stderr.readline()  # signing the bodies up front takes a while
        cpu_before = cpu_by_process(server.pid)
        if traced:
            sampler.start()
        out, err = generator.communicate()
        if generator.returncode:
            raise SystemExit(f"the load generator failed:\n{line}{err}")
    finally:
        cpu_after = cpu_by_process(server.pid)
        kill_tree(server)  # right after the last 200: no graceful anything
        stop.set()
        if traced:
            sampler.join()
    result = json.loads(out)
    cpu_used = {name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2) for name in cpu_after}
    # CPU the server spent per request: a figure that holds even when other work shares the machine.
    result["server_cpu_us_per_request"] = round(sum(cpu_used.values()) / max(result["requests"], 1) * 1e6, 1)
    result["cpu_seconds_by_process"] = cpu_used
    result["mode"] = mode
    result["serve_options"] = serve_options(mode)
    result["load_average_1m"] = os.getloadavg()[0]
    result["journaled_after_sigkill"] = journaled(folder, database_url)
    result["database"] = "postgresql" if database_url else "sqlite"
    result["log_level"] = args.log_level
    result["distinct_numbers"] = args.numbers
    result["contacts_with_bsuids"] = args.user_ids
    result["every_ack_durable"] = result["journaled_after_sigkill"] == result["acknowledged"]
    if traced:
        result["backlog"] = trace_summary(samples)
    return result


def coordinate(args: argparse.Namespace) -> None:
    modes = args.modes.split(",") if args.modes else ["default" if args.workers else "no-workers"]
    for mode in modes:
        serve_options(mode)  # an unknown mode fails before anything runs
    results = {}
    for mode in modes:
        seconds = args.baseline_seconds if mode != "default" and args.baseline_seconds else args.seconds
        results[mode] = run_mode(args, mode, seconds)
        print(json.dumps({k: v for k, v in results[mode].items() if k != "backlog"}, indent=2), flush=True)
        if "backlog" in results[mode]:
            trace = results[mode]["backlog"]
            for row in trace.get("per_second", []):
                print(f"  {mode} t={row['second']:>5}s accepted/s={row['accepted_per_s']:>6} "
                      f"dispatched/s={row['dispatched_per_s']:>6} backlog={row['backlog']}")
            print(json.dumps({k: v for k, v in trace.items() if k != "per_second"}), flush=True)
    if len(results) > 1:
        print("\nmode            acked/s     p99 ms  CPU us/req  vs no-workers  vs in-process  keeps up")
        for mode, r in results.items():
            def ratio(base: str, r: dict = r) -> str:
                return f"{r['per_second'] / results[base]['per_second']:.2f}x" if base in results else "-"
            keeps = r.get("backlog", {}).get("keeps_up", "-")
            print(f"{mode:<14}{r['per_second']:>9}{r['p99_ms']:>11}{r['server_cpu_us_per_request']:>12}"
                  f"{ratio('no-workers'):>15}{ratio('in-process'):>15}  {keeps}")
    if not all(r["every_ack_durable"] for r in results.values()):
        raise SystemExit("LOST: acknowledged deliveries missing from the journal")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--numbers", type=int, default=5000,
                        help="Distinct customer numbers the webhooks cycle through (default 5000).")
    parser.add_argument("--database-url", help="PostgreSQL base URL (a fresh schema is used); default SQLite")
    parser.add_argument("--user-ids", action="store_true",
                        help="Every contact also carries a BSUID (as in bench/compare_pywa.py).")
    parser.add_argument("--workers", action="store_true",
                        help="Run serve as the README starts it, workers included (--modes default).")
    parser.add_argument("--modes", help="Comma-separated: no-workers, in-process, default, workers-N "
                                        "(default: no-workers, or default with --workers).")
    parser.add_argument("--baseline-seconds", type=float, default=None,
                        help="Run every mode but default this long instead of --seconds.")
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
