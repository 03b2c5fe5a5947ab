"""A "Send WhatsApp" HubSpot workflow action (issue #20, item 2a): a workflow webhook with
``?send=NAME`` sends the enrolled contact an approved template with parameters from the body or the
contact's properties, through the gate (consent for the template's category), once per delivery,
and the outcome lands on the contact's timeline (a local HubSpot fake)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hubspot_support import PHONE, WORKFLOW_SECRET, deliveries_of, hubspot_config, request

from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.core import ingress
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

SENDS = {"demo_reminder": {"template": "demo_reminder", "language": "en", "params": ["firstname", "dealname"]}}
OPTED_IN = {"whatsapp_marketing_optin": "granted", "whatsapp_marketing_legal_basis": "CONSENT_WITH_NOTICE"}


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as server:
        yield server


def engine(make, fake: FakeHubSpot):
    app = make(connectors={"hubspot": hubspot_config(fake.url, workflow_sends=SENDS, lead_on_creation=False)})
    seed_template(app, "demo_reminder", "Hi {{1}}, your demo for {{2}} is tomorrow.", category="MARKETING")
    return app


def workflow(app, body: dict, send: str = "demo_reminder"):
    raw = json.dumps(body).encode()
    return ingress.handle(app.connectors["hubspot"], request(raw, {"X-Connectzap-Secret": WORKFLOW_SECRET},
                                                             query={"send": send}), app.ingest)


def _params(sent: dict) -> list[str]:
    return [p["text"] for p in sent["template"]["components"][0]["parameters"]]


async def test_an_opted_in_contact_gets_the_template_once_with_body_and_contact_parameters(make, fake):
    contact = fake.add_contact({"firstname": "Ana", "mobilephone": "+34 612 34 56 78", **OPTED_IN})
    app = engine(make, fake)
    body = {"hs_object_id": contact, "portalId": 62515, "dealname": "Acme renewal", "email": "ana@example.com"}
    assert workflow(app, body).status == 200
    assert workflow(app, body).status == 200  # HubSpot retrying the same delivery
    await Worker(app).run_until_idle()
    [sent] = app.channel.sent()
    assert (sent["template"]["name"], sent["to"], _params(sent)) == ("demo_reminder", PHONE.lstrip("+"),
                                                                      ["Ana", "Acme renewal"])
    [message] = app.messages(phone=PHONE)
    assert json.loads(message["origin"]) == {"source": "hubspot", "portal": "62515", "contact": contact,
                                             "send": "demo_reminder"}
    timeline = [c["properties"]["hs_communication_body"] for c in fake.objects("communications")]
    assert len(timeline) == 1 and "demo_reminder" in timeline[0] and "Acme renewal" in timeline[0]
    # nothing of the body but the template's parameters was kept in the journal
    assert all("ana@example.com" not in json.dumps(e.model_dump(mode="json")) for e in app.events())


async def test_without_consent_nothing_is_sent_and_the_timeline_says_why(make, fake):
    contact = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = engine(make, fake)
    assert workflow(app, {"hs_object_id": contact, "dealname": "Acme renewal"}).status == 200
    await Worker(app).run_until_idle()
    assert app.channel.sent() == []
    [message] = app.messages(phone=PHONE)
    assert (message["status"], message["reason"]) == ("refused", "no_consent")
    [entry] = fake.objects("communications")
    text = entry["properties"]["hs_communication_body"]
    assert "not sent" in text and "no_consent" in text
    assert [a[2] for a in fake.associations] == [contact]


async def test_a_missing_parameter_is_skipped_with_its_name_and_an_unknown_send_is_refused_at_the_edge(make, fake):
    contact = fake.add_contact({"firstname": "Ana", "mobilephone": PHONE, **OPTED_IN})
    app = engine(make, fake)
    workflow(app, {"hs_object_id": contact})  # no dealname anywhere
    await Worker(app).run_until_idle()
    assert app.channel.sent() == []
    skipped = [json.loads(d["result"]) for d in deliveries_of(app, "connector:hubspot") if d["result"]]
    assert any(r.get("skipped") == "param_missing" and "dealname" in r["detail"] for r in skipped)
    unknown = workflow(app, {"hs_object_id": contact}, send="nope")
    assert unknown.status == 422 and "demo_reminder" in json.dumps(unknown.body)
