"""A template with WhatsApp's REQUEST_CONTACT_INFO button: created on the sandbox under the rules
partners publish from Meta, sent to a customer known by BSUID only, and answered with the customer's
own number, which links it to the BSUID.

``contact_request_answer.json`` is built from the reference (Kapso's and Gupshup's restatements of
Meta's payload; see tests/payloads/whatsapp/README.md): values are ours.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from connectzap import ButtonParam, Category, ConsentChange, Outgoing, TemplateContent
from connectzap.connectors.whatsapp import template_rules
from connectzap.connectors.whatsapp.webhooks import parse_body
from connectzap.core.errors import PayloadError
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

FIXTURES = Path(__file__).parent / "payloads" / "whatsapp"
CONNECTZAP = Path(sys.executable).with_name("connectzap")
BSUID = "US.13491208655302741918"
PHONE = "+16505551234"
SHARE_BUTTON = {"type": "BUTTONS", "buttons": [{"type": "REQUEST_CONTACT_INFO"}]}
ASK_FOR_NUMBER: dict[str, Any] = {
    "name": "order_needs_number", "language": "en", "category": "UTILITY",
    "components": [{"type": "BODY", "text": "Hi {{1}}, share your number so the courier can call you.",
                    "example": {"body_text": [["Sam"]]}}, SHARE_BUTTON]}


def definition(category: str = "UTILITY", buttons: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = copy.deepcopy(ASK_FOR_NUMBER)
    out["category"] = category
    if buttons is not None:
        out["components"][1] = {"type": "BUTTONS", "buttons": buttons}
    return out


# --- creation: what Meta refuses is refused here, naming the field ------------------------------

def test_a_share_contact_button_passes_in_utility_and_marketing_templates() -> None:
    for category in ("UTILITY", "MARKETING"):
        assert template_rules.check(definition(category)) == template_rules.Review()
    labelled = definition(buttons=[{"type": "REQUEST_CONTACT_INFO", "text": "Share Contact Info"}])
    assert template_rules.check(labelled) == template_rules.Review()


@pytest.mark.parametrize(("category", "buttons", "field"), [
    ("AUTHENTICATION", [{"type": "REQUEST_CONTACT_INFO"}], "BUTTONS.buttons"),
    ("UTILITY", [{"type": "REQUEST_CONTACT_INFO"}, {"type": "QUICK_REPLY", "text": "Later"}], "BUTTONS.buttons"),
    ("MARKETING", [{"type": "REQUEST_CONTACT_INFO"}] * 2, "BUTTONS.buttons"),
    ("UTILITY", [{"type": "REQUEST_CONTACT_INFO", "text": "Share {{1}}"}], "BUTTONS.buttons.0.text"),
    ("UTILITY", [{"type": "REQUEST_CONTACT_INFO", "text": "x" * 26}], "BUTTONS.buttons.0.text"),
], ids=["authentication", "with-another-button", "twice", "label-parameter", "label-too-long"])
def test_a_share_contact_button_meta_refuses_is_one_error(category: str, buttons: list[dict[str, Any]],
                                                          field: str) -> None:
    with pytest.raises(PayloadError) as refused:
        template_rules.check(definition(category, buttons))
    assert refused.value.field == field and "\n" not in refused.value.message


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONNECTZAP_LOAD_PLUGINS": ""}
    return subprocess.run([str(CONNECTZAP), "--config", str(config), *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_templates_create_on_the_sandbox_takes_the_button_and_refuses_it_in_authentication(tmp_path: Path) -> None:
    config = tmp_path / "connectzap.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nquiet = true\ntemplate_approval_seconds = 0\n')
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(ASK_FOR_NUMBER))
    bad.write_text(json.dumps({**definition("AUTHENTICATION"), "name": "login_needs_number"}))
    created = cli(config, "templates", "create", str(good))
    assert created.returncode == 0, created.stderr
    assert "created order_needs_number (en) on the sandbox: PENDING, UTILITY" in created.stdout
    refused = cli(config, "templates", "create", str(bad))
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("error: BUTTONS.buttons: a REQUEST_CONTACT_INFO button needs a MARKETING "
                                      "or UTILITY template")
    assert "login_needs_number" not in cli(config, "templates", "list").stdout


# --- sending, and the customer's answer ---------------------------------------------------------

def answer(asked: str) -> bytes:
    doc = json.loads((FIXTURES / "contact_request_answer.json").read_text())
    message = doc["entry"][0]["changes"][0]["value"]["messages"][0]
    message["timestamp"] = str(int(time.time()))
    message["context"]["id"] = asked
    return json.dumps(doc).encode()


def ask(**buttons: Any) -> TemplateContent:
    return TemplateContent(name="order_needs_number", language="en", body=["Sam"], **buttons)


async def test_the_template_goes_to_the_bsuid_and_the_answer_links_the_number(app):
    """Outside any window, a consented utility template asks a BSUID-only customer for the number:
    the request names the BSUID in ``recipient`` and carries no button component (WhatsApp's own
    button takes none). The shared card links the number: consent kept under the BSUID holds for
    the number, and either identifier finds the same customer."""
    seed_template(app, "order_needs_number", "Hi {{1}}, share your number so the courier can call you.",
                  extra_components=[SHARE_BUTTON])
    app.set_consent(ConsentChange(user_id=BSUID, category=Category.UTILITY, granted=True, source="checkout"))
    queued = app.send(Outgoing(to=BSUID, content=ask()))
    assert queued.status == "queued", queued
    await Worker(app).run_until_idle()
    (sent,) = app.channel.sent()
    assert sent["recipient"] == BSUID and "to" not in sent
    assert [c["type"] for c in sent["template"]["components"]] == ["body"]
    assert app.contact_key(PHONE) != app.contact_key(BSUID)
    app.ingest(parse_body(answer(app.message(queued.id)["wamid"])))
    await Worker(app).run_until_idle()
    assert app.contact_key(PHONE) == app.contact_key(BSUID)
    assert app.consent(PHONE)[Category.UTILITY].granted is True


def test_a_parameter_for_the_share_button_is_refused_before_it_is_queued(app):
    seed_template(app, "order_needs_number", "Hi {{1}}, share your number so the courier can call you.",
                  extra_components=[SHARE_BUTTON])
    app.set_consent(ConsentChange(user_id=BSUID, category=Category.UTILITY, granted=True, source="checkout"))
    refused = app.send(Outgoing(to=BSUID, content=ask(
        buttons=[ButtonParam(sub_type="quick_reply", index=0, payload="share")])))
    assert (refused.status, refused.reason) == ("refused", "param_mismatch")
    assert "share-contact button" in (refused.detail or "")
