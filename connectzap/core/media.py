"""The media connectzap sends on. A channel sends on one (:attr:`.channel.Channel.medium`), a
message goes out on one (``Outgoing.medium``), and consent is recorded per category and medium.
Plugins may bring others: any lower-case name matching :data:`NAME`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Final, TypeVar

from pydantic import AfterValidator, Field

WHATSAPP: Final = "whatsapp"
"""The WhatsApp Business Cloud API: the default medium, the only one with a 24 h window."""
EMAIL: Final = "email"
"""Email: the recipient is an email address."""
SMS: Final = "sms"
"""SMS: the recipient is an E.164 number."""

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,15}$")
"""What a medium's name looks like (it is stored in 16 characters)."""


def checked(medium: str) -> str:
    """``medium`` when it is a valid name; else a ValueError saying what one looks like."""
    if not NAME.match(medium):
        raise ValueError(f"{medium!r} is not a medium: use whatsapp, email, sms or another lower-case name of "
                         "at most 16 letters, digits, '-' or '_'")
    return medium


Medium = Annotated[str, Field(max_length=16), AfterValidator(checked)]
"""A medium's name in a model field: checked by :func:`checked`, so every model says the same."""


EVERY: Final = "*"
"""Given to :func:`inbound_media`: every medium, including ones added later."""
DEFAULT_INBOUND_MEDIA: Final = frozenset({WHATSAPP})
"""What an ``on_inbound_message`` implementation that declares nothing is called for."""
_DECLARED = "connectzap_inbound_media"

_F = TypeVar("_F", bound=Callable[..., Any])


def inbound_media(*names: str) -> Callable[[_F], _F]:
    """Declare the media an ``on_inbound_message`` implementation acts on (``"*"``: every one)::

        @hookimpl
        @inbound_media("whatsapp", "sms")
        def on_inbound_message(message, ctx): ...

    Undeclared, an implementation is called for WhatsApp messages only: answers written for WhatsApp
    (buttons, templates, the 24-hour window) would be wrong by SMS. Connectors' ``sync_*`` methods
    (a CRM's timeline) get every medium and read ``message.medium``."""
    if not names:
        raise ValueError("inbound_media() needs at least one medium, or '*' for every one")
    chosen = frozenset(name if name == EVERY else checked(name) for name in names)

    def declare(function: _F) -> _F:
        setattr(function, _DECLARED, chosen)
        return function

    return declare


def declared_inbound_media(function: Callable[..., Any]) -> frozenset[str] | None:
    """The media ``function`` (an ``on_inbound_message`` implementation) acts on; None: every one."""
    chosen: frozenset[str] = getattr(function, _DECLARED, DEFAULT_INBOUND_MEDIA)
    return None if EVERY in chosen else chosen


def fallback_list(media: list[str]) -> list[str]:
    """``media`` when it is a valid list of media to fall back on (each a medium's name, none
    twice, never WhatsApp, the medium a message falls back from); else a ValueError."""
    names = [checked(m) for m in media]
    if WHATSAPP in names:
        raise ValueError("cannot name whatsapp: it is the medium a message falls back from")
    if len(set(names)) != len(names):
        raise ValueError("names a medium twice")
    return names


FallbackMedia = Annotated[list[str], AfterValidator(fallback_list), Field(max_length=4)]
"""A configured list of media to fall back on, in order (``fallback = ["sms", "email"]``)."""
