"""POST /v1/campaigns loads the audience before the campaign exists: a refused or interrupted
create leaves no campaign and no recipient rows, where it used to create a draft first and
delete it afterwards (a crash between the two left an empty draft)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from server_support import AUTH, serving
from sqlalchemy import func, select

from connectzap.core.campaigns import Campaigns
from connectzap.core.campaigns.engine import staging_id
from connectzap.core.campaigns.service import ABANDONED_AFTER, Draft, new_campaign_id
from connectzap.core.store.schema import campaign_recipients, campaigns
from test_campaign_interfaces import TEMPLATE, ready
from test_campaigns import NUMBERS

AUDIENCE = [{"phone": n, "params": ["Ana", "5%"]} for n in NUMBERS[:3]]


def rows(app: Any) -> tuple[int, int]:
    """Committed campaigns and recipient rows (staged ones included)."""
    with app.db.read() as conn:
        return (conn.execute(select(func.count()).select_from(campaigns)).scalar_one(),
                conn.execute(select(func.count()).select_from(campaign_recipients)).scalar_one())


def post(app: Any, body: dict[str, Any]) -> Any:
    async def call() -> Any:
        async with serving(app) as client:
            return await client.post("/v1/campaigns", headers=AUTH, json=body)
    return asyncio.run(call())


def test_a_refused_create_leaves_no_campaign_and_no_recipients(make) -> None:
    app = ready(make)
    refused = post(app, {"name": "spring", "template": TEMPLATE,
                         "audience": [*AUDIENCE, {"phone": "12", "params": ["x", "y"]}]})
    assert (refused.status_code, refused.json()["error"]) == (422, "invalid_lines")
    assert rows(app) == (0, 0)
    made = post(app, {"name": "spring", "template": TEMPLATE, "audience": AUDIENCE})
    assert made.status_code == 201, made.text
    assert (made.json()["campaign"]["recipients"], rows(app)) == (3, (1, 3))


def test_a_create_interrupted_while_loading_its_audience_has_written_no_campaign(make, monkeypatch) -> None:
    """A process killed while the audience loads keeps what was committed then: no draft may be."""
    app = ready(make)
    seen: list[tuple[int, int]] = []

    def killed(self: Campaigns, *args: Any) -> None:
        seen.append(rows(app))
        raise RuntimeError("killed")

    monkeypatch.setattr(Campaigns, "_add", killed)
    with pytest.raises(RuntimeError, match="killed"):
        post(app, {"name": "spring", "template": TEMPLATE, "audience": AUDIENCE})
    assert seen == [(0, 0)]  # the old create had written its draft here: (1, 0)
    assert rows(app) == (0, 0)


def test_a_create_erases_what_creates_killed_mid_load_left_staged(make) -> None:
    """A kill mid-load leaves the rows written so far staged under the new campaign's id, which no
    campaign has: the next create erases them once no load could still be running."""
    app = ready(make)
    long_ago = time.time() - ABANDONED_AFTER - 60
    old_draft = app.campaigns.draft("old", TEMPLATE)
    kept_campaign = new_campaign_id(long_ago)  # an old campaign whose replacement audience is staged
    app.campaigns.save(Draft({**old_draft.values, "id": kept_campaign}))
    abandoned, loading = (staging_id(new_campaign_id(at)) for at in (long_ago, time.time()))
    with app.db.begin() as conn:
        conn.execute(campaign_recipients.insert(), [
            dict(campaign_id=target, contact_key=f"k{i}", line=1, recipient=NUMBERS[0], masked="+1***",
                 outcome="pending", due_at=0.0, updated_at=long_ago)
            for i, target in enumerate((abandoned, loading, staging_id(kept_campaign)))])
    assert post(app, {"name": "spring", "template": TEMPLATE, "audience": AUDIENCE}).status_code == 201
    with app.db.read() as conn:
        staged = set(conn.execute(select(campaign_recipients.c.campaign_id)
                                  .where(campaign_recipients.c.campaign_id.like("~%"))).scalars())
    assert staged == {loading, staging_id(kept_campaign)}
