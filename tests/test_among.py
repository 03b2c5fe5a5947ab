"""``store.among``: the rows ``column IN (values)`` selects, for any list (empty, duplicates, values
no row has), on both databases -- and on PostgreSQL as one parameter, so the statement's text is
the same whatever the list's length (psycopg parses a statement with more than 50 parameters anew
on every execution); on SQLite as one JSON parameter from ``LONG`` values on."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import select

from connectzap import Connectzap
from connectzap.core.store.among import LONG, among
from connectzap.core.store.schema import identities

KEYS = [f"k{n}" for n in range(240)]


def seeded(app: Connectzap) -> None:
    with app.db.begin() as conn:
        if conn.execute(select(identities.c.identity_key).limit(1)).first() is None:
            conn.execute(identities.insert(), [{"identity_key": key, "contact_key": f"c{n % 7}", "updated_at": 0.0}
                                               for n, key in enumerate(KEYS[::2])])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.lists(st.sampled_from(KEYS + ["missing"]), max_size=40),
                 st.lists(st.sampled_from(KEYS + ["missing"]), min_size=LONG - 5, max_size=2 * LONG)))
def test_among_selects_what_in_selects(app: Connectzap, wanted: list[str]) -> None:
    seeded(app)
    with app.db.read() as conn:
        found = set(conn.execute(select(identities.c.identity_key)
                                 .where(among(conn, identities.c.identity_key, wanted))).scalars())
        listed = set(conn.execute(select(identities.c.identity_key)
                                  .where(identities.c.identity_key.in_(wanted))).scalars())
    assert found == listed == set(wanted) & set(KEYS[::2])


def test_on_postgresql_the_statement_text_does_not_grow_with_the_list(app: Connectzap) -> None:
    seeded(app)
    texts: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        texts.append(statement)

    sa_event.listen(app.db.engine, "before_cursor_execute", record)
    try:
        with app.db.read() as conn:
            for size in (1, 50, 80, LONG, 2 * LONG):
                conn.execute(select(identities.c.identity_key).where(among(conn, identities.c.identity_key,
                                                                           KEYS[:size]))).all()
    finally:
        sa_event.remove(app.db.engine, "before_cursor_execute", record)
    selects = [t for t in texts if t.lstrip().upper().startswith("SELECT")]
    if app.db.is_sqlite:
        # IN (?, ?, ...) below LONG values, one placeholder per value; from LONG on one JSON parameter
        assert len(set(selects)) == 4
    else:
        assert len(set(selects)) == 1, selects
