"""Writes (and reads) a transaction sends to PostgreSQL without waiting for each one to finish.

A campaign round is work in turns: this process builds a batch of messages, the server writes them,
this process builds the next. In libpq's pipeline mode (psycopg's ``Connection.pipeline``) a write
goes to the server and this process goes on with the next batch while the server runs it; what the
writes answered (their row counts, an error) is read when they are settled. The transaction is the
caller's: the writes commit or roll back with everything else in it.

SQLite has no such mode: each write runs at once, so code written against :class:`Writes` is the
same on both. A statement SQLAlchemy runs on the connection while writes are out settles them
first, because SQLAlchemy reads a statement's result as soon as it has run, which pipeline mode
only gives once the statements before it are done.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from sqlalchemy import Connection, Select, event
from sqlalchemy.exc import DBAPIError


class Sent:
    """A write :class:`Writes` sent: how many rows it touched, known once the writes are settled."""

    def __init__(self, writes: Writes, cursor: Any = None, count: int = 0) -> None:
        self._writes, self._cursor, self._count = writes, cursor, count

    @property
    def rowcount(self) -> int:
        """The rows the write touched (settles the writes still out first)."""
        if self._cursor is None:
            return self._count
        self._writes.settle()
        self._count, self._cursor = int(self._cursor.rowcount), None
        return self._count


class Asked:
    """A query :meth:`Writes.query` sent: its rows, read when asked for."""

    def __init__(self, writes: Writes, cursor: Any = None, rows: list[tuple[Any, ...]] | None = None) -> None:
        self._writes, self._cursor, self._rows = writes, cursor, rows or []

    def rows(self) -> list[tuple[Any, ...]]:
        if self._cursor is not None:
            with self._writes._as_sqlalchemy_raises():  # an earlier write's error arrives first
                self._rows = self._cursor.fetchall()
            self._cursor = None
        return self._rows


class Writes:
    """Statements sent on ``conn`` without waiting for their results (PostgreSQL), or run at once (SQLite)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._driver = conn.connection.driver_connection if conn.dialect.name == "postgresql" else None
        self._out: ExitStack | None = None  # pipeline mode, while writes are out
        self.sending = False
        """True while this object's own statement is announced to SQLAlchemy's listeners."""

    def execute(self, sql: str, params: Any = None) -> Sent:
        """Send ``sql`` (the driver's own placeholders, as ``exec_driver_sql`` takes them)."""
        if self._driver is None:
            return Sent(self, count=int(self._conn.exec_driver_sql(sql, params).rowcount))
        return Sent(self, cursor=self._send(sql, params))

    def query(self, statement: Select[Any]) -> Asked:
        """Send the query ``statement``; its rows are read when asked for (:meth:`Asked.rows`), which
        waits for everything sent so far (psycopg reads the answers in order): a query asked ahead is
        read before what should not be waited for is sent. Its parameters go to the driver as they
        are (no SQLAlchemy type processing: lists, text, numbers)."""
        if self._driver is None:
            return Asked(self, rows=[tuple(row) for row in self._conn.execute(statement)])
        compiled = statement.compile(dialect=self._conn.dialect, compile_kwargs={"render_postcompile": True})
        return Asked(self, cursor=self._send(compiled.string, compiled.construct_params()))

    def _send(self, sql: str, params: Any) -> Any:
        driver = self._driver
        assert driver is not None  # PostgreSQL's: SQLite runs each statement at once
        if self._out is None:
            out = ExitStack()
            out.enter_context(driver.pipeline())
            self._out = out
        cursor = driver.cursor()
        # SQLAlchemy's cursor events see this statement like any other (tests and the bench count
        # statements by them); the "after" one comes once it is sent, not once it has run.
        events = self._conn.dispatch
        self.sending = True
        try:
            for before in events.before_cursor_execute:
                sql, params = before(self._conn, cursor, sql, params, None, False)
        finally:
            self.sending = False
        with self._as_sqlalchemy_raises():  # an earlier write's error may arrive now
            cursor.execute(sql, params)
        for after in events.after_cursor_execute:
            after(self._conn, cursor, sql, params, None, False)
        return cursor

    def settle(self) -> None:
        """Wait for every write sent so far; raises the first one's error, as SQLAlchemy raises a
        driver's (an ``IntegrityError`` for a key taken, and so on)."""
        out, self._out = self._out, None
        if out is None:
            return
        with self._as_sqlalchemy_raises():
            out.close()

    @contextmanager
    def _as_sqlalchemy_raises(self) -> Iterator[None]:
        dbapi = self._conn.dialect.loaded_dbapi
        try:
            yield
        except dbapi.Error as error:
            raise DBAPIError.instance(None, None, error, dbapi.Error, dialect=self._conn.dialect) from error

    def _abandon(self) -> None:
        """Leave pipeline mode while an error is on its way up (the transaction rolls back)."""
        out, self._out = self._out, None
        if out is not None:
            out.__exit__(*sys.exc_info())


@contextmanager
def writes(conn: Connection) -> Iterator[Writes]:
    """:class:`Writes` on ``conn``, all settled when the block ends."""
    sent = Writes(conn)

    def settle_first(*_: Any) -> None:
        if not sent.sending:
            sent.settle()

    event.listen(conn, "before_cursor_execute", settle_first)
    try:
        yield sent
        sent.settle()
    except BaseException:
        sent._abandon()
        raise
    finally:
        event.remove(conn, "before_cursor_execute", settle_first)
