"""Finding HubSpot contacts by WhatsApp number or BSUID, creating them when configured, reading leads.

A number is searched as E.164 over every configured phone property (OR-ed filter groups),
under the search API's own rate limit. A customer known only by a business-scoped user id
(BSUID: a WhatsApp username, no number) is searched by ``bsuid_property``, a contact property
created the first time it is needed. The id found (or created) is kept in the connector's
state under the contact's keyed hash: HubSpot's search index lags writes, so a contact created
a moment ago would not be found again by searching, and we never store the number itself. A
BSUID linked to a number has that number's key, so both find the same contact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ...core.bsuids import is_bsuid
from ...core.clock import iso_utc
from ...core.errors import DeliveryError, InvalidPhoneError, SkippableError
from ...core.models import Category, ConsentChange, Contact, InboundMessage, Lead
from ...core.phones import to_e164
from . import marks
from .client import HubSpotClient, HubSpotNotFound
from .settings import HubSpotSettings

if TYPE_CHECKING:
    from ...core.context import EventContext


@dataclass(frozen=True)
class ContactRef:
    id: str
    owner_id: str | None = None


class Contacts:
    def __init__(self, client: HubSpotClient, settings: HubSpotSettings) -> None:
        self.client = client
        self.settings = settings

    # --- reading one contact -------------------------------------------------------------

    async def fetch(self, contact_id: str) -> dict[str, Any] | None:
        """The contact's properties (the ones the connector reads), or None when it is gone."""
        try:
            found = await self.client.call("get contact", self.client.contacts.get_by_id, contact_id,
                                           properties=self.settings.fetched_properties())
        except HubSpotNotFound:
            return None
        return {"id": str(found.id), "properties": dict(found.properties or {}),
                "created_at": getattr(found, "created_at", None)}

    def phone_of(self, properties: dict[str, Any]) -> str | None:
        """The first configured phone property that holds a valid number, as E.164."""
        country = properties.get(self.settings.country_property) if self.settings.country_property else None
        if not (isinstance(country, str) and len(country.strip()) == 2):
            country = self.settings.default_region
        for name in self.settings.phone_properties:
            raw = properties.get(name)
            if raw in (None, ""):
                continue
            try:
                return to_e164(str(raw), country.strip().upper() if country else None)
            except InvalidPhoneError:
                continue
        return None

    def lead_of(self, contact: dict[str, Any], portal_id: str, phone: str) -> Lead:
        props = contact["properties"]
        created = contact.get("created_at")
        return Lead(id=contact["id"], stage=props.get("lifecyclestage"), owner_id=props.get("hubspot_owner_id"),
                    created_at=created if isinstance(created, datetime) else None,
                    contact=Contact(phone=phone, first_name=props.get("firstname"), last_name=props.get("lastname"),
                                    email=props.get("email"), external_id=contact["id"]),
                    properties=props, portal_id=portal_id, crm="hubspot")

    def consents_of(self, contact: dict[str, Any], portal_id: str, phone: str, at: datetime) -> list[ConsentChange]:
        """Opt-ins and opt-outs the contact's consent properties state, each with its proof."""
        props = contact["properties"]
        out = []
        for category, rule in self.settings.consent.items():
            value = props.get(rule.property)
            if value in (None, ""):
                continue
            text = str(value).strip().casefold()
            basis = props.get(rule.legal_basis_property) if rule.legal_basis_property else None
            if text in {v.casefold() for v in rule.granted_values}:
                if rule.legal_basis_property and str(basis or "").upper() not in rule.opt_in_legal_bases:
                    continue  # "granted" without an opt-in legal basis is not WhatsApp consent
                granted = True
            elif text in {v.casefold() for v in rule.revoked_values}:
                granted = False
            else:
                continue
            proof = (f"HubSpot portal {portal_id}, contact {contact['id']}: property {rule.property}={value}"
                     + (f", {rule.legal_basis_property}={basis}" if rule.legal_basis_property else "")
                     + f" (read {iso_utc(at)})")
            out.append(ConsentChange(phone=phone, category=Category(category), granted=granted,
                                     source=f"hubspot:{rule.property}", proof=proof, at=at))
        return out

    # --- finding by number -----------------------------------------------------------------

    async def find(self, ctx: EventContext, phone: str | None, *, user_id: str | None = None,
                   name: str | None = None) -> ContactRef | None:
        """The contact with this number -- or, without one, this BSUID: from state, else by search,
        else created (if configured). With both, the BSUID is written on the contact once."""
        key = ctx.contact_key(phone) if phone else (ctx.contact_key(user_id) if user_id else None)
        if key is None:
            raise SkippableError("not a valid phone number or business-scoped user id", code="invalid_phone")
        cached = ctx.state.get(f"contact:{key}")
        found = ContactRef(cached["id"], cached.get("owner")) if cached else None
        if found is None:
            mark_key = f"creating-contact:{key}"
            earlier = marks.earlier_attempt(ctx, mark_key, self.settings.search_index_lag_seconds)
            found = await self.search(phone) if phone else await self.search_bsuid(ctx, str(user_id))
            if found is None and self.settings.create_contacts:
                await marks.put(ctx, mark_key, {})
                # By number: the BSUID follows in note_bsuid; by BSUID: search_bsuid made its property.
                found = await self.create(phone, name, user_id=None if phone else user_id)
            if earlier is not None or found is not None:
                ctx.state.delete(mark_key)
            if found is not None:
                ctx.state.set(f"contact:{key}", {"id": found.id, "owner": found.owner_id})
        if found is not None and phone and user_id:
            await self.note_bsuid(ctx, found, key, user_id)
        return found

    async def note_bsuid(self, ctx: EventContext, contact: ContactRef, key: str, user_id: str) -> None:
        """Write the BSUID on a contact found by number, so it is found when the number is hidden."""
        noted = f"bsuid-noted:{key}"
        if ctx.state.get(noted) == marks.hashed(ctx, user_id):
            return
        await self.ensure_bsuid_property(ctx)
        await self.update(contact.id, {self.settings.bsuid_property: user_id})
        ctx.state.set(noted, marks.hashed(ctx, user_id))

    async def note_ad_source(self, ctx: EventContext, message: InboundMessage) -> None:
        """Write the Click-to-WhatsApp ad the customer came from on their contact (once per message)."""
        name, referral = self.settings.ad_source_property, message.referral
        noted = f"ad-source:{marks.hashed(ctx, message.wamid)}"
        if not name or referral is None or ctx.state.get(noted):
            return
        phone = message.contact.phone
        user_id = message.contact.user_id if is_bsuid(message.contact.user_id) else None
        contact = await self.find(ctx, phone, user_id=user_id, name=message.contact.name)
        if contact is None:
            raise SkippableError("no HubSpot contact has this number or BSUID to note the ad on (create_contacts "
                                 "is off)", code="no_contact")
        await self.ensure_property(ctx, name, {"name": name, "label": "WhatsApp ad source", "type": "string",
                                               "field_type": "text", "group_name": "contactinformation",
                                               "description": "The Click-to-WhatsApp ad the customer last came "
                                                              "from (written by connectzap)"})
        await self.update(contact.id, {name: referral.summary()})
        ctx.state.set(noted, True)

    async def ensure_bsuid_property(self, ctx: EventContext) -> None:
        """Create ``bsuid_property`` on the portal's contacts unless it exists (checked once)."""
        await self.ensure_property(ctx, self.settings.bsuid_property, self.bsuid_property_definition())

    async def ensure_property(self, ctx: EventContext, name: str, definition: dict[str, str]) -> None:
        """Create the contact property ``name`` unless it exists (checked once)."""
        if ctx.state.get(f"property:{name}"):
            return
        try:
            await self.client.call("read contact property", self.client.properties.get_by_name, "contacts", name)
        except HubSpotNotFound:
            from hubspot.crm.properties import PropertyCreate
            try:
                await self.client.call("create contact property", self.client.properties.create, "contacts",
                                       property_create=PropertyCreate(**definition),
                                       creates=True)
            except DeliveryError as exc:
                if exc.http_status != 409:  # 409: created meanwhile (another worker): it exists
                    raise
        ctx.state.set(f"property:{name}", True)

    def bsuid_property_definition(self) -> dict[str, str]:
        """The property's definition (snake_case, as the SDK's PropertyCreate takes it)."""
        return {"name": self.settings.bsuid_property, "label": "WhatsApp BSUID", "type": "string",
                "field_type": "text", "group_name": "contactinformation",
                "description": "The customer's WhatsApp business-scoped user id (written by connectzap): "
                               "who they are when WhatsApp hides their number"}

    async def search_bsuid(self, ctx: EventContext, user_id: str) -> ContactRef | None:
        await self.ensure_bsuid_property(ctx)  # HubSpot refuses a search on an unknown property
        return await self._oldest_match(self.bsuid_search_request(user_id))

    def bsuid_search_request(self, user_id: str) -> dict[str, Any]:
        """The contact search for a BSUID, as the SDK's keyword arguments (snake_case)."""
        return {"filter_groups": [{"filters": [{"propertyName": self.settings.bsuid_property, "operator": "EQ",
                                                "value": user_id}]}],
                "limit": 10, "properties": ["hubspot_owner_id", self.settings.bsuid_property],
                "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}]}

    def remember(self, ctx: EventContext, phone: str, ref: ContactRef) -> None:
        key = ctx.contact_key(phone)
        if key is not None:
            ctx.state.set(f"contact:{key}", {"id": ref.id, "owner": ref.owner_id})

    def search_request(self, phone: str) -> dict[str, Any]:
        """The contact search for a number, as the SDK's keyword arguments (snake_case)."""
        groups = [{"filters": [{"propertyName": p, "operator": "EQ", "value": phone}]}
                  for p in self.settings.phone_properties[:5]]  # HubSpot allows 5 filter groups
        return {"filter_groups": groups, "limit": 10,
                "properties": ["hubspot_owner_id", *self.settings.phone_properties],
                "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}]}

    def new_contact_properties(self, phone: str | None, name: str | None, *,
                               user_id: str | None = None) -> dict[str, str]:
        props = {self.settings.new_contact_phone_property: phone} if phone else {}
        if user_id:
            props[self.settings.bsuid_property] = user_id
        if name:
            first, _, last = name.partition(" ")
            props["firstname"] = first
            if last:
                props["lastname"] = last
        return props

    async def search(self, phone: str) -> ContactRef | None:
        return await self._oldest_match(self.search_request(phone))

    async def _oldest_match(self, search: dict[str, Any]) -> ContactRef | None:
        from hubspot.crm.contacts import PublicObjectSearchRequest
        request = PublicObjectSearchRequest(**search)
        page = await self.client.call("search contacts", self.client.contact_search.do_search,
                                      public_object_search_request=request, search=True)
        results = list(page.results or [])
        if not results:
            return None
        first = results[0]  # the oldest of any duplicates: usually the one people work with
        return ContactRef(str(first.id), (first.properties or {}).get("hubspot_owner_id") or None)

    async def create(self, phone: str | None, name: str | None, *, user_id: str | None = None) -> ContactRef:
        """A new contact with this number, or this BSUID (its property must exist by then)."""
        from hubspot.crm.contacts import SimplePublicObjectInputForCreate
        props = self.new_contact_properties(phone, name, user_id=user_id)
        created = await self.client.call("create contact", self.client.contacts.create,
                                         simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
                                             properties=props, associations=[]), creates=True)
        return ContactRef(str(created.id), None)

    async def update(self, contact_id: str, properties: dict[str, str]) -> None:
        from hubspot.crm.contacts import SimplePublicObjectInput
        await self.client.call("update contact", self.client.contacts.update, contact_id,
                               simple_public_object_input=SimplePublicObjectInput(properties=properties))
