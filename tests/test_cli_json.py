"""Every listing and show command takes ``--json`` (times in ISO 8601) and prints a table with a
header row without it: the whole command tree is walked, and each command gets a real run."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import pytest

from connectzap.cli import _install_plugin_commands, cli
from connectzap.testing.fake_graph import FakeGraph

CONNECTZAP = Path(sys.executable).with_name("connectzap")
PHONE = "+4915112345678"

ORDER_CONFIRMATION = {
    "name": "order_confirmation", "language": "en", "category": "UTILITY",
    "components": [{"type": "BODY", "text": "Hi {{1}}, we received order {{2}}.",
                    "example": {"body_text": [["Ana", "1042"]]}}]}


def leaves(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += leaves(command, (*path, name))
        else:
            found.append((" ".join((*path, name)), command))
    return found


ALWAYS_JSON = {"webhook test": "a dry run whose only output is the events as JSON (docs/generic-webhooks.md)"}


def is_listing_or_show(name: str, command: click.Command) -> bool:
    """A command people read results from: named list/show, or whose help starts so."""
    first = (command.help or "").split(maxsplit=1)[:1]
    return name not in ALWAYS_JSON and (name.split()[-1] in ("list", "show") or first in (["List"], ["Show"]))


def test_every_listing_and_show_command_takes_json():
    _install_plugin_commands()  # the connectors' commands (templates, profile, webhooks, ...) too
    commands = [(name, c) for name, c in leaves(cli) if is_listing_or_show(name, c)]
    # The walk itself is checked: it found the commands this test exists for.
    assert {"consent show", "templates list", "templates show", "profile show", "events list",
            "messages list"} <= {name for name, _ in commands}
    missing = [name for name, c in commands
               if not any("--json" in getattr(p, "opts", ()) for p in c.params)]
    assert not missing, f"listing/show commands without --json: {missing}"


def test_the_walk_catches_a_show_command_without_json():
    @click.group()
    def root() -> None: ...

    @root.command("show")
    def bare() -> None:
        """Show something."""
    assert [name for name, c in leaves(root) if is_listing_or_show(name, c)
            and not any("--json" in getattr(p, "opts", ()) for p in c.params)] == ["show"]


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(CONNECTZAP), "--config", str(config), *args], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done


def iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None and parsed.utcoffset().total_seconds() == 0, value  # type: ignore[union-attr]
    return parsed


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "connectzap.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nquiet = true\ntemplate_approval_seconds = 0\n')
    return path


def test_consent_show_json_and_table(config: Path):
    run(config, "consent", "grant", PHONE, "marketing", "--proof", "newsletter box")
    run(config, "consent", "revoke", PHONE, "marketing")
    current = json.loads(run(config, "consent", "show", PHONE, "--json").stdout)
    assert [(r["category"], r["granted"], r["source"]) for r in current] == [("marketing", False, "cli")]
    iso(current[0]["at"])
    assert PHONE.lstrip("+") not in json.dumps(current)  # the ledger's keyed hash, never the number
    history = json.loads(run(config, "consent", "show", PHONE, "--history", "--json").stdout)
    assert [r["granted"] for r in history] == [True, False] and history[0]["proof"] == "newsletter box"
    assert iso(history[0]["at"]) <= iso(history[1]["at"])
    table = run(config, "consent", "show", PHONE, "--history").stdout.splitlines()
    assert table[0].split() == ["category", "medium", "consent", "since", "source", "proof"]
    assert [line.split()[1:3] for line in table[1:]] == [["whatsapp", "granted"], ["whatsapp", "revoked"]]
    assert json.loads(run(config, "consent", "show", "+12025550123", "--json").stdout) == []


def test_templates_list_and_show_json_and_table(config: Path, tmp_path: Path):
    assert json.loads(run(config, "templates", "list", "--json").stdout) == []
    definition = tmp_path / "order_confirmation.json"
    definition.write_text(json.dumps(ORDER_CONFIRMATION))
    run(config, "templates", "create", str(definition))
    pending = run(config, "templates", "list", "--json")
    # stdout stays parseable JSON; the sandbox's review note goes to stderr then
    assert [(t["name"], t["status"]) for t in json.loads(pending.stdout)] == [("order_confirmation", "PENDING")]
    assert "templates sync" in pending.stderr
    run(config, "templates", "sync")
    listed = run(config, "templates", "list").stdout.splitlines()
    assert listed[0].split() == ["name", "language", "status", "category", "parameters"]
    assert listed[1].split() == ["order_confirmation", "en", "APPROVED", "UTILITY", "POSITIONAL"]
    shown = json.loads(run(config, "templates", "show", "order_confirmation", "--json").stdout)
    assert shown[0]["components"][0]["text"] == ORDER_CONFIRMATION["components"][0]["text"]  # type: ignore[index]
    table = run(config, "templates", "show", "order_confirmation").stdout.splitlines()
    assert table[0].split() == ["field", "value"]
    assert any(line.split()[:2] == ["body", "Hi"] for line in table)


@pytest.fixture
def fake() -> Any:
    with FakeGraph(token="cli-token") as server:
        server.profile.update({"about": "Fresh bread daily", "websites": ["https://example.com"]})
        yield server


def test_profile_show_json_and_table(tmp_path: Path, fake: Any):
    config = tmp_path / "live.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[connectors.whatsapp]\naccess_token = "cli-token"\n'
                      f'phone_number_id = "1065"\napp_secrets = ["s"]\nverify_token = "v"\n'
                      f'api_base_url = "{fake.url}"\n')
    shown = json.loads(run(config, "profile", "show", "--json").stdout)
    assert shown["about"] == "Fresh bread daily" and shown["websites"] == ["https://example.com"]
    table = run(config, "profile", "show").stdout.splitlines()
    assert table[0].split() == ["field", "value"]
    assert ["about", "Fresh", "bread", "daily"] in [line.split() for line in table]
