"""`connectzap plugin new NAME` scaffolds a package whose own tests pass as generated."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib

import pytest
from click.testing import CliRunner

from connectzap.cli import cli
from connectzap.core.hooks import register_commands
from connectzap.core.errors import ConfigurationError
from connectzap.scaffold import PluginNames, create
from connectzap.testing.venvs import create_venv, run_package_tests


def test_names_are_derived_consistently():
    names = PluginNames.of("Acme-CRM")
    assert (names.distribution, names.module, names.underscored, names.camel) == \
        ("connectzap-acme-crm", "connectzap_acme_crm", "acme_crm", "AcmeCrm")
    assert PluginNames.of("connectzap-acme_crm") == names


@pytest.mark.parametrize("bad", ["", "1abc", "acme crm", "acme--crm", "acme/../x", "ACME!"])
def test_bad_names_are_refused_with_a_clear_error(bad, tmp_path):
    with pytest.raises(ConfigurationError, match="plugin name"):
        create(bad, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cli_creates_the_package_layout(tmp_path):
    register_commands(cli)
    result = CliRunner().invoke(cli, ["plugin", "new", "acme-crm", "--directory", str(tmp_path), "--author", "Ana"])
    assert result.exit_code == 0, result.output
    root = tmp_path / "connectzap-acme-crm"
    assert "python -m pip install -e '.[test]'" in result.output and "python -m pytest" in result.output
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["name"] == "connectzap-acme-crm"
    assert project["project"]["entry-points"]["connectzap"] == {"acme_crm": "connectzap_acme_crm"}
    assert project["build-system"]["build-backend"] == "hatchling.build"
    assert project["project"]["authors"] == [{"name": "Ana"}]
    for relative in ("README.md", "connectzap_acme_crm/__init__.py", "connectzap_acme_crm/connector.py",
                     "tests/test_conformance.py", "tests/test_acme_crm.py", "tests/payloads/contact_created.json"):
        assert (root / relative).is_file(), relative
    assert "connector_test_class(" in (root / "tests/test_conformance.py").read_text()
    for source in root.rglob("*.py"):
        compile(source.read_text(), str(source), "exec")
        assert "{{" not in source.read_text() and "pluggy" not in source.read_text()
    again = CliRunner().invoke(cli, ["plugin", "new", "acme-crm", "--directory", str(tmp_path)])
    assert again.exit_code == 1 and "already exists" in again.output


@pytest.mark.slow
def test_generated_package_installs_and_its_tests_pass(tmp_path):
    root = create("acme-crm", tmp_path)
    env = create_venv(tmp_path / "venv")
    env.install(root)
    done = run_package_tests(env, root, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
    # Installed for real: connectzap finds it through its entry point (no pytest here, so autoload is on).
    listed = env.run("-m", "connectzap", "plugins", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "acme_crm")
    assert (row["distribution"], row["version"], row["hooks"], row["error"]) == \
        ("connectzap-acme-crm", "0.1.0", ["register_connectors"], None)


@pytest.mark.slow
def test_the_printed_next_steps_work_as_typed(tmp_path):
    """The lines `plugin new` prints, run by a shell in a fresh virtualenv: install with the test
    extra, then the package's tests pass. (Offline: the venv sees this environment's packages and
    pip is told not to reach an index, so nothing is downloaded.)"""
    env = create_venv(tmp_path / "venv")
    made = env.run("-m", "connectzap", "plugin", "new", "acme-crm", "--directory", str(tmp_path / "work"),
                   cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    lines = made.stdout.split("next (in the virtualenv connectzap is installed in):\n", 1)[1].split("\n\n", 1)[0]
    steps = [line.strip() for line in lines.splitlines()]
    assert steps[0].startswith("cd ") and "pip install -e '.[test]'" in steps[1] and steps[-1].endswith("pytest")
    shell_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CONNECTZAP_"))}
    shell_env.pop("PYTHONPATH", None)
    shell_env.update({"PATH": f"{env.root / 'bin'}:{shell_env.get('PATH', '')}", "VIRTUAL_ENV": str(env.root),
                      "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                      "PYTHONDONTWRITEBYTECODE": "1"})
    done = subprocess.run(["bash", "-ec", "\n".join(steps)], cwd=tmp_path, env=shell_env, capture_output=True,
                          text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
    installed = env.run("-c", "import connectzap_acme_crm, sys; print(connectzap_acme_crm.__file__)")
    assert str(tmp_path / "work" / "connectzap-acme-crm") in installed.stdout  # editable: the scaffolded sources
