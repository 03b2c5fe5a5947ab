"""Reachability on a medium other than WhatsApp (a hard-bounced email address): failures and
deliveries are compared by when they happened, whatever order they are told in; WhatsApp's own
mark is apart; an opt-in clears a standing mark only."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectzap import Connectzap
from connectzap.core import reachability
from connectzap.core.channel import EMAIL, SMS, WHATSAPP

counter = itertools.count()
told = st.lists(st.tuples(st.sampled_from(["failed", "reached"]), st.integers(1, 50)), max_size=8)


def unreachable(app: Connectzap, key: str, medium: str = EMAIL) -> bool:
    with app.db.read() as conn:
        return (key, medium) in reachability.unreachable_on(conn, [key])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(told, st.randoms(use_true_random=False))
def test_the_newest_of_failures_and_deliveries_decides_in_any_order(app: Connectzap, events: list[tuple[str, int]],
                                                                    rnd: Any) -> None:
    key = f"k{next(counter):031d}"
    told_in = list(events)
    rnd.shuffle(told_in)
    with app.db.begin() as conn:
        for what, at in told_in:
            if what == "failed":
                reachability.mark_unreachable(app.db, conn, key, EMAIL, float(at))
            else:
                reachability.reached(app.db, conn, key, EMAIL, float(at))
    failed = [at for what, at in events if what == "failed"]
    reached = [at for what, at in events if what == "reached"]
    expected = bool(failed) and max(failed) > max(reached, default=0)
    assert unreachable(app, key) is expected
    assert not unreachable(app, key, SMS) and not unreachable(app, key, WHATSAPP)  # per medium


def test_an_opt_in_clears_a_standing_mark_and_writes_nothing_otherwise(app: Connectzap) -> None:
    with app.db.begin() as conn:
        reachability.reached(app.db, conn, "a" * 32, EMAIL, 10.0, if_marked=True)
        reachability.mark_unreachable(app.db, conn, "a" * 32, EMAIL, 5.0)
        reachability.mark_unreachable(app.db, conn, "b" * 32, EMAIL, 5.0)
        reachability.reached(app.db, conn, "b" * 32, EMAIL, 10.0, if_marked=True)
    assert unreachable(app, "a" * 32)  # the opt-in came before any failure: not remembered
    assert not unreachable(app, "b" * 32)
