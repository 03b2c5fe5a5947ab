"""A contact's messages, found by its key: ``ix_outbox_contact`` leaves a campaign's queued messages
out (admission would write a random page of it per recipient), and :func:`outbox.of_contacts` finds
those through the campaign's recipients."""

from __future__ import annotations

from sqlalchemy import func, select, text

from connectzap.core.campaigns import Action
from connectzap.core.campaigns.send_rules import SENDER_PREFIX
from connectzap.core.messages import Outgoing, TextContent
from connectzap.core.models import Contact
from connectzap.core.store import outbox as outbox_rows
from connectzap.core.store.schema import CONTACT_INDEXED, outbox
from connectzap.testing import FakeWhatsApp, run

from tests.test_campaigns import NUMBERS, campaign_with, grant


def _admitted_not_sent(app, numbers: list[str]) -> str:
    for phone in numbers:
        grant(app, phone)
    made = campaign_with(app, numbers)
    app.campaigns.control(made.id, Action.START)
    assert app.campaigns.run_once()  # one engine round: admitted, nothing claimed yet
    return made.id


def test_a_contacts_messages_include_a_campaigns_message_still_in_the_queue_and_after_it_went(app) -> None:
    ana, bea = NUMBERS[0], NUMBERS[1]
    earlier = app.send(Outgoing(to=Contact(phone=ana), content=TextContent(body="Your parcel is on its way")))
    campaign_id = _admitted_not_sent(app, [ana, bea])

    queued = app.messages(phone=ana)
    assert [m["id"] for m in queued][1:] == [earlier.id]
    assert queued[0]["status"] == "queued" and queued[0]["plugin"] == SENDER_PREFIX + campaign_id
    assert [m["status"] for m in app.messages(phone=bea)] == ["queued"]
    assert app.messages(phone=NUMBERS[2]) == []

    app.use_channel(FakeWhatsApp())
    run(app)
    after = app.messages(phone=ana)
    assert [m["id"] for m in after] == [m["id"] for m in queued]
    assert after[0]["status"] not in ("queued", "sending")


def test_the_contact_index_holds_every_message_but_a_campaigns_queued_ones(app) -> None:
    ana = NUMBERS[0]
    app.send(Outgoing(to=Contact(phone=ana), content=TextContent(body="Your parcel is on its way")))
    _admitted_not_sent(app, NUMBERS[:3])
    with app.db.read() as conn:
        by_status = dict(conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all())
        indexed = conn.execute(select(func.count()).select_from(outbox).where(text(f"({CONTACT_INDEXED})"))).scalar()
        definition = conn.execute(text(
            "SELECT sql FROM sqlite_master WHERE name = 'ix_outbox_contact'" if conn.dialect.name == "sqlite" else
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_outbox_contact' AND schemaname = current_schema()"
        )).scalar_one()
    assert by_status == {"queued": 3, "refused": 1}  # the free-form text outside a window is refused
    assert indexed == 1
    assert "WHERE" in definition and "campaign:" in definition  # the migrated index is the partial one
    assert f"'{SENDER_PREFIX}%'" in CONTACT_INDEXED  # the predicate names campaigns as their rows do


def test_finding_a_contacts_messages_uses_the_contact_index(app) -> None:
    """The query repeats the index's predicate so that the database can use it: written any other
    way (a bound parameter, no parentheses) the planner reads the whole outbox."""
    with app.db.begin() as conn:
        query = select(outbox.c.id).where(outbox_rows.of_contacts(conn, ["0" * 32]))
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        if conn.dialect.name == "sqlite":
            plan = " ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
        else:  # an empty table: without this PostgreSQL reads it whole whatever the indexes
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = " ".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql))
    assert "ix_outbox_contact" in plan
