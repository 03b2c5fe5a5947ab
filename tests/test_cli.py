"""The command line: each command's happy path, and its error path as one clear line, non-zero, no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connectzap.cli import cli
from connectzap.testing.apps import _postgres_schema_url, drop_postgres_schema

PHONE = "+4915112345678"


@pytest.fixture
def config(backend: str, tmp_path: Path) -> Iterator[Path]:
    url = (_postgres_schema_url(os.environ["CONNECTZAP_TEST_DATABASE_URL"]) if backend == "postgres"
           else f"sqlite:///{tmp_path / 'cz.db'}")
    path = tmp_path / "connectzap.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "{url}"\n[sandbox]\nquiet = true\n'
                    '[api]\nkeys = ["a-long-enough-api-key-for-tests"]\n')
    yield path
    drop_postgres_schema(url)


def run(config: Path | None, *args: str, input: str | None = None) -> Result:
    prefix = ["--config", str(config)] if config else []
    return CliRunner().invoke(cli, [*prefix, *args], input=input)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def one_line_error(result: Result, code: int | None = None) -> str:
    """The error contract: non-zero exit, exactly one line on stderr, no traceback."""
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    # Click's usage errors add its "Usage:" and "Try --help" lines around the one error line.
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and not line.startswith(("Usage:", "Try '"))]
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    return lines[0]


def seed(config: Path) -> None:
    from connectzap import Connectzap, load_settings
    from connectzap.testing import seed_template
    app = Connectzap(load_settings(config)).start()
    seed_template(app, "order_confirmation", "Order {{1}} is confirmed")
    app.close()


# --- init / doctor -------------------------------------------------------------------------

def test_init_writes_a_starter_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "new.toml"
    assert "wrote" in ok(run(None, "init", str(target)))
    assert "[privacy]" in target.read_text()
    assert "exists" in one_line_error(run(None, "init", str(target)))
    ok(run(None, "init", str(target), "--force"))


def test_the_starter_config_passes_doctor(tmp_path: Path) -> None:
    target = tmp_path / "starter.toml"
    ok(run(None, "init", str(target)))
    text = target.read_text().replace('data_dir = ".connectzap"', f'data_dir = "{tmp_path / "d"}"')
    target.write_text(text)
    assert "database: sqlite (reachable)" in ok(run(target, "doctor"))


def test_doctor_happy_and_error_paths(config: Path, tmp_path: Path) -> None:
    out = ok(run(config, "doctor"))
    assert "reachable" in out and out.strip().endswith("ok")
    assert "config file not found" in one_line_error(run(tmp_path / "missing.toml", "doctor"), 1)
    broken = tmp_path / "broken.toml"
    broken.write_text("data_dir = [unclosed\n")
    assert "not valid TOML" in one_line_error(run(broken, "doctor"), 1)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[workers]\nmax_attemps = 3\n")
    assert "workers.max_attemps" in one_line_error(run(unknown, "doctor"), 1)


def test_a_connector_enabled_without_its_secret_refuses_to_start(config: Path) -> None:
    text = config.read_text() + '[connectors.whatsapp]\naccess_token = "EAAG-secret-token"\nphone_number_id = "1"\n' \
        'verify_token = "v"\n'
    config.write_text(text)
    line = one_line_error(run(config, "doctor"), 1)
    assert "app_secrets" in line and "EAAG-secret-token" not in line


# --- worker ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_worker_starts_and_stops_cleanly_on_sigterm(config: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CONNECTZAP_"))}
    proc = subprocess.Popen([sys.executable, "-m", "connectzap", "--config", str(config), "worker"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        assert "running on" in line, line
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_worker_with_a_bad_config_is_one_line(tmp_path: Path) -> None:
    assert "config file not found" in one_line_error(run(tmp_path / "nope.toml", "worker"), 1)


# --- send ------------------------------------------------------------------------------------

def test_send_refusal_then_success(config: Path) -> None:
    seed(config)
    refused = run(config, "send", PHONE, "--template", "order_confirmation", "--param", "42")
    assert one_line_error(refused, 3).startswith("error: refused: no_consent")
    ok(run(config, "consent", "grant", PHONE, "utility", "--proof", "checkbox"))
    out = ok(run(config, "send", PHONE, "--template", "order_confirmation", "--param", "42", "--key", "k1"))
    message_id, status = out.split()[:2]
    assert status == "delivered"
    again = ok(run(config, "send", PHONE, "--template", "order_confirmation", "--param", "42", "--key", "k1"))
    assert again.split()[0] == message_id  # same key, same message
    assert one_line_error(run(config, "send", PHONE, "--text", "hello"), 3).startswith("error: refused: window_closed")
    mismatch = run(config, "send", PHONE, "--template", "order_confirmation")
    assert one_line_error(mismatch, 3).startswith("error: refused: param_mismatch")


def test_send_usage_and_input_errors(config: Path) -> None:
    assert "exactly one of --template or --text" in one_line_error(run(config, "send", PHONE), 2)
    assert "--named takes NAME=VALUE" in one_line_error(
        run(config, "send", PHONE, "--template", "x", "--named", "oops"), 2)
    assert "not a valid phone number" in one_line_error(run(config, "send", "12", "--text", "hi"), 1)


# --- consent -----------------------------------------------------------------------------------

def test_consent_grant_revoke_show(config: Path) -> None:
    assert "granted" in ok(run(config, "consent", "grant", PHONE, "marketing", "--proof", "newsletter box"))
    assert "(unchanged)" in ok(run(config, "consent", "grant", PHONE, "marketing", "--proof", "newsletter box"))
    assert "revoked" in ok(run(config, "consent", "revoke", PHONE, "marketing"))
    shown = ok(run(config, "consent", "show", PHONE))
    assert shown.splitlines()[1].split()[:3] == ["marketing", "whatsapp", "revoked"]  # under the header row
    history = ok(run(config, "consent", "show", "0151 12345678", "--country", "DE", "--history"))
    # The repeated grant is "(unchanged)" but kept: it moves the deciding time on (core.consent.record).
    assert [line.split()[2] for line in history.splitlines()[1:]] == ["granted", "granted", "revoked"]
    assert "no consent on record" in ok(run(config, "consent", "show", "+12025550123"))
    assert PHONE not in shown + history
    assert one_line_error(run(config, "consent", "grant", PHONE, "spam", "--proof", "x"), 2)
    assert "--proof" in one_line_error(run(config, "consent", "grant", PHONE, "utility"), 2)


def test_consent_import_names_bad_rows_and_export_has_no_numbers(config: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "consents.csv"
    csv_file.write_text("phone,category,granted,source,proof\n"
                        f"{PHONE},marketing,yes,shop,newsletter box\n"
                        "not-a-phone,marketing,yes,shop,box\n"
                        "0151 23456789,utility,true,shop,checkout\n"
                        f"{PHONE},lottery,yes,shop,box\n")
    strict = run(config, "consent", "import", str(csv_file), "--country", "DE")
    assert strict.exit_code == 1 and strict.stdout == ""
    assert [line.split(": ")[1] for line in strict.stderr.splitlines()[:-1]] == ["line 3", "line 5"]
    assert ok(run(config, "consent", "export")).strip().splitlines()[1:] == []
    result = run(config, "consent", "import", str(csv_file), "--country", "DE", "--skip-invalid")
    assert result.exit_code == 0
    assert result.stdout.strip() == "imported 2, already recorded 0, skipped 2 bad lines"
    exported = ok(run(config, "consent", "export"))
    rows = exported.strip().splitlines()
    assert rows[0].startswith("contact_key,hash_key_id,category,granted") and len(rows) == 3
    for number in (PHONE, "4915112345678", "15123456789", "151 23456789"):
        assert number not in exported
    bad = tmp_path / "bad.csv"
    bad.write_text("number,consent\n1,2\n")
    assert "unknown columns 'number', 'consent'" in one_line_error(run(config, "consent", "import", str(bad)), 1)


# --- messages / events / plugins -------------------------------------------------------------------

def test_messages_list_and_show(config: Path) -> None:
    seed(config)
    assert ok(run(config, "messages", "list")).strip() == "no messages"
    ok(run(config, "consent", "grant", PHONE, "utility", "--proof", "checkbox"))
    message_id = ok(run(config, "send", PHONE, "--template", "order_confirmation", "--param", "42")).split()[0]
    listed = ok(run(config, "messages", "list", "--phone", PHONE))
    assert message_id in listed and "order_confirmation" in listed
    shown = json.loads(ok(run(config, "messages", "show", message_id, "--json")))
    assert shown["id"] == message_id and shown["recipient"] is None and shown["content"] is None  # erased
    assert "no message" in one_line_error(run(config, "messages", "show", "m-nope"), 1)


def test_events_dead_and_retry_when_empty(config: Path) -> None:
    assert ok(run(config, "events", "dead")).strip() == "no dead letters"
    assert ok(run(config, "events", "retry", "1")).startswith("nothing to retry")
    assert one_line_error(run(config, "events", "retry", "abc"), 2)


def test_plugins_lists_the_bundled_ones(config: Path) -> None:
    rows = json.loads(ok(run(config, "plugins", "--json")))
    assert {"opt_out_keywords"} <= {r["name"] for r in rows}
    assert "opt_out_keywords" in ok(run(config, "plugins"))


# --- simulate ----------------------------------------------------------------------------------

def test_simulate_good_invalid_json_and_invalid_event(config: Path, tmp_path: Path) -> None:
    seed(config)
    good = tmp_path / "send.json"
    good.write_text(json.dumps([
        {"kind": "send", "data": {"to": PHONE, "content": {"type": "template", "name": "order_confirmation",
                                                           "language": "en", "body": ["42"]}}},
        {"kind": "inbound_message", "data": {"wamid": "wamid.sim", "type": "text", "timestamp": "2025-01-01T00:00:00Z",
                                             "contact": {"phone": PHONE}, "text": "hi"}},
    ]))
    out = ok(run(config, "simulate", str(good)))
    assert "REFUSED template order_confirmation" in out and "no_consent" in out
    assert "simulation only: nothing was sent" in out
    ok(run(config, "consent", "grant", PHONE, "utility", "--proof", "checkbox"))
    assert "REFUSED template order_confirmation" in ok(run(config, "simulate", str(good)))
    assert "WOULD SEND template order_confirmation" in ok(run(config, "simulate", "--real-consent", str(good)))

    not_json = tmp_path / "bad.json"
    not_json.write_text("{kind: order_created")
    assert "not valid JSON" in one_line_error(run(config, "simulate", str(not_json)), 1)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"kind": "order_created", "data": {"status": "x"}}))
    assert one_line_error(run(config, "simulate", str(wrong)), 1).startswith("error: event 0:")
    unknown_kind = tmp_path / "kind.json"
    unknown_kind.write_text(json.dumps({"kind": "teleport", "data": {}}))
    assert "event 0" in one_line_error(run(config, "simulate", str(unknown_kind)), 1)
    assert one_line_error(run(config, "simulate", str(tmp_path / "absent.json")), 2)
