"""The HubSpot consent mirror writes WhatsApp consent only: its contact properties hold WhatsApp
opt-ins, so a change on another medium (an email unsubscribe, an SMS STOP) must not write them.

Why it matters: the mirror writes the ledger's current WhatsApp state, so an email unsubscribe used
to re-write a WhatsApp opt-in that came from HubSpot itself -- over an opt-out an agent had just set
on the contact in HubSpot, whose webhook had not arrived yet."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectzap import Category, ConsentChange, Contact, Event, InboundMessage
from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.core.app import Connectzap
from connectzap.core.media import EMAIL, SMS, WHATSAPP
from connectzap.core.worker import Worker

from hubspot_support import PHONE, hubspot_config

OPT_IN = "whatsapp_marketing_optin"
FROM_HUBSPOT = f"hubspot:{OPT_IN}"  # the source the connector gives consent it read on a contact
OTHER_MEDIA = [SMS, EMAIL]


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as server:
        yield server


def known_contact(app: Connectzap, fake: FakeHubSpot, phone: str, wamid: str) -> str:
    """A HubSpot contact opted in to WhatsApp marketing there, whom connectzap knows: the ledger holds
    the opt-in it read from her properties, and a message she wrote put the contact under her key."""
    contact_id = fake.add_contact({"firstname": "Ana", "mobilephone": phone, OPT_IN: "granted",
                                   "whatsapp_marketing_legal_basis": "CONSENT_WITH_NOTICE"})
    app.set_consent(ConsentChange(phone=phone, category=Category.MARKETING, granted=True, source=FROM_HUBSPOT,
                                  proof=f"HubSpot contact {contact_id}", at=datetime.now(UTC) - timedelta(hours=1)))
    hello = InboundMessage(wamid=wamid, type="text", timestamp=datetime.now(UTC).replace(microsecond=0),
                           contact=Contact(phone=phone, name="Ana"), text="hola")
    app.ingest([Event.of("inbound_message", hello, source="whatsapp", dedupe_key=wamid)])
    return contact_id


def change_on(medium: str, app: Connectzap, phone: str, category: Category = Category.MARKETING,
              granted: bool = False) -> ConsentChange:
    """A change on ``medium`` as its connector records it: SMS names the number (a STOP reply), email
    the recipient's key (an unsubscribe link or a complaint about a message connectzap sent)."""
    who = {"contact_key": app.contact_key(phone)} if medium == EMAIL else {"phone": phone}
    return ConsentChange(**who, category=category, granted=granted, source=f"{medium}:unsubscribe",
                         proof="one click", medium=medium)


def patches(fake: FakeHubSpot, contact_id: str) -> int:
    return len(fake.calls("PATCH", f"/crm/v3/objects/contacts/{contact_id}"))


@pytest.mark.parametrize("medium", OTHER_MEDIA)
async def test_an_opt_out_on_another_medium_leaves_the_whatsapp_property_alone(make, fake, medium):
    app = make(connectors={"hubspot": hubspot_config(fake.url)})
    ana = known_contact(app, fake, PHONE, "wamid.hola")
    await Worker(app).run_until_idle()
    fake.records["contacts"][ana]["properties"][OPT_IN] = "revoked"  # an agent opts her out in HubSpot
    before = patches(fake, ana)

    assert app.set_consent(change_on(medium, app, PHONE))
    await Worker(app).run_until_idle()

    assert fake.records["contacts"][ana]["properties"][OPT_IN] == "revoked"
    assert patches(fake, ana) == before
    assert app.consent(PHONE, medium=medium)[Category.MARKETING].granted is False  # recorded where it belongs


async def test_a_whatsapp_opt_out_is_still_mirrored(make, fake):
    app = make(connectors={"hubspot": hubspot_config(fake.url)})
    ana = known_contact(app, fake, PHONE, "wamid.hola")
    await Worker(app).run_until_idle()

    app.set_consent(change_on(WHATSAPP, app, PHONE))
    await Worker(app).run_until_idle()

    assert fake.records["contacts"][ana]["properties"][OPT_IN] == "revoked"


_numbers = itertools.count(1000)
changes = st.lists(st.tuples(st.sampled_from([WHATSAPP, *OTHER_MEDIA]), st.sampled_from(list(Category)),
                             st.booleans()), min_size=1, max_size=5)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=changes)
async def test_only_whatsapp_changes_ever_write_the_contact(make, fake, steps):
    """Whatever the order of changes on whichever media: one on another medium never writes to
    HubSpot, and after one on WhatsApp the property shows the ledger's WhatsApp state."""
    app = make("mirror", connectors={"hubspot": hubspot_config(fake.url)})
    phone = f"+346123{next(_numbers):05d}"  # a contact of her own per example, on the one engine
    ana = known_contact(app, fake, phone, f"wamid.{phone}")
    await Worker(app).run_until_idle()
    for medium, category, granted in steps:
        fake.records["contacts"][ana]["properties"][OPT_IN] = "edited in HubSpot"
        before = patches(fake, ana)
        changed = app.set_consent(change_on(medium, app, phone, category, granted))
        await Worker(app).run_until_idle()
        shown = fake.records["contacts"][ana]["properties"][OPT_IN]
        if medium != WHATSAPP:
            assert patches(fake, ana) == before and shown == "edited in HubSpot"
        elif changed and category == Category.MARKETING:
            assert shown == ("granted" if granted else "revoked")
