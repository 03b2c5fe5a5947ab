"""Every hook, exercised through the engine: event hooks via ingest + Worker.run_until_idle,
register_connectors via collect_connectors, register_commands via the CLI. A meta-test fails when a
hook has no ``test_hook_<name>`` here. Also: ``connectzap plugins`` and CONNECTZAP_TRACE_PLUGINS."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any

import click
import pytest
from click.testing import CliRunner
from fastapi import Request

from connectzap import (Category, ConsentChange, Connector, ConnectorSettings, Outgoing, StartupError,
                        TemplateContent, TextContent, hookimpl)
from connectzap.cli import cli
from connectzap.core.hooks import collect_connectors, register_commands
from connectzap.core.plugins import pm
from connectzap.core.worker import Worker
from connectzap.testing import FakeWhatsApp, registered_plugin, sample_event, seed_template
from connectzap.testing.venvs import fake_distribution

PHONE = "+4915112345678"


@pytest.fixture
def fake_app(make):
    app = make(channel=FakeWhatsApp())
    seed_template(app, "hook_probe", "Hello {{1}}", category="UTILITY")
    return app


class Recorder:
    """Records what each hook received."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def probe(first: str) -> TemplateContent:
    return TemplateContent(name="hook_probe", language="en", body=[first])


async def test_hook_on_order_created(fake_app):
    seen = Recorder()

    class Plugin:
        @hookimpl
        def on_order_created(self, order, ctx):
            seen.calls.append(("on_order_created", {"order": order, "source": ctx.source}))
            ctx.send(order.customer, probe(order.customer.first_name or order.number))

    with registered_plugin(Plugin()):
        event = sample_event("order_created")  # carries a utility opt-in from checkout
        fake_app.ingest([event])
        fake_app.ingest([event])  # delivered twice: the hook still runs once
        await Worker(fake_app).run_until_idle()
    assert seen.names() == ["on_order_created"]
    assert seen.calls[0][1]["order"].id == "1042" and seen.calls[0][1]["source"] == "shop"
    assert [b["template"]["name"] for b in fake_app.channel.sent()] == ["hook_probe"]
    assert fake_app.channel.sent()[0]["to"] == PHONE.lstrip("+")


async def test_hook_on_order_updated(fake_app):
    seen = Recorder()

    class Plugin:
        @hookimpl
        def on_order_updated(self, order, previous_status):  # a subset of the arguments is fine
            seen.calls.append(("on_order_updated", {"status": order.status, "previous": previous_status}))

    with registered_plugin(Plugin()):
        fake_app.ingest([sample_event("order_updated")])
        await Worker(fake_app).run_until_idle()
    assert seen.calls == [("on_order_updated", {"status": "completed", "previous": "processing"})]


async def test_hook_on_lead(fake_app):
    seen = Recorder()

    class Plugin:
        @hookimpl
        async def on_lead(self, lead, ctx):  # async, and returning proposals instead of ctx.send
            seen.calls.append(("on_lead", {"lead": lead}))
            return [Outgoing(to=lead.contact, content=probe(lead.contact.first_name))]

    event = sample_event("lead")
    fake_app.set_consent(ConsentChange(phone=event.data["contact"]["phone"], category=Category.UTILITY, granted=True,
                                       source="test", proof="form"))
    with registered_plugin(Plugin()):
        fake_app.ingest([event])
        await Worker(fake_app).run_until_idle()
    assert seen.names() == ["on_lead"] and seen.calls[0][1]["lead"].contact.first_name == "Sam"
    assert [b["template"]["name"] for b in fake_app.channel.sent()] == ["hook_probe"]


async def test_hook_on_inbound_message(fake_app):
    seen = Recorder()

    class Plugin:
        @hookimpl
        def on_inbound_message(self, message, ctx):
            seen.calls.append(("on_inbound_message", {"text": message.text, "window": ctx.window_open(PHONE)}))
            return Outgoing(to=message.contact, content=TextContent(body="Thanks, we will check."),
                            reply_to=message.wamid)

    with registered_plugin(Plugin()):
        fake_app.ingest([sample_event("inbound_message")])
        await Worker(fake_app).run_until_idle()
    assert seen.calls == [("on_inbound_message", {"text": "Where is my order?", "window": True})]
    [reply] = fake_app.channel.sent()
    assert reply["type"] == "text" and reply["context"] == {"message_id": "wamid.inbound.0001"}


async def test_hook_on_message_status(fake_app):
    seen: list[tuple[str, Any]] = []

    class Plugin:
        @hookimpl
        def on_message_status(self, status):
            seen.append((status.status, status.content))

    fake_app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="t", proof="p"))
    with registered_plugin(Plugin()):
        fake_app.send(Outgoing(to=PHONE, content=probe("Ana")), idempotency_key="status-test")
        await Worker(fake_app).run_until_idle()
        fake_app.ingest(fake_app.channel.status_events("delivered", "sent"))  # out of order, as Meta may
        await Worker(fake_app).run_until_idle()
    assert [s for s, _ in seen] == ["accepted", "delivered", "sent"]
    assert seen[0][1]["name"] == "hook_probe" and seen[1][1] is None
    assert fake_app.messages()[0]["status"] == "delivered"  # monotonic: the late "sent" did not win


async def test_hook_on_consent_changed(fake_app):
    seen = Recorder()

    class Plugin:
        @hookimpl
        def on_consent_changed(self, change, ctx):
            seen.calls.append(("on_consent_changed", {"granted": change.granted, "category": change.category}))

    with registered_plugin(Plugin()):
        fake_app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="t",
                                           proof="form"))
        fake_app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="t",
                                           proof="form"))  # unchanged: no second call
        await Worker(fake_app).run_until_idle()
    assert seen.calls == [("on_consent_changed", {"granted": True, "category": Category.MARKETING})]


async def test_hook_on_template_update(fake_app):
    seen = Recorder()

    class Plugin:
        @hookimpl
        def on_template_update(self, update, ctx):
            seen.calls.append(("on_template_update", {"name": update.name, "status": update.status}))

    with registered_plugin(Plugin()):
        fake_app.ingest([sample_event("template_update", name="hook_probe", language="en", status="PAUSED")])
        await Worker(fake_app).run_until_idle()
    assert seen.calls == [("on_template_update", {"name": "hook_probe", "status": "PAUSED"})]


async def test_hook_on_contact_changed(fake_app):
    seen = Recorder()

    class Plugin:
        @hookimpl
        def on_contact_changed(self, change, ctx):
            seen.calls.append(("on_contact_changed", {"phone": change.phone, "action": change.action,
                                                      "name": change.full_name}))

    with registered_plugin(Plugin()):
        fake_app.ingest([sample_event("contact_changed", full_name="Probe Person")])
        await Worker(fake_app).run_until_idle()
    assert seen.calls == [("on_contact_changed", {"phone": PHONE, "action": "saved", "name": "Probe Person"})]


async def test_hook_on_call(fake_app):
    seen = Recorder()

    class Plugin:
        @hookimpl
        def on_call(self, call, ctx):
            seen.calls.append(("on_call", {"event": call.event, "seconds": call.duration_seconds}))

    with registered_plugin(Plugin()):
        fake_app.ingest([sample_event("call")])
        fake_app.ingest([sample_event("call")])  # the same call step again: journaled once
        await Worker(fake_app).run_until_idle()
    assert seen.calls == [("on_call", {"event": "terminate", "seconds": 120})]


async def test_hook_on_past_message(fake_app):
    seen = Recorder()

    class Plugin:
        @hookimpl
        def on_past_message(self, message, ctx):
            seen.calls.append(("on_past_message", {"direction": message.direction, "text": message.text}))

    with registered_plugin(Plugin()):
        fake_app.ingest([sample_event("past_message", text="old chat")])
        await Worker(fake_app).run_until_idle()
    assert seen.calls == [("on_past_message", {"direction": "inbound", "text": "old chat"})]


async def test_hook_on_handoff(fake_app):
    seen = Recorder()

    class Plugin:
        @hookimpl
        def on_handoff(self, handoff, ctx):
            seen.calls.append(("on_handoff", {"to": handoff.to, "phone": handoff.contact.phone, "by": handoff.by,
                                              "until": handoff.until is not None}))

    with registered_plugin(Plugin()):
        fake_app.ingest([sample_event("handoff")])
        assert fake_app.hand_to_human(PHONE, "complaint", minutes=30, by="cli") is True
        assert fake_app.hand_to_human(PHONE, "complaint", by="cli") is False  # already a person's: no event
        assert fake_app.release(PHONE, by="api") is True
        await Worker(fake_app).run_until_idle()
    assert seen.calls == [("on_handoff", {"to": "human", "phone": PHONE, "by": "handoff", "until": True}),
                          ("on_handoff", {"to": "human", "phone": PHONE, "by": "cli", "until": True}),
                          ("on_handoff", {"to": "bot", "phone": PHONE, "by": "api", "until": False})]


async def test_hook_on_campaign_finished(fake_app):
    import io

    from connectzap.core.campaigns import read_file
    seen = Recorder()

    class Plugin:
        @hookimpl
        def on_campaign_finished(self, campaign, ctx):
            seen.calls.append(("on_campaign_finished", {"name": campaign.name, "state": campaign.state,
                                                        "outcomes": campaign.outcomes}))

    seed_template(fake_app, "news", "Hi {{1}}", category="MARKETING")
    fake_app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="test",
                                       proof="form"))
    audience = f"phone,1\n{PHONE},Ana\n+4915112345600,Bo\n"
    with registered_plugin(Plugin()):
        fake_app.ingest([sample_event("campaign_finished")])
        for name in ("sent", "dropped"):
            made = fake_app.campaigns.create(name, {"name": "news", "language": "en"})
            fake_app.campaigns.load_audience(made.id, read_file(io.StringIO(audience), "csv", fake_app.secret))
        fake_app.campaigns.control(fake_app.campaigns.resolve("sent"), "start")
        fake_app.campaigns.control(fake_app.campaigns.resolve("dropped"), "cancel")
        await Worker(fake_app).run_until_idle()
    assert sorted(seen.calls, key=lambda c: c[1]["name"]) == [
        ("on_campaign_finished", {"name": "december", "state": "finished", "outcomes": {"delivered": 2, "refused": 1}}),
        ("on_campaign_finished", {"name": "dropped", "state": "cancelled", "outcomes": {"cancelled": 2}}),
        ("on_campaign_finished", {"name": "sent", "state": "finished", "outcomes": {"refused": 1, "sent": 1}})]


def test_hook_register_connectors():
    class Probe(Connector):
        name = "hook_probe_connector"
        settings_model = ConnectorSettings
        routes = ("/webhooks/hook_probe",)

    class Impostor(Probe):
        pass

    class Plugin:
        def __init__(self, cls):
            self.cls = cls

        @hookimpl
        def register_connectors(self, register):
            register(self.cls)

    with registered_plugin(Plugin(Probe)):
        assert collect_connectors()["hook_probe_connector"] is Probe
        with registered_plugin(Plugin(Impostor)):
            with pytest.raises(StartupError, match="registered twice"):
                collect_connectors()
    assert "hook_probe_connector" not in collect_connectors()

    class NotAConnector:
        @hookimpl
        def register_connectors(self, register):
            register(dict)

    with registered_plugin(NotAConnector()), pytest.raises(StartupError, match="not a Connector"):
        collect_connectors()


def test_hook_register_plugin_settings(tmp_path):
    from connectzap import ConfigurationError, Contact, Event, Lead, PluginSettings, TemplateUse
    from connectzap.core.hooks import collect_plugin_settings
    from connectzap.testing import make_app, run

    class ProbeSettings(PluginSettings):
        greeting_template: str
        language: str = "en"

        def templates_used(self):
            yield TemplateUse("greeting_template", self.greeting_template, (self.language,))

    class Plugin:
        def __init__(self, model):
            self.model, self.seen = model, []

        @hookimpl
        def register_plugin_settings(self, register):
            register("hook_probe", self.model)

        @hookimpl
        def on_lead(self, lead, ctx):
            self.seen.append(ctx.plugin_settings)

    plugin = Plugin(ProbeSettings)
    with registered_plugin(plugin, name="hook_probe"):
        assert collect_plugin_settings()["hook_probe"] is ProbeSettings
        app = make_app(tmp_path / "ok", plugins={"hook_probe": {"greeting_template": "hi", "language": "de"}})
        assert app.config_problems() == [
            "configuration (environment or defaults): plugins.hook_probe.greeting_template: template 'hi' is not "
            "in the template cache (create or approve it, then run: connectzap templates sync)"]
        seed_template(app, "hi", "Hallo", language="de")
        assert app.config_problems() == []
        app.ingest([Event.of("lead", Lead(id="7", contact=Contact()), source="crm", dedupe_key="7")])
        run(app)
        assert [(type(s).__name__, s.greeting_template, s.language) for s in plugin.seen] == \
            [("ProbeSettings", "hi", "de")]
        with pytest.raises(ConfigurationError, match=r"plugins\.hook_probe\.greting_template: unknown key"):
            make_app(tmp_path / "typo", plugins={"hook_probe": {"greting_template": "hi"}})
        with pytest.raises(ConfigurationError, match=r"plugins\.hook_probe\.greeting_template: Field required"):
            make_app(tmp_path / "missing", plugins={"hook_probe": {}})
        with registered_plugin(Plugin(type("Other", (PluginSettings,), {}))):
            with pytest.raises(StartupError, match=r"\[plugins.hook_probe\] declared twice"):
                collect_plugin_settings()
    assert "hook_probe" not in collect_plugin_settings()

    class NotSettings:
        @hookimpl
        def register_plugin_settings(self, register):
            register("x", dict)

    with registered_plugin(NotSettings()), pytest.raises(StartupError, match="not a PluginSettings"):
        collect_plugin_settings()


def test_hook_register_commands():
    class Plugin:
        @hookimpl
        def register_commands(self, cli):
            @cli.command(name="hook-probe-hello")
            @click.argument("who")
            def hello(who):
                click.echo(f"hello {who}")

    try:
        with registered_plugin(Plugin()):
            register_commands(cli)
        result = CliRunner().invoke(cli, ["hook-probe-hello", "Ana"])
        assert result.exit_code == 0 and result.output == "hello Ana\n"
    finally:
        cli.commands.pop("hook-probe-hello", None)


async def test_hook_register_api_routes(make):
    from server_support import AUTH, serving

    class Plugin:
        @hookimpl
        def register_api_routes(self, router):
            @router.get("/hook-probe/{who}")
            def probe_route(who: str, request: Request) -> dict[str, Any]:
                return {"hello": who, "engine": request.app.state.engine is not None}

    with registered_plugin(Plugin()):
        app = make(api={"keys": ["test-key-0123456789abcdef"]})
        async with serving(app) as client:
            anonymous = await client.get("/v1/hook-probe/ana")
            answered = await client.get("/v1/hook-probe/ana", headers=AUTH)
            typo = await client.get("/v1/hook-probe/ana", params={"x": "1"}, headers=AUTH)
    assert anonymous.status_code == 401
    assert answered.status_code == 200 and answered.json() == {"hello": "ana", "engine": True}
    assert typo.status_code == 422


def test_a_plugin_route_cannot_take_a_builtin_path(make):
    from connectzap.core.server import create_app

    class Plugin:
        @hookimpl
        def register_api_routes(self, router):
            router.get("/templates")(lambda: {})

    with registered_plugin(Plugin()), pytest.raises(StartupError, match="GET /v1/templates"):
        create_app(make(api={"keys": ["test-key-0123456789abcdef"]}), run_workers=False)


def test_every_hook_has_a_test():
    tested = {name.removeprefix("test_hook_") for name in globals() if name.startswith("test_hook_")}
    hooks = {name for name in dir(pm.hook) if not name.startswith("_")}
    assert hooks - tested == set(), f"hooks without a test_hook_<name>: {sorted(hooks - tested)}"
    assert tested - hooks == set(), f"tests for hooks that do not exist: {sorted(tested - hooks)}"


# --- `connectzap plugins` with real installed distributions ----------------------------------------

@pytest.fixture
def installed_plugins(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "connectzap-greeter", "1.2.3", "cz_greeter", """
        from connectzap import hookimpl

        @hookimpl
        def on_lead(lead, ctx):
            return None

        @hookimpl
        def on_inbound_message(message):
            return None
    """)
    fake_distribution(site, "connectzap-broken", "0.0.1", "cz_broken", "raise ImportError('needs acme-sdk')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTZAP_", "PYTEST_"))}
    env["PYTHONPATH"] = str(site)
    return env


def _connectzap(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connectzap", *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.slow
def test_plugins_json_lists_distribution_version_hooks_and_errors(installed_plugins):
    done = _connectzap(installed_plugins, "plugins", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    greeter = rows["cz_greeter"]
    assert (greeter["distribution"], greeter["version"], greeter["hooks"], greeter["error"]) == \
        ("connectzap-greeter", "1.2.3", ["on_inbound_message", "on_lead"], None)
    broken = rows["cz_broken"]
    assert broken["distribution"] == "connectzap-broken" and "needs acme-sdk" in broken["error"]
    assert rows["opt_out_keywords"]["distribution"] == "connectzap" and rows["opt_out_keywords"]["error"] is None
    only = json.loads(_connectzap(installed_plugins, "plugins", "--json", "--hook", "on_lead").stdout)
    assert "cz_greeter" in {r["name"] for r in only} and "opt_out_keywords" not in {r["name"] for r in only}


@pytest.mark.slow
def test_plugins_table_shows_the_same(installed_plugins):
    done = _connectzap({**installed_plugins, "COLUMNS": "200"}, "plugins")
    assert done.returncode == 0, done.stderr
    greeter = next(line for line in done.stdout.splitlines() if "cz_greeter" in line)
    assert "connectzap-greeter" in greeter and "1.2.3" in greeter and "on_lead" in greeter
    broken = next(line for line in done.stdout.splitlines() if "cz_broken" in line)
    assert "needs acme-sdk" in broken


def test_installed_plugins_are_not_loaded_under_test():
    assert getattr(sys, "_called_from_test", False) is True
    assert os.environ.get("CONNECTZAP_STRICT_PLUGINS") == "1"
    from connectzap.core.plugins import _autoload_disabled
    assert _autoload_disabled()


# --- CONNECTZAP_TRACE_PLUGINS ------------------------------------------------------------------------

async def test_trace_logs_every_hook_call_without_phones_or_secrets(fake_app, monkeypatch, caplog):
    monkeypatch.setenv("CONNECTZAP_TRACE_PLUGINS", "1")
    caplog.set_level(logging.DEBUG)
    secret = "sk_live_0123456789abcdef"

    class Plugin:
        @hookimpl
        def on_order_created(self, order):
            return None

        @hookimpl
        def on_inbound_message(self, message):
            return None

    order = sample_event("order_created", meta={"api_key": secret, "note": "x"})
    with registered_plugin(Plugin(), "traced"):
        fake_app.ingest([order, sample_event("inbound_message")])
        await Worker(fake_app).run_until_idle()
    traces = [r.getMessage() for r in caplog.records if r.name == "connectzap.hooks" and "traced" in r.getMessage()]
    assert len(traces) == 2 and "on_order_created" in traces[0] and "on_inbound_message" in traces[1]
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for leaked in (PHONE, PHONE.lstrip("+"), secret, "Where is my order?"):
        assert leaked not in everything, f"{leaked!r} appears in the trace"


async def test_trace_is_off_by_default(fake_app, monkeypatch, caplog):
    monkeypatch.delenv("CONNECTZAP_TRACE_PLUGINS", raising=False)
    caplog.set_level(logging.DEBUG)
    calls = []

    class Plugin:
        @hookimpl
        def on_lead(self, lead):
            calls.append(lead.id)

    with registered_plugin(Plugin(), "untraced"):
        fake_app.ingest([sample_event("lead")])
        await Worker(fake_app).run_until_idle()
    assert calls == ["501"]
    assert not [r for r in caplog.records if "untraced" in r.getMessage() and r.name == "connectzap.hooks"]
