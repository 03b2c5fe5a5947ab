"""A business-scoped user id (BSUID) as the recipient in the REST API and the CLI: accepted where a
phone number is, checked for its form (two capital letters, a dot, up to 128 letters or digits)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from connectzap.cli import cli
from connectzap.testing import seed_template
from connectzap.core.worker import Worker
from server_support import AUTH, api_engine, journaled, meta_signed, serving

BSUID = "US.13491208655302741918"


async def test_rest_consent_and_send_by_bsuid(make):
    engine = api_engine(make)
    seed_template(engine, "summer_sale", "Hi {{1}}, 20% off today", category="MARKETING")
    promo = {"type": "template", "name": "summer_sale", "language": "en", "body": ["Sam"]}
    async with serving(engine) as client:
        refused = await client.post("/v1/messages", json={"to": BSUID, "content": promo}, headers=AUTH)
        granted = await client.put(f"/v1/contacts/{BSUID}/consent", headers=AUTH,
                                   json={"categories": ["marketing"], "source": "shop", "proof": "ticked the box"})
        queued = await client.post("/v1/messages", json={"to": BSUID, "content": promo}, headers=AUTH)
        shown = (await client.get(f"/v1/contacts/{BSUID}/consent", headers=AUTH)).json()
        listed = (await client.get("/v1/messages", params={"phone": BSUID}, headers=AUTH)).json()
        revoked = (await client.delete(f"/v1/contacts/{BSUID}/consent", headers=AUTH)).json()
    assert refused.json()["error"] == "no_consent"
    assert granted.status_code == 200 and queued.status_code == 202, queued.text
    assert shown["categories"]["marketing"]["granted"] is True and BSUID not in str(shown)
    assert shown["phone"] == "US.******************18"
    assert {m["id"] for m in listed["messages"]} == {refused.json()["id"], queued.json()["id"]}
    assert revoked["categories"]["marketing"]["granted"] is False


@pytest.mark.parametrize("bad", ["us.13491208655302741918", "US.1349-1208", "US.ENT.11815799212886844830",
                                 "US." + "1" * 129])
async def test_rest_refuses_a_malformed_bsuid(make, bad):
    engine = api_engine(make)
    content = {"type": "text", "body": "hi"}
    async with serving(engine) as client:
        sent = await client.post("/v1/messages", json={"to": bad, "content": content}, headers=AUTH)
        as_object = await client.post("/v1/messages", json={"to": {"user_id": bad}, "content": content},
                                      headers=AUTH)
        consent = await client.get(f"/v1/contacts/{quote(bad)}/consent", headers=AUTH)
    for answer in (sent, as_object, consent):
        assert answer.status_code == 422, answer.text
        assert "business-scoped user id" in answer.text


def test_cli_grants_consent_and_refuses_an_authentication_template_to_a_bsuid(tmp_path: Path):
    config = tmp_path / "connectzap.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nquiet = true\n')
    from connectzap import Connectzap, load_settings
    app = Connectzap(load_settings(config)).start()
    seed_template(app, "login_code", "{{1}} is your code", category="AUTHENTICATION")
    app.close()
    runner = CliRunner()
    granted = runner.invoke(cli, ["--config", str(config), "consent", "grant", BSUID, "authentication",
                                  "--proof", "asked for codes"])
    assert granted.exit_code == 0 and "US.******************18 authentication: granted" in granted.output
    sent = runner.invoke(cli, ["--config", str(config), "send", BSUID, "--template", "login_code",
                               "--param", "123456", "--no-wait"])
    assert sent.exit_code != 0 and "phone_required" in sent.output + str(sent.stderr)
    assert "request_contact_info" in sent.stderr


async def test_a_signed_bsuid_only_webhook_opens_the_window_through_the_edge(make):
    """Meta's webhook for a username customer (no wa_id, no from) through the signed HTTP edge, a
    repeat acknowledged as a duplicate, then a reply by BSUID over the REST API is sent with
    ``recipient``. The status webhook that follows is journaled without the BSUID."""
    engine = api_engine(make)
    doc = json.loads((Path(__file__).parent / "payloads" / "whatsapp" / "bsuid_only.json").read_text())
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(time.time()))
    body = json.dumps(doc).encode()
    async with serving(engine) as client:
        first = await client.post("/webhooks/whatsapp", content=body, headers=meta_signed(body))
        again = await client.post("/webhooks/whatsapp", content=body, headers=meta_signed(body))
        await Worker(engine).run_until_idle()
        reply = await client.post("/v1/messages", headers=AUTH,
                                  json={"to": BSUID, "content": {"type": "text", "body": "Hi Sam!"}})
        await Worker(engine).run_until_idle()
        wamid = (await client.get(f"/v1/messages/{reply.json()['id']}", headers=AUTH)).json()["wamid"]
        status = {**doc}
        status["entry"][0]["changes"][0]["value"] = {
            "messaging_product": "whatsapp", "metadata": doc["entry"][0]["changes"][0]["value"]["metadata"],
            "statuses": [{"id": wamid, "status": "read", "timestamp": str(int(time.time())),
                          "recipient_user_id": BSUID, "biz_opaque_callback_data": reply.json()["id"]}]}
        status_body = json.dumps(status).encode()
        read = await client.post("/webhooks/whatsapp", content=status_body, headers=meta_signed(status_body))
    assert first.status_code == 200 and again.status_code == 200 and journaled(engine, "whatsapp") == 2
    assert reply.status_code == 202, reply.text
    sent = engine.channel.sent()[-1]
    assert sent["recipient"] == BSUID and "to" not in sent
    assert read.status_code == 200
    from sqlalchemy import select

    from connectzap.core.store.schema import events
    with engine.db.read() as conn:
        payloads = [p for p in conn.execute(select(events.c.payload).where(events.c.kind == "message_status",
                                                                        events.c.source == "whatsapp"))
                    .scalars() if p]
    assert payloads and all(BSUID not in p for p in payloads)
