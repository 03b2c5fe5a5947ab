"""A real `connectzap serve` process: a signed WhatsApp webhook and a REST send reach the sandbox;
SIGTERM shuts it down cleanly with exit code 0."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from server_support import APP_SECRET, AUTH, KEY, PHONE, inbound_text, journaled, meta_signed

from connectzap.testing import seed_template

pytestmark = pytest.mark.slow
CONNECTZAP = Path(sys.executable).with_name("connectzap")


def write_config(folder: Path, database_url: str) -> Path:
    config = folder / "connectzap.toml"
    config.write_text(f"""
data_dir = "{folder}"
[database]
url = "{database_url}"
[api]
keys = ["{KEY}"]
[sandbox]
log_file = "{folder / 'sandbox.jsonl'}"
quiet = true
[workers]
poll_interval_seconds = 0.05
[connectors.whatsapp]
app_secrets = ["{APP_SECRET}"]
verify_token = "smoke-verify-token"
""")
    return config


class Served:
    """The process, and its stderr lines as they arrive (read on a thread, so nothing blocks)."""

    def __init__(self, config: Path, env: dict[str, str] | None = None, options: tuple[str, ...] = ()) -> None:
        env = env or {**os.environ, "CONNECTZAP_LOAD_PLUGINS": ""}  # bundled plugins only
        self.process = subprocess.Popen([str(CONNECTZAP), "--config", str(config), "serve", "--port", "0", *options],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.output.append(line)
            self.lines.put(line)

    def url(self, within: float = 60) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if "serving on " in line:
                return line.split("serving on ", 1)[1].split()[0]
        raise AssertionError("serve did not start:\n" + "".join(self.output))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def wait_for(check, what: str, within: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def test_serve_takes_a_webhook_and_a_rest_send_to_the_sandbox_then_stops_cleanly(make, tmp_path):
    engine = make()  # creates the database (or PostgreSQL schema) the process will use
    seed_template(engine, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    folder = Path(engine.settings.data_dir)
    served = Served(write_config(folder, engine.db.url))
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
