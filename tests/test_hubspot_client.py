"""The HubSpot client: SDK calls replayed from cassettes, retries, error mapping, the rate limiter."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import vcr
from hubspot_support import PHONE
from hypothesis import given, settings
from hypothesis import strategies as st

from connectzap.connectors.hubspot.client import HubSpotClient, HubSpotNotFound, SlidingWindow, classify, to_error
from connectzap.connectors.hubspot.consent_sync import properties_for
from connectzap.connectors.hubspot.contacts import Contacts
from connectzap.connectors.hubspot.settings import ConsentProperty, HubSpotSettings
from connectzap.connectors.hubspot.timeline import Entry, Timeline
from connectzap.core.context import EventContext
from connectzap.core.errors import FatalDeliveryError, RetriableDeliveryError, SkippableDeliveryError

CASSETTES = Path(__file__).parent.parent / "cassettes" / "hubspot"
TOKEN = "pat-na1-cassette-token"


class Replay:
    """Cassettes replayed strictly (no recording); the requests we actually sent are kept for asserts."""

    def __init__(self) -> None:
        self.sent: list = []
        self.vcr = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="none", filter_headers=["authorization"],
                           match_on=("method", "scheme", "host", "port", "path"),
                           before_record_request=self._keep)

    def _keep(self, request):
        self.sent.append(request)
        return request

    def use_cassette(self, name: str):
        return self.vcr.use_cassette(name)

    def body(self, index: int = -1) -> dict:
        bodies = [json.loads(r.body) for r in self.sent if r.body]
        return bodies[index]


@pytest.fixture
def replay() -> Replay:
    return Replay()


def hubspot(**overrides) -> HubSpotSettings:
    base = {"access_token": TOKEN, "client_secrets": ["s"], "inline_retry_max_seconds": 1.0,
            "consent": {"marketing": {"property": "whatsapp_marketing_optin"}},
            "lead_properties": ["firstname", "lastname"]}
    return HubSpotSettings(**{**base, **overrides})


async def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def ctx(app) -> EventContext:
    return EventContext(app, event_id=1, source="whatsapp", dedupe_key="d", received_at=datetime.now(UTC),
                        plugin="connector:hubspot")


# --- cassettes ---------------------------------------------------------------------------------------

async def test_search_by_phone_ors_every_phone_property(replay):
    contacts = Contacts(HubSpotClient(hubspot()), hubspot())
    with replay.use_cassette("contact_search.yaml") as cassette:
        found = await contacts.search(PHONE)
    assert (found.id, found.owner_id) == ("51234567890", "77701")
    body = replay.body()
    assert [g["filters"][0]["propertyName"] for g in body["filterGroups"]] == \
        ["hs_whatsapp_phone_number", "mobilephone", "phone"]
    assert {g["filters"][0]["value"] for g in body["filterGroups"]} == {PHONE}
    assert "authorization" not in {k.lower() for k in replay.sent[0].headers}  # scrubbed if ever re-recorded
    assert cassette.all_played


async def test_search_answered_429_then_200_is_retried_inline(replay):
    client = HubSpotClient(hubspot(), sleep=no_sleep)
    with replay.use_cassette("contact_search_rate_limited.yaml") as cassette:
        assert await Contacts(client, hubspot()).search(PHONE) is None
    assert cassette.play_count == 2 and cassette.all_played


async def test_get_contact_reads_the_lead_properties_and_its_consent(replay):
    settings = hubspot(consent={"marketing": {"property": "whatsapp_marketing_optin"}})
    contacts = Contacts(HubSpotClient(settings), settings)
    with replay.use_cassette("contact_get.yaml") as cassette:
        contact = await contacts.fetch("51234567890")
    asked = replay.sent[0].query
    assert ("properties", "whatsapp_marketing_optin") in asked and ("properties", "mobilephone") in asked
    assert contacts.phone_of(contact["properties"]) == PHONE
    [consent] = contacts.consents_of(contact, "62515", PHONE, datetime(2026, 3, 2, tzinfo=UTC))
    assert consent.granted and consent.source == "hubspot:whatsapp_marketing_optin"
    assert "62515" in consent.proof and "51234567890" in consent.proof and "=granted" in consent.proof
    assert cassette.all_played


async def test_create_contact_puts_the_number_where_configured(replay):
    contacts = Contacts(HubSpotClient(hubspot()), hubspot())
    with replay.use_cassette("contact_create.yaml") as cassette:
        created = await contacts.create(PHONE, "Ana García")
    assert created.id == "51234567999"
    assert replay.body()["properties"] == {"mobilephone": PHONE, "firstname": "Ana", "lastname": "García"}
    assert cassette.all_played


async def test_property_update_mirrors_consent(replay):
    settings = hubspot()
    rule = ConsentProperty(property="whatsapp_marketing_optin", source_property="whatsapp_marketing_consent_source")
    with replay.use_cassette("contact_update.yaml") as cassette:
        await Contacts(HubSpotClient(settings), settings).update(
            "51234567890", properties_for(rule, False, "2026-03-02T10:20:00+00:00", "whatsapp:keyword"))
    assert replay.body()["properties"] == {"whatsapp_marketing_optin": "revoked",
                                            "whatsapp_marketing_consent_source": "whatsapp:keyword"}
    assert cassette.all_played


async def test_the_bsuid_property_is_created_once_then_searched(replay, ctx):
    """A customer without a number is searched by the BSUID property, which is created first when the
    portal lacks it (GET answers 404); the next search does not ask again."""
    contacts = Contacts(HubSpotClient(hubspot()), hubspot())
    with replay.use_cassette("bsuid_property_and_search.yaml") as cassette:
        found = await contacts.search_bsuid(ctx, "US.13491208655302741918")
    assert (found.id, found.owner_id) == ("51234567890", "77701")
    assert replay.body(0) == {"name": "whatsapp_bsuid", "label": "WhatsApp BSUID", "type": "string",
                              "fieldType": "text", "groupName": "contactinformation",
                              "description": contacts.bsuid_property_definition()["description"]}
    assert replay.body(1)["filterGroups"][0]["filters"][0]["value"] == "US.13491208655302741918"
    assert cassette.all_played and ctx.state.get("property:whatsapp_bsuid") is True


def entry() -> Entry:
    return Entry(wamid="wamid.HBgLMzQ2MTIzNDU2NzgVAgASGBQzQUI=", phone=PHONE, direction="inbound",
                 text="Hola <b>equipo</b>", at=datetime.fromtimestamp(1772446500, UTC))


def timeline_for(ctx: EventContext) -> Timeline:
    """A timeline whose contact is known, as after an earlier search (contact_search.yaml)."""
    ctx.state.set(f"contact:{ctx.contact_key(PHONE)}", {"id": "51234567890", "owner": "77701"})
    settings = hubspot()
    client = HubSpotClient(settings)
    return Timeline(client, Contacts(client, settings), settings)


async def test_communication_is_created_with_association_81_and_the_owner(ctx, replay):
    timeline = timeline_for(ctx)
    with replay.use_cassette("communication_create.yaml") as cassette:
        await timeline.log(ctx, entry())
    assert cassette.all_played
    body = replay.body()
    assert body["associations"] == [{"to": {"id": "51234567890"},
                                     "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 81}]}]
    props = body["properties"]
    assert props["hs_communication_channel_type"] == "WHATS_APP" and props["hs_communication_logged_from"] == "CRM"
    assert props["hs_timestamp"] == "1772446500000" and props["hubspot_owner_id"] == "77701"
    assert entry().wamid in props["hs_communication_body"]
    assert "&lt;b&gt;equipo&lt;/b&gt;" in props["hs_communication_body"]  # the message is text, not markup
    assert ctx.state.pending[next(k for k in ctx.state.pending if k.startswith("timeline:"))] == \
        {"id": "80123456789", "object": "communication"}


async def test_a_403_on_communications_falls_back_to_a_note(ctx, replay):
    timeline = timeline_for(ctx)
    with replay.use_cassette("note_create.yaml") as cassette:
        await timeline.log(ctx, entry())
    assert cassette.all_played
    body = replay.body()
    assert body["associations"][0]["types"][0]["associationTypeId"] == 202
    assert entry().wamid in body["properties"]["hs_note_body"] and body["properties"]["hs_timestamp"] == "1772446500000"
    assert timeline.communications_unavailable


# --- classifying answers --------------------------------------------------------------------------------

def test_429_policy_names_say_how_long_to_wait():
    ten = classify(429, {}, b'{"policyName": "TEN_SECONDLY_ROLLING", "errorType": "RATE_LIMIT"}')
    daily = classify(429, {}, b'{"policyName": "DAILY", "errorType": "RATE_LIMIT"}', daily_retry=3600)
    assert (ten.retriable, ten.retry_after) == (True, 10.0)
    assert (daily.retriable, daily.retry_after) == (True, 3600)
    assert to_error(daily, "search").code == "hubspot_daily_limit"


@pytest.mark.parametrize("status", [477, 500, 502, 503, 504, 521, 522, 523])
def test_5xx_and_477_are_retriable_and_honour_retry_after(status):
    failure = classify(status, {"Retry-After": "120"}, b"{}")
    error = to_error(failure, "create communication")
    assert isinstance(error, RetriableDeliveryError) and error.retry_after == 120


@pytest.mark.parametrize("status, kind", [(401, FatalDeliveryError), (403, FatalDeliveryError),
                                          (404, HubSpotNotFound), (400, SkippableDeliveryError)])
def test_client_errors_are_not_retried(status, kind):
    error = to_error(classify(status, {}, b'{"message": "Property values were not valid: +34612345678"}'), "x")
    assert isinstance(error, kind) and not isinstance(error, RetriableDeliveryError)
    assert "+34612345678" not in str(error) and "612345678" not in str(error)


async def test_a_create_that_got_no_clear_answer_is_not_repeated_inline():
    calls = []

    def create(**_kwargs):
        calls.append(1)
        raise _FakeApiError(502)

    client = HubSpotClient(hubspot(max_inline_retries=3, inline_retry_max_seconds=5), sleep=no_sleep)
    with pytest.raises(RetriableDeliveryError):
        await client.call("create communication", create, creates=True)
    assert len(calls) == 1
    calls.clear()
    with pytest.raises(RetriableDeliveryError):
        await client.call("search contacts", create)
    assert len(calls) == 4  # reads are retried inline


async def test_after_a_long_429_other_calls_reschedule_instead_of_blocking():
    client = HubSpotClient(hubspot(), sleep=no_sleep)
    with pytest.raises(RetriableDeliveryError) as first:
        await client.call("search", _raises(429, {"Retry-After": "30"}))
    assert first.value.retry_after == 30
    with pytest.raises(RetriableDeliveryError) as second:
        await client.call("get contact", lambda **_: pytest.fail("must not call HubSpot while paused"))
    assert 0 < second.value.retry_after <= 30


class _FakeApiError(Exception):
    __module__ = "hubspot.crm.contacts.exceptions"

    def __init__(self, status: int, headers: dict | None = None) -> None:
        self.status, self.headers, self.body = status, headers or {}, b"{}"


def _raises(status, headers=None):
    def call(**_kwargs):
        raise _FakeApiError(status, headers)
    return call


def test_the_client_repr_shows_no_token():
    assert TOKEN not in repr(HubSpotClient(hubspot()))


# --- the limiter ----------------------------------------------------------------------------------------

@settings(max_examples=60)
@given(st.integers(1, 12), st.floats(0.1, 10), st.lists(st.floats(0, 3), min_size=1, max_size=60))
def test_no_window_ever_holds_more_than_the_limit(limit, window, gaps):
    clock = [0.0]
    limiter = SlidingWindow(limit, window, clock=lambda: clock[0])
    asked, starts = [], []
    for gap in gaps:
        clock[0] += gap
        asked.append(clock[0])
        starts.append(clock[0] + limiter.reserve())
    # never too many: any `limit + 1` consecutive starts span at least a window
    ordered = sorted(starts)
    for i in range(len(ordered) - limit):
        assert ordered[i + limit] - ordered[i] >= window - 1e-9
    # never too few: first come, first served, and nobody waits longer than the limit requires
    for i, start in enumerate(starts):
        earliest = asked[i] if i < limit else max(asked[i], starts[i - limit] + window)
        assert start == pytest.approx(earliest, abs=1e-9)
