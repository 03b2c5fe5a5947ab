"""What the docs run with ``python -m`` works on a plain ``pip install connectzap`` (no extras).

The test extra (pytest, hypothesis, vcrpy...) and the postgres extra are hidden from a
subprocess by an import hook built from connectzap's own metadata, so a module that reaches
for one of them fails here as it would for a user who installed connectzap alone.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from importlib import metadata

import pytest

HIDE = textwrap.dedent("""
    import runpy, sys
    HIDDEN = set(sys.argv[1].split(","))

    class HideExtras:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in HIDDEN:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, HideExtras())
    module = sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
""")


def extra_modules() -> set[str]:
    """Top-level modules that only the optional extras bring."""
    required = metadata.requires("connectzap") or []
    extras = {re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower().replace("_", "-")
              for req in required if "extra ==" in req}
    base = {re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower().replace("_", "-")
            for req in required if "extra ==" not in req}
    only_extras = extras - base
    modules = {module for module, dists in metadata.packages_distributions().items()
               if {d.lower().replace("_", "-") for d in dists} & only_extras}
    return modules | {"_pytest"}


def plain(module: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CONNECTZAP_"))}
    return subprocess.Popen([sys.executable, "-c", HIDE, ",".join(sorted(extra_modules())), module, *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_hook_hides_the_test_extra() -> None:
    hidden = extra_modules()
    assert {"pytest", "hypothesis", "vcr", "psycopg"} <= hidden and "pydantic" not in hidden
    proc = plain("pytest", "--version")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "No module named 'pytest'" in err


@pytest.mark.slow
def test_fake_graph_runs_on_a_plain_install() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = plain("connectzap.testing.fake_graph", "--port", str(port), "--token", "t0k")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if not first:
            pytest.fail(f"fake_graph exited: {proc.wait(timeout=30)} {proc.stderr.read() if proc.stderr else ''}")
        url = json.loads(first)["url"]
        body = json.dumps({"messaging_product": "whatsapp", "to": "4915112345678", "type": "text",
                           "text": {"body": "hi"}}).encode()
        request = urllib.request.Request(f"{url}/v27.0/1234/messages", data=body, method="POST",
                                         headers={"Authorization": "Bearer t0k", "Content-Type": "application/json"})
        for _ in range(100):  # the server binds just after printing its URL
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    sent = json.loads(answer.read())
                break
            except urllib.error.URLError:
                if proc.poll() is not None:
                    raise
                time.sleep(0.1)
        else:
            pytest.fail("fake_graph never answered")
        assert sent["messages"][0]["id"].startswith("wamid.")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
