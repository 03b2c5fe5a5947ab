"""Mirror connectzap's consent ledger to the configured HubSpot contact properties.

The ledger is the source of truth, so the mirror writes the ledger's *current* state for the
category (not the change that triggered it): a late or repeated delivery writes the same values
again, and two changes delivered out of order still leave HubSpot showing the latest. What was
last written is kept in state, so a repeat costs no API call. Changes that came from HubSpot's
own properties are not written back.

The properties hold WhatsApp opt-ins (:class:`.settings.ConsentProperty`), so only a change on
WhatsApp is mirrored. Consent on another medium says nothing about WhatsApp, and the mirror writes
the ledger's *WhatsApp* state: mirroring an email unsubscribe or an SMS STOP would re-write a WhatsApp
opt-in over whatever HubSpot shows now (e.g. an opt-out an agent just set there).

A change that names the contact only by its key (``ConsentChange.contact_key``: about the recipient
of a message connectzap sent, e.g. an unsubscribe link) cannot be searched for in HubSpot; it is
mirrored onto the contact this connector already knows under that key, else the delivery says it
was skipped and why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.errors import SkippableError
from ...core.media import WHATSAPP
from ...core.models import ConsentChange
from .contacts import ContactRef, Contacts
from .settings import ConsentProperty, HubSpotSettings

if TYPE_CHECKING:
    from ...core.context import EventContext


def properties_for(rule: ConsentProperty, granted: bool, at: str, source: str) -> dict[str, str]:
    """The property values that state ``granted`` for one category."""
    values = {rule.property: (rule.granted_values if granted else rule.revoked_values)[0]}
    if rule.legal_basis_property and granted:
        values[rule.legal_basis_property] = rule.legal_basis_on_grant
    if rule.at_property:
        values[rule.at_property] = at
    if rule.source_property:
        values[rule.source_property] = source
    return values


class ConsentMirror:
    def __init__(self, contacts: Contacts, settings: HubSpotSettings) -> None:
        self.contacts = contacts
        self.settings = settings

    def pending(self, change: ConsentChange, ctx: EventContext) -> tuple[dict[str, str], str] | None:
        """The property values to write for ``change`` and the state key remembering them, or None
        when nothing needs writing."""
        rule = self.settings.consent.get(change.category)
        who = change.phone or change.user_id
        key = ctx.contact_key(who) if who else change.contact_key
        if rule is None or not rule.mirror or change.source.startswith("hubspot") or key is None \
                or change.medium != WHATSAPP:
            return None
        current = ctx.app.consent(key=key).get(change.category)
        if current is None:
            return None
        values = properties_for(rule, current.granted, current.at.isoformat(), current.source)
        state_key = f"consent-mirrored:{key}:{change.category.value}"
        if ctx.state.get(state_key) == values:
            return None
        return values, state_key

    async def mirror(self, change: ConsentChange, ctx: EventContext) -> None:
        planned = self.pending(change, ctx)
        if planned is None:
            return
        values, state_key = planned
        if not (change.phone or change.user_id):
            contact = known_contact(ctx, str(change.contact_key))
            if contact is None:
                raise SkippableError("consent change not mirrored: it names the contact only by its key, and no "
                                     "HubSpot contact is known for that key (HubSpot is searched by number or "
                                     "BSUID)", code="no_contact")
        else:
            contact = await self.contacts.find(ctx, change.phone, user_id=change.user_id)
        if contact is None:
            ctx.log.info("consent change not mirrored: no HubSpot contact has this number or BSUID")
            return
        await self.contacts.update(contact.id, values)
        ctx.state.set(state_key, values)


def known_contact(ctx: EventContext, key: str) -> ContactRef | None:
    """The HubSpot contact this connector found or made for contact ``key`` before (its state), if any."""
    cached = ctx.state.get(f"contact:{key}")
    return ContactRef(cached["id"], cached.get("owner")) if cached else None
