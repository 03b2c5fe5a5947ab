"""One customer, one ordering key: a customer known by a number and a linked BSUID is ordered as one,
whichever identifier an event names, and two customers are never ordered as one. A status Meta
reports by BSUID alone is journaled under the linked customer's key."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connectzap import Category, ConsentChange, Outgoing, TextContent
from connectzap.connectors.whatsapp.webhooks import parse_body
from connectzap.core import identities
from connectzap.core.bsuids import bsuid_key
from connectzap.core.models import Event, EventKind
from connectzap.core.store import journal
from connectzap.core.store.schema import events
from test_identities import BSUID, PHONE, failed_status

# name -> (number, BSUID); "cy" is known by BSUID only, never linked
CUSTOMERS = {"ana": (PHONE, BSUID), "ben": ("+16505559876", "US.20583746102938475610"),
             "cy": (None, "BR.1502576394655843")}
_ids = itertools.count()


def link_all(app: Any) -> None:
    """What a webhook showing both identifiers records (:func:`identities.observe`)."""
    with app.db.begin() as conn:
        for phone, user_id in CUSTOMERS.values():
            if phone:
                identities.observe(app.db, conn, app.secret, phone, user_id)


def about(customer: str, by_number: bool, kind: str) -> Event:
    phone, user_id = CUSTOMERS[customer]
    who = phone if by_number and phone else user_id
    n = next(_ids)
    if kind == "send":
        return Event.of(EventKind.SEND, Outgoing(to=who, content=TextContent(body="hi")), source="t",
                        dedupe_key=f"send-{n}")
    change = ConsentChange(phone=who if who == phone else None, user_id=None if who == phone else who,
                           category=Category.UTILITY, granted=True, source="t")
    return Event.of(EventKind.CONSENT_CHANGED, change, source="t", dedupe_key=f"consent-{n}")


def stored_keys(app: Any, ids: list[int]) -> list[str | None]:
    with app.db.read() as conn:
        found = dict(conn.execute(select(events.c.id, events.c.ordering_key).where(events.c.id.in_(ids))).all())
    return [found[i] for i in ids]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(sorted(CUSTOMERS)), st.booleans(), st.sampled_from(["send", "consent"])),
                min_size=1, max_size=10))
def test_each_customer_has_one_ordering_key_and_no_two_customers_share_one(app: Any, named: list[Any]) -> None:
    link_all(app)
    ids = [j.event_id for j in app.ingest([about(*n) for n in named])]
    assert all(i is not None for i in ids)
    keys = stored_keys(app, ids)
    by_customer: dict[str, set[str | None]] = {}
    for (customer, _, _), key in zip(named, keys, strict=True):
        by_customer.setdefault(customer, set()).add(key)
    assert all(len(k) == 1 and None not in k for k in by_customer.values())  # one key each, never none
    assert len({next(iter(k)) for k in by_customer.values()}) == len(by_customer)  # and none shared


def test_a_send_by_number_never_overtakes_one_by_bsuid_for_the_same_customer(app: Any) -> None:
    link_all(app)
    first, second, other = app.ingest([about("ana", False, "send"), about("ana", True, "send"),
                                       about("ben", True, "send")])
    with app.db.begin() as conn:
        taken = [row["id"] for row in journal.claim(app.db, conn, "a", 1, 60)]
    assert taken == [first.event_id]
    with app.db.begin() as conn:  # a second worker: Ana's next send waits for the first; Ben's is free
        assert [row["id"] for row in journal.claim(app.db, conn, "b", 10, 60)] == [other.event_id]
    assert second.event_id is not None


def test_events_waiting_under_a_bsuid_join_the_number_when_the_link_is_seen(app: Any) -> None:
    """Sent by BSUID before anyone knew the number, then by number: once a webhook links the two, the
    waiting BSUID send is ordered with the number's and still goes first."""
    early, other = app.ingest([about("ana", False, "send"), about("ben", True, "send")])
    with app.db.begin() as conn:
        identities.observe(app.db, conn, app.secret, PHONE, BSUID)
    [late] = app.ingest([about("ana", True, "send")])
    assert len(set(stored_keys(app, [early.event_id, late.event_id, other.event_id]))) == 2
    with app.db.begin() as conn:
        taken = [row["id"] for row in journal.claim(app.db, conn, "a", 10, 60)]
    assert late.event_id not in taken or taken.index(early.event_id) < taken.index(late.event_id)
    with app.db.begin() as conn:
        assert journal.claim(app.db, conn, "b", 10, 60) == []  # nothing of Ana's runs beside it


def test_a_status_reported_by_bsuid_alone_is_journaled_under_the_linked_customer(app: Any) -> None:
    link_all(app)
    [journaled] = app.ingest(parse_body(failed_status("wamid.by-bsuid", "m-1", 131026, "Message undeliverable")))
    with app.db.read() as conn:
        payload = conn.execute(select(events.c.payload).where(events.c.id == journaled.event_id)).scalar_one()
    data = json.loads(payload)["data"]
    assert data["contact_key"] == app.contact_key(PHONE) != bsuid_key(BSUID, app.secret)  # not the BSUID's own
    assert BSUID not in payload and "recipient_user_id" not in data
    [unlinked] = app.ingest([e.model_copy(update={"dedupe_key": "other"}) for e in parse_body(
        failed_status("wamid.by-cy", "m-2", 131026, "Message undeliverable").replace(
            BSUID.encode(), CUSTOMERS["cy"][1].encode()))])
    with app.db.read() as conn:
        payload = conn.execute(select(events.c.payload).where(events.c.id == unlinked.event_id)).scalar_one()
    assert json.loads(payload)["data"]["contact_key"] == bsuid_key(CUSTOMERS["cy"][1], app.secret)
