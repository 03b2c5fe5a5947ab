"""Generic webhooks: any system in (JMESPath mappings), any system out (signed subscriptions).

Config lives under ``[connectors.generic]``; see docs/generic-webhooks.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.hookspecs import hookimpl
from .connector import GenericConnector

if TYPE_CHECKING:
    from collections.abc import Callable

    import click

    from ..base import Connector

__all__ = ["GenericConnector"]


@hookimpl
def register_connectors(register: Callable[[type[Connector]], None]) -> None:
    register(GenericConnector)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .commands import install
    install(cli)
