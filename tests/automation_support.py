"""Customers writing to the business, for the automation plugins' tests: Meta-shaped inbound
webhooks (the shape of Meta's webhook reference examples), signed and handed to the WhatsApp
connector through the testing kit, then dispatched."""

from __future__ import annotations

import copy
import itertools
import json
import time
from typing import Any

from connectzap import Connectzap
from connectzap.testing import deliver, meta_headers, run, webhook_request

APP_SECRET = "meta-app-secret-for-automation"
WHATSAPP = {"whatsapp": {"app_secrets": [APP_SECRET], "verify_token": "verify-token-for-automation"}}
CUSTOMER = "34612345678"
BUSINESS_ID = "106540352242922"
_ids = itertools.count(1)


def envelope(message: dict[str, Any], *, wa_id: str = CUSTOMER, name: str = "Ana") -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "419561257915477", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": BUSINESS_ID},
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": message.pop("id", f"wamid.automation{next(_ids)}"),
                          "timestamp": str(int(time.time())), **message}]}}]}]}


def text(body: str, **kw: Any) -> dict[str, Any]:
    return envelope({"type": "text", "text": {"body": body}}, **kw)


def button_reply(button_id: str, title: str, **kw: Any) -> dict[str, Any]:
    return envelope({"type": "interactive", "interactive": {"type": "button_reply",
                                                            "button_reply": {"id": button_id, "title": title}}}, **kw)


def again(webhook: dict[str, Any]) -> dict[str, Any]:
    """The same webhook, delivered once more (Meta retries)."""
    return copy.deepcopy(webhook)


def wamid_of(webhook: dict[str, Any]) -> str:
    return str(webhook["entry"][0]["changes"][0]["value"]["messages"][0]["id"])


def receive(app: Connectzap, *webhooks: dict[str, Any]) -> None:
    """Deliver each webhook signed, as Meta does, then run the workers until idle."""
    for webhook in webhooks:
        body = json.dumps(webhook, separators=(",", ":")).encode()
        answer = deliver(app, "whatsapp", webhook_request("/webhooks/whatsapp", body,
                                                          headers=meta_headers(body, APP_SECRET)))
        assert answer.status == 200, answer
    run(app)


def sent_bodies(app: Connectzap) -> list[dict[str, Any]]:
    """The Cloud API request bodies the fake channel received, oldest first."""
    return list(app.channel.sent())  # type: ignore[attr-defined]
