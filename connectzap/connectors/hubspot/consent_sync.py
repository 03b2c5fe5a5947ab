"""Mirror connectzap's consent ledger to the configured HubSpot contact properties.

The ledger is the source of truth, so the mirror writes the ledger's *current* state for the
category (not the change that triggered it): a late or repeated delivery writes the same values
again, and two changes delivered out of order still leave HubSpot showing the latest. What was
last written is kept in state, so a repeat costs no API call. Changes that came from HubSpot's
own properties are not written back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.models import ConsentChange
from .contacts import Contacts
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
        if rule is None or not rule.mirror or change.source.startswith("hubspot") or who is None:
            return None
        current = ctx.app.consent(who).get(change.category)
        if current is None:
            return None
        values = properties_for(rule, current.granted, current.at.isoformat(), current.source)
        key = ctx.contact_key(who)
        state_key = f"consent-mirrored:{key}:{change.category.value}"
        if ctx.state.get(state_key) == values:
            return None
        return values, state_key

    async def mirror(self, change: ConsentChange, ctx: EventContext) -> None:
        planned = self.pending(change, ctx)
        if planned is None:
            return
        values, state_key = planned
        contact = await self.contacts.find(ctx, change.phone, user_id=change.user_id)
        if contact is None:
            ctx.log.info("consent change not mirrored: no HubSpot contact has this number or BSUID")
            return
        await self.contacts.update(contact.id, values)
        ctx.state.set(state_key, values)
