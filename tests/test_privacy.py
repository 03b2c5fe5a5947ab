"""Privacy scan: once everything is finished, the database holds no phone number and no message text.

On SQLite the raw bytes of the database file and its WAL are searched (freed pages included);
on PostgreSQL every text column of every table. With ``retention_hours`` set, the same data is
present until it expires (which also shows the scan can see it) and gone after ``erase_expired``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from connectzap import (Category, ConsentChange, Connectzap, Contact, Event, EventKind, InboundMessage, Order,
                        Outgoing, TemplateContent, TextContent, hookimpl)
from connectzap.core import clock
from connectzap.core.plugins import pm
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

PHONE = "+4915112345678"
PHONE_FORMS = ["+4915112345678", "4915112345678", "015112345678", "0151 12345678", "15112345678"]
INBOUND_TEXT = "Where is my parcel? Ring Zebrastrasse 17 please"
FREE_FORM_TEXT = "Your parcel waits at Kiosk Quastenflosser"
CUSTOMER_NAME = "Annelore Privatnamova"
SECRETS = [*PHONE_FORMS, INBOUND_TEXT, FREE_FORM_TEXT, CUSTOMER_NAME]


class ConfirmingPlugin:
    @hookimpl
    def on_order_created(self, order: Order, ctx: Any) -> None:
        assert order.customer is not None
        ctx.send(order.customer, TemplateContent(name="order_confirmation", language="en",
                                                 body=[order.customer.name or "", order.id]), key=f"o:{order.id}")


@pytest.fixture(autouse=True)
def confirming_plugin() -> Iterator[None]:
    pm.register(ConfirmingPlugin(), name="privacy_plugin")
    yield
    pm.unregister(name="privacy_plugin")


def exercise(app: Connectzap) -> None:
    """Inbound message, order with a customer phone, template and free-form sends, statuses."""
    seed_template(app, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed")
    inbound = InboundMessage(wamid="wamid.in.privacy", type="text", timestamp=clock.utcnow(),
                             contact=Contact(phone="4915112345678", name=CUSTOMER_NAME), text=INBOUND_TEXT)
    order = Event(kind=EventKind.ORDER_CREATED, source="shop", dedupe_key="order-77",
                  consents=[ConsentChange(phone="0151 12345678", country="DE", category=Category.UTILITY,
                                          granted=True, source="checkout", proof="checkbox at checkout")],
                  data={"id": "77", "status": "processing",
                        "customer": {"phone": "0151 12345678", "country": "DE", "name": CUSTOMER_NAME}})
    app.ingest([Event.of(EventKind.INBOUND_MESSAGE, inbound, source="whatsapp", dedupe_key=inbound.wamid), order])
    asyncio.run(Worker(app).run_until_idle())
    decision = app.send(Outgoing(to=PHONE, content=TextContent(body=FREE_FORM_TEXT)))
    assert decision.status == "queued", decision
    asyncio.run(Worker(app).run_until_idle())
    statuses = sorted(m["status"] for m in app.messages())
    assert statuses == ["delivered", "delivered"], statuses  # both went out, statuses applied


def found_in_database(app: Connectzap) -> list[str]:
    """Which of SECRETS the database still holds anywhere."""
    if app.db.is_sqlite:  # the bytes as they are: no checkpoint here, the product's own must have run
        path = Path(app.db.url.split(":///", 1)[1])
        raw = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
        return [s for s in SECRETS if s.encode() in raw]
    found = set()
    with app.db.engine.connect() as conn:
        columns = conn.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying')")).all()
        assert columns
        for table, column in columns:
            for (value,) in conn.execute(text(f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL')):
                found.update(s for s in SECRETS if s in value)
    return sorted(found)


def test_nothing_personal_remains_after_processing(app: Connectzap) -> None:
    exercise(app)
    Worker(app).housekeeping()  # what a running worker does every few seconds
    assert found_in_database(app) == []


def test_the_wal_keeps_erased_data_until_the_housekeeping_checkpoint(app: Connectzap) -> None:
    """SQLite writes changes to the -wal file first: the page versions from before an erasure stay
    there until a checkpoint. The worker's housekeeping checkpoints (TRUNCATE)."""
    if not app.db.is_sqlite:
        pytest.skip("SQLite only")
    exercise(app)
    wal = Path(app.db.url.split(":///", 1)[1] + "-wal")
    assert INBOUND_TEXT.encode() in wal.read_bytes()  # erased in the tables, not yet in the WAL
    Worker(app).housekeeping()
    assert wal.stat().st_size == 0
    assert found_in_database(app) == []


def test_retention_keeps_payloads_until_they_expire(make: Any) -> None:
    app = make(privacy={"retention_hours": 2})
    exercise(app)
    assert set(found_in_database(app)) >= {"+4915112345678", INBOUND_TEXT, FREE_FORM_TEXT, CUSTOMER_NAME}
    later = datetime.now(UTC).timestamp() + 2 * 3600 + 60
    with clock.use_clock(lambda: later):
        Worker(app).housekeeping()
    assert found_in_database(app) == []
