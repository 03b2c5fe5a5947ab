"""Each guide's "try it offline" walk works exactly as written, as a new user types it.

The guides mark the files a reader saves (``<!-- file: NAME -->`` before a code block) and the
commands they run (``<!-- try -->`` before a ``sh`` block). This test saves those files in an empty
folder and runs those commands, in order, as subprocesses with no network and no credentials;
every command must succeed, and a trailing ``# -> TEXT`` comment is text its output must contain.
``export NAME=VALUE`` lines set the environment of the commands after them. Example files shown
with ``<!-- example: PATH -->`` count as files the reader saves too.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
CONNECTZAP = Path(sys.executable).with_name("connectzap")
FILE = re.compile(r"<!-- (?:file|example): (?:[\w./-]*/)?(?P<name>[\w.-]+) -->\n```\w*\n(?P<text>.*?)```\n", re.S)
TRY = re.compile(r"<!-- try -->\n```sh\n(?P<text>.*?)```\n", re.S)
GUIDES = ["woocommerce.md", "hubspot.md", "generic-webhooks.md", "campaigns.md"]


def steps(text: str) -> list[tuple[str, str | None]]:
    """(command, expected output) for every command of the guide's try blocks."""
    out = []
    for block in TRY.finditer(text):
        for line in block["text"].splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            command, _, expected = line.partition("# -> ")
            out.append((command.split("  #", 1)[0].strip(), expected.strip() or None))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("guide", GUIDES)
def test_the_guide_can_be_tried_offline_as_written(guide: str, tmp_path: Path) -> None:
    text = (DOCS / guide).read_text()
    files = {m["name"]: m["text"] for m in FILE.finditer(text)}
    walk = steps(text)
    assert files and walk, f"docs/{guide} has no offline walk-through"
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTZAP_")}
    env["CONNECTZAP_LOAD_PLUGINS"] = ""  # bundled plugins only, like a fresh install
    for command, expected in walk:
        argv = shlex.split(command)
        if argv[0] == "export":
            name, _, value = argv[1].partition("=")
            env[name] = value
            continue
        assert argv[0] == "connectzap", f"docs/{guide}: {command!r} is not a connectzap command"
        result = subprocess.run([str(CONNECTZAP), *argv[1:]], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, f"docs/{guide}: `{command}` failed:\n{result.stdout}{result.stderr}"
        if expected:
            assert expected in result.stdout, f"docs/{guide}: `{command}` did not print {expected!r}:\n" \
                                              f"{result.stdout}"
