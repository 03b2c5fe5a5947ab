"""SIGKILL a real ``connectzap worker`` at the worst moment for a HubSpot Call: HubSpot has created it,
the answer has not reached the worker. The restarted worker finds that Call (the durable mark written
before the create sends it searching) instead of logging the call twice.

The HubSpot side is the local fake (connectzap.connectors.hubspot.fake), holding back its answer to the
create until the test has killed the worker. The call is ``call_terminate.json`` (built from the
reference, see tests/payloads/whatsapp/README.md).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hubspot_support import CLIENT_SECRET, TOKEN
from serve_support import config_file, database_url, process_env, start_worker, wait_for
from sqlalchemy import select

from connectzap import Connectzap
from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.connectors.whatsapp.webhooks import parse_body
from connectzap.core.settings import load_settings
from connectzap.core.store.schema import deliveries
from connectzap.testing.apps import drop_postgres_schema

pytestmark = pytest.mark.slow

CALL = Path(__file__).parent / "payloads" / "whatsapp" / "call_terminate.json"
PHONE = "+4915112345678"  # the customer in the call fixtures
CREATE = "/crm/v3/objects/calls"


class HeldCreates:
    """Wraps the fake's handler: a Call create is carried out, then its answer waits for ``release``."""

    def __init__(self, fake: FakeHubSpot) -> None:
        self.created = threading.Event()
        self.release = threading.Event()
        self._handle = fake.handle
        fake.handle = self  # type: ignore[method-assign]

    def __call__(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any, Any]:
        answer = self._handle(method, path, query, body)
        if method == "POST" and path == CREATE and not self.created.is_set():
            self.created.set()
            self.release.wait(120)  # the worker is killed meanwhile: nobody reads this answer
        return answer


@pytest.fixture
def crm() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as fake:
        yield fake


def worker_config(tmp_path: Path, url: str, crm: FakeHubSpot) -> Path:
    return config_file(tmp_path / "connectzap.toml", data_dir=tmp_path / "data", database_url=url, rest=f"""
[privacy]
hash_secret = "call-crash-test-secret-0123456789"
[workers]
lease_seconds = 2
poll_interval_seconds = 0.05
[connectors.hubspot]
access_token = "{TOKEN}"
client_secrets = ["{CLIENT_SECRET}"]
api_base_url = "{crm.url}"
search_index_lag_seconds = 0
""")


def hubspot_delivery(config: Path) -> dict[str, Any] | None:
    app = Connectzap(load_settings(config))
    try:
        with app.db.read() as conn:
            row = conn.execute(select(deliveries).where(deliveries.c.target == "connector:hubspot")).first()
        return dict(row._mapping) if row is not None else None
    finally:
        app.close()


def test_a_worker_killed_after_hubspot_created_the_call_does_not_log_it_twice(backend: str, tmp_path: Path,
                                                                               crm: FakeHubSpot) -> None:
    url = database_url(backend, tmp_path)
    crm.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    held = HeldCreates(crm)
    config = worker_config(tmp_path, url, crm)
    app = Connectzap(load_settings(config)).start()
    try:
        assert len(app.ingest(parse_body(CALL.read_bytes()))) == 1
    finally:
        app.close()
    env, stderr = process_env(), tmp_path / "worker-stderr.log"
    try:
        first = start_worker(config, env, stderr)
        wait_for(held.created.is_set, "HubSpot creating the Call", within=120, proc=first, log=stderr)
        os.kill(first.pid, signal.SIGKILL)  # HubSpot acted; the worker never hears of it
        first.wait(30)
        held.release.set()
        assert len(crm.objects("calls")) == 1
        delivery = hubspot_delivery(config)
        assert delivery is not None and delivery["status"] == "pending"  # nothing recorded it

        second = start_worker(config, env, stderr)
        try:
            done = wait_for(lambda: (d := hubspot_delivery(config)) and d["status"] == "done" and d,
                            "the retried delivery finishing", within=120, proc=second, log=stderr)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(60)
    finally:
        held.release.set()
        drop_postgres_schema(url)
    [call] = crm.objects("calls")
    assert "skipped" not in str(done["result"])
    assert "wacid.HBgLMTY1MDU1NTEyMzQVAgARGBQzQUI2MjQ3Rjc4RUEA" in call["properties"]["hs_call_body"]
    assert len(crm.calls("POST", CREATE + "/search")) == 1  # the retry looked before creating
    assert len([r for r in crm.calls("POST", CREATE) if r.path == CREATE]) == 1
