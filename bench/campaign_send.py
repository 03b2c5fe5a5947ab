"""A campaign sending at its configured rate until the messaging limit, run by hand (not a test):

    .venv/bin/python bench/campaign_send.py [--recipients 3000] [--limit 2000] [--rate-per-minute 3000]
        [--messages-per-second 80] [--database-url postgresql+psycopg://...]

Sets up a marketing campaign of N recipients with marketing consent (bench/campaign.py's set-up),
the campaign's rate R a minute, and the real WhatsApp connector pointed at the Graph stand-in
(bench/send_throughput.py's, in its own process) with ``daily_unique_recipients = L`` (the
messaging limit: unique business-initiated recipients per rolling 24 hours) and
``messages_per_second`` (Meta's throughput per number). It starts the campaign and runs a
``connectzap worker`` process on the same database, as users run it, and once a second samples
how many messages the stand-in has received and how many of the campaign's messages the outbox
counts as sent. It prints the campaign's rate against the achieved rate (the median of the
per-second counts while sending, and overall), where sending stopped, the campaign's status text
and outcomes, and checks that nobody got the message twice and nobody beyond the limit got it.
Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from campaign import marketing_audience, phone
from send_throughput import ROOT, section, start_fake, write_config

from connectzap.core.app import Connectzap
from connectzap.core.campaigns import Action, read_file
from connectzap.core.campaigns.engine import cancel_key
from connectzap.core.campaigns.service import CampaignView
from connectzap.core.store.schema import outbox
from connectzap.testing import make_app
from connectzap.testing.apps import drop_postgres_schema

HANDED_OVER = ("accepted", "sent", "delivered", "read")
"""Outbox statuses of a message the Graph API took."""


def load() -> str:
    """The load averages as ``uptime`` prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def outbox_counts(app: Connectzap, campaign_id: str) -> dict[str, int]:
    with app.db.read() as conn:
        return {str(s): int(n) for s, n in conn.execute(
            select(outbox.c.status, func.count()).where(outbox.c.cancel_key == cancel_key(campaign_id))
            .group_by(outbox.c.status))}


class Received:
    """What the stand-in received: its ``--sends-log``, read as it grows (time and recipient a line)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0
        self.times: list[float] = []
        self.recipients: list[str] = []

    def read(self) -> int:
        if self.path.exists():
            with self.path.open() as fh:
                fh.seek(self.offset)
                chunk = fh.read()
            whole = chunk[:chunk.rfind("\n") + 1]  # a line being written is read next time
            self.offset += len(whole)
            for line in whole.splitlines():
                at, to = line.split("\t")
                self.times.append(float(at))
                self.recipients.append(to)
        return len(self.times)


def max_in_any(times: list[float], seconds: float) -> int:
    """The most sends in any window of ``seconds``."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= seconds:
            first += 1
        best = max(best, last - first + 1)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=3000, help="N, the audience (default 3,000)")
    parser.add_argument("--limit", type=int, default=2000,
                        help="L, daily_unique_recipients: the messaging limit (default 2,000)")
    parser.add_argument("--rate-per-minute", type=float, default=3000.0,
                        help="R, the campaign's rate (default 3,000 a minute = 50/s)")
    parser.add_argument("--messages-per-second", type=float, default=80.0,
                        help="Meta's throughput per number, the connector's messages_per_second (default 80)")
    parser.add_argument("--database-url")
    parser.add_argument("--timeout", type=float, default=None,
                        help="give up after this many seconds of sending (default: 3 x the expected time + 60)")
    parser.add_argument("--hold", type=float, default=5.0,
                        help="seconds to keep watching once the campaign says it waits (default 5)")
    args = parser.parse_args()
    n, limit, rate = args.recipients, args.limit, args.rate_per_minute
    expected = min(n, limit)
    timeout = args.timeout or 3 * expected / min(rate / 60, args.messages_per_second) + 60
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        received = Received(root / "sends.log")
        fake, url = start_fake("--sends-log", str(received.path))
        worker: subprocess.Popen[bytes] | None = None
        whatsapp = section(url, messages_per_second=args.messages_per_second, daily_unique_recipients=limit)
        app = make_app(root, database_url=args.database_url or f"sqlite:///{root / 'bench.db'}",
                       connectors={"whatsapp": whatsapp})
        try:
            config = write_config(root / "worker.toml", root, app.settings.database_url, whatsapp)
            audience = marketing_audience(app, root, n)
            made = app.campaigns.create("bench", {"name": "december_news", "language": "en"}, rate_per_minute=rate)
            with audience.open(encoding="utf-8") as fh:
                loaded = app.campaigns.load_audience(made.id, read_file(fh, "csv", app.secret))
            app.campaigns.control(made.id, Action.START)
            print(f"{loaded.added} recipients on {app.db.dialect}; campaign rate {rate:g}/min ({rate / 60:g}/s), "
                  f"messaging limit {limit}, messages_per_second {args.messages_per_second:g}; "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, load average {load()}", flush=True)
            with (root / "worker.log").open("w") as log:  # `connectzap worker` of this checkout
                worker = subprocess.Popen([sys.executable, "-m", "connectzap", "--config", str(config), "worker",
                                           "--log-level", "warning"], cwd=ROOT, stdout=log, stderr=log,
                                          env={**os.environ, "CONNECTZAP_LOAD_PLUGINS": ""})
            samples = watch(app, made.id, received, worker, root / "worker.log", limit, timeout, args.hold)
            counts, view = outbox_counts(app, made.id), app.campaigns.get(made.id)
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(30)
            fake.terminate()
            fake.wait(5)
        received.read()
        app.close()
        drop_postgres_schema(app.settings.database_url)
    passed = report(samples, received, counts, view, n, limit, rate)
    print(f"done {time.strftime('%H:%M:%S', time.gmtime())} UTC, load average {load()}")
    if not passed:
        sys.exit(1)


def watch(app: Connectzap, campaign_id: str, received: Received, worker: subprocess.Popen[bytes], log: Path,
          limit: int, timeout: float, hold: float) -> list[tuple[float, int]]:
    """Sample once a second until the campaign has finished, or says it waits for the channel's
    limits with ``limit`` messages received, for ``hold`` seconds (or ``timeout`` passed). Returns
    (time, messages the stand-in received) of each sample."""
    samples: list[tuple[float, int]] = []
    started, waits_since = time.time(), None
    while time.time() - started < timeout:
        time.sleep(1.0)
        at, got, counts = time.time(), received.read(), outbox_counts(app, campaign_id)
        view = app.campaigns.get(campaign_id)
        samples.append((at, got))
        print(f"{at - started:5.0f} s  stand-in received {got:6d}  outbox sent "
              f"{sum(counts.get(s, 0) for s in HANDED_OVER):6d}  queued {counts.get('queued', 0):5d}  "
              f"campaign {view.state}", flush=True)
        if worker.poll() is not None:
            raise SystemExit("the worker stopped:\n" + log.read_text())
        waits = view.state == "finished" or (got >= limit and "continues" in (view.waiting or ""))
        waits_since = (waits_since or at) if waits else None
        if waits_since and at - waits_since >= hold:
            break
    return samples


def report(samples: list[tuple[float, int]], received: Received, counts: dict[str, int], view: CampaignView,
           n: int, limit: int, rate: float) -> bool:
    """Print the rates, the status and the checks; True when every check passed."""
    times = sorted(received.times)
    # The samples' per-second counts while sending: between the first sample that saw a send and the
    # last that saw one arrive, so the partial seconds at either end are left out.
    moved = [n for n, (a, b) in enumerate(zip(samples, samples[1:], strict=False)) if b[1] > a[1]]
    sending = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(samples, samples[1:], strict=False)][
        moved[0] + 1:moved[-1]] if moved else []
    overall = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    print(f"campaign rate {rate:g}/min = {rate / 60:.2f}/s; achieved: median {statistics.median(sending or [0]):.2f}/s "
          f"over {len(sending)} one-second samples while sending, {overall:.2f}/s overall "
          f"({len(times)} messages in {times[-1] - times[0] if times else 0:.1f} s), "
          f"at most {max_in_any(times, 1.0)} in any 1 s window and {max_in_any(times, 10.0)} in any 10 s")
    seconds = [0] * (int(times[-1] - times[0]) + 1 if times else 0)
    for at in times:
        seconds[int(at - times[0])] += 1
    print(f"received in each second from the first send: {seconds}")
    print(f"campaign {view.state}; outcomes {view.outcomes}; waiting: {view.waiting}")
    print(f"outbox: {counts}")
    sent = sum(counts.get(s, 0) for s in HANDED_OVER)
    audience = {phone(i).lstrip("+") for i in range(n)}
    checks = [
        (f"no recipient sent twice: {len(set(received.recipients))} distinct of {len(received.recipients)} received",
         len(set(received.recipients)) == len(received.recipients)),
        (f"sending stopped at exactly min(N, L) = {min(n, limit)} recipients: {len(received.recipients)} received",
         len(received.recipients) == min(n, limit)),
        (f"none beyond the limit L = {limit}", len(set(received.recipients)) <= limit),
        ("every recipient is in the audience", set(received.recipients) <= audience),
        (f"the outbox counts as sent what the stand-in received: {sent}", sent == len(received.recipients)),
        (f"the campaign's outcomes agree: {view.outcomes.get('sent', 0)} sent",
         view.outcomes.get("sent", 0) == len(received.recipients)),
    ]
    if n > limit:
        checks.append(("the campaign says it continues in the next window",
                       view.state == "running" and "continues" in (view.waiting or "")))
    for text, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {text}")
    return all(ok for _, ok in checks)


if __name__ == "__main__":
    main()
