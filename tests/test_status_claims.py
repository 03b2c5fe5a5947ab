"""Status events nobody listens to: claimed in bigger batches (``workers.status_batch_size``) and
settled in the claim's transaction without delivery rows -- still applied exactly once, and one
bad status still never holds back the others."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from connectzap import Category, Connectzap, ConsentChange, Event, EventKind, Order, Outgoing, TemplateContent, hookimpl
from connectzap.core.models import MessageStatus
from connectzap.core.store import journal, outbox
from connectzap.core.store.schema import deliveries, events
from connectzap.core.worker import Worker
from connectzap.testing import registered_plugin, seed_template


@pytest.fixture
def app(make: Any) -> Connectzap:
    """The sandbox reports no statuses of its own: the tests journal them, as Meta's webhooks would."""
    return make(sandbox={"quiet": True, "simulate_statuses": False})


def status_event(wamid: str, status: str, outbox_id: str | None = None) -> Event:
    return Event.of(EventKind.MESSAGE_STATUS, MessageStatus(wamid=wamid, status=status, timestamp=datetime.now(UTC),
                                                            outbox_id=outbox_id),
                    source="whatsapp", dedupe_key=f"{wamid}:{status}")


async def sent_messages(app: Connectzap, count: int) -> list[tuple[str, str]]:
    """``count`` messages sent through the sandbox (and the sender's own events dispatched): their
    (id, wamid), oldest first."""
    seed_template(app, "order_confirmation", "Order {{1}} confirmed")
    phones = [f"+4915112340{n:03d}" for n in range(count)]
    for phone in phones:
        app.set_consent(ConsentChange(phone=phone, category=Category.UTILITY, granted=True, source="t", proof="t"))
    app.send_many([Outgoing(to=phone, content=TemplateContent(name="order_confirmation", language="en", body=[str(n)]))
                   for n, phone in enumerate(phones)])
    await Worker(app).run_until_idle()
    sent = [(row["id"], row["wamid"]) for row in reversed(app.messages(limit=count))]
    assert len(sent) == count and all(wamid for _, wamid in sent)
    return sent


def deliveries_of(app: Connectzap, event_ids: list[int]) -> int:
    with app.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(deliveries)
                                .where(deliveries.c.event_id.in_(event_ids))).scalar_one())


def statuses_of(app: Connectzap, event_ids: list[int]) -> dict[str, int]:
    with app.db.read() as conn:
        return dict(conn.execute(select(events.c.status, func.count()).where(events.c.id.in_(event_ids))
                                 .group_by(events.c.status)).all())


async def test_statuses_nobody_listens_to_are_applied_once_and_leave_no_delivery_rows(app: Connectzap) -> None:
    assert not Worker(app).dispatcher.targets("message_status")  # the premise: nobody listens
    sent = await sent_messages(app, 3)
    journaled = app.ingest([status_event(wamid, status) for status in ("sent", "delivered", "read")
                            for _, wamid in sent])
    ids = [j.event_id for j in journaled if j.event_id is not None]
    assert await Worker(app).dispatch_once() == 9
    assert statuses_of(app, ids) == {"done": 9}
    assert deliveries_of(app, ids) == 0  # before: one "core" delivery per status, written only to finish it
    assert {app.message(message_id)["status"] for message_id, _ in sent} == {"read"}
    assert await Worker(app).dispatch_once() == 0  # nothing is applied twice
    # again delivered: journaled once, so a duplicate webhook changes nothing
    assert app.ingest([status_event(sent[0][1], "delivered")])[0].duplicate


async def test_with_a_listener_statuses_keep_their_deliveries_and_reach_the_hook(app: Connectzap) -> None:
    sent = await sent_messages(app, 2)
    heard: list[str] = []

    class Listener:
        @hookimpl
        def on_message_status(self, status: Any) -> None:
            heard.append(f"{status.wamid}:{status.status}")

    with registered_plugin(Listener()):
        journaled = app.ingest([status_event(wamid, "delivered") for _, wamid in sent])
        await Worker(app).run_until_idle()
    ids = [j.event_id for j in journaled if j.event_id is not None]
    assert sorted(heard) == sorted(f"{wamid}:delivered" for _, wamid in sent)
    assert statuses_of(app, ids) == {"done": 2} and deliveries_of(app, ids) == 4  # core + the hook, each


async def test_a_status_that_fails_alone_is_retried_and_the_rest_of_its_batch_applied(
        app: Connectzap, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = await sent_messages(app, 3)
    real = outbox.apply_statuses

    def failing_on_one(conn: Any, reports: list[outbox.StatusReport]) -> list[dict[str, Any] | None]:
        if any(r.wamid == sent[1][1] for r in reports):
            raise RuntimeError("the database refused this one")
        return real(conn, reports)

    monkeypatch.setattr(outbox, "apply_statuses", failing_on_one)
    journaled = app.ingest([status_event(wamid, "delivered") for _, wamid in sent])
    await Worker(app).dispatch_once()
    bad = journaled[1].event_id
    assert statuses_of(app, [j.event_id for j in journaled if j.event_id != bad]) == {"done": 2}
    assert [app.message(message_id)["status"] for message_id, _ in sent] == ["delivered", "accepted", "delivered"]
    with app.db.read() as conn:
        [core] = journal.deliveries_of(conn, bad)  # the failure is recorded, for its retry
    assert (core["target"], core["status"], core["attempts"]) == ("core", "pending", 1)
    assert "refused this one" in core["last_error"]
    assert statuses_of(app, [bad]) == {"pending": 1}  # back when its retry is due


def order_event(n: int) -> Event:
    return Event.of(EventKind.ORDER_CREATED, Order(id=str(n), status="processing", total="1.00", currency="EUR"),
                    source="woocommerce", dedupe_key=f"order-{n}")


def test_a_claim_takes_up_to_status_batch_size_statuses_and_batch_size_of_anything_else(app: Connectzap) -> None:
    first = app.ingest([status_event(f"wamid.a{n}", "sent") for n in range(120)])
    orders = app.ingest([order_event(n) for n in range(5)])
    later = app.ingest([status_event(f"wamid.b{n}", "sent") for n in range(100)])
    with app.db.begin() as conn:
        claimed = journal.claim(app.db, conn, "w1", 50, 60, statuses_up_to=200)
    # the first 50 are statuses: more statuses, past the orders, which stay free for other workers
    assert [row["id"] for row in claimed] == [j.event_id for j in first] + [j.event_id for j in later][:80]
    with app.db.begin() as conn:
        claimed = journal.claim(app.db, conn, "w1", 50, 60, statuses_up_to=200)
    # an order among the first 50: batch_size rules the whole batch
    assert [row["id"] for row in claimed] == [j.event_id for j in orders] + [j.event_id for j in later][80:]
    app.ingest([status_event(f"wamid.c{n}", "sent") for n in range(60)])
    with app.db.begin() as conn:
        claimed = journal.claim(app.db, conn, "w1", 50, 60)
    assert len(claimed) == 50  # without statuses_up_to: batch_size, statuses or not
