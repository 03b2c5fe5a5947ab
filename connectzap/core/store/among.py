"""``column IN (values)`` that stays one parameter on PostgreSQL.

SQLAlchemy expands an IN list into one placeholder per value, so the SQL text changes with the
list's length, and psycopg parses the text of a statement with more than 50 parameters anew on
every execution (it caches only shorter ones). The dispatcher's lists are a batch long (50 by
default) and one query may hold several: on PostgreSQL that parsing was a tenth of a worker's
time per inbound message. ``column = ANY(:array)`` is one parameter whatever the length, uses the
same indexes, and its text is parsed once. SQLite keeps IN.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Connection, any_, bindparam


def among(conn: Connection, column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """``column`` is one of ``values``, in the form the database of ``conn`` runs best."""
    values = list(values)
    if conn.dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
