"""The plugin manager: bundled plugins and installed ones, loaded the same way, each in isolation.

* Bundled plugins (``DEFAULT_PLUGINS``) are ordinary modules with ``@hookimpl`` functions.
* Installed plugins come from the ``connectzap`` entry-point group. Each one is imported in its
  own ``try``: a plugin that fails to import is recorded (``connectzap plugins``, ``/healthz``)
  and the rest keep working. ``CONNECTZAP_STRICT_PLUGINS=1`` turns that into an error.
* ``CONNECTZAP_LOAD_PLUGINS=a,b`` loads only those installed plugins (``""`` = none).
* Under pytest, installed plugins are not loaded automatically (``connectzap.testing``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginLoadError
from .version import __version__

log = logging.getLogger("connectzap.plugins")

DEFAULT_PLUGINS: tuple[str, ...] = (
    "connectzap.connectors.whatsapp",
    "connectzap.connectors.whatsapp.commands",
    "connectzap.plugins.optin",
    "connectzap.plugins.opt_out_keywords",
    "connectzap.plugins.chatbot",
    "connectzap.plugins.handoff",
    "connectzap.plugins.auto_replies",
    "connectzap.plugins.away",
    "connectzap.plugins.welcome",
    "connectzap.connectors.woocommerce",
    "connectzap.plugins.order_notifications",
    "connectzap.connectors.generic",
    "connectzap.connectors.hubspot",
    "connectzap.connectors.email",
    "connectzap.plugins.lead_welcome",
    "connectzap.connectors.sms",
    "connectzap.scaffold",
)

ENTRY_POINT_GROUP = "connectzap"

pm = pluggy.PluginManager("connectzap")
pm.add_hookspecs(hookspecs)


@dataclass
class LoadFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    distribution: str | None
    error: str


@dataclass
class _State:
    loaded: bool = False
    failures: list[LoadFailure] = field(default_factory=list)
    distributions: dict[str, tuple[str, str]] = field(default_factory=dict)  # plugin name -> (dist, version)


_state = _State()


def strict() -> bool:
    return os.environ.get("CONNECTZAP_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


def _autoload_disabled() -> bool:
    if os.environ.get("CONNECTZAP_DISABLE_PLUGIN_AUTOLOAD"):
        return True
    return bool(getattr(sys, "_called_from_test", False))


def _record_failure(name: str, dist: str | None, exc: BaseException) -> None:
    failure = LoadFailure(name=name, distribution=dist, error=f"{type(exc).__name__}: {exc}")
    _state.failures.append(failure)
    message = f'Error importing connectzap plugin "{name}": {failure.error}'
    if strict():
        raise PluginLoadError(message) from exc
    log.error(message)


def register_module(module_name: str, name: str | None = None) -> None:
    """Import ``module_name`` and register it, recording (or, strictly, raising) failures."""
    plugin_name = name or module_name.rsplit(".", 1)[-1]
    existing = pm.get_plugin(plugin_name)
    if existing is not None and getattr(existing, "__name__", None) != module_name:
        plugin_name = module_name  # two bundled modules share a last name part (e.g. "commands")
    if pm.has_plugin(plugin_name):
        return
    try:
        module = importlib.import_module(module_name)
        pm.register(module, name=plugin_name)
    except Exception as exc:  # noqa: BLE001 - isolation is the point
        _unregister_quietly(plugin_name)
        _record_failure(plugin_name, None, exc)


def _unregister_quietly(name: str) -> None:
    try:
        if pm.has_plugin(name):
            pm.unregister(name=name)
    except Exception:  # noqa: BLE001 - cleanup after a failure that is already being reported
        pass


def load_plugins() -> None:
    """Register bundled and installed plugins once. Safe to call again."""
    if _state.loaded:
        return
    _state.loaded = True
    disabled = {n.strip() for n in os.environ.get("CONNECTZAP_DISABLE_BUNDLED", "").split(",") if n.strip()}
    for module_name in DEFAULT_PLUGINS:
        if module_name.rsplit(".", 1)[-1] not in disabled:
            register_module(module_name)
    if _autoload_disabled() and "CONNECTZAP_LOAD_PLUGINS" not in os.environ:
        return
    allow = os.environ.get("CONNECTZAP_LOAD_PLUGINS")
    allowed = None if allow is None else {n.strip() for n in allow.split(",") if n.strip()}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else None
        if allowed is not None and ep.name not in allowed and (dist or "") not in allowed:
            continue
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
            if ep.dist is not None:
                _state.distributions[ep.name] = (ep.dist.name, ep.dist.version)
        except Exception as exc:  # noqa: BLE001 - isolation: a broken plugin is recorded, the rest load
            _unregister_quietly(ep.name)
            _record_failure(ep.name, dist, exc)
    if allowed:
        found = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
        for missing in sorted(allowed - found - {d for d, _ in _state.distributions.values()}):
            log.warning("Plugin %s could not be found", missing)


def load_failures() -> list[LoadFailure]:
    load_plugins()
    return list(_state.failures)


def get_plugins() -> list[dict[str, Any]]:
    """Every registered plugin: name, distribution, version, hooks; failed ones with their error."""
    load_plugins()
    rows: list[dict[str, Any]] = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        dist, version = _state.distributions.get(name, ("connectzap", __version__))
        rows.append({"name": name, "distribution": dist, "version": version, "hooks": hooks,
                     "bundled": name not in _state.distributions, "error": None})
    for failure in _state.failures:
        rows.append({"name": failure.name, "distribution": failure.distribution, "version": None,
                     "hooks": [], "bundled": False, "error": failure.error})
    return rows


def reset_for_tests() -> None:
    """Forget load state (tests only): unregister everything and load again on next use."""
    for name, _plugin in list(pm.list_name_plugin()):
        _unregister_quietly(name)
    _state.loaded = False
    _state.failures.clear()
    _state.distributions.clear()
