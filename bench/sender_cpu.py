"""CPU per message of the sender alone, run by hand (not a test):

    .venv/bin/python bench/sender_cpu.py [--messages 2000] [--database-url postgresql+psycopg://...]
    .venv/bin/python bench/sender_cpu.py --profile /tmp/sender.prof     # yappi, every thread (pip install yappi)

The outbox is filled first (consented template sends, the consent events dispatched), then the
worker's sender runs ``send_once`` until nothing is left -- claim and gate re-check, the pacer's
transaction, the hand-off mark, the Graph request and the record -- against the Graph stand-in in
its own process, on the event loop the worker runs on (uvloop when installed). The limiter is
lifted (the pacer still runs, with a 1 microsecond slot), so no message waits for its slot.

It prints this process's CPU time per message (every thread): on a shared machine, the figure
that carries over; the rate is printed too. One setting differs from a deployment: the HTTP
pool keeps idle connections 10 minutes instead of httpx's 5 s, so a run slowed down by a loaded
machine or a profiler does not reopen a connection per request (a sender at full speed reuses
them well within 5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402 - after sys.path points at this checkout

from connectzap import Category, ConsentChange, Outgoing, TemplateContent  # noqa: E402 - after sys.path points at this checkout
from connectzap.connectors.whatsapp import client as graph_client  # noqa: E402 - after sys.path points at this checkout
from connectzap.core.event_loop import loop_factory  # noqa: E402 - after sys.path points at this checkout
from connectzap.core.worker import Worker  # noqa: E402 - after sys.path points at this checkout
from connectzap.testing import make_app, seed_template  # noqa: E402 - after sys.path points at this checkout
from send_throughput import section, start_fake  # noqa: E402 - bench/ is on sys.path


def long_keepalive() -> None:
    """Idle connections kept 10 minutes (see the module docstring)."""
    made = graph_client._transport

    def transport(name: str, connections: int) -> Any:
        chosen = made(name, connections)
        chosen.limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections,
                                     keepalive_expiry=600)
        return chosen

    graph_client._transport = transport


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--database-url")
    parser.add_argument("--profile", help="write a yappi profile (CPU clock, every thread) in pstats format here")
    args = parser.parse_args()
    long_keepalive()
    proc, url = start_fake("--latency-ms", "0")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            app = make_app(Path(tmp), database_url=args.database_url,
                           workers={"batch_size": 200, "send_concurrency": 200, "poll_interval_seconds": 0.01},
                           connectors={"whatsapp": section(url, messages_per_second=1000.0, transport="aiohttp")})
            app.channel.pacer.interval = 1e-6  # type: ignore[attr-defined]  # the WhatsApp channel paces
            seed_template(app, "order_confirmation", "Order {{1}} confirmed")
            phones = [f"+1650555{n:04d}" for n in range(args.messages)]
            for phone in phones:
                app.set_consent(ConsentChange(phone=phone, category=Category.UTILITY, granted=True, source="bench",
                                              proof="bench"))
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                runner.run(Worker(app).run_until_idle(max_rounds=100_000))  # the consent events, untimed
                messages = [Outgoing(to=phone, content=TemplateContent(name="order_confirmation", language="en",
                                                                       body=[str(n)]))
                            for n, phone in enumerate(phones)]
                for at in range(0, len(messages), 100):
                    app.send_many(messages[at:at + 100])

                async def send_all() -> tuple[int, float, float]:
                    worker, sent = Worker(app), 0
                    if args.profile:
                        import yappi
                        yappi.set_clock_type("cpu")
                        yappi.start(builtins=False)
                    cpu, wall = time.process_time(), time.perf_counter()
                    while done := await worker.send_once():
                        sent += done
                    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                    if args.profile:
                        yappi.stop()
                        yappi.get_func_stats().save(args.profile, type="pstat")
                    await app.aclose()
                    return sent, cpu, wall

                sent, cpu, wall = runner.run(send_all())
            accepted = len(app.messages(status="accepted", limit=args.messages + 10))
            app.close()
        if accepted != args.messages:
            raise RuntimeError(f"only {accepted} of {args.messages} messages accepted")
        print(f"{sent} messages sent, {accepted} accepted: sender CPU {cpu / sent * 1e6:.0f} us per message, "
              f"{sent / wall:.0f} msg/s, load average {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        proc.terminate()
        proc.wait(5)


if __name__ == "__main__":
    main()
