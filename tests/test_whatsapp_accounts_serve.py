"""Two business accounts behind one real ``connectzap serve``, started as the README starts it: REST
sends from each account's number reach the Graph stand-in with that account's token, the stand-in's
status webhooks -- each signed with its account's app secret and naming its WABA -- come back over
HTTP and settle each message, and an inbound message signed by the other account's app is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_support import Served, config_file, wait_for
from server_support import AUTH, KEY, PHONE, meta_signed
from test_whatsapp_accounts import OUTLET, SHOP, accounts_toml, text_message

from connectzap.testing import seed_template
from connectzap.testing.fake_graph import FakeGraph

pytestmark = pytest.mark.slow


def serve_toml(graph_url: str) -> str:
    accounts = accounts_toml()
    return f"""
[api]
keys = ["{KEY}"]
[workers]
poll_interval_seconds = 0.05
[connectors.whatsapp]
verify_token = "verify"
api_base_url = "{graph_url}"
pair_spacing_seconds = 0
{accounts}"""


def test_serve_sends_from_each_account_and_takes_back_each_accounts_statuses(make: Any, tmp_path: Path) -> None:
    engine = make()  # creates the database (or PostgreSQL schema) the process will use
    seed_template(engine, "order_shipped", "Order {{1}} is on its way.")
    folder = Path(engine.settings.data_dir)
    with FakeGraph(token="no-account-uses-this") as graph:
        for a in (SHOP, OUTLET):
            graph.add_account(a["waba"], token=a["token"], numbers=a["numbers"], app_secret=a["secret"])
        served = Served(config_file(folder / "connectzap.toml", data_dir=folder, database_url=engine.db.url,
                                    rest=serve_toml(graph.url)))
        try:
            base = served.url()
            graph.report_statuses(f"{base}/webhooks/whatsapp", app_secret="no-account-uses-this")
            with httpx.Client(base_url=base, timeout=10) as client:
                assert client.put(f"/v1/contacts/{PHONE}/consent", headers=AUTH, json={
                    "categories": ["utility"], "source": "checkout", "proof": "box"}).status_code == 200
                ids = {}
                for number in (OUTLET["numbers"][0], SHOP["numbers"][1], None):
                    send = client.post("/v1/messages", headers={**AUTH, "Idempotency-Key": f"shipped-{number}"},
                                       json={"to": PHONE, "business_phone_number_id": number, "content": {
                                           "type": "template", "name": "order_shipped", "language": "en",
                                           "body": ["42"]}})
                    assert send.status_code == 202, send.text
                    ids[number or SHOP["numbers"][0]] = send.json()["id"]

                def settled() -> dict[str, str] | None:
                    shown = {n: client.get(f"/v1/messages/{i}", headers=AUTH).json()["status"] for n, i in ids.items()}
                    return shown if set(shown.values()) == {"delivered"} else None

                wait_for(settled, "each account's delivered status", within=90, proc=served.process)
                forged = text_message(OUTLET["waba"], OUTLET["numbers"][0], "wamid.forged")
                refused = client.post("/webhooks/whatsapp", content=forged, headers=meta_signed(forged, SHOP["secret"]))
                signed = client.post("/webhooks/whatsapp", content=forged,
                                     headers=meta_signed(forged, OUTLET["secret"]))
        finally:
            code = served.stop()
        for number, outbox_id in ids.items():
            assert [r.body["biz_opaque_callback_data"] for r in graph.sends_from(number)] == [outbox_id]
    assert refused.status_code == 401 and signed.status_code == 200
    assert code == 0, "".join(served.output)
    output = "".join(served.output)
    assert "Traceback" not in output
    for secret in (SHOP["token"], SHOP["secret"], OUTLET["token"], OUTLET["secret"]):
        assert secret not in output
