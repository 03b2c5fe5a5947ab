"""The console tests' shop: a story whose events end in every outcome the console shows (a message
refused for no consent, a dead letter, sending paused), a console user, and logging in."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from connectzap import Contact, Order
from connectzap.console.passwords import hash_password
from connectzap.core.app import Connectzap
from connectzap.core.models import Event, EventKind
from connectzap.testing import run, seed_template

ANA = "+34612345678"
USER, PASSWORD = "shopowner", "correct horse battery staple"
PAUSE_REASON = "the access token expired (190)"

PLUGINS: dict[str, Any] = {
    "order_notifications": {"rules": [
        {"status": "processing", "template": "order_confirmation", "language": "en",
         "params": ["{{ first_name }}", "{{ number }}"]},
        # Valid at start (meta is a known variable); the order has no such key, so its delivery dies.
        {"status": "completed", "template": "order_shipped", "language": "en",
         "params": ["{{ meta['tracking_numbr'] }}"]},
    ]},
}
PLUGINS_TOML = "[plugins.order_notifications]\nrules = [\n" + "".join(
    "  {" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in rule.items()) + "},\n"
    for rule in PLUGINS["order_notifications"]["rules"]) + "]\n"
"""The same plugin settings for a config file (JSON strings and lists are TOML's too)."""


def order(status: str, number: str = "1088") -> Order:
    return Order(id=number, number=number, status=status, shop="main",
                 customer=Contact(phone=ANA, first_name="Ana", country="ES"))


def tell_story(app: Connectzap, *, pause: bool = True) -> dict[str, int]:
    """An order confirmation refused (Ana gave no consent), an order shipped whose delivery dies,
    a console user, and (``pause``) sending paused; returns the event ids by name."""
    seed_template(app, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    seed_template(app, "order_shipped", "Order {{1}} is on its way.")
    events = {
        "refused": Event.of(EventKind.ORDER_UPDATED, order("processing"), source="woocommerce", dedupe_key="o-2",
                            previous_status="pending"),
        "dead": Event.of(EventKind.ORDER_UPDATED, order("completed", "1089"), source="woocommerce",
                         dedupe_key="o-3", previous_status="processing"),
    }
    ids = {name: app.ingest([event])[0].event_id for name, event in events.items()}
    run(app)
    app.operators.add_user(USER, hash_password(PASSWORD))
    if pause:
        app.set_paused(PAUSE_REASON)
    return ids


def unknown_message(app: Connectzap) -> str:
    """A consented message to Ana left ``unknown``, as a worker killed after the hand-off leaves it."""
    from connectzap import Category, ConsentChange, Outgoing, TemplateContent
    from connectzap.core.store import outbox
    app.set_consent(ConsentChange(phone=ANA, category=Category.UTILITY, granted=True, source="test", proof="box"))
    mid = app.send(Outgoing(to=ANA, content=TemplateContent(name="order_confirmation", language="en",
                                                            body=["Ana", "7"]))).id
    with app.db.begin() as conn:
        outbox.claim(app.db, conn, "gone", 10, lease=30)
        outbox.hand_off(conn, [mid], "gone")
        outbox.mark_unknown(conn, mid, reason="crashed_mid_send")
    return mid


CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def log_in(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    """Open the login page and post ``fields`` with its CSRF token (the user's password by default)."""
    page = await client.get("/console/login")
    form = {"name": USER, "password": PASSWORD} if not fields else fields
    return await client.post("/console/login", data={"csrf": csrf_of(page.text), **form})
