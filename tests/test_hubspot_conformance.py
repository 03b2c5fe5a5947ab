"""The connector conformance suite, run against the HubSpot connector (app webhooks, v3 signatures).

The connector's resolve step and reply sync talk to a local fake HubSpot, started once for this
module, that knows the contact the fixtures name.
"""

from __future__ import annotations

import connectzap.connectors.hubspot as hubspot_plugin
import connectzap.plugins.lead_welcome as lead_welcome_plugin
from connectzap.connectors.hubspot import HubSpotConnector
from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.testing import Sample, Signer, connector_test_class
from hubspot_support import CLIENT_SECRET, PAYLOADS, PHONE, TOKEN

FAKE = FakeHubSpot().__enter__()  # lives as long as the test process; a daemon thread
FAKE.add_contact({"firstname": "Ana", "mobilephone": PHONE}, contact_id="51234567890")
FAKE.add_contact({"firstname": "Bo", "mobilephone": "+34699000111"}, contact_id="51234567891")

RESOLVE = ("resolve",)

TestHubSpotConformance = connector_test_class(
    HubSpotConnector,
    config={"access_token": TOKEN, "client_secrets": [CLIENT_SECRET], "api_base_url": FAKE.url,
            "search_index_lag_seconds": 0, "inline_retry_max_seconds": 0.1,
            "consent": {"marketing": {"property": "whatsapp_marketing_optin"}}},
    signer=Signer.hubspot_v3(),
    secret_field="client_secrets",
    plugins=[hubspot_plugin, lead_welcome_plugin],
    payloads=[
        Sample.from_file(PAYLOADS / "app_contact_creation.json", expect_kinds=RESOLVE, expect_sends=0),
        Sample.from_file(PAYLOADS / "app_batch.json", expect_kinds=RESOLVE * 3, expect_sends=0),
        Sample(name="deal_only", body=[{"subscriptionType": "deal.creation", "objectId": 9, "portalId": 1,
                                        "occurredAt": 5}]),
        Sample(name="event_without_object", body=[{"subscriptionType": "contact.creation", "portalId": 1,
                                                   "occurredAt": 5}], expect="error", error_field="[0].objectId"),
        Sample(name="not_a_list_or_object", body=42, expect="error", error_field="body"),
    ],
)
