"""Register a plugin for the length of a test, then take it away again."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..core.hookspecs import hookimpl
from ..core.plugins import load_plugins, pm

_counter = itertools.count(1)


@contextmanager
def registered_plugin(plugin: Any, name: str | None = None) -> Iterator[str]:
    """Register ``plugin`` (a module, class instance or anything with ``@hookimpl`` functions) and
    unregister it on exit, even when the test fails. A plugin that is already registered (a bundled
    one) is left as it is. Yields the name it is registered under."""
    load_plugins()  # bundled plugins first, so ours is not mistaken for them
    if pm.is_registered(plugin):
        yield pm.get_name(plugin) or ""
        return
    plugin_name = name or f"test-plugin-{next(_counter)}"
    pm.register(plugin, name=plugin_name)
    try:
        yield plugin_name
    finally:
        if pm.has_plugin(plugin_name):
            pm.unregister(name=plugin_name)


class ConnectorRegistration:
    """A plugin that registers the given connector classes (what a package's module does with
    ``register_connectors``), for tests of classes not registered anywhere else."""

    def __init__(self, *classes: type) -> None:
        self.classes = classes

    @hookimpl
    def register_connectors(self, register: Any) -> None:
        for cls in self.classes:
            register(cls)
