"""SIGKILL a real ``connectzap worker`` while it answers customers automatically, restart it: every
inbound message still gets exactly one automatic answer -- the FAQ answer, never also the welcome
both plugins proposed -- and nothing is sent twice. The worker runs as users run it (``python -m
connectzap --config FILE worker``) with the bundled auto_replies and welcome plugins configured in
the file; the sandbox channel logs each request it receives."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest
from serve_support import (config_file, crash_settings, database_url, finish_with_worker, logged_ids, process_env,
                           start_worker, wait_for)
from sqlalchemy import func, select

from connectzap import Connectzap, Event, EventKind
from connectzap.core.settings import load_settings
from connectzap.core.store.schema import events, outbox
from connectzap.testing.apps import drop_postgres_schema
from connectzap.testing.payloads import sample_event

pytestmark = pytest.mark.slow

MESSAGES = int(os.environ.get("CONNECTZAP_CRASH_MESSAGES", "150"))
KILL_AFTER = tuple(MESSAGES * n // 150 for n in (20, 70, 120))  # answers in the sandbox log before each kill


def journal_questions(config: Path) -> None:
    """One question from each of ``MESSAGES`` new customers: the FAQ rule and the welcome both answer."""
    app = Connectzap(load_settings(config)).start()
    try:
        template = sample_event("inbound_message")
        batch = []
        for n in range(MESSAGES):
            phone = f"+49151{20000000 + n}"
            data = {**template.data, "wamid": f"wamid.crash{n}", "text": "What are your opening hours?",
                    "contact": {"phone": phone, "wa_id": phone[1:]}}
            batch.append(Event(kind=EventKind.INBOUND_MESSAGE, source="whatsapp", dedupe_key=f"wamid.crash{n}",
                               data=data))
        app.ingest(batch)
    finally:
        app.close()


def idle(app: Connectzap) -> bool:
    with app.db.read() as conn:
        pending = conn.execute(select(func.count()).select_from(events).where(events.c.status == "pending")).scalar()
        busy = conn.execute(select(func.count()).select_from(outbox).where(
            outbox.c.status.in_(("queued", "sending", "unknown")))).scalar()
    return pending == 0 and busy == 0


def test_sigkill_mid_answers_keeps_one_automatic_answer_per_message(backend: str, tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    log, stderr = tmp_path / "sandbox.jsonl", tmp_path / "worker-stderr.log"
    config = config_file(tmp_path / "connectzap.toml", data_dir=tmp_path / "data", database_url=url,
                         rest=crash_settings(log) + """
[automation]
stale_after_minutes = 120
typing_indicator = false
[plugins.welcome]
enabled = true
[plugins.welcome.texts]
en = "Welcome to Corner Books!"
[plugins.auto_replies]
[[plugins.auto_replies.rules]]
name = "hours"
keywords = ["opening hours"]
[plugins.auto_replies.rules.answer.en]
type = "text"
body = "We open at 9."
""")
    env = process_env(CONNECTZAP_LOAD_PLUGINS="")
    journal_questions(config)
    observer = Connectzap(load_settings(config))
    try:
        for point in KILL_AFTER:
            proc = start_worker(config, env, stderr)
            wait_for(lambda p=point: len(logged_ids(log)) >= p, f"{point} answers", 120, proc=proc, log=stderr)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            assert len(logged_ids(log)) < MESSAGES, "the worker finished before it could be killed"
        finish_with_worker(config, env, stderr, lambda: idle(observer), "the restarted worker to finish", 240)
        sent = Counter(logged_ids(log))
        with observer.db.read() as conn:
            rows = {r.id: r for r in conn.execute(select(outbox.c.id, outbox.c.automatic, outbox.c.source_event_id,
                                                         outbox.c.status, outbox.c.reason))}
            done = conn.execute(select(func.count()).select_from(events).where(
                events.c.kind == "inbound_message", events.c.status == "done")).scalar()
        assert [m for m, n in sent.items() if n > 1] == []  # nothing sent twice
        per_message = Counter(rows[m].source_event_id for m in sent if rows[m].automatic)
        kinds = Counter(rows[m].automatic for m in sent)
        print(f"\n{MESSAGES} questions, {len(KILL_AFTER)} SIGKILLs ({observer.db.dialect}); sent {dict(kinds)}")
        assert done == MESSAGES
        assert len(per_message) == MESSAGES and set(per_message.values()) == {1}  # one answer each, none lost
        assert kinds == Counter({"faq": MESSAGES})  # the FAQ answer won everywhere
        welcomes = Counter((r.status, r.reason) for r in rows.values() if r.automatic == "welcome")
        assert welcomes == Counter({("refused", "automatic_superseded"): MESSAGES})  # proposed, and refused
    finally:
        observer.close()
        drop_postgres_schema(url)
