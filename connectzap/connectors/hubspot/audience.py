"""Campaign audiences from a HubSpot contact list (Lists API v3), read a page at a time.

``GET /crm/v3/lists/{id}`` first (does the list exist, does it hold contacts), then
``GET /crm/v3/lists/{id}/memberships`` (up to 250 record ids a page, ``paging.next.after``) and,
per 100 ids, ``POST /crm/v3/objects/contacts/batch/read`` for their phone, country and the fields
the template's parameters come from. Memory holds one page, whatever the list's size.

The SDK's response models refuse answers that lack fields they call required, so these calls
read the JSON as it came (``_preload_content=False``); errors still go through the client's
classification (429 and 5xx retried, 401/403 fatal).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from ...core.connector import AudienceMember, AudienceQuery
from ...core.errors import NotFoundError, PayloadError
from ...core.wording import plural
from .client import HubSpotClient, HubSpotNotFound
from .contacts import Contacts
from .settings import HubSpotSettings

SOURCE = "hubspot_list"
MEMBERSHIP_PAGE = 250  # the memberships API's largest page
READ_BATCH = 100  # contacts per batch read (HubSpot's limit for batch inputs)
CONTACT_OBJECT = "0-1"  # HubSpot's object type id for contacts


def as_json(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (an SDK call) answering the response's JSON instead of the SDK's model."""
    def call(*args: Any, **kwargs: Any) -> Any:
        return json.loads(function(*args, _preload_content=False, **kwargs).data or b"null")
    return call


def list_id_of(options: dict[str, Any]) -> str:
    unknown = sorted(set(options) - {"id", "list_id"})
    if unknown:
        raise PayloadError(f"{SOURCE}: unknown {plural(len(unknown), 'option')} {', '.join(unknown)}; "
                           "it takes the list's id only", field="source")
    value = str(options.get("id") or options.get("list_id") or "").strip()
    if not value.isdigit():
        raise PayloadError(f"{SOURCE}: give the list's id (digits, as in the list's URL in HubSpot), e.g. "
                           "hubspot-list:123", field="source")
    return value


class ListAudience:
    def __init__(self, client: HubSpotClient, contacts: Contacts, settings: HubSpotSettings) -> None:
        self.client = client
        self.contacts = contacts
        self.settings = settings

    async def members(self, query: AudienceQuery) -> AsyncIterator[AudienceMember]:
        list_id = list_id_of(dict(query.options))
        await self._check_list(list_id)
        wanted = list(dict.fromkeys([*self.settings.phone_properties,
                                     *([self.settings.country_property] if self.settings.country_property else []),
                                     *query.fields]))
        after: str | None = None
        while True:
            paging: dict[str, Any] = {"limit": MEMBERSHIP_PAGE, **({"after": after} if after else {})}
            page = await self.client.call("read list memberships", as_json(self.client.list_memberships.get_page),
                                          list_id, **paging)
            ids = [str(item["recordId"]) for item in page.get("results") or []]
            for start in range(0, len(ids), READ_BATCH):
                for member in await self._read(ids[start:start + READ_BATCH], wanted, query.fields):
                    yield member
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after or not ids:
                return

    async def _check_list(self, list_id: str) -> None:
        try:
            found = await self.client.call("read list", as_json(self.client.lists.get_by_id), list_id)
        except HubSpotNotFound:
            raise NotFoundError(f"HubSpot has no list {list_id} (or the private app cannot see it); the id is the "
                                "number in the list's URL in HubSpot") from None
        kind = ((found or {}).get("list") or {}).get("objectTypeId")
        if kind not in (None, CONTACT_OBJECT):
            raise PayloadError(f"HubSpot list {list_id} holds objects of type {kind}, not contacts", field="source")

    async def _read(self, ids: list[str], wanted: list[str], fields: tuple[str, ...]) -> list[AudienceMember]:
        body = {"inputs": [{"id": i} for i in ids], "properties": wanted}
        read = await self.client.call("read contacts", as_json(self.client.contact_batch.read),
                                      batch_read_input_simple_public_object_id=body)
        found = {str(r["id"]): r.get("properties") or {} for r in (read or {}).get("results") or []}
        # In list order; a contact deleted since it joined the list is simply not there any more.
        return [self._member(i, found[i], fields) for i in ids if i in found]

    def _member(self, contact_id: str, props: dict[str, Any], fields: tuple[str, ...]) -> AudienceMember:
        phone = self.contacts.phone_of(props)
        if phone is None:  # no valid number: hand on the first one written, so the reason says "invalid"
            phone = next((str(props[n]) for n in self.settings.phone_properties if props.get(n)), None)
        country = props.get(self.settings.country_property) if self.settings.country_property else None
        return AudienceMember(ref=contact_id, phone=phone, country=country if isinstance(country, str) else None,
                              fields={f: str(props[f]) for f in fields if props.get(f) not in (None, "")})
