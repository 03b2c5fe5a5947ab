"""SIGKILL a real ``connectzap worker`` while fallbacks are being admitted, for each trigger that
admits them in the worker: every WhatsApp message gets exactly one fallback, and none is lost.

The worker runs as users run it (``python -m connectzap --config FILE worker``), its WhatsApp
connector pointed at the local Graph stand-in (:class:`connectzap.testing.fake_graph.FakeGraph`)
and its SMS connector at the local Twilio stand-in (tests/sms_support.py). Each message names
``fallback_channels = ["sms"]`` and each customer consented to SMS, so each trigger admits an SMS
in the transaction that records it. The worker is killed three times while fallbacks are being
admitted, then restarted until every message is settled. Three triggers:

* ``unreachable``: the Graph stand-in answers every send with 131026 (the number has no WhatsApp
  account). WhatsApp is paced at 20 messages a second, so the sender claims small batches and
  fallbacks are admitted a few at a time.
* ``not_delivered_in_time`` (``fallback_after_minutes``): the stand-in accepts every send and no
  ``delivered`` status ever comes. The subprocess's clock cannot be moved, so once every message is
  accepted the test sets the due times of their ``fallback_due`` checks in the ``events`` table
  directly, spread a tenth of a second apart from now, and the kills come while they fall due.
* ``template_paused``: sending is paused (the operator's switch), so the messages wait queued; a
  template status webhook's event pauses each of eight templates, the events due 2 s apart,
  and each withdraws the messages waiting for its template. Sending is resumed once every pause
  is applied (a message whose template is not paused yet would go on WhatsApp).

Afterwards every WhatsApp message ended as its trigger says and has exactly one fallback message
(one outbox row keyed ``fallback:<id>:sms``, linked by ``fallback_of``) that reached Twilio; a
customer got a second SMS only where the sender itself resent an SMS it could not confirm after a
kill (``workers.unknown_policy = "resend"``), never from a second fallback.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from serve_support import config_file, database_url, finish_with_worker, process_env, start_worker, wait_for
from sms_support import ACCOUNT_SID, AUTH_TOKEN, FROM, TwilioStandIn
from sqlalchemy import func, select, update

from connectzap import Category, ConsentChange, Connectzap, Outgoing
from connectzap.core.models import Event, EventKind, TemplateUpdate
from connectzap.core.settings import load_settings
from connectzap.core.store.schema import events, outbox
from connectzap.testing import seed_template
from connectzap.testing.apps import drop_postgres_schema
from connectzap.testing.fake_graph import FakeGraph

pytestmark = pytest.mark.slow

MESSAGES = 240
KILL_AT = (20, 70, 120)  # fallbacks admitted when each kill comes
TIMED = 120  # messages of the fallback_after_minutes and template_paused runs
TIMED_KILL_AT = (15, 45, 75)
PAUSED_TEMPLATES = 8
TOKEN = "fallback-crash-token"


@dataclass
class Run:
    """One crash run: the app the test reads the database with, its config, the stand-ins."""

    app: Connectzap
    config: Path
    stderr: Path
    graph: FakeGraph
    twilio: TwilioStandIn
    phones: list[str]
    env: dict[str, str]

    def send(self, template: Callable[[int], str], **extra: Any) -> None:
        """Every customer consents to WhatsApp and SMS; each gets one message naming SMS fallback."""
        for phone in self.phones:
            for medium in ("whatsapp", "sms"):
                self.app.set_consent(ConsentChange(phone=phone, category=Category.UTILITY, granted=True,
                                                   source="checkout", proof="box", medium=medium))
        decisions = self.app.send_many([Outgoing.model_validate({
            "to": phone, "fallback_channels": ["sms"], "idempotency_key": f"order-{n}", **extra,
            "content": {"type": "template", "name": template(n), "language": "en", "body": [str(n)]}})
            for n, phone in enumerate(self.phones)])
        assert all(d.status == "queued" for d in decisions)

    def kill_while_admitting(self, kill_at: tuple[int, ...]) -> list[int]:
        """Start a worker and SIGKILL it once ``kill_at[i]`` fallbacks are admitted, for each i;
        returns how many were admitted at each kill (the last fewer than all of them)."""
        at_kills = []
        for point in kill_at:
            proc = start_worker(self.config, self.env, self.stderr)
            wait_for(lambda p=point: fallbacks_admitted(self.app) >= p, f"{point} fallbacks", 180, proc=proc,
                     log=self.stderr, every=0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            at_kills.append(fallbacks_admitted(self.app))
        assert at_kills[-1] < len(self.phones), f"every fallback was admitted before the last kill ({at_kills})"
        return at_kills

    def settle(self) -> list[dict[str, Any]]:
        """Restart the worker until every message is settled; the outbox rows then."""
        finish_with_worker(self.config, self.env, self.stderr, lambda: settled(self.app, len(self.phones)),
                           "every message to be settled", 300)
        with self.app.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(select(
                outbox.c.id, outbox.c.medium, outbox.c.status, outbox.c.reason, outbox.c.error_details,
                outbox.c.fallback_of, outbox.c.idempotency_key))]


@contextmanager
def crash_run(backend: str, tmp_path: Path, count: int, *, unreachable: bool = False,
              templates: tuple[str, ...] = ("order_confirmation",)) -> Iterator[Run]:
    url = database_url(backend, tmp_path)
    sms_templates = "\n".join(f'[connectors.sms.templates.{name}]\nen = "Order {{{{ p1 }}}} is confirmed"'
                              for name in templates)
    with FakeGraph(token=TOKEN, record=False, latency_ms=60) as graph, TwilioStandIn() as twilio:
        if unreachable:
            graph.fail(131026, times=None)  # no number has a WhatsApp account
        config = config_file(tmp_path / "connectzap.toml", data_dir=tmp_path / "data", database_url=url, rest=f"""
[privacy]
hash_secret = "fallback-crash-secret-0123456789"
[workers]
lease_seconds = 2
poll_interval_seconds = 0.05
batch_size = 10
unknown_policy = "resend"
unknown_grace_seconds = 2
[connectors.whatsapp]
access_token = "{TOKEN}"
phone_number_id = "106540352242922"
app_secrets = ["fallback-crash-app-secret"]
verify_token = "fallback-crash-verify"
api_base_url = "{graph.url}"
messages_per_second = 20
pair_spacing_seconds = 0
daily_unique_recipients = 1000000
timeout_seconds = 10
[connectors.sms]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
from_number = "{FROM}"
api_base_url = "{twilio.url}"
{sms_templates}
""")
        app = Connectzap(load_settings(config)).start()
        try:
            for name in templates:
                seed_template(app, name, "Order {{1}} is confirmed")
            yield Run(app, config, tmp_path / "worker-stderr.log", graph, twilio,
                      [f"+49151{30000000 + n}" for n in range(count)], process_env())
        finally:
            app.close()
            drop_postgres_schema(url)


def fallbacks_admitted(app: Connectzap) -> int:
    with app.db.read() as conn:
        return conn.execute(select(func.count()).select_from(outbox).where(outbox.c.fallback_of.is_not(None))
                            ).scalar_one()


def settled(app: Connectzap, count: int) -> bool:
    with app.db.read() as conn:
        open_ = conn.execute(select(func.count()).select_from(outbox).where(
            outbox.c.status.in_(("queued", "sending", "unknown")))).scalar_one()
    return open_ == 0 and fallbacks_admitted(app) >= count


def one_fallback_each(run: Run, rows: list[dict[str, Any]], at_kills: list[int], what: str) -> dict[str, Any]:
    """Exactly one fallback per WhatsApp message, under the key derived from it, that reached Twilio;
    none lost, none twice. Returns the originals by id."""
    originals = {r["id"]: r for r in rows if r["medium"] == "whatsapp"}
    fallbacks = [r for r in rows if r["fallback_of"] is not None]
    texts = Counter(call.form["To"] for call in run.twilio.calls if call.form.get("To"))
    resent = [r for r in fallbacks if r["reason"] == "resent_unconfirmed"]
    print(f"\n{what}: {len(run.phones)} messages, {len(at_kills)} SIGKILLs; SMS requests {sum(texts.values())}, "
          f"SMS resent after a kill left them unconfirmed: {len(resent)}; fallbacks admitted at each kill: {at_kills}")
    assert len(originals) == len(run.phones)
    assert sorted(r["fallback_of"] for r in fallbacks) == sorted(originals)
    assert all(r["idempotency_key"] == f"fallback:{r['fallback_of']}:sms" for r in fallbacks)
    assert all(r["medium"] == "sms" and r["status"] in ("accepted", "sent") for r in fallbacks)
    assert set(texts) == set(run.phones)  # every customer got their SMS
    assert sum(texts.values()) - len(run.phones) <= len(resent)  # a second SMS only from the sender's own resend
    return originals


def test_sigkills_while_fallbacks_are_admitted_leave_exactly_one_fallback_per_message(backend: str,
                                                                                      tmp_path: Path) -> None:
    with crash_run(backend, tmp_path, MESSAGES, unreachable=True) as run:
        run.send(lambda n: "order_confirmation")
        at_kills = run.kill_while_admitting(KILL_AT)
        rows = run.settle()
    originals = one_fallback_each(run, rows, at_kills, f"unreachable ({backend})")
    assert Counter((r["status"], r["reason"]) for r in originals.values()) == {("failed", "unreachable"): MESSAGES}


def test_sigkills_while_fallback_after_minutes_fall_due_leave_exactly_one_fallback_per_message(
        backend: str, tmp_path: Path) -> None:
    with crash_run(backend, tmp_path, TIMED) as run:
        run.send(lambda n: "order_confirmation", fallback_after_minutes=1)
        finish_with_worker(run.config, run.env, run.stderr, lambda: all_accepted(run.app), "every send accepted", 50)
        assert fallbacks_admitted(run.app) == 0  # accepted, never delivered, and the minute is not up yet
        with run.app.db.begin() as conn:  # the minute is up: each check falls due a tenth of a second after the last
            checks = conn.execute(select(events.c.id).where(events.c.kind == EventKind.FALLBACK_DUE.value)
                                  .order_by(events.c.id)).scalars().all()
            assert len(checks) == TIMED
            t0 = time.time()
            for n, event_id in enumerate(checks):
                conn.execute(update(events).where(events.c.id == event_id).values(next_attempt_at=t0 + n * 0.1))
        at_kills = run.kill_while_admitting(TIMED_KILL_AT)
        rows = run.settle()
    originals = one_fallback_each(run, rows, at_kills, f"fallback_after_minutes ({backend})")
    assert {r["status"] for r in originals.values()} == {"accepted"}  # handed to WhatsApp: not taken back


def all_accepted(app: Connectzap) -> bool:
    with app.db.read() as conn:
        return conn.execute(select(func.count()).select_from(outbox).where(
            outbox.c.medium == "whatsapp", outbox.c.status != "accepted")).scalar_one() == 0


def test_sigkills_while_paused_templates_withdraw_messages_leave_each_withdrawn_with_its_one_fallback(
        backend: str, tmp_path: Path) -> None:
    names = tuple(f"order_confirmation_{k}" for k in range(PAUSED_TEMPLATES))
    with crash_run(backend, tmp_path, TIMED, templates=names) as run:
        run.app.set_paused("fallback crash test: the messages wait in the queue")
        run.send(lambda n: names[n % PAUSED_TEMPLATES])
        t0 = time.time() + 2
        for k, name in enumerate(names):  # the webhooks: each template paused 2 s after the last
            run.app.ingest([Event.of(EventKind.TEMPLATE_UPDATE, TemplateUpdate(name=name, language="en",
                                                                               status="PAUSED"),
                                     source="whatsapp", dedupe_key=f"{name}:PAUSED")], due_at=t0 + 2 * k)
        at_kills = run.kill_while_admitting(TIMED_KILL_AT)
        # every pause applied before sending resumes, else a message whose pause is yet to come goes
        finish_with_worker(run.config, run.env, run.stderr, lambda: fallbacks_admitted(run.app) >= TIMED,
                           "every message withdrawn", 60)
        run.app.resume_sending()
        rows = run.settle()
    originals = one_fallback_each(run, rows, at_kills, f"template_paused ({backend})")
    # each withdrawn exactly when its one fallback was admitted: the refusal names it
    fallback_of = {r["fallback_of"]: r["id"] for r in rows if r["fallback_of"] is not None}
    assert Counter((r["status"], r["reason"]) for r in originals.values()) == {("refused", "template_paused"): TIMED}
    assert all(fallback_of[r["id"]] in (r["error_details"] or "") for r in originals.values())
