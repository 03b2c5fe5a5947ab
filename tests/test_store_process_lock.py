"""Writers in different processes on one SQLite file take turns through a file lock (the edge and the
workers under `serve`), instead of meeting SQLite's sleeping busy handler."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sqlalchemy import text

from connectzap.core.store.database import Database

HOLD_SECONDS = 1.0


def test_a_writer_waits_while_another_process_holds_the_write_turn(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'connectzap.db'}"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from connectzap.core.store.database import Database
        db = Database({url!r})
        with db.writing():  # the turn only: no SQLite transaction, so only the file lock can hold us up
            print("holding", flush=True)
            time.sleep({HOLD_SECONDS})
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        db = Database(url)
        started = time.monotonic()
        with db.begin() as conn:
            conn.execute(text("SELECT 1"))
        waited = time.monotonic() - started
        db.dispose()
    finally:
        holder.wait(30)
    assert holder.returncode == 0
    assert waited >= HOLD_SECONDS / 2, f"began after {waited:.3f} s, while the other process held the turn"


def test_only_a_database_file_gets_a_process_lock(tmp_path: Path) -> None:
    on_file = Database(f"sqlite:///{tmp_path / 'a.db'}")
    with on_file.begin() as conn:
        conn.execute(text("SELECT 1"))
    assert (tmp_path / "a.db-writer").exists()
    assert Database._process_lock("sqlite:///:memory:") is None
    on_file.dispose()
