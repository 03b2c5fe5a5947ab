"""Coexistence: a message the business edits or deletes ("revokes") in the WhatsApp Business app, and
the new event kinds WooCommerce has no note for.

``echo_batch.json`` is built from Meta's ``smb_message_echoes`` reference (see the README beside it):
an image, then a ``revoke`` of it and an ``edit`` of the text in ``echo_text.json``, each naming
``original_message_id`` (the edit with the new ``message``), as Meta's reference and Dualhook's field
guide describe them (both read 2026-12-02).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubspot_support import hubspot_config
from test_privacy import found_at
from test_whatsapp_coexistence import CUSTOMER, ECHO_TEXT, ECHO_WAMID, SECRET, body_of, deliver, settle
from test_woocommerce_webhooks import shop_config

from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.connectors.whatsapp.webhooks import parse_body
from connectzap.core.worker import Worker
from connectzap.testing import recording

PAYLOADS = Path(__file__).parent / "payloads" / "whatsapp"
IMAGE_WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJECHOIMAGE1"
EDITED_TEXT = "Your table for four is booked for 8:30 pm."
WHATSAPP = {"app_secrets": [SECRET], "verify_token": "v"}
QUIET = {"quiet": True, "simulate_statuses": False}
_examples = itertools.count()


def change_echo(kind: str, original: str, own_id: str, text: str | None = None) -> bytes:
    """One ``edit`` or ``revoke`` echo in the shape of echo_batch.json."""
    doc = json.loads(body_of("echo_batch"))
    echo = {"from": "15550783881", "to": CUSTOMER.lstrip("+"), "id": own_id, "timestamp": "1739321300",
            "type": kind, kind: {"original_message_id": original}}
    if text is not None:
        echo[kind]["message"] = {"type": "text", "text": {"body": text}}
    doc["entry"][0]["changes"][0]["value"]["message_echoes"] = [echo]
    return json.dumps(doc).encode()


def reasons(app: Any) -> dict[str, str | None]:
    return {row["wamid"]: row["reason"] for row in app.messages()}


def test_edits_and_revokes_become_changes_of_the_original_message():
    image, revoke, edit = (e.payload() for e in parse_body(body_of("echo_batch")))
    assert (image.wamid, image.status) == (IMAGE_WAMID, "accepted")
    assert (revoke.wamid, revoke.status, revoke.content, revoke.sent_from) == (
        IMAGE_WAMID, "revoked", None, "business_app")
    assert (edit.wamid, edit.status, edit.content) == (ECHO_WAMID, "edited", {"type": "text", "body": EDITED_TEXT})
    keys = [e.dedupe_key for e in parse_body(body_of("echo_batch"))]
    assert len(set(keys)) == 3 and "echo:wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJECHOREVOKE1" in keys
    assert parse_body(change_echo("revoke", "", "wamid.no-original")) == []


async def test_the_recorded_message_says_it_was_edited_or_deleted_and_keeps_no_text(make):
    app = make(connectors={"whatsapp": WHATSAPP}, sandbox=QUIET)
    with recording("on_message_status") as seen:
        deliver(app, body_of("echo_text"))
        deliver(app, body_of("echo_batch"))
        deliver(app, change_echo("edit", IMAGE_WAMID, "wamid.late-edit", "too late"))  # after the deletion
        deliver(app, change_echo("edit", "wamid.never-recorded", "wamid.edit-unknown", "who?"))
        worker = Worker(app)
        await worker.run_until_idle()
    assert reasons(app) == {ECHO_WAMID: "edited_in_app", IMAGE_WAMID: "revoked_in_app"}
    assert {row["status"] for row in app.messages()} == {"accepted"}  # the delivery status is Meta's to move
    assert [(s.status, s.wamid) for s in seen["on_message_status"] if s.status != "accepted"] == [
        ("revoked", IMAGE_WAMID), ("edited", ECHO_WAMID), ("edited", IMAGE_WAMID), ("edited", "wamid.never-recorded")]
    outcomes = [e.outcome for e in app.events(kind="message_status")]
    assert any("marked as changed in the WhatsApp Business app" in o for o in outcomes)
    assert any("no recorded message has this wamid" in o for o in outcomes)
    worker.housekeeping()
    assert found_at(app.db.url, [EDITED_TEXT, ECHO_TEXT, "too late", CUSTOMER.lstrip("+")]) == []
    assert app.channel.sent() == []


async def test_hubspot_rewrites_the_timeline_entry_of_an_edited_or_deleted_message(make):
    with FakeHubSpot() as crm:
        crm.add_contact({"firstname": "Ana", "mobilephone": CUSTOMER})
        app = make(connectors={"whatsapp": WHATSAPP, "hubspot": hubspot_config(crm.url)}, sandbox=QUIET)
        deliver(app, body_of("echo_text"))
        deliver(app, body_of("echo_batch"))
        deliver(app, change_echo("revoke", "wamid.never-logged", "wamid.revoke-unknown"))
        await settle(app)
        bodies = {c["properties"]["hs_communication_body"].split("wamid: ")[1].split("<")[0]:
                  c["properties"]["hs_communication_body"] for c in crm.objects("communications")}
        assert set(bodies) == {ECHO_WAMID, IMAGE_WAMID}  # changes add no entry
        assert EDITED_TEXT in bodies[ECHO_WAMID] and "edited in the WhatsApp Business app" in bodies[ECHO_WAMID]
        assert ECHO_TEXT not in bodies[ECHO_WAMID]
        assert "deleted in the WhatsApp Business app" in bodies[IMAGE_WAMID]
        assert "The menu for tonight" not in bodies[IMAGE_WAMID]
        outcomes = [e.outcome for e in app.events(kind="message_status")]
        assert any("connector:hubspot: skipped (not_logged)" in o for o in outcomes), outcomes


async def test_woocommerce_says_why_it_notes_no_app_contact_history_or_call(make):
    app = make(connectors={"whatsapp": {**WHATSAPP, "coexistence_history": True},
                           "woocommerce": {"shops": {"main": shop_config()}}}, sandbox=QUIET)
    deliver(app, body_of("state_sync"))
    deliver(app, body_of("history"))
    app.ingest(parse_body((PAYLOADS / "call_terminate.json").read_bytes()))
    await Worker(app).run_until_idle()
    expected = {"contact_changed": "not_an_order_change", "past_message": "history_not_noted",
                "call": "calls_not_noted"}
    for kind, code in expected.items():
        outcomes = [e.outcome for e in app.events(kind=kind)]
        assert outcomes and all(f"connector:woocommerce: skipped ({code})" in o for o in outcomes), (kind, outcomes)


_steps = st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["edit", "revoke"])), max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_steps)
def test_a_messages_mark_is_what_was_last_done_to_it_and_a_deletion_is_final(make, steps):
    """Any sequence of edits and deletions of three messages sent from the app: each ends marked
    ``revoked_in_app`` if it was ever deleted, else ``edited_in_app`` if ever edited, else unmarked;
    its delivery status never moves and nothing is ever sent. (Each example's engine is closed at its
    end, so PostgreSQL's connections are not exhausted.)"""
    example = next(_examples)
    app = make(f"p{example}", connectors={"whatsapp": WHATSAPP}, sandbox=QUIET)
    try:
        originals = [f"wamid.prop-{example}-{n}" for n in range(3)]
        for wamid in originals:
            doc = json.loads(body_of("echo_text"))
            doc["entry"][0]["changes"][0]["value"]["message_echoes"][0]["id"] = wamid
            deliver(app, json.dumps(doc).encode())
        for step, (which, kind) in enumerate(steps):
            text = "new text" if kind == "edit" else None
            deliver(app, change_echo(kind, originals[which], f"wamid.change-{example}-{step}", text))
        asyncio.run(Worker(app).run_until_idle())
        expected = {}
        for n, wamid in enumerate(originals):
            done = {kind for which, kind in steps if which == n}
            expected[wamid] = "revoked_in_app" if "revoke" in done else "edited_in_app" if done else None
        assert reasons(app) == expected
        assert {row["status"] for row in app.messages()} == {"accepted"} and app.channel.sent() == []
    finally:
        app.close()
