"""A campaign's outcomes follow its messages' changes -- and only the changes: the messages
admission inserted are not read again until something changes them (``ix_outbox_cancel_changed``).

The property changes a random set of a campaign's messages, in two rounds, some stamped "late"
(before the last look, as by a transaction that committed after it), and checks that every
followed recipient's outcome is what its message's status says -- including a message put back
to ``queued`` after it was sent, which the partial index must still hold."""

from __future__ import annotations

import itertools
import io
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connectzap import Category, ConsentChange
from connectzap.core.campaigns import Action, engine, read_file
from connectzap.core.store.database import now
from connectzap.core.store.schema import campaign_recipients, campaigns, outbox
from connectzap.testing import seed_template

NUMBERS = [f"+49151223344{n:02d}" for n in range(5)]
STATUSES = ["queued", "sending", "accepted", "sent", "delivered", "read", "failed", "refused"]
change = st.one_of(st.none(), st.tuples(st.sampled_from(STATUSES), st.booleans()))  # (status, stamped late)
_names = itertools.count()


def _started(app: Any) -> str:
    seed_template(app, "autumn", "Hi {{1}}", category="MARKETING")
    for phone in NUMBERS:
        app.set_consent(ConsentChange(phone=phone, category=Category.MARKETING, granted=True, source="test",
                                      proof="the till"))
    made = app.campaigns.create(f"autumn{next(_names)}", {"name": "autumn", "language": "en"})
    text = "phone,1\n" + "".join(f"{n},Ana\n" for n in NUMBERS)
    app.campaigns.load_audience(made.id, read_file(io.StringIO(text), "csv", app.secret))
    app.campaigns.control(made.id, Action.START)
    app.campaigns.run_once()  # admits all of them
    return made.id


def _follow(app: Any, campaign_id: str) -> None:
    with app.db.begin() as conn:
        engine.follow(app.db, conn, conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).one())


def _outcomes(app: Any, campaign_id: str) -> dict[str, tuple[str, str]]:
    with app.db.read() as conn:
        return {r.message_id: (r.outcome, r.status) for r in conn.execute(
            select(campaign_recipients.c.message_id, campaign_recipients.c.outcome, outbox.c.status)
            .join(outbox, outbox.c.id == campaign_recipients.c.message_id)
            .where(campaign_recipients.c.campaign_id == campaign_id))}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(rounds=[[("sent", False), ("delivered", True), None, None, None],  # put back after it was sent
                 [("queued", False), ("read", True), None, None, None]])
@given(rounds=st.lists(st.lists(change, min_size=len(NUMBERS), max_size=len(NUMBERS)), min_size=2, max_size=2))
def test_outcomes_follow_every_change_also_one_committed_after_the_last_look(app, rounds) -> None:
    campaign_id = _started(app)
    _follow(app, campaign_id)
    for changes in rounds:
        before = _outcomes(app, campaign_id)
        with app.db.begin() as conn:
            looked = conn.execute(select(campaigns.c.followed_until).where(campaigns.c.id == campaign_id)).scalar_one()
            for message_id, made in zip(sorted(before), changes, strict=True):
                if made is None:
                    continue
                status, late = made
                created = conn.execute(select(outbox.c.created_at).where(outbox.c.id == message_id)).scalar_one()
                conn.execute(outbox.update().where(outbox.c.id == message_id).values(
                    status=status, updated_at=(created + looked) / 2 if late else now()))
        _follow(app, campaign_id)
        for message_id, (outcome, status) in _outcomes(app, campaign_id).items():
            if before[message_id][0] in engine.FOLLOWED:
                assert outcome == engine._OUTCOME_OF[status], (message_id, before[message_id], status)
            else:
                assert outcome == before[message_id][0]


def test_the_messages_admission_inserted_are_not_read_again_until_they_change(app) -> None:
    campaign_id = _started(app)
    with app.db.read() as conn:
        assert conn.execute(engine.changed_messages(campaign_id, 0.0)).all() == []
        some = conn.execute(select(outbox.c.id).where(outbox.c.cancel_key == engine.cancel_key(campaign_id))
                            .limit(1)).scalar_one()
    with app.db.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.id == some).values(status="sending", updated_at=now()))
    with app.db.read() as conn:
        assert [r.id for r in conn.execute(engine.changed_messages(campaign_id, 0.0))] == [some]


def test_the_changed_messages_are_read_by_the_partial_index(app) -> None:
    with app.db.read() as conn:
        stmt = engine.changed_messages("c1", now() - 60)
        sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
        if app.db.is_sqlite:
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table: a scan would be cheaper
            plan = " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))
    assert "ix_outbox_cancel_changed" in plan
