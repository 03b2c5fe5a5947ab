"""HubSpot for customers WhatsApp names by business-scoped user id (BSUID): a contact property holds
the BSUID (created on first use, as HubSpot's properties API creates one), inbound and outbound
messages of a customer without a number land on that contact's timeline, and a customer seen with
their number gets the BSUID written on the contact found by number. Against the local fake."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connectzap import Category, ConsentChange, Contact, Event, InboundMessage, Outgoing, TextContent
from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.core.worker import Worker

from hubspot_support import PHONE, hubspot_config

BSUID = "ES.3491208655302741918"
PROPERTY = "whatsapp_bsuid"


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as server:
        server.undefined = {PROPERTY}  # the portal has no such property until connectzap creates it
        yield server


def inbound(wamid: str, *, phone: str | None = None, text: str = "¿Sigue el descuento?") -> InboundMessage:
    return InboundMessage(wamid=wamid, type="text", timestamp=datetime.now(UTC).replace(microsecond=0),
                          contact=Contact(phone=phone, user_id=BSUID, name="Sam"), text=text)


async def deliver(app, message: InboundMessage) -> None:
    app.ingest([Event.of("inbound_message", message, source="whatsapp", dedupe_key=message.wamid)])
    await Worker(app).run_until_idle()


async def test_a_bsuid_only_customer_gets_a_contact_and_a_timeline(make, fake):
    """No number: the contact is found by the BSUID property (created first), or created with it; the
    reply connectzap sends to the BSUID is logged on the same contact."""
    app = make(connectors={"hubspot": hubspot_config(fake.url, create_contacts=True)})
    await deliver(app, inbound("wamid.bsuid-in-1"))
    assert fake.properties[PROPERTY]["type"] == "string" and fake.properties[PROPERTY]["fieldType"] == "text"
    created = fake.objects("contacts")
    assert len(created) == 1 and created[0]["properties"][PROPERTY] == BSUID
    assert "mobilephone" not in created[0]["properties"]
    reply = app.send(Outgoing(to=BSUID, content=TextContent(body="Sí, hasta el domingo")))
    assert reply.status == "queued", reply
    await Worker(app).run_until_idle()
    communications = fake.objects("communications")
    assert len(communications) == 2
    bodies = sorted(c["properties"]["hs_communication_body"] for c in communications)
    assert any("received" in b and "descuento" in b for b in bodies)
    assert any("sent" in b and "hasta el domingo" in b for b in bodies)
    assert {a[2] for a in fake.associations} == {created[0]["id"]}
    assert len(fake.calls("POST", "/crm/v3/properties/contacts")) == 1


async def test_an_existing_contact_is_matched_by_its_bsuid(make, fake):
    fake.properties[PROPERTY] = {"name": PROPERTY}
    sam = fake.add_contact({"firstname": "Sam", PROPERTY: BSUID})
    app = make(connectors={"hubspot": hubspot_config(fake.url)})  # create_contacts off: only matching
    await deliver(app, inbound("wamid.bsuid-in-2"))
    assert fake.associations and {a[2] for a in fake.associations} == {sam}
    assert fake.calls("POST", "/crm/v3/properties/contacts") == []  # it existed: read, not created
    searched = fake.calls("POST", "/crm/v3/objects/contacts/search")[0].body
    assert searched["filterGroups"] == [{"filters": [{"propertyName": PROPERTY, "operator": "EQ", "value": BSUID}]}]


async def test_seen_with_the_number_the_bsuid_is_written_on_the_contact(make, fake):
    """A later message without the number still finds the contact, and the opt-out of a BSUID-only
    customer is mirrored onto it."""
    ana = fake.add_contact({"firstname": "Sam", "mobilephone": PHONE})
    app = make(connectors={"hubspot": hubspot_config(fake.url)})
    await deliver(app, inbound("wamid.with-number", phone=PHONE))
    assert fake.records["contacts"][ana]["properties"][PROPERTY] == BSUID
    await deliver(app, inbound("wamid.without-number"))
    app.set_consent(ConsentChange(user_id=BSUID, category=Category.MARKETING, granted=False, source="whatsapp:test",
                                  proof="STOP"))
    await Worker(app).run_until_idle()
    assert [a[2] for a in fake.associations] == [ana, ana]
    assert fake.records["contacts"][ana]["properties"]["whatsapp_marketing_optin"] == "revoked"
    assert len(fake.calls("PATCH", f"/crm/v3/objects/contacts/{ana}")) == 2  # the BSUID once, the opt-out once
