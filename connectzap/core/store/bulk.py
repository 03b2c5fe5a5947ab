"""Many rows in one statement, at the driver's level: bulk admission's writes.

SQLAlchemy's executemany builds every row's parameters through the compiled statement (on
PostgreSQL psycopg then adapts each row again): at a few thousand rows a batch that was most of
a campaign's admission time. Here SQLite gets one prepared statement run by ``executemany`` in the
caller's transaction, and PostgreSQL one statement whose parameters are one array per column
(``unnest``), so the driver adapts a handful of arrays instead of thousands of rows -- in binary
(``%b``): psycopg writes a text-format array element by element with a regular expression that
escapes it, 80 µs a row of the outbox's columns where binary takes under 5.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from sqlalchemy import BigInteger, Boolean, Connection, Float, Integer, Table

from ..wording import plural
from .database import Database
from .pipeline import Sent, Writes


def _pg_array(column: Any) -> tuple[str, Any]:
    """The PostgreSQL array type of ``column`` and how its Python values are made uniform (psycopg
    dumps a list by one element type: an int among floats would be refused)."""
    kind = column.type
    if isinstance(kind, Boolean):
        return "boolean[]", bool
    if isinstance(kind, Float):
        return "float8[]", float
    if isinstance(kind, BigInteger):
        return "int8[]", int
    if isinstance(kind, Integer):
        return "int8[]", int
    return "text[]", str


ROWID = "rowid"
"""SQLite's own number of a row, a key :func:`update_by` can match on there: the table's row is
found by it directly, where a key of the table's own is first sought in that key's index -- a
random page of it per row when the key is a hash (a campaign's recipients by contact)."""


def _columns(table: Table, rows: Sequence[dict[str, Any]]) -> list[str]:
    names = list(rows[0])
    unknown = set(names) - set(table.c.keys()) - {ROWID}
    if unknown:
        raise ValueError(f"{table.name} has no {plural(len(unknown), 'column')} {sorted(unknown)}")
    return names


def _getter(names: Sequence[str]) -> Any:
    """A row dict -> the tuple of its ``names`` values, in C (``itemgetter`` of one name gives no tuple)."""
    get = itemgetter(*names)
    return get if len(names) > 1 else lambda row: (get(row),)


def _quoted(conn: Connection, names: Sequence[str]) -> list[str]:
    quote = conn.dialect.identifier_preparer.quote
    return [quote(n) for n in names]


def _arrays(table: Table, names: list[str], rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    types, arrays = [], []
    for name in names:
        sql_type, cast = _pg_array(table.c[name])
        types.append(sql_type)
        arrays.append([None if (v := row[name]) is None else cast(v) for row in rows])
    return types, arrays


def insert_new(db: Database, conn: Connection, table: Table, rows: Sequence[dict[str, Any]], unique: str) -> int:
    """Insert ``rows`` (dicts with the same keys), skipping any whose ``unique`` column value (or
    values: ``"a, b"`` names a unique pair) is already taken; returns how many were inserted."""
    if not rows:
        return 0
    return int(conn.exec_driver_sql(*_insert_new(conn, table, rows, unique)).rowcount)


def send_insert_new(writes: Writes, conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                    unique: str) -> Sent:
    """:func:`insert_new` sent through ``writes``: how many were inserted is known once they settle."""
    return writes.execute(*_insert_new(conn, table, rows, unique))


def _insert_new(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], unique: str) -> tuple[str, Any]:
    names = _columns(table, rows)
    columns = ", ".join(_quoted(conn, names))
    if conn.dialect.name == "sqlite":
        return (f"INSERT INTO {table.name} ({columns}) VALUES ({', '.join('?' * len(names))}) "
                f"ON CONFLICT ({unique}) DO NOTHING", list(map(_getter(names), rows)))
    types, arrays = _arrays(table, names, rows)
    return (f"INSERT INTO {table.name} ({columns}) SELECT * FROM unnest({', '.join(f'%b::{t}' for t in types)}) "
            f"ON CONFLICT ({unique}) DO NOTHING", tuple(arrays))


def insert_new_returning(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], unique: str) -> list[Any]:
    """PostgreSQL only: :func:`insert_new`, answering the rows it inserted (every column). One
    parameter per column whatever the number of rows, so psycopg parses the statement once (it parses
    any statement with more than 50 parameters again on every execution) and the server plans it once."""
    if not rows:
        return []
    names = _columns(table, rows)
    types, arrays = _arrays(table, names, rows)
    sql = (f"INSERT INTO {table.name} ({', '.join(_quoted(conn, names))}) "
           f"SELECT * FROM unnest({', '.join(f'%b::{t}' for t in types)}) "
           f"ON CONFLICT ({unique}) DO NOTHING RETURNING *")
    return list(conn.exec_driver_sql(sql, tuple(arrays)))


def update_by(db: Database, conn: Connection, table: Table, keys: Sequence[str],
              rows: Sequence[dict[str, Any]]) -> int:
    """Update one row per item of ``rows``: the row whose ``keys`` columns equal the item's, set to
    the item's other values. Returns how many rows changed. On SQLite a key may be :data:`ROWID`."""
    if not rows:
        return 0
    statement = _update_by(conn, table, keys, rows)
    if db.is_sqlite:
        return int(conn.exec_driver_sql(*statement).rowcount)
    with by_key_lookups(conn):
        return int(conn.exec_driver_sql(*statement).rowcount)


def send_update_by(writes: Writes, conn: Connection, table: Table, keys: Sequence[str],
                   rows: Sequence[dict[str, Any]]) -> Sent:
    """:func:`update_by` sent through ``writes``: how many rows changed is known once they settle."""
    statement = _update_by(conn, table, keys, rows)
    if conn.dialect.name == "sqlite":
        return writes.execute(*statement)
    # each setting a statement of its own: pipeline mode sends every statement as a prepared one
    for setting in _BY_KEY_LOOKUPS:
        writes.execute(f"SET LOCAL {setting} = off")
    sent = writes.execute(*statement)
    for setting in _BY_KEY_LOOKUPS:
        writes.execute(f"SET LOCAL {setting} TO DEFAULT")
    return sent


def _update_by(conn: Connection, table: Table, keys: Sequence[str], rows: Sequence[dict[str, Any]]) -> tuple[str, Any]:
    names = _columns(table, rows)
    if ROWID in keys and conn.dialect.name != "sqlite":
        raise ValueError(f"{ROWID} is a key on SQLite only")
    values = [n for n in names if n not in keys]
    q = dict(zip(names, _quoted(conn, names), strict=True))
    if conn.dialect.name == "sqlite":
        order = values + list(keys)
        return (f"UPDATE {table.name} SET {', '.join(f'{q[n]} = ?' for n in values)} "
                f"WHERE {' AND '.join(f'{q[k]} = ?' for k in keys)}", list(map(_getter(order), rows)))
    types, arrays = _arrays(table, names, rows)
    given = ", ".join(f"%b::{t}" for t in types)
    return (f"UPDATE {table.name} AS t SET {', '.join(f'{q[n]} = u.{q[n]}' for n in values)} "
            f"FROM unnest({given}) AS u({', '.join(q[n] for n in names)}) "
            f"WHERE {' AND '.join(f't.{q[k]} = u.{q[k]}' for k in keys)}", tuple(arrays))


_BY_KEY_LOOKUPS = ("enable_hashjoin", "enable_mergejoin")


@contextmanager
def by_key_lookups(conn: Connection) -> Iterator[None]:
    """PostgreSQL: the statement run inside finds each item's row through the key's index. A batch
    joined to its table is a few thousand key lookups, but the planner, its statistics behind a
    growing table, hashed the whole table instead: a campaign round's update of its recipients read
    every recipient of the campaign (60,000 rows hashed for 2,000 updated, 42 ms), so admission slowed
    with the campaign's size. Hash and merge joins are off for this statement only (``SET LOCAL``,
    then back to the session's setting; one round trip each, no parameters). Not used for the
    dispatcher's finished deliveries, which hash the same way at tens of thousands of rows: a
    dispatch wave's round trips are counted (tests/test_inbound_batches.py), a campaign round's 2,000
    rows are not."""
    conn.exec_driver_sql("; ".join(f"SET LOCAL {setting} = off" for setting in _BY_KEY_LOOKUPS))
    try:
        yield
    finally:
        conn.exec_driver_sql("; ".join(f"SET LOCAL {setting} TO DEFAULT" for setting in _BY_KEY_LOOKUPS))
