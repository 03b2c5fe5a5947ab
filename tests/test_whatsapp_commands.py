"""``connectzap templates`` / ``profile`` / ``send`` / ``whatsapp webhook`` against the local fake Graph server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from connectzap.connectors.whatsapp.webhook_override import CallbackOverride
from connectzap.core.errors import PayloadError
from connectzap.testing.fake_graph import FakeGraph

from whatsapp_cli_support import whatsapp_cli

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
    return whatsapp_cli(tmp_path, f"""
access_token = "cli-token"
phone_number_id = "{NUMBER}"
waba_id = "waba1"
app_secrets = ["secret"]
verify_token = "verify"
api_base_url = "{fake.url}"
pair_spacing_seconds = 0
""", catch_exceptions=False)


def test_templates_sync_follows_pages_then_list_and_show(run, fake):
    result = run("templates", "sync")
    assert result.exit_code == 0, result.output
    assert "synced 3 templates from the business account" in result.output
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

# --- whatsapp webhook set|show (Meta's callback overrides; the fake answers as Meta's
# "Webhook overrides" page describes, see connectzap.connectors.whatsapp.webhook_override) -----

WEBHOOK_TOKEN = "s3cret-verify-token-7431"


def _posts(fake: FakeGraph) -> list:
    return [r for r in fake.requests if r.method == "POST"]


def test_set_for_the_number_sends_webhook_configuration_and_show_reports_it(run, fake):
    result = run("whatsapp", "webhook", "set", "https://orders.example/hook", "--verify-token", WEBHOOK_TOKEN)
    assert result.exit_code == 0, result.output
    assert f"number {NUMBER}: webhooks go to https://orders.example/hook" in result.output
    [post] = _posts(fake)
    assert post.path == f"/v27.0/{NUMBER}"
    assert post.body == {"webhook_configuration": {"override_callback_uri": "https://orders.example/hook",
                                                   "verify_token": WEBHOOK_TOKEN}}
    shown = run("whatsapp", "webhook", "show", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == {
        "phone_number_id": NUMBER, "phone_number": "https://orders.example/hook",
        "whatsapp_business_account": None, "application": "https://app.example/webhooks/whatsapp",
        "in_use": "phone_number"}
    table = run("whatsapp", "webhook", "show")
    assert "https://orders.example/hook" in table.output
    assert WEBHOOK_TOKEN not in result.output + shown.output + table.output


def test_set_for_another_number_with_the_token_asked_for_hidden(run, fake):
    result = run("whatsapp", "webhook", "set", "https://crm.example/wa", "--number", "222", input=WEBHOOK_TOKEN + "\n")
    assert result.exit_code == 0, result.output
    assert WEBHOOK_TOKEN not in result.output  # the prompt hides what was typed
    assert fake.number_overrides == {"222": {"override_callback_uri": "https://crm.example/wa",
                                             "verify_token": WEBHOOK_TOKEN}}
    shown = json.loads(run("whatsapp", "webhook", "show", "--number", "222", "--json").output)
    assert shown["in_use"] == "phone_number"
    # the configured number was not touched
    assert json.loads(run("whatsapp", "webhook", "show", "--json").output)["in_use"] == "application"


def test_whole_account_posts_to_subscribed_apps(run, fake):
    result = run("whatsapp", "webhook", "set", "https://shop.example/wa", "--whole-account",
                 input=WEBHOOK_TOKEN + "\n")
    assert result.exit_code == 0, result.output
    assert "business account waba1" in result.output and WEBHOOK_TOKEN not in result.output
    [post] = _posts(fake)
    assert post.path == "/v27.0/waba1/subscribed_apps"
    assert post.body == {"override_callback_uri": "https://shop.example/wa", "verify_token": WEBHOOK_TOKEN}
    shown = json.loads(run("whatsapp", "webhook", "show", "--json").output)
    assert shown["whatsapp_business_account"] == "https://shop.example/wa"
    assert shown["phone_number"] is None and shown["in_use"] == "whatsapp_business_account"


@pytest.mark.parametrize("url", ["http://plain.example/hook", "https://", "https://x.example/" + "a" * 200])
def test_a_url_meta_would_refuse_is_refused_before_anything_is_sent(run, fake, url):
    result = run("whatsapp", "webhook", "set", url, "--verify-token", WEBHOOK_TOKEN)
    assert result.exit_code != 0
    assert "callback URL must" in result.output and WEBHOOK_TOKEN not in result.output
    assert _posts(fake) == []


def test_number_and_whole_account_exclude_each_other(run, fake):
    result = run("whatsapp", "webhook", "set", "https://a.example/h", "--number", "1", "--whole-account",
                 "--verify-token", WEBHOOK_TOKEN)
    assert result.exit_code != 0 and _posts(fake) == []


@given(host=st.from_regex(r"[a-z]{1,20}\.example", fullmatch=True), path=st.text("abc/-_", max_size=150),
       secret=st.text(max_size=60))
def test_an_acceptable_override_is_sent_whole_and_its_token_never_shown(host, path, secret):
    token = "#vt#" + secret  # '#' is in neither the URL nor the repr, so a hit could only be the token
    url = f"https://{host}/{path}"
    override = CallbackOverride(url, SecretStr(token))
    assert override.body() == {"override_callback_uri": url, "verify_token": token}
    assert token not in repr(override) and token not in str(override)


def test_an_empty_token_is_refused():
    with pytest.raises(PayloadError):
        CallbackOverride("https://a.example/h", SecretStr(""))
