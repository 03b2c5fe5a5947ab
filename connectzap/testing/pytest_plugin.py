"""The pytest plugin connectzap installs (entry point ``pytest11``).

Under pytest, installed connectzap plugins are not loaded automatically and a plugin that
fails to load is an error (strict mode), so tests see exactly the plugins they register.

The PostgreSQL schemas the engine helpers make (:func:`~connectzap.testing.make_app`, the fixtures)
are dropped once the test that made them is over, passed or failed, whoever made the engine and
whether or not it closed it; those a fixture wider than a test made, when the session ends.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the plugin loads in every pytest run: the engine is imported only when used
    from ..core.app import Connectzap
    from ..core.channel import Channel


def pytest_configure(config: pytest.Config) -> None:
    sys._called_from_test = True  # type: ignore[attr-defined]  # read by core.plugins, which cannot import pytest
    os.environ.setdefault("CONNECTZAP_STRICT_PLUGINS", "1")


# --- the PostgreSQL schemas tests make ----------------------------------------------------------

_WIDE_SCHEMAS: set[str] = set()
"""Schemas made while a fixture wider than a test (module, session...) was set up: they last as long
as it does, so they are dropped when the session ends rather than after the test that set it up."""


def _made_schemas() -> set[str]:
    apps = sys.modules.get("connectzap.testing.apps")  # not imported yet: nothing made
    return set(apps._made_schemas) if apps is not None else set()


def _drop_made_schemas(keep: set[str]) -> None:
    apps = sys.modules.get("connectzap.testing.apps")
    if apps is None:
        return
    for schema, error in apps._drop_made_schemas(keep):
        warnings.warn(f"connectzap: could not drop the test's PostgreSQL schema {schema}: {error}", stacklevel=1)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any],
                         request: pytest.FixtureRequest) -> Generator[None, object, object]:
    if fixturedef.scope == "function":
        return (yield)
    before = _made_schemas()
    try:
        return (yield)
    finally:
        _WIDE_SCHEMAS.update(_made_schemas() - before)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    """After a test's setup, call and teardown: drop the schemas it made (its fixtures' too) and left."""
    before = _made_schemas()
    try:
        return (yield)
    finally:
        made = _made_schemas() - before
        if made - _WIDE_SCHEMAS:
            _drop_made_schemas(keep=(_made_schemas() - made) | _WIDE_SCHEMAS)


_BEFORE_SESSION = pytest.StashKey[set[str]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.stash[_BEFORE_SESSION] = _made_schemas()  # a session run inside a test keeps the test's


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop what the session's wider fixtures made and left."""
    before = session.stash.get(_BEFORE_SESSION, set())
    _WIDE_SCHEMAS.difference_update(_made_schemas() - before)
    _drop_made_schemas(keep=before)


@pytest.fixture
def connectzap_app(tmp_path: Path) -> Iterator[Connectzap]:
    """A started engine on a temporary database with the sandbox channel."""
    from .apps import drop_postgres_schema, make_app
    app = make_app(tmp_path)
    yield app
    app.close()
    drop_postgres_schema(app.db.url)


@pytest.fixture
def fake_whatsapp() -> object:
    """A :class:`~connectzap.testing.FakeWhatsApp` channel that records every request body."""
    from .fakes import FakeWhatsApp
    return FakeWhatsApp()


@pytest.fixture
def register_plugin() -> Iterator[object]:
    """``register_plugin(plugin, name=None)`` registers a plugin until the test ends."""
    from contextlib import ExitStack

    from .plugins import registered_plugin
    with ExitStack() as stack:
        yield lambda plugin, name=None: stack.enter_context(registered_plugin(plugin, name))


@pytest.fixture
def connectzap_factory(tmp_path: Path) -> Iterator[Callable[..., Connectzap]]:
    """``connectzap_factory(channel=None, **settings)`` builds started engines (a FakeWhatsApp channel
    by default, reachable as ``app.channel``), each on its own database; all are closed afterwards."""
    from .apps import drop_postgres_schema, make_app
    from .fakes import FakeWhatsApp
    made: list[Connectzap] = []

    def factory(channel: Channel | None = None, **settings: Any) -> Connectzap:
        directory = tmp_path / f"app{len(made)}"
        directory.mkdir()
        app = make_app(directory, channel=channel or FakeWhatsApp(), **settings)
        made.append(app)
        return app

    yield factory
    for app in made:
        app.close()
        drop_postgres_schema(app.db.url)
