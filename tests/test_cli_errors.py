"""Errors are one clear line everywhere, with documented exit codes -- the CLI as a user types it
(real `connectzap` processes, a temporary config): bad options, bad numbers, a closed 24-hour
window, unreadable environment variables, an unreachable database or WhatsApp API, a port in
use, and a reader that closes the pipe (`| head -1`)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from connectzap.cli.exits import MEANINGS, ExitCode
from connectzap.testing import seed_template
from connectzap.testing.apps import make_app

CONNECTZAP = Path(sys.executable).with_name("connectzap")
README = Path(__file__).parent.parent / "README.md"
PHONE = "+4915112345678"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A config on SQLite with one approved template, and an opt-in for PHONE."""
    app = make_app(tmp_path, database_url=f"sqlite:///{tmp_path / 'cz.db'}")
    seed_template(app, "order_confirmation", "Order {{1}} is confirmed")
    from connectzap import ConsentChange
    app.set_consent(ConsentChange(phone=PHONE, category="utility", granted=True, source="test", proof="checkbox"))
    app.close()
    (tmp_path / "cz.toml").write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "sqlite:///{tmp_path / "cz.db"}"\n'
                                      '[sandbox]\nquiet = true\n')
    return tmp_path


def connectzap(folder: Path, *args: str, env: dict[str, str] | None = None,
               config: str = "cz.toml") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTZAP_", "PYTEST_"))}
    return subprocess.run([str(CONNECTZAP), "--config", str(folder / config), *args], capture_output=True,
                          text=True, env={**clean, **(env or {})}, timeout=120, cwd=folder)


def one_line(result: subprocess.CompletedProcess[str], code: ExitCode) -> str:
    """The contract: the exit code, nothing on stdout, exactly one `error: ...` line on stderr."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "env", "code", "says"), [
    (["--bogus"], {}, ExitCode.USAGE, "no such option '--bogus' (see 'connectzap --help')"),
    (["sendd", PHONE], {}, ExitCode.USAGE, "no such command 'sendd'"),
    (["send", PHONE], {}, ExitCode.USAGE, "give exactly one of --template or --text"),
    (["events", "list", "--since", "yesterday"], {}, ExitCode.USAGE, "'yesterday' is not a time"),
    (["send", "0151 2345678", "--text", "hi"], {}, ExitCode.ERROR, "--country DE or phones.default_region"),
    (["send", PHONE, "--text", "hi"], {}, ExitCode.REFUSED, "refused: window_closed: the customer has not written"),
    (["send", PHONE, "--template", "order_confirmation"], {}, ExitCode.REFUSED, "refused: param_mismatch"),
    (["messages", "show", "m-nope"], {}, ExitCode.ERROR, "no message m-nope"),
    (["events", "show", "424242"], {}, ExitCode.ERROR, "no event 424242"),
    (["messages", "list"], {"CONNECTZAP_API__KEYS": "not-json-but-a-secret-key"}, ExitCode.ERROR,
     "environment variable CONNECTZAP_API__KEYS cannot be read"),
    (["messages", "list"], {"CONNECTZAP_WORKERS": "{broken"}, ExitCode.ERROR, "CONNECTZAP_WORKERS cannot be read"),
])
def test_every_failure_is_one_error_line_with_its_exit_code(folder, args, env, code, says):
    line = one_line(connectzap(folder, *args, env=env), code)
    assert says in line, line
    assert "not-json-but-a-secret-key" not in line


def test_the_window_closed_refusal_says_what_to_do(folder):
    line = one_line(connectzap(folder, "send", PHONE, "--text", "hello"), ExitCode.REFUSED)
    assert "has not written to you yet" in line and "--template" in line


def test_an_unreachable_database_is_one_line_and_never_shows_its_password(folder):
    url = f"postgresql+psycopg://cz:pw-not-for-eyes@127.0.0.1:{closed_port()}/nowhere"
    for args in (["messages", "list"], ["send", PHONE, "--template", "order_confirmation", "--param", "1"]):
        result = connectzap(folder, *args, env={"CONNECTZAP_DATABASE__URL": url})
        line = one_line(result, ExitCode.UNAVAILABLE)
        assert "database is not reachable" in line and "pw-not-for-eyes" not in line and "queued" not in line


def test_send_to_an_unreachable_whatsapp_api_fails_instead_of_saying_queued(folder):
    (folder / "live.toml").write_text((folder / "cz.toml").read_text() + f"""
[workers]
max_attempts = 3
[connectors.whatsapp]
access_token = "EAAG-token-not-for-eyes"
phone_number_id = "106540352242922"
app_secrets = ["app-secret-not-for-eyes"]
verify_token = "verify"
api_base_url = "http://127.0.0.1:{closed_port()}"
""")
    result = connectzap(folder, "send", PHONE, "--template", "order_confirmation", "--param", "42",
                        config="live.toml")
    line = one_line(result, ExitCode.UNAVAILABLE)
    assert "not sent" in line and "unreachable" in line.lower() and "retries it" in line
    assert "EAAG-token-not-for-eyes" not in line
    queued = connectzap(folder, "send", PHONE, "--template", "order_confirmation", "--param", "42", "--no-wait",
                        config="live.toml")
    assert queued.returncode == 0 and queued.stdout.split()[1] == "queued"  # asked not to wait: it waits queued


def test_serve_on_a_port_in_use_is_one_line(folder):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = connectzap(folder, "serve", "--port", str(port))
    lines = [line for line in result.stderr.splitlines() if not line.startswith(("REST API key",))]
    assert result.returncode == ExitCode.ERROR and len(lines) == 1, result.stderr
    assert lines[0] == f"error: port {port} on 127.0.0.1 is already in use (another connectzap serve?); " \
                       "choose another with --port or api.port"


@pytest.mark.parametrize("args", [["messages", "list", "--limit", "2000"],
                                  ["messages", "list", "--limit", "2000", "--json"], ["plugins"]])
def test_a_reader_closing_the_pipe_ends_quietly(folder, args):
    if args[0] == "messages":
        from connectzap import Connectzap, load_settings
        from connectzap.core.messages import Outgoing, TextContent
        app = Connectzap(load_settings(folder / "cz.toml")).start()
        app.send_many([Outgoing(to=PHONE, content=TextContent(body="x")) for _ in range(1500)])  # all refused
        app.close()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTZAP_", "PYTEST_"))}
    # As typed: `connectzap messages list | head -1`
    shell = subprocess.run(["sh", "-c", f'"{CONNECTZAP}" --config cz.toml {" ".join(args)} | head -1'],
                           capture_output=True, text=True, cwd=folder, env=clean, timeout=120)
    assert shell.returncode == 0 and len(shell.stdout.splitlines()) == 1
    assert shell.stderr == "", shell.stderr  # no BrokenPipeError, no traceback
    # and the exit code of connectzap itself, with the pipe closed after one line
    proc = subprocess.Popen([str(CONNECTZAP), "--config", "cz.toml", *args], cwd=folder, env=clean,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.OK and err == "", err


def test_exit_codes_are_documented_in_help_and_readme(folder):
    shown = connectzap(folder, "--help")
    assert shown.returncode == 0
    readme = README.read_text()
    for code, meaning in MEANINGS.items():
        assert re.search(rf"^\s*{int(code)}\s+{re.escape(meaning)}\s*$", shown.stdout, re.M), meaning
        assert f"| {int(code)} | {meaning} |" in readme, f"README does not document exit code {int(code)}"
