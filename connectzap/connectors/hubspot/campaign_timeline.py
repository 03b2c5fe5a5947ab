"""A finished campaign's outcome as an entry on the timeline of each HubSpot contact its list named.

With ``campaign_timeline = true``, besides the contact properties (:mod:`.campaign_results`), each
recipient gets a Note (associated to the contact, type 202) saying the campaign, the outcome and
its reason -- created with ``POST /crm/v3/objects/notes/batch/create``, 100 a call. A Note, not a
Communication: the contact got no message when refused, so it is not logged as one.

Each entry exactly once:

* batches written are marked (:func:`..core.campaigns.write_back.write_back`, its own kind
  ``timeline``), so a retried or replayed delivery writes only the rest;
* before a batch is created a durable mark keeps the entries' timestamp; a retry that finds it
  (a create whose answer was lost, a crash) searches the notes of that timestamp once HubSpot's
  search index has caught up, and creates only the entries not there -- each body carries the
  campaign's id and the contact's id, which is how they are recognised;
* a batch HubSpot refuses (a contact deleted since) is created one entry at a time, skipping the
  refused ones.
"""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING, Any

from ...core.campaigns.write_back import Outcome, write_back
from ...core.errors import SkippableDeliveryError
from . import marks
from .audience import SOURCE, as_json
from .client import HubSpotClient
from .timeline import NOTE_TO_CONTACT

if TYPE_CHECKING:
    from ...core.context import EventContext
    from ...core.models import CampaignFinished

CREATE_BATCH = 100
SEARCH_PAGE = 200


def entry_tag(campaign_id: str, ref: str) -> str:
    """What an entry's body ends with: how a retry recognises the entries already made."""
    return f"connectzap campaign entry {campaign_id}/{ref}"


def note_input(campaign: CampaignFinished, outcome: Outcome, millis: int) -> dict[str, Any]:
    body = (f"<p><strong>WhatsApp campaign {html.escape(campaign.name)}</strong> "
            f"(template {html.escape(campaign.template)})</p><p>Outcome: {html.escape(outcome.text)}</p>"
            f"<p>{html.escape(entry_tag(campaign.id, outcome.ref))}</p>")
    return {"properties": {"hs_note_body": body, "hs_timestamp": str(millis)},
            "associations": [{"to": {"id": outcome.ref}, "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT}]}]}


class CampaignTimeline:
    def __init__(self, client: HubSpotClient, search_lag: float) -> None:
        self.client = client
        self.search_lag = search_lag

    async def write(self, campaign: CampaignFinished, ctx: EventContext) -> None:
        if campaign.audience_source != SOURCE:
            return

        async def write_batch(batch: list[Outcome]) -> None:
            mark_key = f"campaign-timeline-attempt:{marks.hashed(ctx, f'{campaign.id}:{batch[0].ref}')}"
            earlier = marks.earlier_attempt(ctx, mark_key, self.search_lag)
            millis = int(earlier["millis"]) if earlier else int(time.time() * 1000)
            made = await self.logged(campaign.id, millis) if earlier else set()
            todo = [o for o in batch if o.ref not in made]
            if todo:
                await marks.put(ctx, mark_key, {"millis": millis})
                await self.create(campaign, todo, millis)
            ctx.state.delete(mark_key)

        await write_back(ctx, campaign, SOURCE, CREATE_BATCH, write_batch, what="timeline")

    async def create(self, campaign: CampaignFinished, batch: list[Outcome], millis: int) -> None:
        try:
            await self._create(campaign, batch, millis)
        except SkippableDeliveryError:
            for one in batch:  # find the refused contact(s); log the others
                try:
                    await self._create(campaign, [one], millis)
                except SkippableDeliveryError:
                    continue

    async def _create(self, campaign: CampaignFinished, batch: list[Outcome], millis: int) -> None:
        await self.client.call("create campaign timeline notes", as_json(self.client.note_batch.create),
                               creates=True, batch_input_simple_public_object_batch_input_for_create={
                                   "inputs": [note_input(campaign, o, millis) for o in batch]})

    async def logged(self, campaign_id: str, millis: int) -> set[str]:
        """The contacts (ids) a note of this campaign at ``millis`` is already on."""
        prefix = entry_tag(campaign_id, "")
        found: set[str] = set()
        after: str | None = None
        while True:
            request: dict[str, Any] = {"filterGroups": [{"filters": [
                {"propertyName": "hs_timestamp", "operator": "EQ", "value": str(millis)}]}],
                "properties": ["hs_note_body"], "limit": SEARCH_PAGE}
            if after:
                request["after"] = after
            page = await self.client.call("search campaign timeline notes", as_json(self.client.note_search.do_search),
                                          search=True, public_object_search_request=request)
            for item in page.get("results") or []:
                body = html.unescape(str((item.get("properties") or {}).get("hs_note_body") or ""))
                at = body.find(prefix)
                if at >= 0:
                    found.add(body[at + len(prefix):].split("<", 1)[0])
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return found
