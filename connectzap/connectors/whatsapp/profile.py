"""The business profile of a phone number (``/{phone-number-id}/whatsapp_business_profile``)."""

from __future__ import annotations

from typing import Any

from ...core.errors import PayloadError
from .client import GraphClient

FIELDS = ("about", "address", "description", "email", "websites", "vertical")


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
    number = phone_number_id or client.settings.phone_number_id
    await client.request("POST", f"{number}/whatsapp_business_profile",
                         json_body={"messaging_product": "whatsapp", **changes})
