"""An engine the testing helpers make on PostgreSQL lives in a schema of its own; none of them is left
in the database once the test is over -- a full PostgreSQL run once left ~1,500. ``make_app`` drops
the schema of an engine that fails to start; the pytest plugin drops what a test left (passed or
failed, closed or not), and what a wider fixture made when the session ends."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connectzap.core.errors import ConfigurationError
from connectzap.testing import apps
from conftest import NO_PG_REASON, PG_URL

pytestmark = [pytest.mark.postgres, pytest.mark.skipif(not PG_URL, reason=NO_PG_REASON)]


def schema_of(url: str) -> str:
    """The schema a PostgreSQL URL of the helpers names (``options=-csearch_path=...``)."""
    return url.rsplit("search_path%3D", 1)[1].split("&", 1)[0]


def existing(schemas: list[str]) -> list[str]:
    """Those of ``schemas`` the test database has."""
    engine = create_engine(PG_URL or "")
    try:
        with engine.connect() as conn:
            return sorted(conn.execute(text("SELECT schema_name FROM information_schema.schemata"
                                            " WHERE schema_name = ANY(:names)"), {"names": schemas}).scalars())
    finally:
        engine.dispose()


def test_an_engine_that_fails_to_start_leaves_no_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    fresh = apps._postgres_schema_url

    def noting(base: str) -> str:
        made.append(url := fresh(base))
        return url

    monkeypatch.setattr(apps, "_postgres_schema_url", noting)
    with pytest.raises(ConfigurationError, match="secret"):  # fails closed after migrating its schema
        apps.make_app(tmp_path, database_url=PG_URL,
                      connectors={"generic": {"subscriptions": {"crm": {"url": "http://127.0.0.1:9/hook"}}}})
    schemas = [schema_of(url) for url in made]
    assert len(schemas) == 1
    assert existing(schemas) == []


INNER = '''
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connectzap.testing import make_app

LOG = Path(os.environ["SCHEMA_LOG"])


def note(kind, app):
    schema = app.db.url.rsplit("search_path%3D", 1)[1].split("&", 1)[0]
    with LOG.open("a") as log:
        log.write(f"{kind} {schema}\\n")


def noted(kind):
    return [name for k, name in (line.split() for line in LOG.read_text().splitlines()) if k == kind]


def existing(names):
    engine = create_engine(os.environ["CONNECTZAP_TEST_DATABASE_URL"])
    with engine.connect() as conn:
        found = conn.execute(text("SELECT schema_name FROM information_schema.schemata"
                                  " WHERE schema_name = ANY(:names)"), {"names": names}).scalars().all()
    engine.dispose()
    return sorted(found)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("shared"))  # neither the fixture nor a test drops it
    note("wide", app)
    yield app
    app.close()


def test_a_left_open_and_failing(tmp_path):
    note("test", make_app(tmp_path / "open"))  # neither closed nor dropped
    (tmp_path / "closed").mkdir()
    closed = make_app(tmp_path / "closed")
    note("test", closed)
    closed.close()  # closed, not dropped
    assert False, "fails on purpose"


def test_b_fixtures_and_the_wide_fixture(connectzap_factory, connectzap_app, shared):
    note("test", connectzap_factory())
    note("test", connectzap_app)
    assert existing(noted("wide")) == noted("wide")


def test_c_what_the_tests_before_made_is_gone_and_the_wide_fixture_stays(shared):
    assert noted("test") and existing(noted("test")) == []
    with shared.db.read() as conn:  # still usable: its schema is there
        conn.execute(text("SELECT count(*) FROM events")).scalar_one()
'''


@pytest.mark.slow
def test_the_plugin_drops_what_each_test_leaves_and_wide_fixtures_at_the_end(tmp_path: Path) -> None:
    """Run under pytest (a session of its own), engines made by ``make_app`` and the fixtures, left
    open or closed, in a failing test or a passing one, leave no schema once their test is over; one a
    module-scoped fixture made stays usable for the module's later tests and is gone after the session."""
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER))
    log = tmp_path / "schemas.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["SCHEMA_LOG"] = str(log)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "-o", "asyncio_default_fixture_loop_scope=function", "-rA", "test_inner.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    report = done.stdout[-4000:] + done.stderr[-2000:]
    assert "FAILED test_inner.py::test_a_left_open_and_failing" in done.stdout, report
    assert "fails on purpose" in done.stdout and "1 failed, 2 passed" in done.stdout, report
    made = [line.split()[1] for line in log.read_text().splitlines()]
    assert len(made) == 5 and all(name.startswith("cz_") for name in made)
    assert existing(made) == []
