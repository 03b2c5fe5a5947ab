"""SIGKILL a real ``connectzap worker`` right after the shop applied a customer's Confirm, before
the worker recorded it; a restarted worker finishes the job: the status changed once, one note on
the order, one answer to the customer."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from automation_support import APP_SECRET, CUSTOMER, envelope
from serve_support import config_file, crash_settings, database_url, process_env, start_worker, wait_for
from test_woocommerce_cod import cod_order
from test_woocommerce_webhooks import SECRET
from woocommerce_shop_support import FakeShop

from connectzap import Connectzap
from connectzap.connectors.woocommerce import cod
from connectzap.core import ingress
from connectzap.core.settings import load_settings
from connectzap.testing import meta_headers, seed_template, webhook_request, woocommerce_headers
from connectzap.testing.apps import drop_postgres_schema

pytestmark = pytest.mark.slow


def sent(log: Path, kind: str) -> list[dict[str, Any]]:
    """The request bodies of ``kind`` the sandbox logged (one line per request)."""
    bodies = []
    for line in log.read_text(encoding="utf-8").splitlines() if log.exists() else []:
        try:
            bodies.append(json.loads(line)["body"])
        except ValueError:
            continue  # a line still being written
    return [body for body in bodies if body.get("type") == kind]


def test_a_worker_killed_after_the_status_change_does_not_change_it_twice(backend, tmp_path) -> None:
    url = database_url(backend, tmp_path)
    log = tmp_path / "sandbox.jsonl"
    with FakeShop() as shop:
        config = config_file(tmp_path / "connectzap.toml", data_dir=tmp_path / "data", database_url=url,
                             rest=crash_settings(log) + f"""
[connectors.whatsapp]
app_secrets = ["{APP_SECRET}"]
verify_token = "verify-token-for-cod"
[connectors.woocommerce.shops.main]
url = "{shop.url}"
webhook_secrets = ["{SECRET}"]
consumer_key = "ck_test"
consumer_secret = "cs_test"
[connectors.woocommerce.shops.main.cod]
enabled = true
template = "cod_confirmation"
language = "en"
params = ["{{{{ number }}}}"]
""")
        app = Connectzap(load_settings(config)).start()
        env = process_env()
        stderr = tmp_path / "worker-stderr.log"
        worker = None
        try:
            seed_template(app, "cod_confirmation", "Please confirm order {{1}}.", extra_components=[
                {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Confirm"},
                                                {"type": "QUICK_REPLY", "text": "Cancel"}]}])
            order = shop.add(cod_order())
            body = json.dumps(order).encode()
            answer = ingress.handle(app.connectors["woocommerce"], webhook_request(
                "/webhooks/woocommerce/main", body, path_params={"shop": "main"},
                headers=woocommerce_headers(body, SECRET, topic="order.created", delivery_id="d1")), app.ingest)
            assert answer.status == 200, answer.body
            worker = start_worker(config, env, stderr)
            wait_for(lambda: sent(log, "template"), "the question", proc=worker, log=stderr)

            shop.after_status_change = lambda *_: worker.send_signal(signal.SIGKILL)
            tap = envelope({"id": "wamid.cod-crash", "timestamp": str(int(time.time())), "type": "button",
                            "button": {"payload": cod.payload(app.secret, "main", "1042", "confirm"),
                                       "text": "Confirm"}}, wa_id=CUSTOMER)
            raw = json.dumps(tap, separators=(",", ":")).encode()
            answer = ingress.handle(app.connectors["whatsapp"], webhook_request(
                "/webhooks/whatsapp", raw, headers=meta_headers(raw, APP_SECRET)), app.ingest)
            assert answer.status == 200, answer
            worker.wait(timeout=60)
            assert worker.returncode == -signal.SIGKILL and shop.status_changes == [("1042", "processing")]
            assert shop.note_texts("1042") == [] and sent(log, "text") == []

            shop.after_status_change = None
            again = start_worker(config, env, stderr)
            try:
                wait_for(lambda: sent(log, "text"), "the answer to the tap", within=90, proc=again, log=stderr)
                wait_for(lambda: shop.note_texts("1042"), "the order note", proc=again, log=stderr)
            finally:
                again.send_signal(signal.SIGTERM)
                again.wait(timeout=60)
            assert shop.status_changes == [("1042", "processing")]
            [note] = shop.note_texts("1042")
            assert note.startswith("The customer confirmed the cash-on-delivery order on WhatsApp")
            assert [t["text"]["body"] for t in sent(log, "text")] == [
                "Thank you! Order 1042 is confirmed: we will deliver it soon."]
        finally:
            app.close()
            drop_postgres_schema(url)
            if worker is not None and worker.poll() is None:
                worker.kill()
