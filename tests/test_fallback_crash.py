"""SIGKILL a real ``connectzap worker`` while fallbacks are being admitted: every WhatsApp message
gets exactly one fallback, and none is lost.

The worker runs as users run it (``python -m connectzap --config FILE worker``), its WhatsApp
connector pointed at the local Graph stand-in (:class:`connectzap.testing.fake_graph.FakeGraph`),
which answers every send with 131026 (the number has no WhatsApp account), and its SMS connector at
the local Twilio stand-in (tests/sms_support.py). Each message names ``fallback_channels = ["sms"]``
and each customer consented to SMS, so each failure admits an SMS in the transaction that records
it. WhatsApp is paced at 20 messages a second, so the sender claims small batches and fallbacks
are admitted a few at a time; the worker is killed three times while they are being admitted and
sent, then restarted until every message is settled.

Afterwards every WhatsApp message failed ``unreachable`` and has exactly one fallback message (one
outbox row keyed ``fallback:<id>:sms``, linked by ``fallback_of``) that reached Twilio; a customer
got a second SMS only where the sender itself resent an SMS it could not confirm after a kill
(``workers.unknown_policy = "resend"``), never from a second fallback.
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
from serve_support import config_file, database_url, finish_with_worker, process_env, start_worker, wait_for
from sms_support import ACCOUNT_SID, AUTH_TOKEN, FROM, TwilioStandIn
from sqlalchemy import func, select

from connectzap import Category, ConsentChange, Connectzap, Outgoing
from connectzap.core.settings import load_settings
from connectzap.core.store.schema import outbox
from connectzap.testing import seed_template
from connectzap.testing.apps import drop_postgres_schema
from connectzap.testing.fake_graph import FakeGraph

pytestmark = pytest.mark.slow

MESSAGES = 240
KILL_AT = (20, 70, 120)  # fallbacks admitted when each kill comes
TOKEN = "fallback-crash-token"


def fallbacks_admitted(app: Connectzap) -> int:
    with app.db.read() as conn:
        return conn.execute(select(func.count()).select_from(outbox).where(outbox.c.fallback_of.is_not(None))
                            ).scalar_one()


def settled(app: Connectzap) -> bool:
    with app.db.read() as conn:
        open_ = conn.execute(select(func.count()).select_from(outbox).where(
            outbox.c.status.in_(("queued", "sending", "unknown")))).scalar_one()
    return open_ == 0 and fallbacks_admitted(app) >= MESSAGES


def test_sigkills_while_fallbacks_are_admitted_leave_exactly_one_fallback_per_message(backend: str,
                                                                                      tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    stderr = tmp_path / "worker-stderr.log"
    with FakeGraph(token=TOKEN, record=False, latency_ms=60) as graph, TwilioStandIn() as twilio:
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
[connectors.sms.templates.order_confirmation]
en = "Order {{{{ p1 }}}} is confirmed"
""")
        app = Connectzap(load_settings(config)).start()
        try:
            seed_template(app, "order_confirmation", "Order {{1}} is confirmed")
            phones = [f"+49151{30000000 + n}" for n in range(MESSAGES)]
            for phone in phones:
                for medium in ("whatsapp", "sms"):
                    app.set_consent(ConsentChange(phone=phone, category=Category.UTILITY, granted=True,
                                                  source="checkout", proof="box", medium=medium))
            decisions = app.send_many([Outgoing.model_validate({
                "to": phone, "fallback_channels": ["sms"], "idempotency_key": f"order-{n}",
                "content": {"type": "template", "name": "order_confirmation", "language": "en", "body": [str(n)]}})
                for n, phone in enumerate(phones)])
            assert all(d.status == "queued" for d in decisions)
            env = process_env()
            at_kills = []
            for point in KILL_AT:
                proc = start_worker(config, env, stderr)
                wait_for(lambda p=point: fallbacks_admitted(app) >= p, f"{point} fallbacks", 180, proc=proc,
                         log=stderr, every=0.01)
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                at_kills.append(fallbacks_admitted(app))
            assert at_kills[-1] < MESSAGES, f"every fallback was admitted before the last kill ({at_kills})"

            finish_with_worker(config, env, stderr, lambda: settled(app), "every message to be settled", 300)

            with app.db.read() as conn:
                rows = [dict(r._mapping) for r in conn.execute(select(
                    outbox.c.id, outbox.c.medium, outbox.c.status, outbox.c.reason, outbox.c.fallback_of,
                    outbox.c.idempotency_key))]
        finally:
            app.close()
            drop_postgres_schema(url)
        originals = {r["id"]: r for r in rows if r["medium"] == "whatsapp"}
        fallbacks = [r for r in rows if r["fallback_of"] is not None]
        texts = Counter(call.form["To"] for call in twilio.calls if call.form.get("To"))
        resent = [r for r in fallbacks if r["reason"] == "resent_unconfirmed"]
        print(f"\n{MESSAGES} messages, {len(KILL_AT)} SIGKILLs ({backend}); SMS requests {sum(texts.values())}, "
              f"SMS resent after a kill left them unconfirmed: {len(resent)}; "
              f"fallbacks admitted at each kill: {at_kills}")
    assert len(originals) == MESSAGES
    assert Counter((r["status"], r["reason"]) for r in originals.values()) == {("failed", "unreachable"): MESSAGES}
    # exactly one fallback per message, under the key derived from it, and none lost
    assert sorted(r["fallback_of"] for r in fallbacks) == sorted(originals)
    assert all(r["idempotency_key"] == f"fallback:{r['fallback_of']}:sms" for r in fallbacks)
    assert all(r["medium"] == "sms" and r["status"] in ("accepted", "sent") for r in fallbacks)
    assert set(texts) == set(phones)  # every customer got their SMS
    assert sum(texts.values()) - MESSAGES <= len(resent)  # a second SMS only from the sender's own resend
