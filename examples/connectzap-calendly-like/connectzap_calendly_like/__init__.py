"""connectzap plugin: appointment-booking webhooks -> consented WhatsApp confirmations and reminders.

Installed, connectzap finds it through the ``connectzap`` entry point. Enable it with::

    [connectors.calendly_like]
    signing_secrets = ["whsec_..."]
"""

from __future__ import annotations

from typing import Any

from connectzap import hookimpl

from .connector import BookingConnector, BookingSettings

__all__ = ["BookingConnector", "BookingSettings"]


@hookimpl
def register_connectors(register: Any) -> None:
    register(BookingConnector)
