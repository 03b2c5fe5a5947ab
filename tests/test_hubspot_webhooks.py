"""The HubSpot webhook edge: signatures v1/v2/v3 and workflow secrets, fail closed, parsing, dedupe keys."""

from __future__ import annotations

import json
import time

import pytest
from hubspot_support import (CLIENT_SECRET, OLD_CLIENT_SECRET, URL, WORKFLOW_SECRET, json_body, payload, request, v1,
                             v2, v3)
from hypothesis import given
from hypothesis import strategies as st

from connectzap.connectors.hubspot import webhooks
from connectzap.connectors.hubspot.settings import HubSpotSettings
from connectzap.core import ingress
from connectzap.core.errors import ConfigurationError, PayloadError, SignatureError
from connectzap.core.models import EventKind

SETTINGS = HubSpotSettings(access_token="pat-na1-x", client_secrets=[CLIENT_SECRET, OLD_CLIENT_SECRET],
                           workflow_secrets=[WORKFLOW_SECRET],
                           consent={"marketing": {"property": "whatsapp_marketing_optin"}})
BATCH = payload("app_batch.json")


# --- signatures ----------------------------------------------------------------------------------

@pytest.mark.parametrize("sign", [v3, v2, v1], ids=["v3", "v2", "v1"])
def test_each_signature_version_is_accepted(sign):
    webhooks.verify(SETTINGS, request(BATCH, sign(BATCH)))


@pytest.mark.parametrize("sign", [v3, v2, v1], ids=["v3", "v2", "v1"])
def test_the_previous_client_secret_still_works_while_rotating(sign):
    webhooks.verify(SETTINGS, request(BATCH, sign(BATCH, secret=OLD_CLIENT_SECRET)))


@pytest.mark.parametrize("sign", [v3, v2, v1], ids=["v3", "v2", "v1"])
def test_a_tampered_body_is_rejected(sign):
    tampered = BATCH.replace(b"51234567890", b"51234567891", 1)
    with pytest.raises(SignatureError, match="does not match"):
        webhooks.verify(SETTINGS, request(tampered, sign(BATCH)))


@pytest.mark.parametrize("sign", [v3, v2, v1], ids=["v3", "v2", "v1"])
def test_a_wrong_secret_is_rejected(sign):
    with pytest.raises(SignatureError):
        webhooks.verify(SETTINGS, request(BATCH, sign(BATCH, secret="someone-elses-secret")))


@pytest.mark.parametrize("skew_seconds", [-301, 301, -3600, 86400])
def test_v3_outside_five_minutes_either_way_is_rejected(skew_seconds):
    at = int((time.time() + skew_seconds) * 1000)
    with pytest.raises(SignatureError, match="tolerance"):
        webhooks.verify(SETTINGS, request(BATCH, v3(BATCH, at_ms=at)))


@pytest.mark.parametrize("skew_seconds", [-290, 0, 290])
def test_v3_inside_five_minutes_either_way_is_accepted(skew_seconds):
    webhooks.verify(SETTINGS, request(BATCH, v3(BATCH, at_ms=int((time.time() + skew_seconds) * 1000))))


def test_v3_signs_the_full_uri_with_its_query_string():
    url = URL + "?portal=62515"
    webhooks.verify(SETTINGS, request(BATCH, v3(BATCH, url=url), url=url))
    with pytest.raises(SignatureError):  # signed without the query, delivered with it
        webhooks.verify(SETTINGS, request(BATCH, v3(BATCH), url=url))


def test_v2_signs_method_and_uri():
    with pytest.raises(SignatureError):
        webhooks.verify(SETTINGS, request(BATCH, v2(BATCH), url=URL + "/other"))


def test_a_version_that_is_switched_off_is_rejected():
    strict = SETTINGS.model_copy(update={"signature_versions": ["v3"]})
    with pytest.raises(SignatureError, match="v1 is not accepted"):
        webhooks.verify(strict, request(BATCH, v1(BATCH)))


def test_workflow_secret_in_a_header():
    body = payload("workflow_contact.json")
    webhooks.verify(SETTINGS, request(body, {"X-Connectzap-Secret": WORKFLOW_SECRET}))
    with pytest.raises(SignatureError, match="does not match"):
        webhooks.verify(SETTINGS, request(body, {"X-Connectzap-Secret": "guess"}))


def test_workflow_secret_in_a_query_parameter_with_a_configured_name():
    settings = SETTINGS.model_copy(update={"workflow_key_location": "query", "workflow_key_name": "key"})
    body = payload("workflow_custom.json")
    webhooks.verify(settings, request(body, query={"key": WORKFLOW_SECRET}, url=URL + "?key=" + WORKFLOW_SECRET))
    with pytest.raises(SignatureError):
        webhooks.verify(settings, request(body, {"key": WORKFLOW_SECRET}))  # a header is not the query


def test_the_client_secret_is_not_a_workflow_secret():
    with pytest.raises(SignatureError):
        webhooks.verify(SETTINGS, request(BATCH, {"X-Connectzap-Secret": CLIENT_SECRET}))


def test_unsigned_requests_are_rejected_before_anything_is_journaled(make):
    app = make(connectors={"hubspot": {"access_token": "pat", "client_secrets": [CLIENT_SECRET]}})
    journaled = []
    answer = ingress.handle(app.connectors["hubspot"], request(BATCH), journaled.extend)
    assert answer.status == 401 and journaled == []
    assert CLIENT_SECRET not in json.dumps(answer.body)


# --- fail closed ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("section, missing", [
    ({"client_secrets": [CLIENT_SECRET]}, "access_token"),
    ({"access_token": "pat-na1-x"}, "client_secrets"),
    ({"access_token": "pat-na1-x", "client_secrets": [""]}, "client_secrets"),
])
def test_an_enabled_connector_without_its_secrets_refuses_to_start(make, section, missing):
    app = make(start=False, connectors={"hubspot": section})
    with pytest.raises(ConfigurationError) as info:
        app.start()
    text = str(info.value)
    assert "connectors.hubspot" in text and missing in text and "\n" not in text
    assert "pat-na1-x" not in text


def test_a_disabled_connector_needs_no_secrets(make):
    app = make(connectors={"hubspot": {"enabled": False}})
    assert "hubspot" not in app.connectors


def test_secrets_never_show_in_the_settings_repr():
    assert CLIENT_SECRET not in repr(SETTINGS) and WORKFLOW_SECRET not in repr(SETTINGS)
    assert "pat-na1-x" not in repr(SETTINGS)


# --- parsing -----------------------------------------------------------------------------------------

def test_one_batched_delivery_becomes_one_event_per_relevant_hubspot_event():
    events = webhooks.parse(SETTINGS, request(BATCH))
    assert [e.kind for e in events] == [EventKind.RESOLVE] * 3
    assert [e.data["purpose"] for e in events] == ["lead", "lead", "consent"]  # jobtitle and deal.* ignored
    assert all(e.data["object_id"] == "51234567890" and e.data["portal_id"] == "62515" for e in events)
    assert events[0].dedupe_key == "62515:contact.creation:51234567890:1772446500000:"
    assert events[1].dedupe_key == "62515:contact.propertyChange:51234567890:1772446503120:lifecyclestage"


def test_lead_triggers_are_configurable():
    settings = SETTINGS.model_copy(update={"lead_on_creation": False, "lead_triggers": []})
    events = webhooks.parse(settings, request(BATCH))
    assert [e.data["purpose"] for e in events] == ["consent"]


def test_generic_object_subscriptions_count_for_contacts_only():
    items = [{"subscriptionType": "object.creation", "objectTypeId": "0-1", "objectId": 5, "portalId": 1,
              "occurredAt": 10},
             {"subscriptionType": "object.creation", "objectTypeId": "0-3", "objectId": 6, "portalId": 1,
              "occurredAt": 10}]
    events = webhooks.parse(SETTINGS, request(json_body(items)))
    assert [e.data["object_id"] for e in events] == ["5"]


event_fields = st.fixed_dictionaries({
    "portalId": st.integers(1, 10**9), "objectId": st.integers(1, 10**12), "occurredAt": st.integers(1, 2**41),
    "subscriptionType": st.sampled_from(["contact.creation", "contact.propertyChange"]),
    "propertyName": st.sampled_from(["lifecyclestage", "whatsapp_marketing_optin"]),
    "propertyValue": st.just("lead"),
})


@given(event_fields, st.integers(0, 2**40), st.integers(0, 2**40), st.integers(0, 9), st.integers(0, 9))
def test_dedupe_key_ignores_event_id_and_attempt_but_not_what_happened(item, id_a, id_b, attempt_a, attempt_b):
    first = webhooks.app_event(SETTINGS, {**item, "eventId": id_a, "attemptNumber": attempt_a}, 0)
    again = webhooks.app_event(SETTINGS, {**item, "eventId": id_b, "attemptNumber": attempt_b}, 0)
    later = webhooks.app_event(SETTINGS, {**item, "eventId": id_a, "occurredAt": item["occurredAt"] + 1}, 0)
    other = webhooks.app_event(SETTINGS, {**item, "eventId": id_a, "objectId": item["objectId"] + 1}, 0)
    assert first is not None and again is not None and later is not None and other is not None
    assert first.dedupe_key == again.dedupe_key
    assert len({first.dedupe_key, later.dedupe_key, other.dedupe_key}) == 3


def test_same_event_id_for_different_events_is_not_a_duplicate(make):
    app = make(connectors={"hubspot": {"access_token": "pat", "client_secrets": [CLIENT_SECRET]}})
    items = json.loads(BATCH)[:2]
    for item in items:
        item["eventId"] = 1  # HubSpot: "not guaranteed to be unique"
    body = json_body(items)
    answer = ingress.handle(app.connectors["hubspot"], request(body, v3(body)), app.ingest)
    assert answer.body == {"received": 2, "duplicates": 0}


@pytest.mark.parametrize("body, field", [
    (b"not json", "body"), (b"42", "body"),
    (json_body([{"subscriptionType": "contact.creation", "portalId": 1, "occurredAt": 1}]), "[0].objectId"),
    (json_body([["nested"]]), "[0]"),
    (json_body({"firstname": "Ana"}), "objectId"),
])
def test_bad_payloads_get_a_clear_422_naming_the_field(make, body, field):
    app = make(connectors={"hubspot": {"access_token": "pat", "client_secrets": [CLIENT_SECRET]}})
    answer = ingress.handle(app.connectors["hubspot"], request(body, v3(body)), app.ingest)
    assert answer.status == 422 and answer.body["field"] == field
    with pytest.raises(PayloadError):
        webhooks.parse(SETTINGS, request(body))


@pytest.mark.parametrize("name", ["workflow_contact.json", "workflow_custom.json"])
def test_workflow_bodies_name_the_contact(name):
    body = payload(name)
    [event] = webhooks.parse(SETTINGS.model_copy(update={"portal_id": "62515"}), request(body))
    assert event.data == {"portal_id": "62515", "object_id": "51234567890", "purpose": "lead", "trigger": "workflow"}
    [again] = webhooks.parse(SETTINGS, request(body))
    assert again.dedupe_key.split(":")[-1] == event.dedupe_key.split(":")[-1]  # same bytes, same delivery


def test_workflow_delivery_end_to_end_at_the_edge(make):
    app = make(connectors={"hubspot": {"access_token": "pat", "workflow_secrets": [WORKFLOW_SECRET]}})
    body = payload("workflow_contact.json")
    answer = ingress.handle(app.connectors["hubspot"], request(body, {"X-Connectzap-Secret": WORKFLOW_SECRET}),
                            app.ingest)
    assert answer.body == {"received": 1, "duplicates": 0}
    again = ingress.handle(app.connectors["hubspot"], request(body, {"X-Connectzap-Secret": WORKFLOW_SECRET}),
                           app.ingest)
    assert again.body == {"received": 0, "duplicates": 1}
