"""The pytest plugin connectzap installs (entry point ``pytest11``).

Under pytest, installed connectzap plugins are not loaded automatically and a plugin that
fails to load is an error (strict mode), so tests see exactly the plugins they register.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    sys._called_from_test = True  # type: ignore[attr-defined]
    os.environ.setdefault("CONNECTZAP_STRICT_PLUGINS", "1")


@pytest.fixture
def connectzap_app(tmp_path: Path) -> Iterator[object]:
    """A started engine on a temporary database with the sandbox channel."""
    from .apps import drop_postgres_schema, make_app
    app = make_app(tmp_path)
    yield app
    app.close()
    drop_postgres_schema(app.db.url)
