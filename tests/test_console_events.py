"""The console's Events pages (issue #19): each event's one line is the engine's ``outcome`` (what
``GET /v1/events`` and ``connectzap events list`` say), an event's page names each delivery's skip with
its reason and each proposed message with the gate's verdict, and an inbound message's text is on
no page."""

from __future__ import annotations

import html
import re

from console_support import PASSWORD, USER, log_in
from test_console_routes import console, digits
from test_events_outcomes import ANA, SECRET_TEXT, story  # noqa: F401  (five events, five outcomes)

from connectzap.console.passwords import hash_password


async def test_each_event_says_what_it_became_and_its_page_why(story):  # noqa: F811
    app, ids = story
    app.operators.add_user(USER, hash_password(PASSWORD))
    async with console(app) as client:
        await log_in(client)
        listing = (await client.get("/console/events")).text
        pages = {name: (await client.get(f"/console/events/{event_id}")).text for name, event_id in ids.items()}
    shown = {int(i): html.unescape(o) for i, o in
             re.findall(r'<tr data-id="(\d+)">.*?<td class="outcome">(.*?)</td>', listing, flags=re.S)}
    assert shown == {e.id: e.outcome for e in app.events()}
    assert set(shown) == set(ids.values())
    lead = html.unescape(pages["lead"])
    skipped = {d.target: d for d in app.event(ids["lead"]).deliveries}["lead_welcome"].skipped
    assert skipped is not None and f"skipped: {skipped.detail}" in lead
    refused = html.unescape(pages["refused"])
    [message] = [m for d in app.event(ids["refused"]).deliveries for m in d.messages]
    assert f'href="/console/messages/{message.id}"' in refused and "refused (no_consent)" in " ".join(refused.split())
    assert re.search(r'id="e-status">dead<', pages["dead"]) and "Retry its dead deliveries" in pages["dead"]
    for name, page in [("listing", listing), *pages.items()]:
        assert SECRET_TEXT not in html.unescape(page), name
        assert digits(ANA) not in digits(page), name
