"""``store.bulk.update_by``: each item updates exactly the row its key names (no other row, nothing
for a key no row has), on both databases; and on PostgreSQL the planner settings it turns off for
its statement (hash and merge joins, so that each item is a key lookup) are back afterwards."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connectzap import Connectzap
from connectzap.core.store import bulk
from connectzap.core.store.schema import identities

KEYS = [f"id{n}" for n in range(40)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(KEYS + ["missing1", "missing2"]), st.sampled_from(["a", "b", "c"]),
                               min_size=1, max_size=20))
def test_update_by_changes_exactly_the_keyed_rows(app: Connectzap, changes: dict[str, str]) -> None:
    with app.db.begin() as conn:
        conn.execute(identities.delete())
        conn.execute(identities.insert(), [{"identity_key": k, "contact_key": "before", "updated_at": 0.0}
                                           for k in KEYS])
        changed = bulk.update_by(app.db, conn, identities, ("identity_key",), [
            {"identity_key": k, "contact_key": v, "updated_at": 1.0} for k, v in changes.items()])
        if not app.db.is_sqlite:
            assert conn.exec_driver_sql("SHOW enable_hashjoin").scalar() == "on"
            assert conn.exec_driver_sql("SHOW enable_mergejoin").scalar() == "on"
        rows = {r.identity_key: (r.contact_key, r.updated_at) for r in conn.execute(select(identities))}
    assert changed == len(set(changes) & set(KEYS))
    assert rows == {k: (changes[k], 1.0) if k in changes else ("before", 0.0) for k in KEYS}
