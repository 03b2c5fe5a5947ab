"""`connectzap simulate` never acts: nothing reaches the live channel, the real journal, the consent
ledger, outbound subscriptions or CRMs -- not even while `serve` runs on the same config. `--live`
is the explicit, confirmed way in, and then the events take the normal path.

The CLI runs as a user types it (a subprocess), against a live-looking config: the Cloud API,
HubSpot, the shop's REST API and a subscriber are local stand-ins that record every request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from receiver_support import Receiver
from sqlalchemy import create_engine, select

from connectzap import Connector, Connectzap, Event, EventContext, InboundMessage, load_settings
from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.core.store.schema import metadata
from connectzap.testing import ConnectorRegistration, registered_plugin, sample_event, seed_template
from connectzap.testing.apps import _postgres_schema_url, drop_postgres_schema
from connectzap.testing.fake_graph import FakeGraph

CONNECTZAP = Path(sys.executable).with_name("connectzap")
PAYLOADS = Path(__file__).parent / "payloads"
PHONE = "+34612345678"  # the billing phone of order_created_classic.json
TOKEN = "graph-token-for-simulate-tests"
NUMBER_ID = "106540352242922"


@dataclass
class World:
    config: Path
    env: dict[str, str]
    url: str
    graph: FakeGraph
    hubspot: FakeHubSpot
    receiver: Receiver
    folder: Path

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CONNECTZAP), "--config", str(self.config), *args], capture_output=True,
                              text=True, env=self.env, input=input, timeout=120)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table of the real database, except worker heartbeats (serve beats)."""
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return {t.name: sorted(map(tuple, conn.execute(select(t)).all()), key=repr)
                        for t in metadata.sorted_tables if t.name != "workers"}
        finally:
            engine.dispose()

    def outside_calls(self) -> list[str]:
        return ([f"graph {r.method} {r.path}" for r in self.graph.requests]
                + [f"hubspot {r.method} {r.path}" for r in self.hubspot.requests]
                + [f"receiver {r.method} {r.path}" for r in self.receiver.requests])


@pytest.fixture
def world(backend: str, tmp_path: Path) -> Iterator[World]:
    url = (_postgres_schema_url(os.environ["CONNECTZAP_TEST_DATABASE_URL"]) if backend == "postgres"
           else f"sqlite:///{tmp_path / 'data' / 'connectzap.db'}")
    with FakeGraph(token=TOKEN) as graph, FakeHubSpot() as hubspot, Receiver() as receiver:
        config = tmp_path / "connectzap.toml"
        config.write_text(f"""
data_dir = "{tmp_path / 'data'}"
[api]
keys = ["a-long-enough-api-key-for-tests"]
[workers]
poll_interval_seconds = 0.05
[connectors.whatsapp]
access_token = "{TOKEN}"
phone_number_id = "{NUMBER_ID}"
waba_id = "102290129340398"
app_secrets = ["meta-app-secret-for-tests"]
verify_token = "verify-token-for-tests"
api_base_url = "{graph.url}"
[connectors.hubspot]
access_token = "pat-na1-simulate-test-token"
client_secrets = ["hubspot-client-secret"]
api_base_url = "{hubspot.url}"
[connectors.hubspot.consent.utility]
property = "whatsapp_utility_optin"
[connectors.woocommerce]
reconcile_interval_minutes = 0
[connectors.woocommerce.shops.main]
url = "{receiver.url}"
webhook_secrets = ["woo-webhook-secret"]
consumer_key = "ck_simulate"
consumer_secret = "cs_simulate"
[connectors.generic.subscriptions.crm]
url = "{receiver.url}/hooks?token=receiver-token"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
events = ["inbound_message", "message_status", "consent_changed", "order_created"]
[[plugins.order_notifications.rules]]
status = "processing"
template = "order_confirmation"
language = "en"
params = ["{{{{ number }}}}"]
""")
        # The database URL comes from the environment, as in many deployments: a simulation must not
        # follow it back to the real database.
        env = {**os.environ, "CONNECTZAP_LOAD_PLUGINS": "", "CONNECTZAP_DATABASE__URL": url}
        real = Connectzap(load_settings(config, database={"url": url})).start()
        seed_template(real, "order_confirmation", "Your order {{1}} is confirmed.")
        real.close()
        hubspot.add_contact({"mobilephone": PHONE, "firstname": "Ana"})
        yield World(config, env, url, graph, hubspot, receiver, tmp_path)
    drop_postgres_schema(url)


def order_then_reply(folder: Path) -> Path:
    """A WooCommerce order webhook as the shop sends it (with the checkout opt-in), then the
    customer's WhatsApp reply: every kind of outside effect connectzap has."""
    order = json.loads((PAYLOADS / "woocommerce" / "order_created_classic.json").read_text())
    file = folder / "order.json"
    file.write_text(json.dumps([
        {"webhook": "/webhooks/woocommerce/main", "headers": {"X-WC-Webhook-Topic": "order.created"},
         "body": order},
        {"kind": "inbound_message", "data": {"wamid": "wamid.reply-1", "type": "text",
                                             "timestamp": "2026-03-02T12:30:00Z",
                                             "contact": {"phone": PHONE}, "text": "Can you ring twice?"}},
    ]))
    return file


def assert_simulated_everything(out: str, world: World) -> None:
    assert "WOULD SEND template order_confirmation (en) to +34*******78 [order_notifications]" in out, out
    assert f"POST {world.graph.url}/v27.0/{NUMBER_ID}/messages" in out
    assert f"WOULD CALL [connector:woocommerce] POST {world.receiver.url}/wp-json/wc/v3/orders/1042/notes" in out
    assert f"WOULD CALL [connector:hubspot] POST {world.hubspot.url}/crm/v3/objects/contacts/search" in out
    assert f"WOULD CALL [connector:hubspot] POST {world.hubspot.url}/crm/v3/objects/communications" in out
    assert f"WOULD CALL [connector:hubspot] PATCH {world.hubspot.url}/crm/v3/objects/contacts/" in out
    assert f"WOULD CALL [connector:generic:crm] POST {world.receiver.url}/hooks?token=**********" in out
    # Numbers and secrets stay masked, wherever they would have appeared.
    for secret in ("34612345678", "receiver-token", TOKEN, "pat-na1"):
        assert secret not in out


@pytest.mark.slow
def test_a_simulation_touches_nothing_real(world: World) -> None:
    before = world.snapshot()
    result = world.run("simulate", str(order_then_reply(world.folder)))
    assert result.returncode == 0, result.stderr
    assert_simulated_everything(result.stdout, world)
    assert world.outside_calls() == []
    assert world.snapshot() == before


def _after_startup(world: World) -> dict[str, list[tuple[Any, ...]]]:
    """The database once serve has stored the messaging limit it reads from Graph as it starts
    (the snapshot raced that write, and the simulation got the blame)."""
    deadline = time.monotonic() + 20
    while True:
        snapshot = world.snapshot()
        if any(str(row[0]).startswith("wa-limit:") for row in snapshot["rate_counters"]):
            return snapshot
        assert time.monotonic() < deadline, "serve stored no messaging limit within 20 s of starting"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_simulation_touches_nothing_while_serve_runs_on_the_same_config(world: World) -> None:
    from test_serve_smoke import Served
    served = Served(world.config, world.env)
    try:
        served.url()
        before = _after_startup(world)
        calls_before = world.outside_calls()
        result = world.run("simulate", str(order_then_reply(world.folder)))
        assert result.returncode == 0, result.stderr
        assert_simulated_everything(result.stdout, world)
        assert world.snapshot() == before
        assert world.outside_calls() == calls_before and world.graph.sends() == []
    finally:
        assert served.stop() == 0, "".join(served.output)


sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@sqlite_only
def test_the_json_report_shows_verdicts_requests_and_calls_masked(world: World) -> None:
    result = world.run("simulate", "--json", str(order_then_reply(world.folder)))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mode"] == "simulation" and report["seeded_from"]["copied"]["templates"] == 1
    messages = [m for e in report["events"] for m in e["messages"]]
    assert [(m["verdict"], m["template"], m["to"]) for m in messages] == [
        ("sent", "order_confirmation", "+34*******78")]
    request = messages[0]["request"]
    assert request["url"] == f"{world.graph.url}/v27.0/{NUMBER_ID}/messages"
    assert request["body"]["to"] == "+34*******78"
    assert request["body"]["template"]["components"] == [{"type": "body", "parameters": [
        {"type": "text", "text": "1042"}]}]
    calls = [c for e in report["events"] for c in e["calls"]]
    targets = {c["target"] for c in calls}
    assert targets == {"connector:woocommerce", "connector:hubspot", "connector:generic:crm"}
    note = next(c for c in calls if c["target"] == "connector:woocommerce")
    assert note["body"]["customer_note"] is False and "Can you ring twice?" in note["body"]["note"]
    assert world.outside_calls() == []


@sqlite_only
def test_real_consent_is_copied_only_when_asked(world: World) -> None:
    send = world.folder / "send.json"
    send.write_text(json.dumps({"kind": "send", "data": {"to": PHONE, "content": {
        "type": "template", "name": "order_confirmation", "language": "en", "body": ["7"]}}}))
    granted = world.run("consent", "grant", PHONE, "utility", "--proof", "checkout box")
    assert granted.returncode == 0, granted.stderr
    before = world.snapshot()
    plain = world.run("simulate", str(send))
    assert "REFUSED template order_confirmation (en) to +34*******78 [core]: no_consent" in plain.stdout
    copied = world.run("simulate", "--real-consent", str(send))
    assert "WOULD SEND template order_confirmation (en) to +34*******78 [core]" in copied.stdout, copied.stdout
    assert "1 consent record," in copied.stdout
    assert world.snapshot() == before
    assert world.graph.sends() == []


@sqlite_only
def test_live_asks_first_and_a_no_changes_nothing(world: World) -> None:
    before = world.snapshot()
    result = world.run("simulate", "--live", str(order_then_reply(world.folder)), input="n\n")
    assert result.returncode == 1
    assert "Feed 2 events into the real journal" in result.stderr and "error: aborted" in result.stderr
    assert world.snapshot() == before and world.outside_calls() == []


@sqlite_only
@pytest.mark.parametrize("how", ["prompt", "--yes"])
def test_live_takes_the_normal_path_with_the_real_channel(world: World, how: str) -> None:
    args = ["simulate", "--live", str(order_then_reply(world.folder))]
    result = world.run(*args, "--yes") if how == "--yes" else world.run(*args, input="y\n")
    assert result.returncode == 0, result.stderr
    assert ("[y/N]" in result.stderr) == (how == "prompt")
    assert "SENT template order_confirmation (en) to +34*******78 [order_notifications]" in result.stdout
    sent = world.graph.sends()
    assert [(s["to"], s["template"]["name"]) for s in sent] == [("34612345678", "order_confirmation")]
    assert [r.path.split("?")[0] for r in world.receiver.requests
            if r.method == "POST" and r.path.startswith("/wp-json")] == [
        "/wp-json/wc/v3/orders/1042/notes"]
    events = world.snapshot()["events"]
    assert len(events) >= 2


@sqlite_only
def test_yes_and_real_consent_need_the_right_mode(world: World) -> None:
    file = order_then_reply(world.folder)
    assert "--yes only confirms --live" in world.run("simulate", "--yes", str(file)).stderr
    assert "--real-consent is for simulations" in world.run("simulate", "--live", "--real-consent",
                                                             str(file)).stderr


# --- the core's guarantee, for any connector -----------------------------------------------------

class ThirdPartyConnector(Connector):
    """A connector that writes to some outside system and says nothing about simulations."""

    name = "third_party_crm"
    routes = ("/webhooks/third-party",)
    enabled_by_default = True
    called: ClassVar[list[str]] = []

    def verify_request(self, request: Any) -> None:
        return None

    def parse(self, request: Any) -> list[Event]:
        return []

    async def sync_inbound_message(self, message: InboundMessage, ctx: EventContext) -> None:
        self.called.append(message.wamid)


def test_a_simulating_engine_rehearses_connectors_it_knows_nothing_about(make: Any) -> None:
    from connectzap.core.simulation import Simulation
    from connectzap.testing import run
    inbound = sample_event("inbound_message")
    ThirdPartyConnector.called.clear()
    with registered_plugin(ConnectorRegistration(ThirdPartyConnector)):
        simulated = make("simulated", simulation=Simulation())
        simulated.ingest([inbound])
        run(simulated)
        assert ThirdPartyConnector.called == []
        (rehearsed,) = [r for r in simulated.simulation.rehearsed if r.target == "connector:third_party_crm"]
        assert rehearsed.call.method is None and "ThirdPartyConnector would receive" in (rehearsed.call.note or "")
        real = make("real")
        real.ingest([inbound])
        run(real)
        assert ThirdPartyConnector.called == [InboundMessage.model_validate(inbound.data).wamid]


class DescribingConnector(ThirdPartyConnector):
    """A connector that describes its requests, tested the way docs/testing-connectors.md says."""

    name = "describing_crm"
    called: ClassVar[list[str]] = []

    async def rehearse(self, target: str, kind: str, payload: Any, ctx: EventContext) -> list[Any]:
        from connectzap import OutboundCall
        return [OutboundCall("POST", "https://crm.example/notes", {"text": payload.text})]


def test_the_testing_kit_builds_a_rehearsing_engine(connectzap_factory: Any) -> None:
    from connectzap.core.simulation import Simulation
    from connectzap.testing import run
    with registered_plugin(ConnectorRegistration(DescribingConnector)):
        app = connectzap_factory(simulation=Simulation())
        inbound = sample_event("inbound_message")
        app.ingest([inbound])
        run(app)
    calls = [r.call for r in app.simulation.rehearsed if r.target == "connector:describing_crm"]
    assert [(c.method, c.url, c.body) for c in calls] == [
        ("POST", "https://crm.example/notes", {"text": InboundMessage.model_validate(inbound.data).text})]
    assert DescribingConnector.called == []


def test_counts_in_the_question_and_the_seeding_line_agree_in_number() -> None:
    from types import SimpleNamespace

    from connectzap.cli.simulate import _live_question, _seeding_line
    app = SimpleNamespace(channel=SimpleNamespace(name="sandbox"), settings=SimpleNamespace(database_url="sqlite://"))
    assert _live_question(app, 1).startswith("Feed 1 event into the real journal")
    assert _live_question(app, 2).startswith("Feed 2 events into the real journal")

    def seeded(templates: int, consents: int, windows: int) -> str:
        return _seeding_line({"database": "db", "found": True, "problem": None, "real_consent": True,
                              "copied": {"templates": templates, "consents": consents, "windows": windows}})
    assert seeded(1, 1, 1).endswith(": 1 template from db, 1 consent record, 1 open window")
    assert seeded(2, 0, 2).endswith(": 2 templates from db, 0 consent records, 2 open windows")
