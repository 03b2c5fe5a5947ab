"""``connectzap console adduser|deluser|users|audit`` and the CLI actions the console shares
(``events retry --target``, ``resume``): one engine method each, so both say the same."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from console_support import PAUSE_REASON, PLUGINS, tell_story, unknown_message

from connectzap.cli import cli
from connectzap.console.passwords import check_password


@pytest.fixture
def shop(make):
    app = make(plugins=PLUGINS, privacy={"retention_hours": 1})
    ids = tell_story(app)
    config = Path(app.settings.data_dir) / "cli.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.db.url}"\n'
                      '[sandbox]\nquiet = true\n')
    return app, ids, config


def run(config: Path, *args: str, given: str | None = None):
    return CliRunner().invoke(cli, ["--config", str(config), *args], input=given, catch_exceptions=False)


def test_adduser_hashes_the_password_and_refuses_a_short_one(shop):
    app, _, config = shop
    done = run(config, "console", "adduser", "anna", given="a long enough secret\na long enough secret\n")
    assert done.exit_code == 0 and "console user anna can log in" in done.output
    stored = app.operators.password_hash("anna")
    assert stored is not None and stored.startswith("$argon2id$") and "a long enough secret" not in stored
    assert check_password(stored, "a long enough secret") and not check_password(stored, "a long enough secreT")
    short = run(config, "console", "adduser", "bob", "--password", "short")
    assert short.exit_code == 2 and "at least 12 characters" in short.output
    assert app.operators.password_hash("bob") is None
    assert run(config, "console", "adduser", "no spaces", "--password", "x" * 12).exit_code == 2
    listed = run(config, "console", "users")
    assert "anna" in listed.output and "shopowner" in listed.output
    assert run(config, "console", "deluser", "anna").exit_code == 0
    assert app.operators.password_hash("anna") is None
    assert run(config, "console", "deluser", "anna").exit_code == 1
    audit = run(config, "console", "audit", "--json").output
    assert '"action": "deluser"' in audit and '"action": "adduser"' in audit


def test_check_password_is_false_for_an_unknown_user():
    assert not check_password(None, "anything at all")


def test_events_retry_by_target_and_resume(shop):
    app, ids, config = shop
    assert run(config, "events", "retry").exit_code == 2
    assert run(config, "events", "retry", "--target", "lead_welcome").output.strip().startswith("nothing to retry")
    assert [d.event_id for d in app.dead_letters()] == [ids["dead"]]
    done = run(config, "events", "retry", "--target", "order_notifications")
    assert done.output.strip() == "requeued 1 delivery" and app.dead_letters() == []
    assert run(config, "resume").output.strip() == f"sending resumed (it was paused: {PAUSE_REASON})"
    assert app.paused() is None
    assert run(config, "resume").output.strip() == "sending is not paused"


def test_messages_settle(shop):
    app, _, config = shop
    mid = unknown_message(app)
    assert run(config, "messages", "settle", mid).output.strip() == "queued to be resent"
    assert app.message(mid)["status"] == "queued"
    again = run(config, "messages", "settle", mid)
    assert again.exit_code == 1 and "is not unknown" in again.output
