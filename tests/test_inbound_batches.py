"""Inbound messages applied as one batch leave the store exactly as applying them one at a time does.

The dispatcher hands the core's bookkeeping a whole claimed batch (``Bookkeeping.apply_many``): a run
of inbound messages reads the identities it names once and opens every window with one statement. A
property checks it against :meth:`Bookkeeping.apply`, event by event, on a small world where numbers
and BSUIDs are linked for the first time, shown or hidden, renumbered by a system message, taken
over by the next customer, and where consents and contacts marked unreachable are in play: windows,
links, unreachable marks and consents must come out the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import select

from connectzap import Category, ConsentChange, Event, EventKind
from connectzap.core.bookkeeping import Bookkeeping
from connectzap.core.models import Contact, InboundMessage
from connectzap.core.phones import contact_key
from connectzap.core.store.schema import consents, contacts, identities, windows

PHONES = ["+16505551234", "+16505551235", "+16505551236"]
BSUIDS = ["US.10000000000000000001", "US.10000000000000000002", "US.10000000000000000003",
          "US.10000000000000000004"]
NUMBERS = ["106540352242922", "106540352242923", None]  # the business numbers written to (None: unknown)
START = datetime(2026, 6, 1, tzinfo=UTC)
TABLES = (windows, identities, contacts, consents)


def message(n: int, phone: str | None, user_id: str | None, seconds: int, number: str | None,
            system: dict[str, Any] | None = None) -> Event:
    data = InboundMessage(wamid=f"wamid.{n}", type="system" if system else "text", text=None if system else "hi",
                          timestamp=START + timedelta(seconds=seconds), contact=Contact(phone=phone, user_id=user_id),
                          business_phone_number_id=number, system=system)
    return Event.of(EventKind.INBOUND_MESSAGE, data, source="whatsapp", dedupe_key=f"m{n}")


@st.composite
def steps(draw: st.DrawFn) -> list[Event]:
    """Messages from a few people (a number, a BSUID, or both), now and then a renumbering or a
    consent change in between."""
    out = []
    for n in range(draw(st.integers(1, 14))):
        phone = draw(st.sampled_from([*PHONES, None]))
        user_id = draw(st.sampled_from([*BSUIDS, None])) if phone else draw(st.sampled_from(BSUIDS))
        seconds = draw(st.integers(0, 40))
        what = draw(st.sampled_from(["message"] * 6 + ["renumber", "consent"]))
        if what == "renumber":
            out.append(message(n, phone, user_id, seconds, None,
                               {"previous_user_id": user_id, "user_id": draw(st.sampled_from(BSUIDS)),
                                "new_phone": draw(st.sampled_from([*PHONES, None]))}))
        elif what == "consent":
            change = ConsentChange(phone=phone, user_id=None if phone else user_id, category=Category.MARKETING,
                                   granted=draw(st.booleans()), source="test", proof=f"step {n}",
                                   at=START + timedelta(seconds=seconds))
            out.append(Event.of(EventKind.CONSENT_CHANGED, change, source="test", dedupe_key=f"c{n}"))
        else:
            out.append(message(n, phone, user_id, seconds, draw(st.sampled_from(NUMBERS))))
    return out


def reset(app: Any, unreachable: list[str], links: list[tuple[str, str]]) -> None:
    """An empty store but for some contacts marked unreachable and some links seen before."""
    from connectzap.core import identities as ids
    with app.db.begin() as conn:
        for table in TABLES:
            conn.execute(table.delete())
        for phone in unreachable:
            conn.execute(contacts.insert().values(contact_key=contact_key(phone, app.secret),
                                                  unreachable_since=1.0, updated_at=1.0))
        for phone, user_id in links:
            ids.observe(app.db, conn, app.secret, phone, user_id)


def dump(app: Any) -> dict[str, list[tuple[Any, ...]]]:
    queries = {"windows": select(windows),
               "identities": select(identities.c.identity_key, identities.c.contact_key),
               "contacts": select(contacts.c.contact_key),
               "consents": select(consents.c.contact_key, consents.c.category, consents.c.granted,
                                  consents.c.proof, consents.c.at)}
    with app.db.read() as conn:
        return {name: sorted(tuple(row) for row in conn.execute(query)) for name, query in queries.items()}


@given(batch=steps(),
       unreachable=st.lists(st.sampled_from(PHONES), unique=True),
       links=st.lists(st.tuples(st.sampled_from(PHONES), st.sampled_from(BSUIDS)), max_size=3))
def test_a_batch_of_inbound_messages_ends_as_one_at_a_time(app: Any, batch: list[Event], unreachable: list[str],
                                                            links: list[tuple[str, str]]) -> None:
    bookkeeping = Bookkeeping(app.db, app.secret, lambda kind: False)
    numbered = list(enumerate(batch, start=1))
    reset(app, unreachable, links)
    with app.db.begin() as conn:
        for event_id, event in numbered:
            bookkeeping.apply(conn, event_id, event)
    one_at_a_time = dump(app)
    reset(app, unreachable, links)
    with app.db.begin() as conn:
        bookkeeping.apply_many(conn, numbered)
    assert dump(app) == one_at_a_time


test_a_batch_of_inbound_messages_ends_as_one_at_a_time = settings(  # type: ignore[assignment]
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)(test_a_batch_of_inbound_messages_ends_as_one_at_a_time)


def test_a_run_of_known_contacts_opens_its_windows_with_a_few_statements(app: Any) -> None:
    """Fifty messages from contacts whose number and BSUID are already linked: the links are read
    once, the windows written with one statement, the unreachable marks cleared with one, the core
    deliveries finished with one -- not one of each per message."""
    people = [(f"+1650555{2000 + n}", f"US.2{n:019d}") for n in range(50)]
    reset(app, [], [])
    with app.db.begin() as conn:
        from connectzap.core import identities as ids
        for phone, user_id in people:
            ids.observe(app.db, conn, app.secret, phone, user_id)
    batch = [(n, message(n, phone, user_id, n, NUMBERS[0])) for n, (phone, user_id) in enumerate(people, start=1)]
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.split(None, 1)[0])

    bookkeeping = Bookkeeping(app.db, app.secret, lambda kind: False)
    with app.db.begin() as conn:
        sa_event.listen(app.db.engine, "before_cursor_execute", seen)
        try:
            bookkeeping.apply_many(conn, batch)
        finally:
            sa_event.remove(app.db.engine, "before_cursor_execute", seen)
    assert len(statements) <= 4, statements
    assert len(dump(app)["windows"]) == 50
