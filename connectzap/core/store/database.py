"""The database handle: engine set-up per dialect, migrations, transactions, small upsert helpers."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite

from .. import clock
from ..errors import ConfigurationError

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x637A6D67  # a PostgreSQL advisory lock key of connectzap's own ("czmg")
WAL_AUTOCHECKPOINT_PAGES = 10_000
"""SQLite copies the WAL into the database file once it holds this many pages (40 MB), not at
SQLite's default of 1,000. A campaign round dirties a page of the contact index per recipient, so
the default checkpointed every round or two, each time with two fsyncs, and wrote the same index
pages again and again; a checkpoint every ten-odd rounds writes each page once for all of them.
Admission of a million recipients 12,000 -> 13,600-14,000 a second (docs/campaigns.md). Erased data
in the WAL is no longer there after housekeeping's own checkpoint, which truncates it (``checkpoint``)."""


def now() -> float:
    return clock.now()


class FairLock:
    """A lock that threads get in the order they asked for it, re-entrant for its holder.

    SQLite has one writer at a time, and its busy handler retries by sleeping: a thread that
    commits and at once begins again (a bulk admission) wins every race, and the sender's
    claims starve until it is done. Handing the lock over in order lets them interleave.
    """

    def __init__(self, between_processes: ProcessLock | None = None) -> None:
        self._mutex = threading.Lock()
        self._queue: deque[tuple[int, threading.Lock]] = deque()
        self._owner: int | None = None
        self._depth = 0
        self._processes = between_processes

    def __enter__(self) -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += 1
                return
            if self._owner is None:
                self._owner, self._depth = me, 1
                turn = None
            else:
                turn = threading.Lock()
                turn.acquire()
                self._queue.append((me, turn))
        if turn is not None:
            turn.acquire()  # released by the holder before us once we own the lock
        if self._processes is not None:  # then take our process's turn among the others
            try:
                self._processes.acquire()
            except BaseException:
                with self._mutex:
                    self._depth = 0
                    self._hand_over()
                raise

    def __exit__(self, *exc: object) -> None:
        with self._mutex:
            self._depth -= 1
            if self._depth:
                return
            if self._processes is not None:
                self._processes.release()
            self._hand_over()

    def _hand_over(self) -> None:
        """To the next thread in line, or free (called with the mutex held)."""
        if self._queue:
            # Handed over directly, so a thread that asks again at once cannot slip in first.
            self._owner, turn = self._queue.popleft()
            self._depth = 1
            turn.release()
        else:
            self._owner = None


class ProcessLock:
    """An exclusive ``flock`` on a file next to the SQLite database, held by the process whose
    thread holds the :class:`FairLock`: writers in other processes (``serve``'s edge and workers)
    wait in the kernel and are woken when it is released. Without it they meet SQLite's busy
    handler, which polls by sleeping (up to 100 ms a time): the edge's journal writer then waited
    whole sleeps behind a worker's short transactions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)


class Database:
    """One engine and the dialect quirks connectzap relies on.

    SQLite runs in WAL mode and every transaction starts with ``BEGIN IMMEDIATE``, so claims
    by several workers serialise instead of failing late. PostgreSQL claims rows with
    ``FOR UPDATE SKIP LOCKED``.
    """

    def __init__(self, url: str, *, pool_size: int = 5, secret: bytes | None = None) -> None:
        self.url = url
        self.secret = secret
        """The engine's hash secret: stored keys (ordering keys) are keyed hashes made with it."""
        if url.startswith("sqlite"):
            self._prepare_sqlite_path(url)
            # A pool keeps connections open: closing the last one checkpoints and deletes the WAL,
            # which made every transaction pay a file sync.
            self.engine: Engine = create_engine(url,
                                                connect_args={"timeout": 30, "check_same_thread": False})
            self._sqlite_setup(self.engine)
        elif url.startswith(("postgresql", "postgres")):
            if url.startswith("postgres://") or url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            try:
                # No pre-ping: it cost a round trip on every checkout (every request). A connection
                # that broke (a server restart) fails its transaction as a disconnect, which
                # invalidates the whole pool, so the retry (a 503's, a worker's next pass) gets fresh ones.
                self.engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
            except ModuleNotFoundError as exc:
                raise ConfigurationError("PostgreSQL needs the driver: pip install 'connectzap[postgres]'") from exc
        else:
            raise ConfigurationError("database.url must be a sqlite:/// or postgresql:// URL")
        self.dialect = self.engine.dialect.name
        self.is_sqlite = self.dialect == "sqlite"
        self._writers = FairLock(self._process_lock(url)) if self.is_sqlite else None

    @staticmethod
    def _prepare_sqlite_path(url: str) -> None:
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _process_lock(url: str) -> ProcessLock | None:
        """Writers of a database file take turns across processes too; an in-memory database has
        only this process (and a ``file:`` URI is left to SQLite alone)."""
        path = url.split(":///", 1)[-1]
        if not path or path == ":memory:" or path.startswith("file:") or fcntl is None:
            return None
        return ProcessLock(Path(path).with_name(Path(path).name + "-writer"))

    @staticmethod
    def _sqlite_setup(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            # Erased payloads must not linger in freed pages (not every SQLite build defaults to this).
            # A build that ignores the pragma would keep erased numbers and texts: refuse it.
            cur.execute("PRAGMA secure_delete=ON")
            (secure,) = cur.execute("PRAGMA secure_delete").fetchone()
            cur.close()
            if secure != 1:
                raise ConfigurationError("this SQLite build ignores PRAGMA secure_delete, so erased data would "
                                         "stay in the file: use another Python/SQLite build or PostgreSQL")

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front; readers must not (WAL lets them run alongside).
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("readonly") else "BEGIN IMMEDIATE")

    # --- lifecycle ---------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            if not self.is_sqlite:
                # serve and workers starting together (a fresh database, an upgrade) would each run the
                # same DDL, and all but one fail on the tables the first created. One at a time: the
                # next finds the schema current. Released at commit. (SQLite's BEGIN IMMEDIATE serialises.)
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()

    def checkpoint(self) -> bool:
        """SQLite: copy the WAL into the database file and truncate it to zero bytes, so page
        versions from before an erasure do not linger in the ``-wal`` file. True when done; False
        when a reader held an old snapshot (the next call tries again) or on PostgreSQL (nothing to do)."""
        if not self.is_sqlite:
            return False
        # Outside any transaction (a checkpoint cannot run inside one), in turn with this process's
        # writers; a short busy wait, so a long reader delays the next try rather than the writers.
        with self.writing(), self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            cursor = raw.cursor()
            try:
                cursor.execute("PRAGMA busy_timeout=1000")
                busy, _, _ = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()
        return int(busy) == 0  # the DB-API row is untyped; the busy flag is 0 or 1

    def writing(self) -> FairLock | nullcontext[None]:
        """Held around every write transaction on SQLite: this process's writers take turns in
        the order they asked (:class:`FairLock`), and the processes on one file take turns through
        a file lock (:class:`ProcessLock`); PostgreSQL needs none of this."""
        return self._writers if self._writers is not None else nullcontext()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.writing(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads (no write lock on SQLite)."""
        with self.engine.connect() as conn:
            yield conn.execution_options(readonly=True)

    # --- dialect helpers ---------------------------------------------------------------

    def insert(self, table: Table) -> Any:
        return (sqlite.insert(table) if self.is_sqlite else postgresql.insert(table))

    def upsert(self, conn: Connection, table: Table, values: dict[str, Any], keys: list[str]) -> None:
        stmt = self.insert(table).values(**values)
        update = {k: stmt.excluded[k] for k in values if k not in keys}
        conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update) if update
                     else stmt.on_conflict_do_nothing(index_elements=keys))

    def for_update(self, stmt: Any) -> Any:
        """Row locks for claims: SKIP LOCKED on PostgreSQL; SQLite already holds the write lock."""
        return stmt if self.is_sqlite else stmt.with_for_update(skip_locked=True)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - health check
            return False
