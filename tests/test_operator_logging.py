"""Operator logging: `connectzap serve --log-format json` writes one JSON line per webhook accepted
or refused, per send outcome, per refusal and per dead letter -- and no line ever holds a secret, a
full phone number or a message text. A real `serve` process, a fake Graph API, signed webhooks."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import httpx
import pytest
from server_support import APP_SECRET, inbound_text, meta_signed
from serve_support import Served, config_file, free_port, wait_for

from connectzap import ConsentChange
from connectzap.core import logs
from connectzap.testing import seed_template
from connectzap.testing.fake_graph import FakeGraph

pytestmark = pytest.mark.slow

KEY = "rest-key-for-the-logging-test-0123"
TOKEN = "EAAG-access-token-for-the-logging-test"
VERIFY = "verify-token-for-the-logging-test"
HASH = "hash-secret-for-the-logging-test-0123456789"
WHSEC = "subscription-secret-for-the-logging-test"
CUSTOMER = "+4915112345678"   # has a utility opt-in: the send goes out
WRITER = "+4915223456789"     # writes to us: the inbound webhook
STRANGER = "+34612345678"     # no opt-in: the gate refuses
TEXT = "please deliver to the blue door, code 8812"
PARAM = "Zebediah-Quartermaine"
SECRETS = [KEY, TOKEN, VERIFY, HASH, WHSEC, APP_SECRET]
NUMBERS = [n for p in (CUSTOMER, WRITER, STRANGER) for n in (p, p.lstrip("+"))]


def test_serve_logs_each_outcome_as_json_and_never_a_secret_a_number_or_a_text(make, tmp_path):
    engine = make()
    seed_template(engine, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    engine.close()
    with FakeGraph(token=TOKEN) as graph:
        folder = Path(engine.settings.data_dir)
        config = config_file(folder / "serve.toml", data_dir=folder, database_url=engine.db.url, rest=f"""
[api]
keys = ["{KEY}"]
[privacy]
hash_secret = "{HASH}"
[workers]
poll_interval_seconds = 0.05
max_attempts = 1
[connectors.whatsapp]
access_token = "{TOKEN}"
phone_number_id = "106540352242922"
app_secrets = ["{APP_SECRET}"]
verify_token = "{VERIFY}"
api_base_url = "{graph.url}"
[connectors.generic.subscriptions.crm]
url = "http://127.0.0.1:{free_port()}/hook"  # nothing listens there: the delivery fails
secret = "{WHSEC}"
events = ["inbound_message"]
""")
        from connectzap import Connectzap, load_settings
        app = Connectzap(load_settings(config)).start()  # the opt-in, keyed by the configured hash secret
        app.set_consent(ConsentChange(phone=CUSTOMER, category="utility", granted=True, source="checkout",
                                      proof="ticked the box"))
        app.close()

        served = Served(config, options=("--log-level", "info", "--log-format", "json"))
        try:
            base = served.url()
            auth = {"Authorization": f"Bearer {KEY}"}
            with httpx.Client(base_url=base, timeout=30) as client:
                body = inbound_text("wamid.logs-1", TEXT, wa_id=WRITER.lstrip("+"))
                assert client.post("/webhooks/whatsapp", content=body, headers=meta_signed(body)).status_code == 200
                forged = client.post("/webhooks/whatsapp", content=body, headers=meta_signed(body, "wrong-secret"))
                assert forged.status_code == 401
                template = {"type": "template", "name": "order_confirmation", "language": "en",
                            "body": [PARAM, "1042"]}
                sent = client.post("/v1/messages", headers=auth, json={"to": CUSTOMER, "content": template})
                assert sent.status_code == 202, sent.text
                refused = client.post("/v1/messages", headers=auth, json={"to": STRANGER, "content": template})
                assert refused.status_code == 422

            def logged(message: str, **fields) -> list[dict]:  # type: ignore[no-untyped-def]
                return [r for r in map(json.loads, list(served.output)) if r["message"] == message
                        and all(r.get(k) == v for k, v in fields.items())]

            accepted = wait_for(lambda: logged("webhook accepted", source="whatsapp"), "webhook accepted")
            refusal = wait_for(lambda: logged("webhook refused", source="whatsapp"), "webhook refused")
            went = wait_for(lambda: logged("message sent", message_id=sent.json()["id"]), "message sent")
            gate = wait_for(lambda: logged("message refused", reason="no_consent"), "message refused")
            dead = wait_for(lambda: logged("dead letter", target="connector:generic:crm"), "dead letter")
        finally:
            code = served.stop()
        assert graph.sends() and graph.sends()[0]["to"] == CUSTOMER.lstrip("+")  # it really went out

    assert code == 0
    assert accepted[0]["status"] == 200 and accepted[0]["events"] == 1 and accepted[0]["level"] == "info"
    assert refusal[0]["status"] == 401 and refusal[0]["error"] == "bad_signature" and refusal[0]["level"] == "warning"
    assert went[0]["to"] == "+49*********78" and went[0]["what"] == "order_confirmation" and went[0]["wamid"]
    assert gate[0]["message_id"] == refused.json()["id"]
    assert dead[0]["level"] == "error" and dead[0]["attempts"] == 1 and dead[0]["retry"].startswith("connectzap")

    output = "".join(served.output)
    assert all(line.startswith("{") for line in served.output), output  # JSON lines, every one
    for secret in SECRETS:
        assert secret not in output, f"a secret is in the log: {secret[:6]}..."
    for number in NUMBERS:
        assert number not in output, f"a full number is in the log: {number}"
    assert TEXT not in output and PARAM not in output and "8812" not in output


def test_text_lines_mask_numbers_and_secrets_even_in_error_texts():
    stream = io.StringIO()
    handler = logs.configure("info", "text", secrets=["sk-live-0123456789"], stream=stream)
    log = logging.getLogger("connectzap.test")
    try:
        logs.emit(log, logging.INFO, "message sent", message_id="m1", to="+49*********78", what="order confirmation")
        log.warning("upstream said: token sk-live-0123456789 rejected for +4915112345678 and 4915112345678")
        try:
            raise ValueError("bad number 0034 612 345 678? no: +34 612 34 56 78")
        except ValueError:
            log.exception("delivery failed")
        logs.emit(log, logging.DEBUG, "not shown at info")
    finally:
        for name in ("connectzap", "uvicorn"):
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).setLevel(logging.NOTSET)
    text = stream.getvalue()
    first, second = text.splitlines()[:2]
    assert first.endswith('INFO connectzap.test message sent message_id=m1 to=+49*********78 what="order confirmation"')
    assert "sk-live" not in text and "4915112345678" not in text and "612 34 56 78" not in text
    assert "**********" in second and "+49*********78" in second
    assert "Traceback" in text and "not shown" not in text
