"""The suite's own output stays readable: without PostgreSQL, its skipped variants fold into one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SAMPLE = '''
import pytest

def test_one(backend):
    assert backend in ("sqlite", "postgres")

def test_two(backend):
    assert backend in ("sqlite", "postgres")

def test_three(backend):
    assert backend in ("sqlite", "postgres")

def test_other_skip():
    pytest.skip("an unrelated reason")
'''


def test_postgres_skips_fold_into_one_summary_line(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {key: value for key, value in os.environ.items() if key != "CONNECTZAP_TEST_DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-ra", "-q", "-p", "no:cacheprovider", "test_sample.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    postgres = [line for line in skipped if "CONNECTZAP_TEST_DATABASE_URL is not set" in line]
    assert len(postgres) == 1, skipped
    assert postgres[0].startswith("SKIPPED [3] conftest.py: ")
    assert "no PostgreSQL to test on" in postgres[0]
    # Other skips keep their own line and location.
    assert [line for line in skipped if line not in postgres] == [
        "SKIPPED [1] test_sample.py:14: an unrelated reason"]
    assert "3 passed, 4 skipped" in result.stdout
