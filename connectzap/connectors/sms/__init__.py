"""The SMS connector (Twilio Programmable Messaging): the ``sms`` medium's channel, status
callbacks and STOP/START, registered like any third-party plugin. docs/sms.md."""

from __future__ import annotations

from collections.abc import Callable

from ...core.hookspecs import hookimpl
from ..base import Connector
from .connector import SmsConnector

__all__ = ["SmsConnector"]


@hookimpl
def register_connectors(register: Callable[[type[Connector]], None]) -> None:
    register(SmsConnector)
