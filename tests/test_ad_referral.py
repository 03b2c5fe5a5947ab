"""Click-to-WhatsApp ads as the lead source (issue 17, item 5): the `referral` Meta puts on the first
message after a tap on an ad reaches the CRM connectors -- HubSpot writes it on the contact (a
property it creates once) and under the message on the timeline; WooCommerce adds it to the order
note, and only when the message is linked to an order. The webhook is tests/payloads/whatsapp/
referral.json, built from Meta's messages webhook reference (values invented)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from automation_support import APP_SECRET, WHATSAPP
from connectzap import AdReferral, Contact, Event, InboundMessage
from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.core.worker import Worker
from connectzap.testing import deliver, meta_headers, run, webhook_request
from hubspot_support import hubspot_config

FIXTURE = Path(__file__).parent / "payloads" / "whatsapp" / "referral.json"
CUSTOMER = "+16505551234"  # the fixture's sender
REFERRAL = json.loads(FIXTURE.read_text())["entry"][0]["changes"][0]["value"]["messages"][0]["referral"]


@pytest.fixture
def hubspot() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as server:
        yield server


def receive_fixture(app, wamid: str) -> None:
    body = json.loads(FIXTURE.read_text())
    body["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = wamid
    raw = json.dumps(body).encode()
    assert deliver(app, "whatsapp", webhook_request("/webhooks/whatsapp", raw,
                                                    headers=meta_headers(raw, APP_SECRET))).status == 200
    run(app)


def test_hubspot_gets_the_ad_on_the_contact_and_the_timeline(make, hubspot):
    ana = hubspot.add_contact({"firstname": "Sheena", "mobilephone": CUSTOMER})
    app = make(connectors={**WHATSAPP, "hubspot": hubspot_config(hubspot.url)})
    receive_fixture(app, "wamid.ad.1")
    receive_fixture(app, "wamid.ad.1")          # Meta delivered it again
    receive_fixture(app, "wamid.ad.2")          # a later tap on the ad
    summary = ("Click-to-WhatsApp ad 120226305854810726 · Summer sale · https://fb.me/3cr4Wqqkk · ctwa_clid "
               + REFERRAL["ctwa_clid"])
    assert hubspot.records["contacts"][ana]["properties"]["whatsapp_ad_source"] == summary
    created = [c for c in hubspot.calls("POST", "/crm/v3/properties/contacts")]
    assert len(created) == 1 and created[0].body["name"] == "whatsapp_ad_source"
    assert len(hubspot.calls("PATCH", f"/crm/v3/objects/contacts/{ana}")) == 2   # once per message
    bodies = [c["properties"]["hs_communication_body"] for c in hubspot.objects("communications")]
    assert len(bodies) == 2 and all("Lead source: Click-to-WhatsApp ad 120226305854810726" in b for b in bodies)


def test_hubspot_writes_no_property_when_switched_off_or_without_an_ad(make, hubspot):
    ana = hubspot.add_contact({"firstname": "Sheena", "mobilephone": CUSTOMER})
    app = make(connectors={**WHATSAPP, "hubspot": hubspot_config(hubspot.url, ad_source_property="")})
    receive_fixture(app, "wamid.ad.3")
    assert "whatsapp_ad_source" not in hubspot.records["contacts"][ana]["properties"]
    assert hubspot.calls("POST", "/crm/v3/properties/contacts") == []
    assert "Lead source" in hubspot.objects("communications")[0]["properties"]["hs_communication_body"]


def test_the_parser_keeps_every_field_of_the_reference_and_survives_odd_ones():
    from connectzap.connectors.whatsapp.webhooks import _referral
    kept = _referral(REFERRAL)
    assert kept is not None and kept.model_dump(exclude_none=True) == REFERRAL
    odd = _referral({"source_id": 120226305854810726, "headline": ["not", "text"], "ctwa_clid": None})
    assert odd == AdReferral(source_id="120226305854810726")
    assert _referral("nothing") is None and _referral({}) is None


# --- WooCommerce: a note only when the message belongs to an order ---------------------------------------

async def test_woocommerce_notes_the_ad_only_on_a_linked_order(make):
    from test_order_notifications import ANA, RULES, deliver as deliver_order, seed
    from test_woocommerce_notes import REPLY_AT, wc_vcr
    from test_woocommerce_webhooks import shop_config
    app = make(connectors={"woocommerce": {"shops": {"main": shop_config()}}}, plugins={"order_notifications": RULES})
    seed(app)
    referral = AdReferral.model_validate({**REFERRAL, "ctwa_clid": "ARAkLkA8rmlFe"})

    def message(wamid: str, at: datetime) -> InboundMessage:
        return InboundMessage(wamid=wamid, type="text", timestamp=at, contact=Contact(phone=ANA),
                              text="Is the summer offer still on?", referral=referral)

    with wc_vcr.use_cassette("note_inbound_ad_reply.yaml") as cassette:
        unlinked = message("wamid.ad.before-any-order", REPLY_AT)
        app.ingest([Event.of("inbound_message", unlinked, source="whatsapp", dedupe_key=unlinked.wamid)])
        await Worker(app).run_until_idle()
        assert cassette.play_count == 0
        await deliver_order(app, "order_created_classic.json", topic="order.created", delivery="d1")
        linked = message("wamid.ad.linked", REPLY_AT)
        app.ingest([Event.of("inbound_message", linked, source="whatsapp", dedupe_key=linked.wamid)])
        await Worker(app).run_until_idle()
        assert cassette.play_count == 1 and cassette.all_played
    assert "Lead source: Click-to-WhatsApp ad" in json.loads(cassette.requests[0].body)["note"]
