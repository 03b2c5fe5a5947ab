"""The bundled email channel: SMTP through the business's relay, bodies from named templates,
unsubscribe headers on marketing email, bounces by webhook. Registered like any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable

from ...core.hookspecs import hookimpl
from ..base import Connector
from .channel import EmailChannel
from .connector import EmailConnector
from .settings import EmailSettings

__all__ = ["EmailChannel", "EmailConnector", "EmailSettings"]


@hookimpl
def register_connectors(register: Callable[[type[Connector]], None]) -> None:
    register(EmailConnector)
