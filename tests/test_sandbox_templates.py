"""Templates on the sandbox: checked as Meta checks them, PENDING until the review ends, and the
outcome arriving as the event Meta's status webhook makes -- so the cache changes through the
normal path. Also: `templates delete` asks first, `profile set` enforces Meta's limits, and no
listing suggests a command that cannot work."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from connectzap.connectors.whatsapp import sandbox_templates, template_rules, webhooks
from connectzap.core import clock
from connectzap.core import templates as cache
from connectzap.core.errors import ConflictError, PayloadError
from connectzap.core.store.schema import events
from connectzap.testing import run as run_workers

CONNECTZAP = Path(sys.executable).with_name("connectzap")

ORDER_CONFIRMATION: dict[str, Any] = {
    "name": "order_confirmation", "language": "en", "category": "UTILITY",
    "components": [{"type": "BODY", "text": "Hi {{1}}, we received order {{2}} for {{3}}.",
                    "example": {"body_text": [["Ana", "1042", "45.90 EUR"]]}}]}


def with_changes(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(changes)
    return out


def body(text: str, example: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    component: dict[str, Any] = {"type": "BODY", "text": text, **extra}
    if example is not None:
        component["example"] = {"body_text": [example]}
    return component


# --- Meta's rules -----------------------------------------------------------------------------

REFUSED = [
    ({"name": "Order Confirmation"}, "name"),
    ({"language": "english"}, "language"),
    ({"category": "TRANSACTIONAL"}, "category"),
    ({"components": []}, "components"),
    ({"components": [body("Hi {{1}}, thanks.")]}, "BODY.example.body_text"),
    ({"components": [body("Hi {{1}}, order {{3}}.", ["a", "b"])]}, "BODY.text"),
    ({"components": [body("{{1}} is confirmed.", ["42"])]}, "BODY.text"),
    ({"components": [body("Confirmed: {{1}}", ["42"])]}, "BODY.text"),
    ({"components": [body("Hi {{first_name}}.", ["Ana"])]}, "BODY.text"),
    ({"components": [body("x" * 1025)]}, "BODY.text"),
    ({"components": [body("Hi."), {"type": "FOOTER", "text": "x" * 61}]}, "FOOTER.text"),
    ({"components": [body("Hi."), {"type": "HEADER", "format": "TEXT", "text": "Order {{1}} and {{2}}",
                                   "example": {"header_text": ["1", "2"]}}]}, "HEADER.text"),
    ({"components": [body("Hi."), {"type": "HEADER", "format": "IMAGE"}]}, "HEADER.example.header_handle"),
    ({"components": [body("Hi."), {"type": "BUTTONS", "buttons": [
        {"type": "QUICK_REPLY", "text": "x" * 26}]}]}, "BUTTONS.buttons.0.text"),
    ({"components": [body("Hi."), {"type": "BUTTONS", "buttons": [
        {"type": "QUICK_REPLY", "text": "Yes"}, {"type": "URL", "text": "Track", "url": "https://t.example/x"},
        {"type": "QUICK_REPLY", "text": "No"}]}]}, "BUTTONS.buttons"),
    ({"components": [body("Hi."), {"type": "BUTTONS", "buttons": [
        {"type": "URL", "text": "Track", "url": "https://t.example/{{1}}"}]}]}, "BUTTONS.buttons.0.example"),
    ({"components": [body("Hi."), {"type": "BUTTONS", "buttons": [
        {"type": "QUICK_REPLY", "text": str(n)} for n in range(11)]}]}, "BUTTONS.buttons"),
    ({"parameter_format": "NAMED", "components": [body("Hi {{First}}, thanks.")]}, "BODY.text"),
    ({"parameter_format": "NAMED", "components": [
        {"type": "BODY", "text": "Hi {{first_name}}, thanks.",
         "example": {"body_text_named_params": [{"param_name": "name", "example": "Ana"}]}}]},
     "BODY.example.body_text_named_params"),
]


@pytest.mark.parametrize(("changes", "field"), REFUSED, ids=[f for _, f in REFUSED])
def test_what_meta_refuses_at_creation_is_one_error_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(PayloadError) as refused:
        template_rules.check(with_changes(ORDER_CONFIRMATION, **changes))
    assert refused.value.field == field
    assert "\n" not in refused.value.message


def _buttons(kind: str, n: int) -> dict[str, Any]:
    extra = {"PHONE_NUMBER": {"phone_number": "+15550001111"}, "URL": {"url": "https://t.example/x"}}[kind]
    return {"type": "BUTTONS", "buttons": [{"type": kind, "text": f"Go {n}", **extra} for n in range(n)]}


COUNTED = [
    ([body("Hi {{1}}, thanks.")], "give 1 example value: "),
    ([body("Hi {{1}}, order {{2}} ships.")], "give 2 example values: "),
    ([body("Hi."), _buttons("PHONE_NUMBER", 2)], "at most 1 PHONE_NUMBER button"),
    ([body("Hi."), _buttons("URL", 3)], "at most 2 URL buttons"),
]


@pytest.mark.parametrize(("components", "said"), COUNTED, ids=[s for _, s in COUNTED])
def test_counts_in_refusals_agree_in_number(components: list[dict[str, Any]], said: str) -> None:
    with pytest.raises(PayloadError) as refused:
        template_rules.check(with_changes(ORDER_CONFIRMATION, components=components))
    assert said in refused.value.message and "(s)" not in refused.value.message


def test_valid_templates_pass_and_adjacent_parameters_fail_review() -> None:
    named = with_changes(ORDER_CONFIRMATION, parameter_format="NAMED", components=[
        {"type": "HEADER", "format": "TEXT", "text": "Order {{number}}",
         "example": {"header_text_named_params": [{"param_name": "number", "example": "1042"}]}},
        {"type": "BODY", "text": "Hi {{first_name}}, it ships today.",
         "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]}},
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
        {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://t.example/{{1}}",
                                         "example": ["https://t.example/abc"]},
                                        {"type": "QUICK_REPLY", "text": "Stop"}]}])
    assert template_rules.check(ORDER_CONFIRMATION) == template_rules.Review()
    assert template_rules.check(named) == template_rules.Review()
    adjacent = with_changes(ORDER_CONFIRMATION, components=[body("Hi {{1}}{{2}}, thanks.", ["a", "b"])])
    review = template_rules.check(adjacent)
    assert (review.status, review.reason) == ("REJECTED", "INVALID_FORMAT")


@given(st.text(max_size=40))
def test_a_name_is_accepted_exactly_when_it_is_lowercase_letters_digits_and_underscores(name: str) -> None:
    valid = bool(name) and all(c in "abcdefghijklmnopqrstuvwxyz0123456789_" for c in name)
    try:
        template_rules.check(with_changes(ORDER_CONFIRMATION, name=name))
    except PayloadError as exc:
        assert not valid and exc.field == "name"
    else:
        assert valid


@given(st.integers(min_value=2, max_value=8), st.sampled_from(["", " ", "  ", ", ", " and ", " - "]))
def test_parameters_pass_review_exactly_when_text_or_punctuation_separates_them(count: int, separator: str) -> None:
    text = "Hi " + separator.join(f"{{{{{n}}}}}" for n in range(1, count + 1)) + " done."
    definition = with_changes(ORDER_CONFIRMATION, components=[body(text, [f"v{n}" for n in range(count)])])
    review = template_rules.check(definition)
    assert review.status == ("APPROVED" if separator.strip() else "REJECTED")


# --- the sandbox's review, through the normal path --------------------------------------------

def cached(app: Any, name: str) -> list[Any]:
    with app.db.read() as conn:
        return [t for t in cache.all_templates(conn) if t.name == name]


def test_a_sandbox_template_is_pending_until_its_review_event_is_handled(make: Any) -> None:
    app = make(sandbox={"quiet": True, "template_approval_seconds": 60})
    start = time.time()
    with clock.use_clock(lambda: start):
        created = sandbox_templates.create(app, ORDER_CONFIRMATION)
        run_workers(app)
        assert [(t.status, t.waba_id) for t in cached(app, "order_confirmation")] == [("PENDING", "sandbox")]
        with pytest.raises(ConflictError):
            sandbox_templates.create(app, ORDER_CONFIRMATION)
    # The event is the one Meta's webhook makes: the same parser, a real status-update body.
    with app.db.read() as conn:
        (payload,) = conn.execute(select(events.c.payload).where(events.c.kind == "template_update")).one()
    expected = webhooks.parse_body(sandbox_templates.status_update_body(created, created.review_at))
    assert json.loads(payload)["data"] == expected[0].data
    assert expected[0].data["status"] == "APPROVED" and expected[0].source == "whatsapp"
    with clock.use_clock(lambda: start + 61):
        run_workers(app)
    assert [t.status for t in cached(app, "order_confirmation")] == ["APPROVED"]


def test_a_template_with_adjacent_parameters_is_rejected_with_metas_reason(make: Any) -> None:
    app = make(sandbox={"quiet": True, "template_approval_seconds": 0}, privacy={"retention_hours": 1})
    adjacent = with_changes(ORDER_CONFIRMATION, name="promo",
                            components=[body("Hi {{1}}{{2}}, thanks.", ["a", "b"])])
    sandbox_templates.create(app, adjacent)
    run_workers(app)
    assert [t.status for t in cached(app, "promo")] == ["REJECTED"]
    with app.db.read() as conn:
        (payload,) = conn.execute(select(events.c.payload).where(events.c.kind == "template_update")).one()
    data = json.loads(payload)["data"]
    assert data["reason"] == "INVALID_FORMAT" and "next to each other" in data["rejection_info"]["reason"]


def test_sync_copies_the_sandbox_and_a_live_sync_drops_its_templates(make: Any) -> None:
    from connectzap.connectors.whatsapp import templates_api
    from connectzap.connectors.whatsapp.client import GraphClient
    from connectzap.connectors.whatsapp.settings import WhatsAppSettings
    from connectzap.testing.fake_graph import FakeGraph
    app = make(sandbox={"quiet": True, "template_approval_seconds": 0})
    sandbox_templates.create(app, ORDER_CONFIRMATION)
    assert sandbox_templates.sync(app) == (1, 0)
    assert [t.status for t in cached(app, "order_confirmation")] == ["APPROVED"]
    with FakeGraph(token="t") as fake:
        settings = WhatsAppSettings(access_token="t", phone_number_id="1", waba_id="w", app_secrets=["s"],
                                    verify_token="v", api_base_url=fake.url)

        async def live_sync() -> tuple[int, int]:
            client = GraphClient(settings)
            try:
                return await templates_api.sync(client, app)
            finally:
                await client.aclose()
        import asyncio
        assert asyncio.run(live_sync()) == (0, 1)
    assert cached(app, "order_confirmation") == []


# --- the commands, as typed ---------------------------------------------------------------------

def cli(config: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONNECTZAP_LOAD_PLUGINS": ""}
    return subprocess.run([str(CONNECTZAP), "--config", str(config), *args], capture_output=True, text=True,
                          input=input, env=env, timeout=120)


@pytest.fixture
def sandbox_config(tmp_path: Path) -> Path:
    config = tmp_path / "connectzap.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nquiet = true\ntemplate_approval_seconds = 0\n')
    return config


def test_templates_on_the_sandbox_from_the_command_line(sandbox_config: Path, tmp_path: Path) -> None:
    empty = cli(sandbox_config, "templates", "list")
    assert empty.stdout.strip() == "no templates cached; create one on the sandbox: connectzap templates create FILE"
    definition = tmp_path / "order_confirmation.json"
    definition.write_text(json.dumps(ORDER_CONFIRMATION))
    created = cli(sandbox_config, "templates", "create", str(definition))  # the command the hint named
    assert created.returncode == 0, created.stderr
    assert "created order_confirmation (en) on the sandbox: PENDING, UTILITY" in created.stdout
    listed = cli(sandbox_config, "templates", "list").stdout
    assert "PENDING" in listed and "run `connectzap templates sync`" in listed
    assert "synced 1 template from the sandbox" in cli(sandbox_config, "templates", "sync").stdout
    assert "APPROVED" in cli(sandbox_config, "templates", "list").stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(with_changes(ORDER_CONFIRMATION, name="Bad Name")))
    refused = cli(sandbox_config, "templates", "create", str(bad))
    assert refused.returncode == 1
    assert refused.stderr.strip() == "error: name: use 1 to 512 lowercase letters, digits and underscores"


def test_templates_delete_asks_first(sandbox_config: Path, tmp_path: Path) -> None:
    definition = tmp_path / "order_confirmation.json"
    definition.write_text(json.dumps(ORDER_CONFIRMATION))
    assert cli(sandbox_config, "templates", "create", str(definition)).returncode == 0
    kept = cli(sandbox_config, "templates", "delete", "order_confirmation", input="n\n")
    assert kept.returncode == 1 and "Delete template order_confirmation" in kept.stderr
    assert "order_confirmation" in cli(sandbox_config, "templates", "list").stdout
    gone = cli(sandbox_config, "templates", "delete", "order_confirmation", "--yes")
    assert gone.returncode == 0 and "deleted order_confirmation from the sandbox" in gone.stdout
    assert "no templates cached" in cli(sandbox_config, "templates", "list").stdout


def test_a_live_config_without_waba_id_is_told_what_to_set(tmp_path: Path) -> None:
    config = tmp_path / "live.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[connectors.whatsapp]\naccess_token = "t"\n'
                      'phone_number_id = "1"\napp_secrets = ["s"]\nverify_token = "v"\n')
    listed = cli(config, "templates", "list").stdout.strip()
    assert listed == ("no templates cached; set waba_id in [connectors.whatsapp], then run: "
                      "connectzap templates sync")


PROFILE_LIMITS = [
    (["--about", "x" * 140], "error: profile about must be 1 to 139 characters, got 140"),
    (["--about", "   "], "error: profile about must be 1 to 139 characters, got 0"),
    (["--description", "x" * 513], "error: profile description must be 1 to 512 characters, got 513"),
    (["--address", "x" * 257], "error: profile address must be 1 to 256 characters, got 257"),
    (["--email", "not-an-address"], "error: profile email is not a valid email address"),
    (["--website", "https://a.example", "--website", "https://b.example", "--website", "https://c.example"],
     "error: a profile has at most 2 websites, got 3"),
    (["--website", "shop.example"],
     "error: profile website 'shop.example' must start with http:// or https:// and be at most 256 characters"),
    (["--vertical", "shop"], "error: profile vertical 'SHOP' is not one of Meta's: "),
]


@pytest.mark.parametrize(("args", "error"), PROFILE_LIMITS, ids=[e[:40] for _, e in PROFILE_LIMITS])
def test_profile_set_enforces_metas_limits_in_one_line(tmp_path: Path, args: list[str], error: str) -> None:
    from click.testing import CliRunner

    from connectzap.cli import _install_plugin_commands
    from connectzap.cli import cli as root
    from connectzap.testing.fake_graph import FakeGraph
    with FakeGraph(token="t") as fake:
        config = tmp_path / "live.toml"
        config.write_text(f'data_dir = "{tmp_path / "data"}"\n[connectors.whatsapp]\naccess_token = "t"\n'
                          f'phone_number_id = "1"\napp_secrets = ["s"]\nverify_token = "v"\n'
                          f'api_base_url = "{fake.url}"\n')
        _install_plugin_commands()
        result = CliRunner().invoke(root, ["--config", str(config), "profile", "set", *args])
        assert result.exit_code == 1
        assert result.stderr.startswith(error) and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert fake.requests == []  # refused before anything was sent
