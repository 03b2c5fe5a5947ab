"""Which typed model reads the ``data`` of an event kind that the models module does not define.

The kinds whose models live beside :class:`~connectzap.core.models.Event` are declared there,
in one table (``models.CORE_PAYLOADS``). The rest are declared when an engine starts
(:meth:`Connectzap.start`): the core's ``send`` (:class:`~connectzap.core.messages.Outgoing`)
and each enabled connector's :attr:`Connector.payload_models` (HubSpot's ``resolve``).
Nothing is filled in as a side effect of importing a module, so what :meth:`Event.payload`
can read never depends on which modules happened to load first.

This module imports nothing from the rest of the core: ``models`` reads it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .errors import ConfigurationError

_declared: dict[str, tuple[type[BaseModel], str]] = {}
_by_source: dict[tuple[str, str], tuple[type[BaseModel], str]] = {}


def declare(kind: str, model: type[BaseModel], owner: str, *, source: str | None = None) -> None:
    """Record that ``owner`` reads events of ``kind`` with ``model`` -- only those from ``source``
    when given (two connectors may each read their own ``resolve`` events). Declaring the same
    model again is harmless; a different model for a kind (and source) someone already declared
    is an error."""
    table: dict[Any, tuple[type[BaseModel], str]] = _by_source if source is not None else _declared
    key: Any = (kind, source) if source is not None else kind
    known = table.get(key)
    if known is not None and known[0] is not model:
        raise ConfigurationError(f"{owner} and {known[1]} both declare a payload model for {kind} events"
                                 + (f" from {source}" if source is not None else ""))
    table[key] = (model, owner)


def declare_default(kind: str, model: type[BaseModel], owner: str) -> None:
    """The model for ``kind`` events from a source nobody declared, unless one is already set."""
    _declared.setdefault(kind, (model, owner))


def declared(kind: str, source: str | None = None) -> type[BaseModel] | None:
    """The model declared for ``kind`` (from ``source`` first) at start-up, or ``None``."""
    found = _by_source.get((kind, source)) if source is not None else None
    found = found or _declared.get(kind)
    return found[0] if found else None
