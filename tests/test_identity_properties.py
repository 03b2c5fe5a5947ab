"""Property: linking phone numbers and BSUIDs never merges two customers, and loses none.

A hypothesis state machine plays a small world against one store: customers appear (with a
number, or a username and no number), write to the business (their number shown or hidden),
give and withdraw marketing consent, and change number -- which gives them a new BSUID and
frees the old number for the next customer. Meta reports a change (``user_changed_number`` /
``user_changed_user_id``) or, in some runs, never does.

* Safety: whatever consent the store shows for a customer -- by BSUID, and by number once they
  wrote with it shown -- is one they gave themselves (each record's proof names its customer).
* Liveness: a customer whose number changes were all reported still has their latest choice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, \
    run_state_machine_as_test

from connectzap import Category, ConsentChange
from connectzap.core import consent, identities
from connectzap.core.store.schema import consents, contacts, identities as identities_table, windows

NUMBERS = [f"+1650555{n:04d}" for n in range(1234, 1237)]  # few: numbers come back often
START = datetime(2026, 6, 1, tzinfo=UTC)


@dataclass
class Customer:
    number: int
    user_id: str
    phone: str | None
    shown_phone: bool = False  # wrote with this number visible since they got it
    choice: bool | None = None
    intact: bool = True  # every number change was reported


class IdentityWorld(RuleBasedStateMachine):
    app: Any = None

    @initialize()
    def fresh(self) -> None:
        with self.app.db.begin() as conn:
            for table in (consents, windows, contacts, identities_table):
                conn.execute(table.delete())
        self.customers: list[Customer] = []
        self.ids = itertools.count(1)
        self.clock = itertools.count(1)

    def free_numbers(self) -> list[str]:
        taken = {c.phone for c in self.customers}
        return [n for n in NUMBERS if n not in taken]

    def _bsuid(self) -> str:
        return f"US.{next(self.ids):020d}"

    @rule(with_number=st.booleans(), pick=st.integers(0, 5))
    def arrives(self, with_number: bool, pick: int) -> None:
        free = self.free_numbers()
        phone = free[pick % len(free)] if with_number and free else None
        self.customers.append(Customer(len(self.customers), self._bsuid(), phone))

    @precondition(lambda self: self.customers)
    @rule(who=st.integers(0, 20), show=st.booleans())
    def writes(self, who: int, show: bool) -> None:
        c = self.customers[who % len(self.customers)]
        shown = c.phone if show else None
        with self.app.db.begin() as conn:
            identities.observe(self.app.db, conn, self.app.secret, shown, c.user_id)
        c.shown_phone = c.shown_phone or shown is not None

    @precondition(lambda self: self.customers)
    @rule(who=st.integers(0, 20), granted=st.booleans())
    def chooses(self, who: int, granted: bool) -> None:
        c = self.customers[who % len(self.customers)]
        change = ConsentChange(user_id=c.user_id, category=Category.MARKETING, granted=granted,
                               source="test", proof=f"customer {c.number}",
                               at=START + timedelta(seconds=next(self.clock)))
        with self.app.db.begin() as conn:
            key = identities.resolve(conn, self.app.secret, None, c.user_id)
            assert key is not None
            consent.record(self.app.db, conn, key, change)
        c.choice = granted

    @precondition(lambda self: self.customers)
    @rule(who=st.integers(0, 20), with_number=st.booleans(), pick=st.integers(0, 5), reported=st.booleans())
    def changes_number(self, who: int, with_number: bool, pick: int, reported: bool) -> None:
        c = self.customers[who % len(self.customers)]
        free = [n for n in self.free_numbers() if n != c.phone]
        old_phone, old_user_id = c.phone, c.user_id
        c.phone = free[pick % len(free)] if with_number and free else None
        c.user_id, c.shown_phone = self._bsuid(), False
        if not reported:
            c.intact = False
            return
        with self.app.db.begin() as conn:  # user_changed_number names both numbers; user_changed_user_id none
            identities.renumber(self.app.db, conn, self.app.secret, old_phone=old_phone if c.phone else None,
                                old_user_id=old_user_id, new_phone=c.phone, new_user_id=c.user_id)

    def _shown(self, phone: str | None, user_id: str | None) -> Any:
        with self.app.db.read() as conn:
            key = identities.resolve(conn, self.app.secret, phone, user_id)
            assert key is not None
            return consent.latest(conn, key, Category.MARKETING)

    @invariant()
    def nobody_sees_another_customers_consent(self) -> None:
        for c in getattr(self, "customers", []):
            looks = [self._shown(None, c.user_id)]
            if c.phone and c.shown_phone:
                looks.append(self._shown(c.phone, None))
            for record in looks:
                assert record is None or record.proof == f"customer {c.number}", (c, record)

    @invariant()
    def reported_changes_keep_the_choice(self) -> None:
        for c in getattr(self, "customers", []):
            if c.intact and c.choice is not None:
                record = self._shown(None, c.user_id)
                assert record is not None and record.granted == c.choice, (c, record)


def test_identity_linking_never_merges_customers(app):
    IdentityWorld.app = app
    run_state_machine_as_test(IdentityWorld, settings=settings(
        max_examples=100 if app.db.is_sqlite else 30, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))
