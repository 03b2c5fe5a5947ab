"""``connectzap templates`` / ``profile`` / ``send`` against the local fake Graph server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectzap.cli import _install_plugin_commands, cli
from connectzap.testing.fake_graph import FakeGraph

NUMBER = "106540352242922"


@pytest.fixture
def fake():
    with FakeGraph(token="cli-token", page_size=2) as server:
        server.templates = [
            {"id": "1", "name": "order_confirmation", "language": "en", "status": "APPROVED", "category": "UTILITY",
             "parameter_format": "POSITIONAL", "components": [{"type": "BODY", "text": "Order {{1}} confirmed"}]},
            {"id": "2", "name": "welcome", "language": "de", "status": "APPROVED", "category": "MARKETING",
             "parameter_format": "NAMED", "components": [{"type": "BODY", "text": "Hallo {{first_name}}"}]},
            {"id": "3", "name": "welcome", "language": "en", "status": "PENDING", "category": "MARKETING",
             "parameter_format": "NAMED", "components": [{"type": "BODY", "text": "Hi {{first_name}}"}]},
        ]
        yield server


@pytest.fixture
def run(tmp_path: Path, fake: FakeGraph):
    config = tmp_path / "connectzap.toml"
    config.write_text(f"""
data_dir = "{tmp_path / 'data'}"
[sandbox]
quiet = true
[connectors.whatsapp]
access_token = "cli-token"
phone_number_id = "{NUMBER}"
waba_id = "waba1"
app_secrets = ["secret"]
verify_token = "verify"
api_base_url = "{fake.url}"
pair_spacing_seconds = 0
""")
    _install_plugin_commands()
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, ["--config", str(config), *args], catch_exceptions=False, input=input)
    return invoke


def test_templates_sync_follows_pages_then_list_and_show(run, fake):
    result = run("templates", "sync")
    assert result.exit_code == 0, result.output
    assert "synced 3 template(s) from the business account" in result.output
    pages = [r for r in fake.requests if r.path.endswith("/message_templates")]
    assert len(pages) == 2  # page size 2: the second page came from paging.next
    listed = run("templates", "list").output
    assert "order_confirmation" in listed and "PENDING" in listed and "NAMED" in listed
    shown = json.loads(run("templates", "show", "welcome", "--json").output)
    assert {t["language"] for t in shown} == {"de", "en"} and shown[0]["components"]
    fake.templates = fake.templates[:1]
    assert "removed 2 gone from it" in run("templates", "sync").output


def test_templates_create_and_delete(run, fake, tmp_path):
    definition = tmp_path / "promo.json"
    definition.write_text(json.dumps({"name": "spring_sale", "language": "en", "category": "MARKETING",
                                      "components": [{"type": "BODY", "text": "Spring sale: {{1}} off",
                                                      "example": {"body_text": [["20%"]]}}]}))
    created = run("templates", "create", str(definition))
    assert created.exit_code == 0 and "created spring_sale (en): PENDING, MARKETING" in created.output
    assert any(t["name"] == "spring_sale" for t in fake.templates)
    kept = run("templates", "delete", "spring_sale", input="n\n")
    assert kept.exit_code == 1 and any(t["name"] == "spring_sale" for t in fake.templates)
    deleted = run("templates", "delete", "spring_sale", input="y\n")
    assert deleted.exit_code == 0 and "1 cached language removed" in deleted.output
    assert not any(t["name"] == "spring_sale" for t in fake.templates)


def test_errors_are_one_clear_line(run, fake, tmp_path):
    missing = run("templates", "delete", "no_such_template", "--yes")
    assert missing.exit_code == 1
    assert missing.output.strip().startswith("error: WhatsApp error 100") and "Traceback" not in missing.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    broken = run("templates", "create", str(bad))
    assert broken.exit_code == 1 and "is not valid JSON" in broken.output and len(broken.output.splitlines()) == 1


def test_profile_show_and_set(run, fake):
    result = run("profile", "set", "--about", "Fresh bread daily", "--website", "https://example.com",
                 "--vertical", "retail")
    assert result.exit_code == 0, result.output
    assert fake.profile["about"] == "Fresh bread daily" and fake.profile["vertical"] == "RETAIL"
    shown = run("profile", "show").output
    assert "Fresh bread daily" in shown and "https://example.com" in shown


def test_send_goes_to_the_fake_and_reports_the_wamid(run, fake):
    run("templates", "sync")
    run("consent", "grant", "+16505551234", "utility", "--proof", "checkbox at checkout")
    result = run("send", "+16505551234", "--template", "order_confirmation", "--param", "42")
    assert result.exit_code == 0, result.output
    assert "accepted wamid.fake." in result.output
    [body] = fake.sends()
    assert body["template"]["name"] == "order_confirmation" and body["to"] == "16505551234"


def test_wrong_token_is_one_line(run, fake):
    fake.token = "rotated"
    result = run("profile", "show")
    assert result.exit_code == 1 and result.output.startswith("error: WhatsApp error 190")
    assert "cli-token" not in result.output
