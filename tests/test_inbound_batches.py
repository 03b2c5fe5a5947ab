"""Inbound messages applied as one batch leave the store exactly as applying them one at a time does.

The dispatcher hands the core's bookkeeping a whole claimed batch (``Bookkeeping.apply_many``): a run
of inbound messages reads the identities it names once and opens every window with one statement. A
property checks it against :meth:`Bookkeeping.apply`, event by event, on a small world where numbers
and BSUIDs are linked for the first time, shown or hidden, renumbered by a system message, taken
over by the next customer, and where consents and contacts marked unreachable are in play: windows,
links, unreachable marks and consents must come out the same. A second property starts from records
kept under BSUIDs alone (a window, a consent, an unreachable mark, a conversation, a plugin's contact
time, a queued message, a pending event): a BSUID's first link is recorded in bulk only when it
moves nothing, and every table comes out as linking one message at a time leaves it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import select

from connectzap import Category, ConsentChange, Event, EventKind
from connectzap.core import ordering
from connectzap.core.bookkeeping import Bookkeeping
from connectzap.core.bsuids import bsuid_key
from connectzap.core.contact_times import ContactTime
from connectzap.core.models import Contact, InboundMessage, MessageStatus
from connectzap.core.phones import contact_key
from connectzap.core.store.schema import consents, contacts, conversations, events, identities, outbox, plugin_state, \
    windows

PHONES = ["+16505551234", "+16505551235", "+16505551236"]
BSUIDS = ["US.10000000000000000001", "US.10000000000000000002", "US.10000000000000000003",
          "US.10000000000000000004"]
NUMBERS = ["106540352242922", "106540352242923", None]  # the business numbers written to (None: unknown)
START = datetime(2026, 6, 1, tzinfo=UTC)
TABLES = (windows, identities, contacts, consents, conversations, plugin_state, outbox, events)
LAST_BENCH = ContactTime("bench")  # a plugin's time per customer: it moves with the customer's records
KEPT = ["window", "consent", "unreachable", "conversation", "time", "queued", "pending"]


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


def reset(app: Any, unreachable: list[str], links: list[tuple[str, str]],
          kept: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
    """An empty store but for some contacts marked unreachable, some links seen before, and
    ``kept``: (BSUID, what) records kept under a BSUID alone."""
    from connectzap.core import identities as ids
    with app.db.begin() as conn:
        for table in TABLES:
            conn.execute(table.delete())
        for phone in unreachable:
            conn.execute(contacts.insert().values(contact_key=contact_key(phone, app.secret),
                                                  unreachable_since=1.0, updated_at=1.0))
        for phone, user_id in links:
            ids.observe(app.db, conn, app.secret, phone, user_id)
        for n, (user_id, what) in enumerate(sorted(set(kept))):
            own = bsuid_key(user_id, app.secret)
            conn.execute({
                "window": windows.insert().values(contact_key=own, business_phone_number_id=NUMBERS[0],
                                                  last_inbound_at=5.0),
                "consent": consents.insert().values(contact_key=own, category="marketing", granted=True,
                                                    source="test", proof=f"kept {n}", at=2.0, recorded_at=2.0),
                "unreachable": contacts.insert().values(contact_key=own, unreachable_since=1.0, updated_at=1.0),
                "conversation": conversations.insert().values(contact_key=own, handled_by="human", reason="test",
                                                              since=1.0, updated_at=1.0),
                "time": plugin_state.insert().values(plugin="bench", key=LAST_BENCH.key(own), value="7.0",
                                                     updated_at=1.0),
                "queued": outbox.insert().values(id=f"o{n}", idempotency_key=f"k{n}", request_hash="h",
                                                 contact_key=own, category="utility", content_type="text",
                                                 status="queued", next_attempt_at=1.0, attempts=0, created_at=1.0,
                                                 updated_at=1.0),
                "pending": events.insert().values(source="test", dedupe_key=f"p{n}", kind="inbound_message",
                                                  status="pending", attempts=0, next_attempt_at=1.0, received_at=1.0,
                                                  ordering_key=ordering.hashed(ordering.contact(own), app.secret)),
            }[what])


def dump(app: Any) -> dict[str, list[tuple[Any, ...]]]:
    queries = {"windows": select(windows),
               "identities": select(identities.c.identity_key, identities.c.contact_key),
               "contacts": select(contacts.c.contact_key),
               "consents": select(consents.c.contact_key, consents.c.category, consents.c.granted,
                                  consents.c.proof, consents.c.at),
               "conversations": select(conversations.c.contact_key, conversations.c.reason),
               "plugin_state": select(plugin_state.c.plugin, plugin_state.c.key, plugin_state.c.value),
               "outbox": select(outbox.c.id, outbox.c.contact_key),
               "events": select(events.c.dedupe_key, events.c.ordering_key)}
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


@st.composite
def first_contacts(draw: st.DrawFn) -> list[Event]:
    """Messages, most of them from people whose number and BSUID come together, some with the
    number hidden or the BSUID missing: a run where most links are made for the first time."""
    out = []
    for n in range(draw(st.integers(1, 14))):
        phone = draw(st.sampled_from([*PHONES, None]))
        user_id = draw(st.sampled_from(BSUIDS)) if draw(st.integers(0, 5)) else None
        if phone is None and user_id is None:
            phone = PHONES[0]
        out.append(message(n, phone, user_id, draw(st.integers(0, 40)), draw(st.sampled_from(NUMBERS))))
    return out


@given(batch=first_contacts(),
       kept=st.lists(st.tuples(st.sampled_from(BSUIDS), st.sampled_from(KEPT)), max_size=4),
       links=st.lists(st.tuples(st.sampled_from(PHONES), st.sampled_from(BSUIDS)), max_size=2),
       statuses=st.lists(st.integers(0, 13), max_size=2))
def test_first_links_in_bulk_end_as_one_at_a_time(app: Any, batch: list[Event], kept: list[tuple[str, str]],
                                                  links: list[tuple[str, str]], statuses: list[int]) -> None:
    """Between the messages now and then a status event (it ends a run of inbound messages: the
    links a run made in bulk are recorded before it)."""
    for at in sorted(set(statuses), reverse=True):
        status = Event.of(EventKind.MESSAGE_STATUS, MessageStatus(wamid=f"wamid.out.{at}", status="delivered",
                                                                  timestamp=START),
                          source="whatsapp", dedupe_key=f"s{at}")
        batch = [*batch[:at], status, *batch[at:]]
    bookkeeping = Bookkeeping(app.db, app.secret, lambda kind: False)
    numbered = list(enumerate(batch, start=1))
    reset(app, [], links, kept)
    with app.db.begin() as conn:
        for event_id, event in numbered:
            bookkeeping.apply(conn, event_id, event)
    one_at_a_time = dump(app)
    reset(app, [], links, kept)
    with app.db.begin() as conn:
        bookkeeping.apply_many(conn, numbered)
    assert dump(app) == one_at_a_time


test_first_links_in_bulk_end_as_one_at_a_time = settings(  # type: ignore[assignment]
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)(test_first_links_in_bulk_end_as_one_at_a_time)


def statements_applying(app: Any, batch: list[Any]) -> list[str]:
    """The first word of each statement one ``Bookkeeping.apply_many`` of ``batch`` runs."""
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
    return statements


def test_a_run_of_new_contacts_links_them_with_a_few_statements(app: Any) -> None:
    """Fifty messages from contacts never seen, each with a number and a BSUID: the links read once,
    what is kept under the new BSUIDs read once, the links recorded with one statement -- not the
    seventeen statements of :func:`identities.observe` per message. Each is linked all the same."""
    people = [(f"+1650555{3000 + n}", f"US.3{n:019d}") for n in range(50)]
    reset(app, [], [])
    batch = [(n, message(n, phone, user_id, n, NUMBERS[0])) for n, (phone, user_id) in enumerate(people, start=1)]
    statements = statements_applying(app, batch)
    assert len(statements) <= 7, statements
    assert sorted(dump(app)["identities"]) == sorted((bsuid_key(user_id, app.secret), contact_key(phone, app.secret))
                                                     for phone, user_id in people)


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
    statements = statements_applying(app, batch)
    assert len(statements) <= 4, statements
    assert len(dump(app)["windows"]) == 50
