"""Shared fixtures. Every test that takes ``app`` runs on SQLite and, when
CONNECTZAP_TEST_DATABASE_URL is set (``.ci/run`` sets it when PostgreSQL answers), on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectzap.core.app import Connectzap
from connectzap.testing.apps import drop_postgres_schema, make_app

PG_URL = os.environ.get("CONNECTZAP_TEST_DATABASE_URL")
NO_PG_REASON = ("CONNECTZAP_TEST_DATABASE_URL is not set: no PostgreSQL to test on "
                "(set it to a PostgreSQL URL, as .ci/run does, to run these)")

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=[
        pytest.mark.postgres,
        pytest.mark.skipif(not PG_URL, reason=NO_PG_REASON),
    ]),
]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None],
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Give every "no PostgreSQL" skip the same location, so ``-ra`` folds them into one summary line
    with their count instead of one line per test function; the per-test marks in ``-v`` stay as they are."""
    report = yield
    if (not PG_URL and report.skipped and isinstance(report.longrepr, tuple)
            and item.get_closest_marker("postgres") is not None and NO_PG_REASON in str(report.longrepr[2])):
        report.longrepr = (__file__, None, report.longrepr[2])
    return report


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(backend: str, tmp_path: Path) -> Iterator[Callable[..., Connectzap]]:
    """Build engines on the current backend; each gets its own database (or PostgreSQL schema)."""
    made: list[Connectzap] = []

    def factory(sub: str = "app", **kwargs: Any) -> Connectzap:
        directory = tmp_path / sub
        directory.mkdir(exist_ok=True)
        url = PG_URL if backend == "postgres" else f"sqlite:///{directory / 'connectzap.db'}"
        app = make_app(directory, database_url=kwargs.pop("database_url", url), **kwargs)
        made.append(app)
        return app

    yield factory
    for app in made:
        app.close()
        drop_postgres_schema(app.db.url)


@pytest.fixture
def app(make: Callable[..., Connectzap]) -> Connectzap:
    return make()
