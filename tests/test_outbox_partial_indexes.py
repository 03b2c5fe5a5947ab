"""``ix_outbox_wamid`` and ``ix_outbox_event`` hold only messages that have a wamid or a source event
(migration 0030): an admitted message has neither, and wrote an empty entry into both. Each lookup
the product makes through them is checked to still use its index on both databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, event, text

from connectzap.core import arbitration
from connectzap.core.store import outbox as outbox_rows

WAMID = "wamid.HBgLNDkxNTExMjM0NTY3FQIAERgSQkE"


@contextmanager
def _statements(conn: Connection) -> Iterator[list[tuple[str, Any]]]:
    """The statements run on ``conn`` inside the block, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        seen.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(conn, "before_cursor_execute", record)


def _plan(conn: Connection, statement: str, parameters: Any) -> str:
    if conn.dialect.name == "sqlite":
        return " ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
    # an empty table: without this PostgreSQL reads it whole whatever its indexes
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    return " ".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))


LOOKUPS: dict[str, tuple[str, str, Callable[[Connection], object]]] = {
    "a status report (by wamid)": ("ix_outbox_wamid", "wamid", lambda conn: outbox_rows.apply_statuses(
        conn, [outbox_rows.StatusReport(WAMID, "delivered"), outbox_rows.StatusReport(WAMID + "B", "read")])),
    "a message by its wamid": ("ix_outbox_wamid", "wamid", lambda conn: outbox_rows.by_wamid(conn, WAMID)),
    "a change made elsewhere": ("ix_outbox_wamid", "wamid",
                                lambda conn: outbox_rows.mark_changed_elsewhere(conn, WAMID, "edited")),
    "the messages of an event": ("ix_outbox_event", "source_event_id",
                                 lambda conn: outbox_rows.listing(conn, source_event_id=7)),
    "an event's held answers": ("ix_outbox_event", "source_event_id", lambda conn: arbitration.arbitrate(
        None, conn, arbitration.Inbound(event_id=7, slot=WAMID, sent_at=None), 60.0)),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("lookup", sorted(LOOKUPS))
def test_each_lookup_by_wamid_or_source_event_uses_the_partial_index(app, lookup: str) -> None:
    index, column, run = LOOKUPS[lookup]
    with app.db.begin() as conn:
        with _statements(conn) as seen:
            run(conn)
        asking = [(sql, params) for sql, params in seen if sql.lstrip().upper().startswith(("SELECT", "UPDATE"))
                  and f"outbox.{column}" in sql.split("WHERE", 1)[-1]]
        assert asking, f"{lookup}: no statement asked for {column}"
        for sql, params in asking:
            assert index in _plan(conn, sql, params), sql


def test_the_migrated_indexes_leave_out_messages_without_a_wamid_or_a_source_event(app) -> None:
    with app.db.read() as conn:
        for name, column in (("ix_outbox_wamid", "wamid"), ("ix_outbox_event", "source_event_id")):
            definition = conn.execute(text(
                "SELECT sql FROM sqlite_master WHERE name = :name" if conn.dialect.name == "sqlite" else
                "SELECT indexdef FROM pg_indexes WHERE indexname = :name AND schemaname = current_schema()"
            ), {"name": name}).scalar_one()
            assert "WHERE" in definition and f"{column} IS NOT NULL" in definition, definition
