"""The pytest plugin connectzap installs (entry point ``pytest11``).

Under pytest, installed connectzap plugins are not loaded automatically and a plugin that
fails to load is an error (strict mode), so tests see exactly the plugins they register.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the plugin loads in every pytest run: the engine is imported only when used
    from ..core.app import Connectzap
    from ..core.channel import Channel


def pytest_configure(config: pytest.Config) -> None:
    sys._called_from_test = True  # type: ignore[attr-defined]  # read by core.plugins, which cannot import pytest
    os.environ.setdefault("CONNECTZAP_STRICT_PLUGINS", "1")


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
