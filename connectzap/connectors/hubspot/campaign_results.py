"""A finished campaign's outcomes on the HubSpot contacts its audience list named.

Two contact properties, created on first use: ``connectzap_last_campaign`` (the campaign's
name) and ``connectzap_last_campaign_outcome`` (``delivered``, ``refused (no_consent)``, ...),
written with ``POST /crm/v3/objects/contacts/batch/update``, 100 contacts a call. When HubSpot
refuses a batch (a contact deleted or merged since), its contacts are written one by one and the
missing ones skipped. Batches already written are not written again (:mod:`connectzap.core.campaigns.write_back`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.campaigns.write_back import Outcome, unwritten, write_back
from ...core.connector import OutboundCall
from ...core.errors import SkippableDeliveryError
from .audience import SOURCE, as_json
from .client import HubSpotClient, HubSpotNotFound
from .contacts import Contacts

if TYPE_CHECKING:
    from ...core.context import EventContext
    from ...core.models import CampaignFinished

LAST_CAMPAIGN = "connectzap_last_campaign"
LAST_OUTCOME = "connectzap_last_campaign_outcome"
WRITE_BATCH = 100


def definition(name: str, label: str, description: str) -> dict[str, str]:
    return {"name": name, "label": label, "type": "string", "field_type": "text", "group_name": "contactinformation",
            "description": description}


PROPERTIES = (
    definition(LAST_CAMPAIGN, "Last WhatsApp campaign", "The last connectzap WhatsApp campaign the contact was in."),
    definition(LAST_OUTCOME, "Last WhatsApp campaign outcome",
               "What became of the contact's message in that campaign (delivered, read, refused (no_consent), ...)."),
)


def properties_for(campaign: str, outcome: Outcome) -> dict[str, str]:
    return {LAST_CAMPAIGN: campaign, LAST_OUTCOME: outcome.text}


def update_request(campaign: str, batch: list[Outcome]) -> dict[str, object]:
    return {"inputs": [{"id": o.ref, "properties": properties_for(campaign, o)} for o in batch]}


class CampaignResults:
    def __init__(self, client: HubSpotClient, contacts: Contacts) -> None:
        self.client = client
        self.contacts = contacts

    async def write(self, campaign: CampaignFinished, ctx: EventContext) -> None:
        if campaign.audience_source != SOURCE:
            return
        for prop in PROPERTIES:
            await self.contacts.ensure_property(ctx, prop["name"], prop)

        async def write_batch(batch: list[Outcome]) -> None:
            try:
                await self.client.call("update contacts", as_json(self.client.contact_batch.update),
                                       batch_input_simple_public_object_batch_input=update_request(campaign.name,
                                                                                                   batch))
            except SkippableDeliveryError:
                for one in batch:  # find the refused contact(s); write the others
                    try:
                        await self.contacts.update(one.ref, properties_for(campaign.name, one))
                    except HubSpotNotFound:
                        continue

        await write_back(ctx, campaign, SOURCE, WRITE_BATCH, write_batch)

    def rehearse(self, campaign: CampaignFinished, ctx: EventContext, url: str) -> list[OutboundCall]:
        """The batch updates :meth:`write` would send now (``connectzap simulate``); blocking."""
        return [OutboundCall("POST", url, update_request(campaign.name, batch),
                             note="write the campaign's outcome to the contacts its list named")
                for batch in unwritten(ctx, campaign, SOURCE, WRITE_BATCH)]
