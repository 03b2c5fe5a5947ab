"""A real `connectzap serve` process: a signed WhatsApp webhook and a REST send reach the sandbox;
SIGTERM shuts it down cleanly with exit code 0."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from serve_support import Served, sandbox_serve_config, wait_for
from server_support import AUTH, PHONE, inbound_text, journaled, meta_signed

from connectzap.testing import seed_template

pytestmark = pytest.mark.slow


def test_serve_takes_a_webhook_and_a_rest_send_to_the_sandbox_then_stops_cleanly(make, tmp_path):
    engine = make()  # creates the database (or PostgreSQL schema) the process will use
    seed_template(engine, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    folder = Path(engine.settings.data_dir)
    served = Served(sandbox_serve_config(folder, engine.db.url))
    try:
        base = served.url()
        with httpx.Client(base_url=base, timeout=10) as client:
            body = inbound_text("wamid.smoke-1", "Where is my order?")
            hook = client.post("/webhooks/whatsapp", content=body, headers=meta_signed(body))
            assert hook.status_code == 200 and hook.json() == {"received": 1, "duplicates": 0}
            consent = client.put(f"/v1/contacts/{PHONE}/consent", headers=AUTH, json={
                "categories": ["utility"], "source": "checkout", "proof": "opted in at checkout"})
            assert consent.status_code == 200
            send = client.post("/v1/messages", headers={**AUTH, "Idempotency-Key": "smoke-1"}, json={
                "to": PHONE, "content": {"type": "template", "name": "order_confirmation", "language": "en",
                                         "body": ["Ana", "42"]}})
            assert send.status_code == 202, send.text
            sandbox = folder / "sandbox.jsonl"
            line = wait_for(lambda: sandbox.exists() and sandbox.read_text().strip(), "the sandbox send")

            def delivered() -> dict | None:
                shown = client.get(f"/v1/messages/{send.json()['id']}", headers=AUTH).json()
                return shown if shown["status"] == "delivered" else None

            status = wait_for(delivered, "the simulated delivered status")
            health = client.get("/healthz").json()
    finally:
        code = served.stop()
    sent = json.loads(line.splitlines()[0])["body"]
    assert sent["to"] == PHONE.lstrip("+") and sent["template"]["name"] == "order_confirmation"
    assert status["status"] == "delivered" and status["content"] is None
    assert health["ok"] is True and health["workers"] >= 1
    assert code == 0, "".join(served.output)
    assert journaled(engine, "whatsapp") == 1
    assert "Traceback" not in "".join(served.output)
