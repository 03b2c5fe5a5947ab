"""Send throughput of the WhatsApp path, run by hand (not a test):

    .venv/bin/python bench/send_throughput.py [--messages 10000] [--database-url postgresql+psycopg://...]
    .venv/bin/python bench/send_throughput.py --rest-batch --latency-ms 0 --latency-ms 150 --lanes 4

``--rest-batch`` runs only the whole path admitted through the public interface -- a `serve
--no-workers` process taking POST /v1/messages/batch, 100 messages a request, while the worker
sends -- once per ``--latency-ms`` of the Graph stand-in (how long each answer takes, as a round
trip to Meta does).

1. transport: bare Graph client sends/s, httpx's own transport vs httpx over httpx-aiohttp;
2. whole path for one phone number (gate -> durable outbox -> pacer -> channel -> status
   bookkeeping) with the limiter at 1,000 msg/s, admitting in several ways, and with the limiter
   lifted to show the headroom;
3. pacing accuracy with the limiter at 80 msg/s;
4. status webhooks: how many status events (sent, delivered, read of every message) the
   dispatcher applies per second -- at 1,000 msg/s Meta sends up to three per message.

The fake Graph server runs in its own process (connectzap.testing.fake_graph), as Meta would.
"""

from __future__ import annotations

import argparse
import bisect
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectzap import Category, ConsentChange, Event, EventKind, Outgoing, TemplateContent  # noqa: E402 - after sys.path points at this checkout
from connectzap.core.models import MessageStatus  # noqa: E402 - after sys.path points at this checkout
from connectzap.connectors.whatsapp.client import GraphClient  # noqa: E402 - after sys.path points at this checkout
from connectzap.connectors.whatsapp.settings import WhatsAppSettings  # noqa: E402 - after sys.path points at this checkout
from connectzap.core.store.schema import outbox as outbox_table  # noqa: E402 - after sys.path points at this checkout
from connectzap.core.worker import Worker  # noqa: E402 - after sys.path points at this checkout
from connectzap.testing import make_app, seed_template  # noqa: E402 - after sys.path points at this checkout

NUMBER = "106540352242922"
TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_fake(*options: str) -> tuple[subprocess.Popen[bytes], str]:
    """The Graph stand-in in its own process; ``options`` go to its command line."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "connectzap.testing.fake_graph", "--port", str(port),
                             "--token", TOKEN, *options], stdout=subprocess.PIPE, cwd=ROOT)
    url = json.loads(proc.stdout.readline())["url"]  # type: ignore[union-attr]  # stdout=PIPE above
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, url


# Unset now means "the limit Meta reports, 250 until it does": a run to thousands of stand-in
# recipients would stall there, so the bench names a budget no run reaches.
NO_DAILY_BUDGET = 10**9


def section(url: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"access_token": TOKEN, "phone_number_id": NUMBER, "app_secrets": ["s"],
                            "verify_token": "v", "api_base_url": url, "daily_unique_recipients": NO_DAILY_BUDGET}
    data.update(overrides)
    return data


def write_config(path: Path, data_dir: Path, database_url: str, whatsapp: dict[str, Any],
                 **tables: dict[str, Any]) -> Path:
    """A config file at ``path`` for another process of the bench: the same database and data_dir
    (so the same hash key), ``whatsapp`` as [connectors.whatsapp], and ``tables`` (``workers={...}``)."""
    lines = [f'data_dir = "{data_dir}"', "[database]", f'url = "{database_url}"']
    for name, table in {**tables, "connectors.whatsapp": whatsapp}.items():
        lines += [f"[{name}]", *(f"{k} = {json.dumps(v)}" for k, v in table.items() if v is not None)]
    path.write_text("\n".join(lines) + "\n")
    return path


async def bare_client(url: str, transport: str, total: int, concurrency: int) -> float:
    client = GraphClient(WhatsAppSettings(**section(url, transport=transport)), max_connections=concurrency)
    body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234", "type": "text",
            "text": {"body": "hi"}}
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with semaphore:
            await client.send_message(NUMBER, body)

    await asyncio.gather(*(one() for _ in range(200)))  # warm up connections
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    elapsed = time.perf_counter() - started
    await client.aclose()
    return total / elapsed


def whole_path(url: str, total: int, rate: float | None, database_url: str | None, transport: str,
               batch: int, concurrency: int, prefill: bool = False, chunk: int = 1,
               other_process: bool = False, rest_batch: int = 0, lanes: int = 2) -> dict[str, float]:
    """Admit ``total`` template sends through the gate -- one at a time as single REST calls would, or
    ``chunk`` at a time with ``send_many`` as a campaign would -- while a worker runs its real loop
    (Worker.run) beside them; time until every message is accepted.

    ``rate=None`` lifts the per-number limiter (the pacer still runs, with a 1 microsecond slot) to
    show how much the path could carry: the headroom above Meta's 1,000 msg/s. ``rest_batch`` admits
    through a `serve --no-workers` process instead, ``rest_batch`` messages per POST /v1/messages/batch."""
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp), database_url=database_url,
                       workers={"batch_size": batch, "send_concurrency": concurrency, "poll_interval_seconds": 0.01,
                                "sender_lanes": lanes},
                       connectors={"whatsapp": section(url, messages_per_second=rate or 1000.0, transport=transport)})
        if rate is None:
            app.channel.pacer.interval = 1e-6  # type: ignore[attr-defined]  # the WhatsApp channel paces; Channel does not say
        seed_template(app, "order_confirmation", "Order {{1}} confirmed")
        phones = [f"+1650555{n:04d}" for n in range(total)]
        for phone in phones:
            app.set_consent(ConsentChange(phone=phone, category=Category.UTILITY, granted=True, source="bench",
                                          proof="bench"))
        sent_at: list[float] = []
        channel_send = app.channel.send

        async def timed_send(message: Any) -> str:
            sent_at.append(time.perf_counter())
            return await channel_send(message)

        def accepted_count() -> int:
            with app.db.read() as conn:
                return int(conn.execute(select(func.count()).select_from(outbox_table)
                                        .where(outbox_table.c.status == "accepted")).scalar_one())

        def start_admitter() -> subprocess.Popen[str]:
            """Admission as `serve --no-workers` would do it: another process, the same database. It
            starts up (imports, engine) first and admits when told to, so start-up is not timed."""
            config = write_config(Path(tmp) / "admit.toml", Path(tmp), app.settings.database_url, section(url))
            code = (
                "import json, sys\n"
                "from connectzap import Connectzap, Outgoing, TemplateContent, load_settings\n"
                f"app = Connectzap(load_settings({str(config)!r})).start(migrate=False)\n"
                "phones = json.loads(sys.stdin.readline())\n"
                "msgs = [Outgoing(to=p, content=TemplateContent(name='order_confirmation', language='en',"
                " body=[str(n)])) for n, p in enumerate(phones)]\n"
                "print('ready', flush=True)\n"
                "sys.stdin.readline()\n"
                f"for at in range(0, len(msgs), {max(chunk, 1)}):\n"
                f"    app.send_many(msgs[at:at + {max(chunk, 1)}])\n"
            )
            proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True)
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(phones) + "\n")
            proc.stdin.flush()
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("the admitting process did not start")
            return proc

        def admit_in_other_process(proc: subprocess.Popen[str]) -> float:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            if proc.wait() != 0:
                raise RuntimeError("the admitting process failed")
            return time.perf_counter()

        admitter = start_admitter() if other_process else None
        server = start_rest_admitter(Path(tmp), app.settings.database_url) if rest_batch else None

        def admit_all() -> float:
            if admitter is not None:
                return admit_in_other_process(admitter)
            if server is not None:
                return admit_over_rest(server[1], phones, rest_batch)
            messages = [Outgoing(to=phone, content=TemplateContent(name="order_confirmation", language="en",
                                                                   body=[str(n)])) for n, phone in enumerate(phones)]
            if chunk <= 1:
                for m in messages:
                    app.send(m)
            else:
                for at in range(0, total, chunk):
                    app.send_many(messages[at:at + chunk])
            return time.perf_counter()

        async def run() -> tuple[float, float, float]:
            await Worker(app).run_until_idle(max_rounds=100_000)  # the consent events of the set-up, untimed
            app.channel.send = timed_send  # type: ignore[method-assign]  # timed wrapper, benchmark only
            stop = asyncio.Event()
            if prefill:  # the outbox is full before the worker starts: sender, pacer and bookkeeping only
                admit_all()
            worker = asyncio.create_task(Worker(app).run(stop))
            started = time.perf_counter()
            admitted = started if prefill else await asyncio.to_thread(admit_all)
            while await asyncio.to_thread(accepted_count) < total:  # a COUNT: listing rows would steal CPU
                await asyncio.sleep(0.02)
            finished = time.perf_counter()
            stop.set()
            await worker
            await app.aclose()
            return started, admitted, finished

        try:
            started, admitted, finished = asyncio.run(run())
        finally:
            if server is not None:
                server[0].terminate()
                server[0].wait(30)
        accepted = len(app.messages(status="accepted", limit=total + 10))
        app.close()
    window = sent_at[-1] - sent_at[0] if len(sent_at) > 1 else 0.0
    per_second = max((bisect.bisect_left(sent_at, t + 1.0) - n for n, t in enumerate(sent_at)), default=0)
    return {"accepted": accepted, "gate_per_s": total / (admitted - started) if not prefill else 0.0,
            "whole_path_per_s": total / (finished - started),
            "send_rate": (len(sent_at) - 1) / window if window else 0.0, "max_in_any_1s": per_second}


def start_rest_admitter(folder: Path, database_url: str) -> tuple[subprocess.Popen[str], str]:
    """`serve --no-workers` on the bench's database (the same data_dir, so the same hash secret)."""
    from webhook_ingress import start_server
    return start_server(folder, database_url, workers=False, log_level="warning")


def admit_over_rest(url: str, phones: list[str], per_request: int) -> float:
    """POST every message to /v1/messages/batch, ``per_request`` a request, over 2 connections."""
    from rest_send import load, request
    host, port_text = url.removeprefix("http://").rsplit(":", 1)
    items = [{"to": phone, "content": {"type": "template", "name": "order_confirmation", "language": "en",
                                       "body": [str(n)]}} for n, phone in enumerate(phones)]
    requests = [(request(host, int(port_text), "/v1/messages/batch",
                         json.dumps({"messages": items[at:at + per_request]}).encode()), per_request)
                for at in range(0, len(items), per_request)]
    result = asyncio.run(load(host, int(port_text), requests, 2, batched=True))
    if result["queued"] != len(phones):
        raise RuntimeError(f"only {result['queued']} of {len(phones)} admitted: {result['statuses']}")
    return time.perf_counter()


def status_bookkeeping(total: int, database_url: str | None) -> float:
    """Journal sent/delivered/read for ``total`` accepted messages (as the webhook edge would) and
    time the dispatcher applying them all."""
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp), database_url=database_url,
                       workers={"batch_size": 200, "poll_interval_seconds": 0.01})
        seed_template(app, "order_confirmation", "Order {{1}} confirmed")
        phones = [f"+1650555{n:04d}" for n in range(total)]
        for phone in phones:
            app.set_consent(ConsentChange(phone=phone, category=Category.UTILITY, granted=True, source="bench",
                                          proof="bench"))
        app.send_many([Outgoing(to=phone, content=TemplateContent(name="order_confirmation", language="en",
                                                                  body=[str(n)])) for n, phone in enumerate(phones)])
        asyncio.run(Worker(app).run_until_idle(max_rounds=100_000))  # sent through the sandbox
        with app.db.read() as conn:
            sent = conn.execute(select(outbox_table.c.id, outbox_table.c.wamid)).all()
        statuses = [Event.of(EventKind.MESSAGE_STATUS,
                             MessageStatus(wamid=wamid, status=status, timestamp=datetime.now(UTC), outbox_id=id_),
                             source="whatsapp", dedupe_key=f"{wamid}:{status}")
                    for status in ("sent", "delivered", "read") for id_, wamid in sent]
        for at in range(0, len(statuses), 500):
            app.ingest(statuses[at:at + 500])
        started = time.perf_counter()
        asyncio.run(Worker(app).run_until_idle(max_rounds=100_000))
        elapsed = time.perf_counter() - started
        read = len(app.messages(status="read", limit=total + 10))
        app.close()
    if read != total:
        raise RuntimeError(f"only {read} of {total} messages reached 'read'")
    return len(statuses) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--database-url")
    parser.add_argument("--transport", default=None, help="only this transport for the whole-path runs")
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--skip-transport", action="store_true")
    parser.add_argument("--run", type=int, action="append", metavar="N",
                        help="only whole-path run N (0-5, repeatable); skips pacing and status runs")
    parser.add_argument("--lanes", type=int, default=2, help="workers.sender_lanes (default 2)")
    parser.add_argument("--rest-batch", action="store_true",
                        help="only the whole path admitted by POST /v1/messages/batch, limiter 1,000/s")
    parser.add_argument("--latency-ms", type=float, action="append",
                        help="the Graph stand-in's answer latency (default 0); repeat it with --rest-batch "
                             "for a run at each")
    args = parser.parse_args()
    if args.rest_batch:
        for latency in args.latency_ms or [0.0]:
            proc, url = start_fake("--latency-ms", str(latency))
            try:
                result = whole_path(url, args.messages, 1000.0, args.database_url, args.transport or "aiohttp",
                                    args.batch, args.concurrency, rest_batch=100, lanes=args.lanes)
            finally:
                proc.terminate()
                proc.wait(5)
            print(f"whole path, admitted by POST /v1/messages/batch (100 a request), limiter 1000/s, "
                  f"Graph latency {latency:.0f} ms, batch {args.batch}, concurrency {args.concurrency}, "
                  f"lanes {args.lanes}: " + json.dumps({k: round(v, 1) for k, v in result.items()}), flush=True)
        return
    # Without --rest-batch, the stand-in answers after the first --latency-ms (0 unless given).
    proc, url = start_fake("--latency-ms", str((args.latency_ms or [0.0])[0]))
    try:
        if not args.skip_transport:
            for transport in ("httpx", "aiohttp"):
                for concurrency in (16, 64, 256):
                    rate = asyncio.run(bare_client(url, transport, 5000, concurrency))
                    print(f"transport {transport:8} concurrency {concurrency:4}: {rate:7.0f} sends/s", flush=True)
        runs = [  # label, limiter, how the messages are admitted
            ("admitted one at a time (single REST calls)", 1000.0, {}),
            ("admitted 100 at a time (send_many, a campaign)", 1000.0, {"chunk": 100}),
            ("admitted 100 at a time by another process (serve --no-workers + worker)", 1000.0,
             {"chunk": 100, "other_process": True}),
            ("sender only (outbox pre-filled)", 1000.0, {"prefill": True}),
            ("headroom: admitted 100 at a time, limiter lifted", None, {"chunk": 100}),
            ("headroom: admitted 100 at a time by another process, limiter lifted", None,
             {"chunk": 100, "other_process": True}),
        ]
        for transport in ([args.transport] if args.transport else ["aiohttp", "httpx"]):
            for n, (label, rate, how) in enumerate(runs):
                if args.run and n not in args.run:
                    continue
                result = whole_path(url, args.messages, rate, args.database_url, transport, args.batch,
                                    args.concurrency, lanes=args.lanes, **how)
                limiter = f"limiter {rate:.0f}/s" if rate else "no limiter"
                print(f"whole path, {label}, {limiter}, {transport}: "
                      + json.dumps({k: round(v, 1) for k, v in result.items()}), flush=True)
        if args.run:
            return
        paced = whole_path(url, 1600, 80.0, args.database_url, args.transport or "aiohttp", args.batch,
                           args.concurrency)
        error = (paced["send_rate"] - 80.0) / 80.0 * 100
        print(f"pacing at 80/s: measured {paced['send_rate']:.2f}/s ({error:+.2f} %), "
              f"max {paced['max_in_any_1s']} in any 1 s window", flush=True)
        rate = status_bookkeeping(3000, args.database_url)
        print(f"status events (sent, delivered, read of 3,000 messages) applied: {rate:.0f}/s", flush=True)
    finally:
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    main()
