"""HubSpot: new leads get a consented WhatsApp welcome; every chat lands on the contact's timeline.

Configured by ``[connectors.hubspot]`` (see :mod:`.settings` and docs/hubspot.md).
"""

from __future__ import annotations

from collections.abc import Callable

from ...core.hookspecs import hookimpl
from .connector import HubSpotConnector

__all__ = ["HubSpotConnector"]


@hookimpl
def register_connectors(register: Callable[[type], None]) -> None:
    register(HubSpotConnector)
