"""``column IN (values)`` that stays one parameter however many values there are.

SQLAlchemy expands an IN list into one placeholder per value, so the SQL text changes with the
list's length, and psycopg parses the text of a statement with more than 50 parameters anew on
every execution (it caches only shorter ones). The dispatcher's lists are a batch long (50 by
default) and one query may hold several: on PostgreSQL that parsing was a tenth of a worker's
time per inbound message. ``column = ANY(:array)`` is one parameter whatever the length, uses the
same indexes, and its text is parsed once. On SQLite a long list is one JSON parameter read by
``json_each`` (SQLAlchemy's expansion of a campaign round's 2,000 contact keys cost more than the
query itself); a short one keeps IN.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Connection, String, any_, bindparam, func, select

LONG = 100
"""From this many values on, SQLite gets them as one JSON parameter."""


def among(conn: Connection, column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """``column`` is one of ``values``, in the form the database of ``conn`` runs best."""
    values = list(values)
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    if len(values) < LONG:
        return column.in_(values)
    each = func.json_each(bindparam(None, json.dumps(values), type_=String)).table_valued("value")
    return column.in_(select(each.c.value))
