"""One way to show results, for bundled and plugin commands alike: a table with a header row (one
line per row when piped), JSON with ISO 8601 times, and a progress bar only on a terminal."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from connectzap.cli.output import Column, TimeParam, emit, json_option, progress, track
from connectzap.testing import seed_template
from connectzap.testing.apps import make_app

CONNECTZAP = Path(sys.executable).with_name("connectzap")
WHEN = datetime(2026, 1, 31, 12, 0, 5, tzinfo=UTC)


@click.command()
@json_option
@click.option("--one", is_flag=True)
def things(as_json: bool, one: bool) -> None:
    rows = [{"name": "a very long name that a narrow terminal would wrap " * 3, "at": WHEN, "n": 1, "gone": None},
            {"name": "b", "at": WHEN, "n": 2, "gone": None}]
    emit(rows[1] if one else list(track(rows, "things")), as_json,
         columns=[Column("name"), Column("when", "at"), Column("n"), Column("twice", lambda r: r["n"] * 2),
                  Column("gone")], empty="no things")


def test_piped_tables_have_a_header_and_one_line_per_row():
    result = CliRunner().invoke(things, [])
    assert result.exit_code == 0, result.output
    header, first, second = result.stdout.splitlines()
    assert header.split() == ["name", "when", "n", "twice", "gone"]
    assert first.endswith("2026-01-31 12:00:05  1  2      -") and second.split()[:1] == ["b"]
    assert all(line == line.rstrip() for line in result.stdout.splitlines())


def test_json_has_iso_times_and_a_show_is_a_field_list():
    rows = json.loads(CliRunner().invoke(things, ["--json"]).stdout)
    assert rows[1] == {"name": "b", "at": "2026-01-31T12:00:05Z", "n": 2, "gone": None}
    shown = CliRunner().invoke(things, ["--one"]).stdout.splitlines()
    assert shown[0].split() == ["field", "value"] and shown[2].split() == ["when", "2026-01-31", "12:00:05"]


def test_an_empty_listing_says_so():
    @click.command()
    @json_option
    def nothing(as_json: bool) -> None:
        emit([], as_json, empty="no things")
    assert CliRunner().invoke(nothing, []).stdout == "no things\n"
    assert json.loads(CliRunner().invoke(nothing, ["--json"]).stdout) == []


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_only(monkeypatch):
    quiet = io.StringIO()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert list(track(range(3), "importing")) == [0, 1, 2]
    assert quiet.getvalue() == ""
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress("importing rows", total=20_000) as bar:
        bar.advance(20_000)
    assert "importing rows" in terminal.getvalue()


@pytest.mark.parametrize(("raw", "expected"), [
    ("2026-01-31", datetime(2026, 1, 31, tzinfo=UTC).timestamp()),
    ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC).timestamp()),
    ("2026-01-31T14:00:00+02:00", datetime(2026, 1, 31, 12, tzinfo=UTC).timestamp()),
])
def test_times_are_iso_8601_or_an_age(raw, expected):
    assert TimeParam().convert(raw, None, None) == expected
    ago = datetime.now(UTC).timestamp() - TimeParam().convert("2h", None, None)
    assert 7190 < ago < 7210
    with pytest.raises(click.BadParameter):
        TimeParam().convert("last tuesday", None, None)


def test_messages_list_and_show_as_a_user_reads_them(tmp_path):
    app = make_app(tmp_path, database_url=f"sqlite:///{tmp_path / 'cz.db'}")
    seed_template(app, "order_confirmation", "Order {{1}} is confirmed")
    from connectzap.core.messages import Outgoing, TemplateContent
    [decision] = app.send_many([Outgoing(to="+4915112345678", content=TemplateContent(
        name="order_confirmation", language="en", body=["42"]))])
    app.close()
    config = tmp_path / "cz.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "sqlite:///{tmp_path / "cz.db"}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTZAP_")}

    def run(*args: str) -> str:
        done = subprocess.run([str(CONNECTZAP), "--config", str(config), *args], capture_output=True, text=True,
                              env=env, timeout=60)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        return done.stdout

    header, row = run("messages", "list").splitlines()
    assert header.split() == ["id", "created", "status", "on", "to", "message", "reason", "scheduled"]
    assert row.split()[0] == decision.id and "whatsapp" in row.split() and "no_consent" in row
    [listed] = json.loads(run("messages", "list", "--json"))
    assert listed["id"] == decision.id and datetime.fromisoformat(listed["created_at"]).tzinfo is not None
    shown = run("messages", "show", decision.id)
    assert "reason" in shown and "no_consent" in shown and "no utility opt-in" in shown
    assert json.loads(run("messages", "show", decision.id, "--json"))["reason"] == "no_consent"
