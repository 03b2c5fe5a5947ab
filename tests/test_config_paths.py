"""Relative paths in a config file mean "next to the file", whichever directory a command runs in.

A cron job started from ``/`` or ``$HOME`` must find the database and the hash key that ``serve``
uses; before this, it silently created a second ``.connectzap`` (a new database and a new key,
so every stored number hashed differently) in its own working directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectzap.core.settings import Settings, load_settings, sqlite_url_against

PHONE = "+4915112345678"


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CONNECTZAP_"))}
    return subprocess.run([sys.executable, "-m", "connectzap", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_commands_run_from_different_directories_share_one_database_and_key(tmp_path: Path) -> None:
    home = tmp_path / "etc" / "connectzap"
    home.mkdir(parents=True)
    config = home / "connectzap.toml"
    config.write_text('data_dir = "state"\n[sandbox]\nquiet = true\n')
    here, elsewhere = tmp_path / "here", tmp_path / "cron"
    here.mkdir()
    elsewhere.mkdir()

    granted = cli(here, "--config", str(config), "consent", "grant", PHONE, "marketing", "--proof", "form #12")
    assert granted.returncode == 0, granted.stderr
    # Another directory, and the config named relative to it: the same ledger, read with the same key.
    shown = cli(elsewhere, "--config", os.path.relpath(config, elsewhere), "consent", "show", PHONE)
    assert shown.returncode == 0, shown.stderr
    assert "marketing" in shown.stdout and "granted" in shown.stdout and "form #12" in shown.stdout

    assert (home / "state" / "connectzap.db").is_file() and (home / "state" / "hash-secret").is_file()
    assert list(here.iterdir()) == [] and list(elsewhere.iterdir()) == []  # no second database, no second key


def test_doctor_prints_the_resolved_paths(tmp_path: Path) -> None:
    home = tmp_path / "conf"
    home.mkdir()
    config = home / "cz.toml"
    config.write_text('[database]\nurl = "sqlite:///db/cz.db"\n'
                      '[sandbox]\nquiet = true\nlog_file = "logs/sends.jsonl"\n')
    (home / "db").mkdir()
    out = cli(tmp_path, "--config", "conf/cz.toml", "doctor")
    assert out.returncode == 0, out.stderr
    lines = [line.strip() for line in out.stdout.splitlines()]
    assert f"config: {config}" in lines
    assert f"data dir: {home / '.connectzap'}" in lines  # the default data_dir sits beside the file too
    assert f"database file: {home / 'db' / 'cz.db'}" in lines
    assert f"hash key: {home / '.connectzap' / 'hash-secret'}" in lines
    assert f"api key: {home / '.connectzap' / 'api-key'}" in lines
    assert f"sandbox log: {home / 'logs' / 'sends.jsonl'}" in lines
    assert not (tmp_path / ".connectzap").exists()


def test_doctor_names_a_configured_key_instead_of_a_file(tmp_path: Path) -> None:
    config = tmp_path / "cz.toml"
    config.write_text('[privacy]\nhash_secret = "a-configured-key-0123456789"\n[api]\nkeys = ["k-0123456789abcdef"]\n'
                      '[database]\nurl = "postgresql+psycopg://user:pw@db.example:5432/cz"\n')
    settings = load_settings(config)
    from connectzap.cli.setup import resolved_paths
    shown = dict(resolved_paths(settings))
    assert shown["hash key"].startswith("privacy.hash_secret") and shown["api key"].startswith("api.keys")
    assert shown["database url"] == "postgresql+psycopg://db.example:5432/cz"  # never the password
    assert "a-configured-key" not in str(shown)


def test_environment_paths_mean_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "conf" / "cz.toml"
    config.parent.mkdir()
    config.write_text('data_dir = "from-file"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings(config).data_dir == config.parent / "from-file"
    monkeypatch.setenv("CONNECTZAP_DATA_DIR", "from-env")
    assert load_settings(config).data_dir == tmp_path / "from-env"  # as a shell user means it
    monkeypatch.delenv("CONNECTZAP_DATA_DIR")
    assert Settings().data_dir == tmp_path / ".connectzap"  # no file: the current directory, made absolute


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:///cz.db", "sqlite:////base/cz.db"),
    ("sqlite+pysqlite:///sub/cz.db?timeout=5", "sqlite+pysqlite:////base/sub/cz.db?timeout=5"),
    ("sqlite:////abs/cz.db", "sqlite:////abs/cz.db"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("sqlite://", "sqlite://"),
    ("sqlite:///file:cz.db?mode=ro&uri=true", "sqlite:///file:cz.db?mode=ro&uri=true"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
])
def test_only_relative_sqlite_files_are_rebased(url: str, expected: str) -> None:
    assert sqlite_url_against(url, Path("/base")) == expected
