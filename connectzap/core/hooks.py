"""Typed facades over ``pm.hook``: callers never touch pluggy directly.

Event hooks fan out one implementation at a time (pluggy itself stops at the first
exception), so each plugin's failure is caught, recorded and retried on its own.
:func:`delivery_targets` lists everything an event is delivered to: each hook
implementation and each connector's sync method.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .connector import Connector, needed_connector
from .context import EventContext
from .errors import StartupError
from .hookspecs import EVENT_HOOKS
from .media import declared_inbound_media
from .messages import Outgoing
from .models import EventKind
from .phones import mask
from .plugin_settings import PluginSettings
from .plugins import load_plugins, pm, strict
from .settings import _is_secret_key

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

log = logging.getLogger("connectzap.hooks")


@dataclass(frozen=True)
class HookTarget:
    """One implementation of an event hook, callable on its own."""

    name: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]
    media: frozenset[str] | None = None
    """The media of the inbound messages it is called for (None: every event it hooks);
    :func:`connectzap.core.media.inbound_media`."""
    needs: str | None = None
    """The connector it has nothing to do without (:func:`connectzap.core.connector.needs_connector`)."""

    def accepts(self, medium: str | None) -> bool:
        """Whether it is called for an event on ``medium`` (None: an event of no medium)."""
        return self.media is None or medium is None or medium in self.media

    @property
    def blocking(self) -> bool:
        """A plain function: it runs off the event loop (in a thread), where it may block."""
        return not inspect.iscoroutinefunction(self.function)

    def _args(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        args = {name: kwargs[name] for name in self.argnames if name in kwargs}
        if os.environ.get("CONNECTZAP_TRACE_PLUGINS"):
            log.warning("hook %s(%s) -> %s", self.function.__name__, redact_for_log(args), self.name)
        return args

    async def call(self, **kwargs: Any) -> list[Outgoing]:
        args = self._args(kwargs)
        if self.blocking:
            result = await asyncio.to_thread(self.function, **args)
        else:
            result = await self.function(**args)
        return as_proposals(await _settled(result))

    def call_blocking(self, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> list[Outgoing]:
        """:meth:`call` for a :attr:`blocking` hook from a thread that is not ``loop``'s; an awaitable it
        returns is awaited on ``loop``."""
        result = self.function(**self._args(kwargs))
        if inspect.isawaitable(result):
            result = asyncio.run_coroutine_threadsafe(_settled(result), loop).result()
        return as_proposals(result)


async def _settled(result: Any) -> Any:
    while inspect.isawaitable(result):
        result = await result
    return result


def as_proposals(result: Any) -> list[Outgoing]:
    if result is None:
        return []
    items = result if isinstance(result, (list, tuple)) else [result]
    out = []
    for item in items:
        if isinstance(item, Outgoing):
            out.append(item)
        elif isinstance(item, dict):
            out.append(Outgoing.model_validate(item))
        else:
            raise TypeError(f"an event hook returned {type(item).__name__}; return Outgoing objects or None")
    return out


def redact_for_log(value: Any) -> Any:
    """Trace-safe copy of hook arguments (``CONNECTZAP_TRACE_PLUGINS``): phone numbers masked, texts
    shortened, secrets hidden."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("phone", "recipient", "wa_id", "from", "to") and isinstance(v, str):
                out[k] = mask(v)
            elif k in ("body", "text") and isinstance(v, str):
                out[k] = f"<{len(v)} chars>"
            elif _is_secret_key(str(k)) and v not in (None, "", [], {}):
                out[k] = "**********"  # a token or key a payload happened to carry
            else:
                out[k] = redact_for_log(v)
        return out
    if isinstance(value, list):
        return [redact_for_log(v) for v in value]
    if isinstance(value, EventContext):
        return repr(value)
    return value


def event_targets(kind: str) -> list[HookTarget]:
    """The implementations of the hook for event ``kind``, in pluggy's call order."""
    load_plugins()
    spec = EVENT_HOOKS.get(kind)
    if spec is None:
        return []
    caller = getattr(pm.hook, spec[0])
    targets = []
    for impl in reversed(caller.get_hookimpls()):  # pluggy calls LIFO; keep the same order
        declared = declared_inbound_media(impl.function) if kind == EventKind.INBOUND_MESSAGE.value else None
        targets.append(HookTarget(name=impl.plugin_name, function=impl.function, argnames=tuple(impl.argnames),
                                  media=declared, needs=needed_connector(impl.function)))
    return targets


@dataclass(frozen=True)
class DeliveryTarget:
    """One receiver of an event, retried and dead-lettered on its own: a hook implementation or
    a connector's sync method (``connector:<name>``)."""

    name: str
    hook: HookTarget | None = None
    connector_method: Callable[[Any, Any], Awaitable[Any]] | None = None
    connector: Connector | None = None


def delivery_targets(kind: str, connectors: Iterable[Connector], medium: str | None = None) -> list[DeliveryTarget]:
    """Every receiver of an event of ``kind``: hook implementations first, then connectors. With
    ``medium`` (an inbound message's), only the hooks that act on it; connectors get every medium.
    A hook that needs a connector not among ``connectors`` is left out (no call, no delivery)."""
    connectors = list(connectors)
    configured = {connector.name for connector in connectors}
    out = [DeliveryTarget(name=h.name, hook=h) for h in event_targets(kind)
           if h.accepts(medium) and h.needs in (None, *configured)] if kind in EVENT_HOOKS else []
    for connector in connectors:
        for target_name, method in connector.delivery_targets(kind).items():
            out.append(DeliveryTarget(name=target_name, connector_method=method, connector=connector))
    return out


def collect_connectors() -> dict[str, type[Connector]]:
    """Every connector class registered through ``register_connectors``, by name."""
    load_plugins()
    found: dict[str, type[Connector]] = {}
    origin: dict[str, str] = {}
    for impl in pm.hook.register_connectors.get_hookimpls():
        registered: list[type[Connector]] = []

        def register(cls: type[Connector], _sink: list[type[Connector]] = registered) -> None:
            if not (isinstance(cls, type) and issubclass(cls, Connector)):
                raise StartupError(f"register_connectors got {cls!r}, not a Connector subclass")
            _sink.append(cls)

        try:
            impl.function(register=register)
        except Exception as exc:
            if strict() or isinstance(exc, StartupError):
                raise
            log.error("plugin %s failed in register_connectors: %s", impl.plugin_name, exc)
            continue
        for cls in registered:
            if cls.name in found and found[cls.name] is not cls:
                raise StartupError(f"connector name {cls.name!r} registered twice: by {origin[cls.name]} "
                                   f"and {impl.plugin_name}")
            found[cls.name] = cls
            origin[cls.name] = impl.plugin_name
    return found


def collect_plugin_settings() -> dict[str, type[PluginSettings]]:
    """Every ``[plugins.NAME]`` settings model declared through ``register_plugin_settings``, by name."""
    load_plugins()
    found: dict[str, type[PluginSettings]] = {}
    origin: dict[str, str] = {}
    for impl in pm.hook.register_plugin_settings.get_hookimpls():
        declared: list[tuple[str, type[PluginSettings]]] = []

        def register(name: str, model: type[PluginSettings],
                     _sink: list[tuple[str, type[PluginSettings]]] = declared) -> None:
            if not (isinstance(model, type) and issubclass(model, PluginSettings)):
                raise StartupError(f"register_plugin_settings got {model!r} for {name!r}, "
                                   "not a PluginSettings subclass")
            _sink.append((str(name), model))

        try:
            impl.function(register=register)
        except Exception as exc:
            if strict() or isinstance(exc, StartupError):
                raise
            log.error("plugin %s failed in register_plugin_settings: %s", impl.plugin_name, exc)
            continue
        for name, model in declared:
            if name in found and found[name] is not model:
                raise StartupError(f"settings for [plugins.{name}] declared twice: by {origin[name]} "
                                   f"and {impl.plugin_name}")
            found[name] = model
            origin[name] = impl.plugin_name
    return found


def plugin_names() -> set[str]:
    """Names of the registered plugins and of those that failed to load."""
    load_plugins()
    from .plugins import load_failures
    return {name for name, plugin in pm.list_name_plugin() if plugin is not None} | \
        {failure.name for failure in load_failures()}


def _each_registration(hook: str, **kwargs: Any) -> None:
    """Call every implementation of a registration hook; one that fails is logged and skipped
    (raised under ``CONNECTZAP_STRICT_PLUGINS``): the others' commands and routes still work."""
    load_plugins()
    for impl in getattr(pm.hook, hook).get_hookimpls():
        try:
            impl.function(**kwargs)
        except Exception as exc:
            if strict():
                raise
            log.error("plugin %s failed in %s: %s", impl.plugin_name, hook, exc)


def register_commands(cli: click.Group) -> None:
    _each_registration("register_commands", cli=cli)


def register_api_routes(router: APIRouter) -> None:
    """Let each plugin add its ``/v1`` routes to ``router``."""
    _each_registration("register_api_routes", router=router)
