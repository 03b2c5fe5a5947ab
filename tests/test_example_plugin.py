"""The example external plugin (examples/connectzap-calendly-like) installs and passes its own tests,
conformance suite included, using only connectzap's public API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from connectzap.testing.venvs import create_venv, run_package_tests

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "connectzap-calendly-like"


def test_example_uses_only_the_public_api():
    for source in EXAMPLE.rglob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("connectzap."):
                assert node.module == "connectzap.testing", f"{source.name} imports {node.module}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.startswith("pluggy") for n in names), f"{source.name} imports pluggy"


@pytest.mark.slow
def test_example_installs_and_its_tests_pass(tmp_path):
    env = create_venv(tmp_path / "venv")
    env.install(EXAMPLE)
    done = run_package_tests(env, EXAMPLE, "-p", "no:asyncio", timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
    listed = env.run("-c", "import importlib.metadata as m; "
                           "print([e.value for e in m.entry_points(group='connectzap')])")
    assert "connectzap_calendly_like" in listed.stdout
