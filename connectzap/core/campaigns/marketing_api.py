"""A campaign's choice of Meta's Marketing Messages API for its marketing template.

``account`` (stored as null) leaves it to the sending number's account (``marketing_messages_api``
in its settings); ``use`` sends through that API, ``avoid`` through the Cloud API's /messages. The
choice travels to the channel as :attr:`~connectzap.core.channel.OutboundSend.prefer_marketing_api`.
``use`` is refused up front (create, preview, start) when the number's account has the API not
configured: the campaign would otherwise go out through the Cloud API without anyone noticing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from ..errors import PayloadError

MarketingApi = Literal["account", "use", "avoid"]
CHOICES: tuple[MarketingApi, ...] = ("account", "use", "avoid")


def stored(choice: str | None) -> str | None:
    """The column's value for ``choice`` (None and ``account``: null); a clear error for anything else."""
    if choice is None or choice == "account":
        return None
    if choice not in CHOICES:
        raise PayloadError(f"marketing_api must be one of {', '.join(CHOICES)}, not {choice!r}", field="marketing_api")
    return choice


def shown(value: str | None) -> MarketingApi:
    """The choice as the CLI and the REST API show it."""
    return "use" if value == "use" else "avoid" if value == "avoid" else "account"


def preference(value: str | None) -> bool | None:
    """What the channel is told: True (use), False (avoid), None (the account decides)."""
    return True if value == "use" else False if value == "avoid" else None


def check(value: str | None, number: str | None, configured: Callable[[str | None], bool | None]) -> None:
    """Refuse ``use`` when the account of ``number`` (None: the default number) has no Marketing
    Messages API configured; ``configured`` answers for a number (None: no connector sends from it)."""
    if value != "use":
        return
    if configured(number) is not True:
        sender = f"number {number}" if number else "the default number"
        raise PayloadError(f"marketing_api is use, but the account of {sender} has no Marketing Messages API "
                           "configured (marketing_messages_api in [connectors.whatsapp] or its account): set it, "
                           "or choose avoid or account", field="marketing_api")
