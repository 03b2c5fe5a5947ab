"""The media connectzap sends on. A channel sends on one (:attr:`.channel.Channel.medium`), a
message goes out on one (``Outgoing.medium``), and consent is recorded per category and medium.
Plugins may bring others: any lower-case name matching :data:`NAME`."""

from __future__ import annotations

import re
from typing import Annotated, Final

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
