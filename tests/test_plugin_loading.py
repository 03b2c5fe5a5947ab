"""Installed plugins, loaded the way users load them: entry points of installed distributions.

Each test runs the real ``connectzap`` command in a subprocess with a temporary directory on
PYTHONPATH holding tiny distributions (a module plus a ``.dist-info`` with ``entry_points.txt``):
one that works and proposes a message, and one that fails to import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectzap.testing.venvs import fake_distribution

pytestmark = pytest.mark.slow

GOOD = """
from connectzap import TemplateContent, hookimpl

@hookimpl
def on_order_created(order, ctx):
    ctx.send(order.customer, TemplateContent(name="order_confirmation", language="en", body=[order.id]))
"""
BROKEN = "import acme_sdk_that_is_not_installed\n"

EVENT = {"kind": "order_created", "data": {"id": "7", "status": "processing", "customer": {"phone": "+4915112345678"}},
         "consents": [{"phone": "+4915112345678", "category": "utility", "granted": True, "source": "checkout",
                       "proof": "box"}]}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    directory = tmp_path / "site"
    directory.mkdir()
    fake_distribution(directory, "cz-good", "1.2.0", "cz_good", GOOD)
    fake_distribution(directory, "cz-broken", "0.1.0", "cz_broken", BROKEN)
    return directory


def connectzap(site: Path, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CONNECTZAP_"))}
    environment.update(PYTHONPATH=str(site), **env)
    config = tmp_path / "connectzap.toml"
    if not config.exists():
        config.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nquiet = true\n')
    return subprocess.run([sys.executable, "-m", "connectzap", "--config", str(config), *args], env=environment,
                          capture_output=True, text=True, timeout=60, check=False)


def plugin_rows(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_a_broken_plugin_is_reported_and_the_rest_load(site: Path, tmp_path: Path) -> None:
    rows = plugin_rows(connectzap(site, tmp_path, "plugins", "--json"))
    assert rows["cz_good"]["distribution"] == "cz-good" and rows["cz_good"]["version"] == "1.2.0"
    assert rows["cz_good"]["hooks"] == ["on_order_created"] and rows["cz_good"]["error"] is None
    assert "acme_sdk_that_is_not_installed" in str(rows["cz_broken"]["error"])
    assert rows["cz_broken"]["distribution"] == "cz-broken"
    assert "opt_out_keywords" in rows  # bundled plugins load next to installed ones


def test_the_working_plugin_still_delivers_and_health_reports_the_broken_one(site: Path, tmp_path: Path) -> None:
    seed = tmp_path / "seed.py"
    seed.write_text(
        "import json, sys\n"
        "from connectzap import Connectzap, load_settings\n"
        "from connectzap.testing import seed_template\n"
        "app = Connectzap(load_settings(sys.argv[1])).start()\n"
        "seed_template(app, 'order_confirmation', 'Order {{1}} confirmed')\n"
        "health = app.health()\n"
        "print(json.dumps({'ok': health['ok'], 'plugin_errors': health['plugin_errors']}))\n")
    connectzap(site, tmp_path, "doctor")  # writes the config file on first use
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CONNECTZAP_"))}
    done = subprocess.run([sys.executable, str(seed), str(tmp_path / "connectzap.toml")], capture_output=True,
                          text=True, timeout=60, env={**environment, "PYTHONPATH": str(site)}, check=False)
    assert done.returncode == 0, done.stderr
    health = json.loads(done.stdout)
    assert health["ok"] is False and [e["name"] for e in health["plugin_errors"]] == ["cz_broken"]

    event_file = tmp_path / "order.json"
    event_file.write_text(json.dumps(EVENT))
    simulated = connectzap(site, tmp_path, "simulate", str(event_file))
    assert simulated.returncode == 0, simulated.stderr
    assert "WOULD SEND template order_confirmation (en) to " in simulated.stdout
    assert "[cz_good]" in simulated.stdout

    doctor = connectzap(site, tmp_path, "doctor")
    assert doctor.returncode == 0 and "warning: plugin cz_broken" in doctor.stdout


def test_strict_mode_makes_a_broken_plugin_fatal(site: Path, tmp_path: Path) -> None:
    result = connectzap(site, tmp_path, "plugins", "--json", CONNECTZAP_STRICT_PLUGINS="1")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cz_broken" in lines[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize(("allow", "expected"), [("cz_good", {"cz_good"}), ("cz-good", {"cz_good"}),
                                                 ("", set()), ("cz_good,cz_broken", {"cz_good", "cz_broken"})])
def test_allowlist_loads_only_the_named_plugins(site: Path, tmp_path: Path, allow: str, expected: set[str]) -> None:
    rows = plugin_rows(connectzap(site, tmp_path, "plugins", "--json", CONNECTZAP_LOAD_PLUGINS=allow))
    installed = {name for name, row in rows.items() if not row["bundled"]}
    assert installed == expected
    assert ("cz_broken" in expected) == (rows.get("cz_broken", {}).get("error") is not None)
