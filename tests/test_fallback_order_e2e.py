"""Issue #21's "Done when", the whole way: a signed WooCommerce order webhook through the HTTP edge,
for customers whose numbers have no WhatsApp account (the local Graph stand-in answers 131026),
becomes the order confirmation by SMS (the Twilio stand-in) or by email (a real SMTP server),
according to the shop's rule and each customer's checkout opt-ins per medium -- exactly once
however often WooCommerce delivers the webhook -- and nothing for a customer who agreed to
neither, with the reason shown; each fallback is linked to its WhatsApp message in
``connectzap messages show`` and ``GET /v1/messages/{id}``."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from email_support import Relay, email_config, smtp_relay
from server_support import AUTH, SETTINGS, serving
from sms_support import TwilioStandIn
from sms_support import settings as sms_settings
from sqlalchemy import select
from test_woocommerce_webhooks import payload, shop_config, wc_request

from connectzap.cli import cli
from connectzap.core.channel import EMAIL, SMS, WHATSAPP
from connectzap.core.store.schema import outbox
from connectzap.core.worker import Worker
from connectzap.testing import seed_template
from connectzap.testing.fake_graph import FakeGraph

TOKEN, PNID = "graph-token-fallback", "106540352242922"
SMS_OPTIN, EMAIL_OPTIN = "_connectzap_sms_optin", "_connectzap_email_optin"
CUSTOMERS = {  # order id -> (billing phone, billing email, the opt-ins ticked besides WhatsApp's)
    "1042": ("+34 612 34 56 78", "ana.garcia@example.com", [SMS_OPTIN, EMAIL_OPTIN]),
    "1043": ("+34 622 11 22 33", "bea.lopez@example.com", [EMAIL_OPTIN]),
    "1044": ("+34 633 44 55 66", "carla.ruiz@example.com", []),
}
RULE = {"status": "processing", "template": "order_confirmation", "language": "en",
        "params": ["{{ first_name }}", "{{ number }}"]}


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph(token=TOKEN) as fake:
        fake.fail(131026, times=None)  # no number here has a WhatsApp account
        yield fake


@pytest.fixture
def twilio() -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    with smtp_relay(tmp_path) as server:
        yield server


def email_templates(root: Path) -> Path:
    folder = root / "order_confirmation" / "en"
    folder.mkdir(parents=True)
    (folder / "subject.txt").write_text("Order {{ params[1] }} is confirmed")
    (folder / "body.txt").write_text("Hi {{ params[0] }}, order {{ params[1] }} is confirmed.")
    (folder / "body.html").write_text("<p>Hi {{ params[0] }}, order {{ params[1] }} is confirmed.</p>")
    return root


def order(order_id: str) -> bytes:
    phone, address, ticked = CUSTOMERS[order_id]
    data = copy.deepcopy(payload("order_created_classic.json"))
    data.update(id=int(order_id), number=order_id)
    data["billing"].update(phone=phone, email=address)
    data["meta_data"] += [{"id": 30000 + n, "key": key, "value": "yes"} for n, key in enumerate(ticked)]
    return json.dumps(data).encode()


async def post_order(client: Any, order_id: str, delivery: str) -> None:
    request = wc_request(order(order_id), topic="order.created", delivery=delivery, shop="main")
    answer = await client.post(request.path, content=request.body, headers=request.headers)
    assert answer.status_code == 200, answer.text


def rows(app: Any) -> list[dict[str, Any]]:
    with app.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(outbox))]


def messages_show(app: Any, tmp_path: Path, message_id: str) -> dict[str, Any]:
    config = tmp_path / "cli.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.settings.database_url}"\n')
    done = CliRunner().invoke(cli, ["--config", str(config), "messages", "show", message_id, "--json"])
    assert done.exit_code == 0, done.output
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


async def test_an_order_confirmation_reaches_customers_without_whatsapp_by_their_shops_rule(
        make: Any, tmp_path: Path, graph: FakeGraph, twilio: TwilioStandIn, relay: Relay) -> None:
    app = make(api=SETTINGS["api"], connectors={
        "whatsapp": {**SETTINGS["connectors"]["whatsapp"], "access_token": TOKEN, "phone_number_id": PNID,
                     "api_base_url": graph.url},
        "woocommerce": {"shops": {"main": shop_config(
            fallback=["sms", "email"], medium_consent_meta_keys={"sms": [SMS_OPTIN], "email": [EMAIL_OPTIN]})}},
        "sms": sms_settings(api_base_url=twilio.url, templates={
            "order_confirmation": {"en": "Hi {{ p1 }}, order {{ p2 }} is confirmed."}}),
        "email": email_config(relay, templates_dir=str(email_templates(tmp_path / "mail")))},
        plugins={"order_notifications": {"rules": [RULE]}})
    seed_template(app, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    async with serving(app) as client:
        for delivery in ("d-1", "d-1", "d-2"):  # a replay, and WooCommerce delivering the order again
            for order_id in CUSTOMERS:
                await post_order(client, order_id, f"{order_id}-{delivery}")
            await Worker(app).run_until_idle()

        # WhatsApp was tried once per order, and failed: no account
        originals = {json.loads(r["origin"])["order"]: r for r in rows(app) if r["medium"] == WHATSAPP}
        assert {o: (r["status"], r["reason"]) for o, r in originals.items()} == {
            o: ("failed", "unreachable") for o in CUSTOMERS}
        assert len(graph.sends()) == 3
        fallbacks = {(r["fallback_of"], r["medium"]): r for r in rows(app) if r["fallback_of"]}

        def tried(order_id: str) -> dict[str, tuple[str, str | None]]:
            return {medium: (r["status"], r["reason"]) for (of, medium), r in fallbacks.items()
                    if of == originals[order_id]["id"]}

        # Ana ticked SMS: one text, nothing else
        assert tried("1042") == {SMS: ("accepted", None)}
        [text] = twilio.created
        assert text["to"] == "+34612345678" and text["body"] == "Hi Ana, order 1042 is confirmed."
        # Bea ticked email only: SMS refused for want of consent, then one email to her billing address
        assert tried("1043") == {SMS: ("refused", "no_consent"), EMAIL: ("accepted", None)}
        [mail] = relay.received
        assert mail.rcpt_tos == ["bea.lopez@example.com"] and mail.message["Subject"] == "Order 1043 is confirmed"
        # Carla agreed to neither: nothing goes, and each refusal says why
        assert tried("1044") == {SMS: ("refused", "no_consent"), EMAIL: ("refused", "no_consent")}

        # the whole path is visible like any message's
        sms_id = fallbacks[(originals["1042"]["id"], SMS)]["id"]
        shown = (await client.get(f"/v1/messages/{sms_id}", headers=AUTH)).json()
        assert (shown["medium"], shown["fallback_of"], shown["status"]) == (SMS, originals["1042"]["id"], "accepted")
        refused_id = fallbacks[(originals["1044"]["id"], EMAIL)]["id"]
        refused = (await client.get(f"/v1/messages/{refused_id}", headers=AUTH)).json()
        assert (refused["fallback_of"], refused["reason"]) == (originals["1044"]["id"], "no_consent")
    email_id = fallbacks[(originals["1043"]["id"], EMAIL)]["id"]
    on_cli = messages_show(app, tmp_path, email_id)
    assert (on_cli["medium"], on_cli["fallback_of"]) == (EMAIL, originals["1043"]["id"])
    assert messages_show(app, tmp_path, originals["1043"]["id"])["reason"] == "unreachable"
