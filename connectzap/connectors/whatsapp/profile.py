"""The business profile of a phone number (``/{phone-number-id}/whatsapp_business_profile``)."""

from __future__ import annotations

import re
from typing import Any

from ...core.errors import PayloadError
from .client import GraphClient

FIELDS = ("about", "address", "description", "email", "websites", "vertical")

# Meta's limits for POST /{phone-number-id}/whatsapp_business_profile, as confirmed on 2026-12-02
# in Meta's business profile reference (developers.facebook.com, "Business profiles": about 1-139
# characters and not empty; address at most 256; description at most 512; email a valid address
# of at most 128; at most 2 websites of at most 256 characters each, starting http:// or https://)
# and, for the vertical values, the reference's enum as the SDKs generated from Meta's spec list it.
# UNDEFINED is what an unset profile shows; it is not offered as a choice.
LENGTHS = {"about": (1, 139), "address": (1, 256), "description": (1, 512), "email": (3, 128)}
MAX_WEBSITES = 2
WEBSITE_LENGTH = 256
VERTICALS = ("OTHER", "AUTO", "BEAUTY", "APPAREL", "EDU", "ENTERTAIN", "EVENT_PLAN", "FINANCE", "GROCERY", "GOVT",
             "HOTEL", "HEALTH", "NONPROFIT", "PROF_SERVICES", "RETAIL", "TRAVEL", "RESTAURANT", "NOT_A_BIZ",
             "ALCOHOL", "ONLINE_GAMBLING", "PHYSICAL_GAMBLING", "OTC_DRUGS")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def check(changes: dict[str, Any]) -> None:
    """Raise :class:`PayloadError` (one line, naming the field) for a value Meta would refuse."""
    for field, (low, high) in LENGTHS.items():
        value = changes.get(field)
        if value is not None and not low <= len(value.strip()) <= high:
            raise PayloadError(f"profile {field} must be {low} to {high} characters, got {len(value.strip())}",
                               field=field)
    email = changes.get("email")
    if email is not None and not _EMAIL.fullmatch(email.strip()):
        raise PayloadError("profile email is not a valid email address", field="email")
    websites = changes.get("websites")
    if websites is not None:
        if len(websites) > MAX_WEBSITES:
            raise PayloadError(f"a profile has at most {MAX_WEBSITES} websites, got {len(websites)}",
                               field="websites")
        for site in websites:
            if not site.startswith(("http://", "https://")) or len(site) > WEBSITE_LENGTH:
                raise PayloadError(f"profile website {site[:40]!r} must start with http:// or https:// and be at "
                                   f"most {WEBSITE_LENGTH} characters", field="websites")
    vertical = changes.get("vertical")
    if vertical is not None and vertical not in VERTICALS:
        raise PayloadError(f"profile vertical {vertical!r} is not one of Meta's: {', '.join(VERTICALS)}",
                           field="vertical")


async def show(client: GraphClient, phone_number_id: str | None = None) -> dict[str, Any]:
    number = phone_number_id or client.settings.phone_number_id
    answer = await client.request("GET", f"{number}/whatsapp_business_profile",
                                  params={"fields": ",".join((*FIELDS, "profile_picture_url"))})
    data = answer.get("data") or [{}]
    return {k: v for k, v in data[0].items() if k != "messaging_product"}


async def update(client: GraphClient, changes: dict[str, Any], phone_number_id: str | None = None) -> None:
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise PayloadError(f"not a profile field: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    if not changes:
        raise PayloadError("nothing to change: give at least one field", field="profile")
    check(changes)
    number = phone_number_id or client.settings.phone_number_id
    await client.request("POST", f"{number}/whatsapp_business_profile",
                         json_body={"messaging_product": "whatsapp", **changes})


async def display_number(client: GraphClient, phone_number_id: str) -> str | None:
    """The number's ``display_phone_number`` (Meta writes it as customers see it, e.g.
    ``+1 555-078-3881``) as ``+`` and its digits, or None when the answer lacks it. Not checked
    against a numbering plan: Meta's own test numbers (+1 555...) are valid WhatsApp numbers."""
    answer = await client.request("GET", phone_number_id, params={"fields": "display_phone_number"})
    shown = answer.get("display_phone_number") if isinstance(answer, dict) else None
    digits = "".join(ch for ch in shown if ch.isdigit()) if isinstance(shown, str) else ""
    return "+" + digits if 6 <= len(digits) <= 15 else None  # as optin's settings.international
