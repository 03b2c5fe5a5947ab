"""SIGKILL a real ``connectzap worker`` while it runs a campaign, restart it: every recipient ends
with exactly one outcome and no Graph request is made twice. SIGKILL ``connectzap campaigns
audience`` and ``campaigns create`` halfway through their audience file: the audience stays as it
was, no campaign appears, and what the load wrote aside is erased later.

The worker runs as users run it (``python -m connectzap --config FILE worker``); the sandbox
channel appends each request body to a JSON-lines log (slowly: 50 ms each, so kills land between
a request and its recording). The campaign's admissions (engine) and sends (sender) both run in
the killed process.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from serve_support import config_file, database_url, logged_ids, process_env, start_worker, wait_for
from sqlalchemy import select
from test_campaign_create_atomic import rows, staged

from connectzap import Category, ConsentChange, Connectzap
from connectzap.cli import cli
from connectzap.core.campaigns import Action, engine, read_file, service
from connectzap.core.settings import load_settings
from connectzap.core.store.schema import campaign_recipients, outbox
from connectzap.testing import seed_template
from connectzap.testing.apps import drop_postgres_schema

pytestmark = pytest.mark.slow

RECIPIENTS = 240
UNCONSENTED = 20  # the last ones: refused by the gate, never sent
KILL_AFTER = (30, 100, 170)


def test_a_campaign_killed_mid_run_sends_each_recipient_once(backend: str, tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    log = tmp_path / "sandbox.jsonl"
    stderr = tmp_path / "worker-stderr.log"
    config = config_file(tmp_path / "connectzap.toml", data_dir=tmp_path / "data", database_url=url, rest=f"""
[privacy]
hash_secret = "campaign-crash-secret-0123456789"
[workers]
lease_seconds = 2
poll_interval_seconds = 0.05
batch_size = 10
[sandbox]
quiet = true
log_file = "{log}"
simulate_statuses = false
latency_seconds = 0.05
""")
    app = Connectzap(load_settings(config)).start()
    try:
        seed_template(app, "newsletter", "Hello {{1}}, our December news", category="MARKETING")
        phones = [f"+49151{20000000 + n}" for n in range(RECIPIENTS)]
        for phone in phones[:RECIPIENTS - UNCONSENTED]:
            app.set_consent(ConsentChange(phone=phone, category=Category.MARKETING, granted=True,
                                          source="newsletter form", proof="double opt-in"))
        made = app.campaigns.create("december", {"name": "newsletter", "language": "en"})
        audience = "phone,1\n" + "".join(f"{p},Reader {n}\n" for n, p in enumerate(phones))
        assert app.campaigns.load_audience(made.id, read_file(io.StringIO(audience), "csv", app.secret)).added \
            == RECIPIENTS
        app.campaigns.control(made.id, Action.START)
        env = process_env()
        for point in KILL_AFTER:
            proc = start_worker(config, env, stderr)
            wait_for(lambda p=point: len(logged_ids(log)) >= p, f"{point} sends", 120, proc=proc, log=stderr,
                     every=0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            assert len(logged_ids(log)) < RECIPIENTS - UNCONSENTED, "the campaign finished before the kill"

        proc = start_worker(config, env, stderr)
        try:
            wait_for(lambda: app.campaigns.get(made.id).state == "finished", "the campaign to finish", 180,
                     proc=proc, log=stderr)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, stderr.read_text()[-2000:]

        with app.db.read() as conn:
            outcomes = dict(conn.execute(select(campaign_recipients.c.line, campaign_recipients.c.outcome)
                                         .where(campaign_recipients.c.campaign_id == made.id)).all())
            message_of = dict(conn.execute(select(campaign_recipients.c.message_id, campaign_recipients.c.line)
                                           .where(campaign_recipients.c.campaign_id == made.id)).all())
            campaign_rows = conn.execute(select(outbox.c.id, outbox.c.status)
                                         .where(outbox.c.cancel_key == f"campaign:{made.id}")).all()
        sent = Counter(logged_ids(log))
        print(f"\n{RECIPIENTS} recipients, {len(KILL_AFTER)} SIGKILLs ({app.db.dialect}); requests "
              f"{sum(sent.values())} ({len(sent)} distinct); outcomes {Counter(outcomes.values())}")
        assert [m for m, n in sent.items() if n > 1] == []  # no Graph request twice
        assert len(outcomes) == RECIPIENTS  # every recipient has exactly one outcome row
        assert Counter(outcomes.values()) == {"sent": RECIPIENTS - UNCONSENTED, "refused": UNCONSENTED}
        assert set(sent) == {m for m, s in campaign_rows if s != "refused"}  # one message per sent recipient
        assert sorted(message_of[m] for m in sent) == list(range(2, RECIPIENTS - UNCONSENTED + 2))
    finally:
        app.close()
        drop_postgres_schema(url)


@contextmanager
def cli_engine(backend: str, tmp_path: Path) -> Iterator[tuple[Path, Connectzap]]:
    """A config for CLI processes on a fresh database, and an engine on it with the template seeded."""
    url = database_url(backend, tmp_path)
    config = config_file(tmp_path / "connectzap.toml", data_dir=tmp_path / "data", database_url=url, rest="""
[privacy]
hash_secret = "campaign-crash-secret-0123456789"
[sandbox]
quiet = true
""")
    app = Connectzap(load_settings(config)).start()
    try:
        seed_template(app, "newsletter", "Hello {{1}}, our December news", category="MARKETING")
        yield config, app
    finally:
        app.close()
        drop_postgres_schema(url)


def killed_mid_file(config: Path, args: list[str], stderr: Path, written: Callable[[], bool]) -> None:
    """``python -m connectzap --config FILE *args`` with its audience file on stdin, SIGKILLed once
    ``written`` says its first batch is in the database: the first 1,500 lines are given, the load
    waits for the rest."""
    with stderr.open("ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "connectzap", "--config", str(config), *args],
                                env=process_env(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
    assert proc.stdin is not None
    proc.stdin.write(b"phone,1\n" + b"".join(b"+49151%d,Reader\n" % (30000000 + n) for n in range(1500)))
    proc.stdin.flush()
    wait_for(written, "the first batch written", 60, proc=proc, log=stderr)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_an_audience_replacement_killed_mid_file_keeps_the_audience_and_leaves_no_number_behind(
        backend: str, tmp_path: Path) -> None:
    """`connectzap campaigns audience NAME -` SIGKILLed halfway through its file: the campaign keeps
    the audience it had, and the rows the load wrote aside (numbers and parameters) go once the
    campaign starts -- nothing else would ever erase them."""
    with cli_engine(backend, tmp_path) as (config, app):
        made = app.campaigns.create("december", {"name": "newsletter", "language": "en"})
        first = "phone,1\n+4915120000000,Ana\n+4915120000001,Bo\n"
        assert app.campaigns.load_audience(made.id, read_file(io.StringIO(first), "csv", app.secret)).added == 2

        def aside() -> int:
            with app.db.read() as conn:
                return len(conn.execute(select(campaign_recipients.c.line).where(
                    campaign_recipients.c.campaign_id == engine.staging_id(made.id),
                    campaign_recipients.c.recipient.is_not(None))).all())

        killed_mid_file(config, ["campaigns", "audience", "december", "-", "--format", "csv"],
                        tmp_path / "audience-stderr.log", lambda: aside() >= 1000)

        assert app.campaigns.get(made.id).recipients == 2
        assert [r["phone"] for r in app.campaigns.results(made.id)] == ["+49*********00", "+49*********01"]
        assert aside() >= 1000  # what the killed load left: numbers no one would ever erase
        app.campaigns.control(made.id, Action.START)
        assert aside() == 0


def test_a_create_killed_mid_file_lists_no_campaign_and_its_rows_are_swept_later(
        backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`connectzap campaigns create NAME --template T --audience -` SIGKILLed halfway through its
    file: `campaigns list` shows no campaign (the old create wrote the draft first: an empty draft of
    the name stayed for good). The rows the load wrote aside are erased by a later create, once no
    load could still be running (after ABANDONED_AFTER)."""
    with cli_engine(backend, tmp_path) as (config, app):
        killed_mid_file(config, ["campaigns", "create", "december", "--template", "newsletter", "--audience", "-",
                                 "--format", "csv"], tmp_path / "create-stderr.log", lambda: rows(app)[1] >= 1000)

        listed = subprocess.run([sys.executable, "-m", "connectzap", "--config", str(config), "campaigns", "list",
                                 "--json"], env=process_env(), capture_output=True, timeout=120, check=True)
        assert json.loads(listed.stdout) == []
        assert rows(app) == (0, staged(app)) and staged(app) >= 1000  # numbers of no campaign

        audience = tmp_path / "small.csv"
        audience.write_text("phone,1\n+4915120000000,Ana\n")

        def create(name: str) -> None:
            made = CliRunner().invoke(cli, ["--config", str(config), "campaigns", "create", name, "--template",
                                            "newsletter", "--audience", str(audience)])
            assert made.exit_code == 0, made.output

        create("january")
        assert staged(app) >= 1000  # the killed load might still be running: kept
        monkeypatch.setattr(service, "ABANDONED_AFTER", 0.0)  # now it could not be
        create("february")
        assert (staged(app), rows(app)) == (0, (2, 2))
