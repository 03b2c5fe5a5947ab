"""``store.among``: the rows ``column IN (values)`` selects, for any list (empty, duplicates, values
no row has), on both databases -- and on PostgreSQL as one parameter, so the statement's text is
the same whatever the list's length (psycopg parses a statement with more than 50 parameters anew
on every execution)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import select

from connectzap import Connectzap
from connectzap.core.store.among import among, among_keys
from connectzap.core.store.schema import identities

KEYS = [f"k{n}" for n in range(80)]


def seeded(app: Connectzap) -> None:
    with app.db.begin() as conn:
        if conn.execute(select(identities.c.identity_key).limit(1)).first() is None:
            conn.execute(identities.insert(), [{"identity_key": key, "contact_key": f"c{n % 7}", "updated_at": 0.0}
                                               for n, key in enumerate(KEYS[::2])])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(KEYS + ["missing"]), max_size=120))
def test_among_selects_what_in_selects(app: Connectzap, wanted: list[str]) -> None:
    seeded(app)
    with app.db.read() as conn:
        found = set(conn.execute(select(identities.c.identity_key)
                                 .where(among(conn, identities.c.identity_key, wanted))).scalars())
        by_keys = set(conn.execute(select(identities.c.identity_key)
                                   .where(among_keys(conn, identities.c.identity_key, wanted))).scalars())
        listed = set(conn.execute(select(identities.c.identity_key)
                                  .where(identities.c.identity_key.in_(wanted))).scalars())
    assert found == by_keys == listed == set(wanted) & set(KEYS[::2])


def _select_texts(app: Connectzap, form: Any) -> set[str]:
    """The SELECT statements' texts for lists of 1, 50 and 80 keys in ``form`` (:func:`among` or
    :func:`among_keys`), each checked to select what it should."""
    texts: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        texts.append(statement)

    seeded(app)
    sa_event.listen(app.db.engine, "before_cursor_execute", record)
    try:
        with app.db.read() as conn:
            for size in (1, 50, 80):
                found = conn.execute(select(identities.c.identity_key).where(
                    form(conn, identities.c.identity_key, KEYS[:size]))).scalars().all()
                assert set(found) == set(KEYS[:size:2])
    finally:
        sa_event.remove(app.db.engine, "before_cursor_execute", record)
    return {t for t in texts if t.lstrip().upper().startswith("SELECT")}


def test_on_postgresql_the_statement_text_does_not_grow_with_the_list(app: Connectzap) -> None:
    selects = _select_texts(app, among)
    if app.db.is_sqlite:
        assert len(selects) == 3  # IN (?, ?, ...): one placeholder per value
    else:
        assert len(selects) == 1, selects


def test_among_keys_is_one_parameter_on_both_databases(app: Connectzap) -> None:
    assert len(_select_texts(app, among_keys)) == 1
