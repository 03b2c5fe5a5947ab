"""``column IN (values)`` that stays one parameter on PostgreSQL.

SQLAlchemy expands an IN list into one placeholder per value, so the SQL text changes with the
list's length, and psycopg parses the text of a statement with more than 50 parameters anew on
every execution (it caches only shorter ones). The dispatcher's lists are a batch long (50 by
default) and one query may hold several: on PostgreSQL that parsing was a tenth of a worker's
time per inbound message. ``column = ANY(:array)`` is one parameter whatever the length, uses the
same indexes, and its text is parsed once. SQLite keeps IN.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Connection, String, any_, bindparam, func, select


def among(conn: Connection, column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """``column`` is one of ``values``, in the form the database of ``conn`` runs best."""
    values = list(values)
    if conn.dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, values, type_=ARRAY(column.type)))


def among_keys(conn: Connection, column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """:func:`among` for a long list of values of a column whose own index is the query's way into
    its table (a batch's contact keys): on SQLite too one parameter, a JSON array read by
    ``json_each`` -- SQLAlchemy's expansion of 2,000 keys into placeholders cost more than the
    query. Not for a query another index could start from: SQLite's planner does not know how many
    values ``json_each`` gives and may prefer that index (it did for a campaign's recipients).

    On PostgreSQL ``column = ANY(ARRAY(SELECT unnest(:array)))``: an InitPlan computed once, whose
    length the planner does not know (it assumes a few values), so it reads the keys through the
    column's index whatever the table's statistics say. With the array itself the planner sized
    2,000 keys against a table it had no statistics for (never analyzed: a ledger written in bulk,
    autovacuum off) and read the whole consent ledger for a campaign round's consents: a Parallel
    Seq Scan of 1,000,000 rows (16,400 pages, 136 ms) for 2,000 keys, where the index reads about
    6,000 buffers whatever the ledger's size (as :func:`.journal.finish_each` does for its events)."""
    values = list(values)
    if conn.dialect.name == "postgresql":
        keys = select(func.unnest(bindparam(None, values, type_=ARRAY(column.type)))).scalar_subquery()
        return column == any_(func.array(keys))
    each = func.json_each(bindparam(None, json.dumps(values), type_=String)).table_valued("value")
    return column.in_(select(each.c.value))
