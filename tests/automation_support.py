"""Customers writing to the business, for the automation plugins' tests: Meta-shaped inbound
webhooks (the shape of Meta's webhook reference examples), signed and handed to the WhatsApp
connector through the testing kit, then dispatched."""

from __future__ import annotations

import copy
import itertools
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from connectzap import Connectzap
from connectzap.core import clock
from connectzap.testing import FakeWhatsApp, deliver, meta_headers, run, webhook_request

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
        deliver_signed(app, webhook)
    run(app)


def deliver_signed(app: Connectzap, webhook: dict[str, Any]) -> None:
    """Hand one webhook to the WhatsApp connector, signed as Meta signs it (journaled, not yet run)."""
    body = json.dumps(webhook, separators=(",", ":")).encode()
    request = webhook_request("/webhooks/whatsapp", body, headers=meta_headers(body, APP_SECRET))
    answer = deliver(app, "whatsapp", request)
    assert answer.status == 200, answer


def sent_bodies(app: Connectzap) -> list[dict[str, Any]]:
    """The Cloud API request bodies the fake channel received, oldest first."""
    return list(app.channel.sent())  # type: ignore[attr-defined]


class Customers:
    """Customers writing to one engine, each message at its own time: the engine's clock reads that
    time while the message is received and answered, so nothing is stale."""

    def __init__(self, app: Connectzap) -> None:
        self.app = app

    def write(self, wa_id: str, at: datetime, body: str = "Hola", *, wamid: str | None = None) -> str:
        webhook = envelope({"type": "text", "text": {"body": body}, **({"id": wamid} if wamid else {})}, wa_id=wa_id)
        webhook["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(at.timestamp()))
        with clock.use_clock(lambda: at.timestamp() + 2):
            receive(self.app, webhook)
        return wamid_of(webhook)

    def answers(self, wa_id: str | None = None) -> list[str]:
        return [body["text"]["body"] for body in sent_bodies(self.app)
                if body.get("type") == "text" and (wa_id is None or body["to"] == wa_id)]


MADRID_HOURS = {"timezone": "Europe/Madrid", **{day: ["10:00-14:00", "17:00-20:00"] for day in
                                                ("monday", "tuesday", "wednesday", "thursday", "friday")}}


def chats(make: Callable[..., Connectzap]) -> Callable[..., Customers]:
    """``build(welcome={...}, away={...}, business_hours={...})``: a new engine each call, on the
    test's backend, with the WhatsApp connector verifying webhooks and a fake channel."""
    built = itertools.count(1)

    def build(**plugins: Any) -> Customers:
        hours = plugins.pop("business_hours", MADRID_HOURS)
        return Customers(make(f"app{next(built)}", channel=FakeWhatsApp(), connectors=WHATSAPP, plugins=plugins,
                              business_hours=hours))
    return build
