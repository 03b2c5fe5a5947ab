"""The WhatsApp Cloud API connector: sends, webhooks, templates, profile -- and the sandbox."""

from __future__ import annotations

from collections.abc import Callable

from ...core.hookspecs import hookimpl
from ..base import Connector
from .connector import WhatsAppConnector

__all__ = ["WhatsAppConnector"]


@hookimpl
def register_connectors(register: Callable[[type[Connector]], None]) -> None:
    register(WhatsAppConnector)
