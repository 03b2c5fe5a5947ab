"""Campaign audiences from a HubSpot list and the outcomes written back to the contacts: against
the local stand-in (FakeHubSpot) end to end, and the requests themselves against cassettes built
from HubSpot's API reference."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import vcr
from click.testing import CliRunner
from hubspot_support import hubspot_config
from server_support import AUTH, SETTINGS, serving

from connectzap.cli import cli
from connectzap.connectors.hubspot import audience as list_audience
from connectzap.connectors.hubspot.client import HubSpotClient
from connectzap.connectors.hubspot.contacts import Contacts
from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.connectors.hubspot.settings import HubSpotSettings
from connectzap.core.campaigns import NoRecipients
from connectzap.core.connector import AudienceQuery
from connectzap.core.context import EventContext
from connectzap.core.errors import FatalDeliveryError, NotFoundError, PayloadError
from connectzap.core.models import CampaignFinished
from connectzap.core.worker import Worker
from connectzap.testing import seed_template
from test_campaigns import grant

CASSETTES = Path(__file__).parent.parent / "cassettes" / "hubspot"
TEMPLATE = {"name": "winter_news", "language": "en"}
A, B, C = "+4915112345601", "+4915112345602", "+4915112345603"


@pytest.fixture
def fake():
    with FakeHubSpot() as server:
        yield server


def contacts_in(fake: FakeHubSpot) -> list[str]:
    """A list of seven: three reachable, one sharing a number with another, one without a number,
    one with a number that is not one, one national number (Germany, the portal's default region)."""
    ids = [fake.add_contact({"mobilephone": A, "firstname": "Ana"}, "101"),
           fake.add_contact({"phone": B, "firstname": "Ben"}, "102"),
           fake.add_contact({"firstname": "Nobody"}, "103"),
           fake.add_contact({"hs_whatsapp_phone_number": A, "firstname": "Ana twin"}, "104"),
           fake.add_contact({"phone": "12", "firstname": "Typo"}, "105"),
           fake.add_contact({"mobilephone": "0151 12345603", "firstname": "Cleo"}, "106"),
           fake.add_contact({"mobilephone": "+4915112345604"}, "107")]
    fake.add_list("77", ids)
    return ids


def engine(make, fake: FakeHubSpot):
    app = make(api=SETTINGS["api"], connectors={**SETTINGS["connectors"],
                                                "hubspot": hubspot_config(fake.url, default_region="DE")})
    seed_template(app, "winter_news", "Hi {{first_name}}, the winter collection is in", category="MARKETING",
                  parameter_format="NAMED")
    return app


def load(app, spec: str = "77", **kwargs):
    opened = app.campaigns.open_source("hubspot_list", {"id": spec}, {"first_name": "firstname"}, **kwargs)
    made = app.campaigns.create("winter", TEMPLATE)
    return made.id, app.campaigns.load_source(made.id, opened)


def test_a_list_is_read_page_by_page_normalised_and_deduplicated(make, fake, monkeypatch) -> None:
    contacts_in(fake)
    monkeypatch.setattr(list_audience, "MEMBERSHIP_PAGE", 3)
    app = engine(make, fake)
    campaign, result = load(app)
    # 101, 102, 106 (national number), 107; 104 repeats 101's number; 103 has none; 105's is not one
    assert (result.added, result.duplicates, result.bad_count) == (4, 1, 2)
    assert dict(result.skipped) == {"no phone number": 1, "invalid phone number": 1}
    assert [b.reason.split(":")[0] for b in result.bad] == ["103", "105"]
    pages = fake.calls("GET", "/crm/v3/lists/77/memberships")
    assert [p.query.get("after") for p in pages] == [None, ["103"], ["106"]]
    assert all(len(r.body["inputs"]) <= 100 for r in fake.calls("POST", "/crm/v3/objects/contacts/batch/read"))
    rows = app.campaigns.source_outcomes(campaign)
    assert [ref for _line, ref, _o, _r in rows] == ["101", "102", "106", "107"]
    shown = app.campaigns.results(campaign)
    assert [r["phone"] for r in shown] == ["+49*********01", "+49*********02", "+49*********03", "+49*********04"]
    preview = app.campaigns.preview(campaign)
    # 107 has no first name: its named parameter falls back to the campaign's default (none): refused
    assert preview.refused == {"no_consent": 3, "param_mismatch": 1}


def test_an_empty_list_is_refused(make, fake) -> None:
    """An empty list made an empty audience (0 recipients, loaded); it is refused as a file without a
    single recipient is."""
    fake.add_list("5", [])
    app = engine(make, fake)
    with pytest.raises(NoRecipients, match="^no recipients$"):
        load(app, "5")


def test_a_missing_list_or_refused_token_creates_nothing(make, fake) -> None:
    contacts_in(fake)
    app = engine(make, fake)
    with pytest.raises(NotFoundError, match="HubSpot has no list 404"):
        load(app, "404")
    fake.fail_next("GET", "/crm/v3/lists/77", 401, {"status": "error", "category": "INVALID_AUTHENTICATION",
                                                    "message": "Authentication credentials not found."})
    with pytest.raises(FatalDeliveryError, match="access token"):
        load(app)
    with pytest.raises(PayloadError, match="the list's id"):
        load(app, "newsletter")
    assert app.campaigns.listing() == []


def test_a_failure_after_the_first_page_keeps_nothing_of_the_audience(make, fake, monkeypatch) -> None:
    contacts_in(fake)
    monkeypatch.setattr(list_audience, "MEMBERSHIP_PAGE", 2)
    app = engine(make, fake)
    made = app.campaigns.create("winter", TEMPLATE)
    opened = app.campaigns.open_source("hubspot_list", {"id": "77"})
    for _ in range(3):  # the client's inline retries, then the delivery error
        fake.fail_next("POST", "/crm/v3/objects/contacts/batch/read", 403, {"status": "error",
                                                                              "message": "scope missing"})
    with pytest.raises(FatalDeliveryError):
        app.campaigns.load_source(made.id, opened)
    assert app.campaigns.get(made.id).recipients == 0


def cli_config(app, fake: FakeHubSpot, folder: Path) -> Path:
    """A config for the CLI on the engine's folder and database, with the stand-in's HubSpot."""
    config = folder / "cli.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.settings.database_url}"\n'
                      f'[connectors.hubspot]\n' + "".join(f"{k} = {json.dumps(v)}\n" for k, v in
                                                          hubspot_config(fake.url, default_region="DE").items()
                                                          if not isinstance(v, dict)))
    return config


def test_cli_and_rest_create_from_a_list(make, fake, tmp_path: Path) -> None:
    contacts_in(fake)
    app = engine(make, fake)
    config = cli_config(app, fake, tmp_path)
    runner = CliRunner()
    made = runner.invoke(cli, ["--config", str(config), "campaigns", "create", "winter", "--template", "winter_news",
                               "--from", "hubspot-list:77", "--param-from", "first_name=firstname"])
    assert made.exit_code == 0, made.output
    assert "audience from hubspot-list:77: 4 recipients, 1 duplicate of an earlier record" in made.output
    assert made.output.splitlines()[-2].endswith(", 2 records skipped (no phone number 1, invalid phone number 1)")
    missing = runner.invoke(cli, ["--config", str(config), "campaigns", "create", "other", "--template",
                                  "winter_news", "--from", "hubspot-list:404"])
    assert missing.exit_code != 0 and "HubSpot has no list 404" in missing.output
    assert [c.name for c in app.campaigns.listing()] == ["winter"]

    async def rest() -> None:
        async with serving(app) as client:
            body = {"name": "rest", "template": TEMPLATE,
                    "audience_source": {"source": "hubspot_list", "id": "77",
                                        "params_from": {"first_name": "firstname"}}}
            created = await client.post("/v1/campaigns", headers=AUTH, json=body)
            assert created.status_code == 201, created.text
            assert created.json()["audience"]["added"] == 4
            assert created.json()["audience"]["invalid_by_reason"] == {"no phone number": 1, "invalid phone number": 1}
            gone = await client.post("/v1/campaigns", headers=AUTH, json={**body, "name": "gone", "audience_source": {
                "source": "hubspot_list", "id": "404"}})
            assert gone.status_code == 404 and "HubSpot has no list 404" in gone.text
            unknown = await client.post("/v1/campaigns", headers=AUTH, json={**body, "name": "x", "audience_source": {
                "source": "salesforce_report", "id": "1"}})
            assert unknown.status_code == 422 and "hubspot_list" in unknown.text
            campaign = created.json()["campaign"]["id"]
            fake.add_list("8", ["101"])
            replaced = await client.put(f"/v1/campaigns/{campaign}/audience/source", headers=AUTH,
                                        json={"source": "hubspot_list", "id": "8"})
            assert replaced.status_code == 200 and replaced.json()["added"] == 1
            kept = await client.put(f"/v1/campaigns/{campaign}/audience/source", headers=AUTH,
                                    json={"source": "hubspot_list", "id": "404"})
            assert kept.status_code == 404
            assert (await client.get(f"/v1/campaigns/{campaign}", headers=AUTH)).json()["recipients"] == 1

    asyncio.run(rest())
    assert sorted(c.name for c in app.campaigns.listing()) == ["rest", "winter"]


def test_a_list_without_a_reachable_contact_is_refused_and_the_audience_kept(make, fake, tmp_path: Path) -> None:
    """`campaigns audience NAME --from hubspot-list:ID` of an empty list, or of one where nobody has
    a usable number, replaced the campaign's audience with nobody (0 recipients, exit 0); REST's
    PUT .../audience/source answered 200 and POST created a draft with nobody to send to."""
    contacts_in(fake)
    fake.add_list("8", [fake.add_contact({"firstname": "Nobody else"}, "108")])
    fake.add_list("9", [])
    app = engine(make, fake)
    config = cli_config(app, fake, tmp_path)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli, ["--config", str(config), "campaigns", *args])

    assert run("create", "winter", "--template", "winter_news", "--from", "hubspot-list:77").exit_code == 0
    for list_id, said in (("8", "no recipients, 1 record skipped (no phone number 1)"), ("9", "no recipients")):
        refused = run("audience", "winter", "--from", f"hubspot-list:{list_id}")
        assert refused.exit_code == 1, refused.output
        assert refused.stderr.splitlines()[-1] == \
            f"error: hubspot-list:{list_id}: {said} -- the previous audience (4 recipients) is kept"
        assert app.campaigns.get(app.campaigns.resolve("winter")).recipients == 4
        created = run("create", f"other{list_id}", "--template", "winter_news", "--from", f"hubspot-list:{list_id}")
        assert created.exit_code == 1, created.output
        assert created.stderr.splitlines()[-1] == f"error: hubspot-list:{list_id}: {said} -- no campaign was created"
    assert [c.name for c in app.campaigns.listing()] == ["winter"]

    async def rest() -> None:
        async with serving(app) as client:
            campaign = app.campaigns.resolve("winter")
            kept = await client.put(f"/v1/campaigns/{campaign}/audience/source", headers=AUTH,
                                    json={"source": "hubspot_list", "id": "8"})
            assert kept.status_code == 422, kept.text
            assert kept.json() == {"error": "no_recipients", "field": "audience",
                                   "detail": "hubspot_list: no recipients, 1 record skipped (no phone number 1) -- the "
                                             "previous audience (4 recipients) is kept"}
            assert (await client.get(f"/v1/campaigns/{campaign}", headers=AUTH)).json()["recipients"] == 4
            created = await client.post("/v1/campaigns", headers=AUTH, json={
                "name": "rest", "template": TEMPLATE, "audience_source": {"source": "hubspot_list", "id": "9"}})
            assert created.status_code == 422, created.text
            assert created.json()["detail"] == "audience_source: no recipients -- no campaign was created"

    asyncio.run(rest())
    assert [c.name for c in app.campaigns.listing()] == ["winter"]


def replay_finished(app, campaign: str) -> tuple[CampaignFinished, EventContext]:
    """Deliver the campaign's end to the HubSpot connector once more (a replayed hook)."""
    ended = CampaignFinished(id=campaign, name="winter", state="finished", template="winter_news", language="en",
                             ended_at=datetime.now(UTC), recipients=app.campaigns.get(campaign).recipients,
                             audience_source="hubspot_list")
    ctx = EventContext(app, event_id=99, source="campaigns", dedupe_key="replay", received_at=datetime.now(UTC),
                       plugin="connector:hubspot")
    asyncio.run(app.connectors["hubspot"].sync_campaign_finished(ended, ctx))
    return ended, ctx


def test_outcomes_are_written_back_once_across_a_replay(make, fake) -> None:
    contacts_in(fake)
    app = engine(make, fake)
    grant(app, A)
    grant(app, B)
    campaign, _ = load(app)
    rehearsal_ctx = EventContext(app, event_id=98, source="campaigns", dedupe_key="simulate",
                                 received_at=datetime.now(UTC), plugin="connector:hubspot")
    planned = asyncio.run(app.connectors["hubspot"].rehearse("connector:hubspot", "campaign_finished", CampaignFinished(
        id=campaign, name="winter", state="finished", template="winter_news", language="en",
        ended_at=datetime.now(UTC), recipients=4, audience_source="hubspot_list"), rehearsal_ctx))
    assert [(c.method, c.url.rsplit("/crm", 1)[1], [i["id"] for i in c.body["inputs"]]) for c in planned] == [
        ("POST", "/v3/objects/contacts/batch/update", ["101", "102", "106", "107"])]
    assert fake.calls("POST", "/crm/v3/objects/contacts/batch/update") == []  # a rehearsal sends nothing
    app.campaigns.start(campaign)
    asyncio.run(Worker(app).run_until_idle())
    assert app.campaigns.get(campaign).state == "finished"
    written = {c["id"]: c["properties"] for c in fake.objects("contacts")
               if c["properties"].get("connectzap_last_campaign")}
    assert set(written) == {"101", "102", "106", "107"}
    assert written["101"]["connectzap_last_campaign"] == "winter"
    assert written["101"]["connectzap_last_campaign_outcome"] in ("sent", "delivered")
    assert written["106"]["connectzap_last_campaign_outcome"] == "refused (no_consent)"
    assert "connectzap_last_campaign" in fake.properties  # created on first use
    updates = len(fake.calls("POST", "/crm/v3/objects/contacts/batch/update"))
    assert updates == 1

    ended, ctx = replay_finished(app, campaign)
    assert len(fake.calls("POST", "/crm/v3/objects/contacts/batch/update")) == updates
    assert asyncio.run(app.connectors["hubspot"].rehearse("connector:hubspot", "campaign_finished", ended, ctx)) == []
    other = ended.model_copy(update={"audience_source": None})  # a campaign from a file: nothing to write
    asyncio.run(app.connectors["hubspot"].sync_campaign_finished(other.model_copy(update={"id": "c2"}), ctx))
    assert len(fake.calls("POST", "/crm/v3/objects/contacts/batch/update")) == updates


def test_a_batch_naming_a_deleted_contact_writes_the_others(make, fake) -> None:
    contacts_in(fake)
    app = timeline_engine(make, fake)  # properties and timeline notes
    campaign, _ = load(app)
    app.campaigns.control(campaign, "cancel")
    del fake.records["contacts"]["102"]
    asyncio.run(Worker(app).run_until_idle())
    written = {c["id"] for c in fake.objects("contacts") if c["properties"].get("connectzap_last_campaign")}
    assert written == {"101", "106", "107"}
    assert sorted(campaign_notes(fake)) == ["101", "106", "107"]
    outcome = fake.records["contacts"]["101"]["properties"]["connectzap_last_campaign_outcome"]
    assert outcome == "cancelled"


# --- cassettes: the requests as HubSpot's reference has them ---------------------------------------------

def replay() -> vcr.VCR:
    return vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="none", filter_headers=["authorization"],
                   match_on=("method", "scheme", "host", "port", "path", "query", "body"))


def settings() -> HubSpotSettings:
    return HubSpotSettings(access_token="pat-na1-cassette-token", client_secrets=["s"],
                           lead_properties=["firstname"], inline_retry_max_seconds=1.0)


def test_cassette_two_pages_of_memberships_and_their_contacts() -> None:
    client = HubSpotClient(settings())
    reader = list_audience.ListAudience(client, Contacts(client, client.settings), client.settings)

    async def read() -> list:
        return [m async for m in reader.members(AudienceQuery("hubspot_list", {"id": "4711"}, ("firstname",)))]

    with replay().use_cassette("list_memberships_two_pages.yaml") as cassette:
        members = asyncio.run(read())
    assert cassette.all_played
    assert [(m.ref, m.phone, dict(m.fields)) for m in members] == [
        ("51234567801", "+34612345601", {"firstname": "Lucía"}), ("51234567802", None, {"firstname": "Marc"}),
        ("51234567803", "+34612345603", {"firstname": "Nuria"})]


def test_cassette_missing_list() -> None:
    client = HubSpotClient(settings())
    reader = list_audience.ListAudience(client, Contacts(client, client.settings), client.settings)

    async def read() -> list:
        return [m async for m in reader.members(AudienceQuery("hubspot_list", {"id": "999"}))]

    with replay().use_cassette("list_missing.yaml"), pytest.raises(NotFoundError, match="no list 999"):
        asyncio.run(read())


def test_cassette_batch_update_of_outcomes() -> None:
    from connectzap.connectors.hubspot.campaign_results import update_request
    from connectzap.core.campaigns.write_back import Outcome
    client = HubSpotClient(settings())
    body = update_request("december", [Outcome("51234567801", "delivered", None),
                                       Outcome("51234567803", "refused", "no_consent")])
    with replay().use_cassette("contacts_batch_update_campaign.yaml") as cassette:
        answer = asyncio.run(client.call("update contacts", list_audience.as_json(client.contact_batch.update),
                                         batch_input_simple_public_object_batch_input=body))
    assert cassette.all_played and answer["status"] == "COMPLETE"


def test_console_creates_a_campaign_from_a_list(make, fake) -> None:
    from console_support import PASSWORD, USER, csrf_of, log_in
    from test_console_routes import console

    from connectzap.console.passwords import hash_password
    contacts_in(fake)
    app = make(api=SETTINGS["api"], console={"enabled": True},
               connectors={**SETTINGS["connectors"], "hubspot": hubspot_config(fake.url, default_region="DE")})
    app.operators.add_user(USER, hash_password(PASSWORD))
    seed_template(app, "winter_news", "Hi {{first_name}}, the winter collection is in", category="MARKETING",
                  parameter_format="NAMED")

    async def walk() -> None:
        async with console(app) as client:
            await log_in(client)
            page = await client.get("/console/campaigns")
            assert 'name="source"' in page.text and "hubspot_list" in page.text
            form = {"csrf": csrf_of(page.text), "name": "winter", "template": "winter_news|en",
                    "params_from": "first_name=firstname"}
            missing = await client.post("/console/campaigns", data={**form, "source": "hubspot-list:404"},
                                        files={"audience": ("", b"", "text/csv")})
            assert missing.status_code == 400 and "HubSpot has no list 404" in missing.text
            assert app.campaigns.listing() == []
            made = await client.post("/console/campaigns", data={**form, "source": "hubspot-list:77"},
                                     files={"audience": ("", b"", "text/csv")})
            assert made.status_code == 303, made.text
            shown = await client.get(made.headers["location"])
            assert "4 recipients from hubspot-list:77, 1 duplicate of an earlier record skipped, 2 records skipped " \
                   "(no phone number 1, invalid phone number 1)" in shown.text

    asyncio.run(walk())
    assert [c.recipients for c in app.campaigns.listing()] == [4]


def test_a_write_back_interrupted_by_the_rate_limit_resumes_where_it_stopped(make, fake, monkeypatch) -> None:
    from hubspot_support import make_due

    from connectzap.connectors.hubspot import campaign_results
    from connectzap.connectors.hubspot.client import Limiter
    contacts_in(fake)
    monkeypatch.setattr(campaign_results, "WRITE_BATCH", 2)
    app = engine(make, fake)
    campaign, _ = load(app)  # four recipients: two batches of two
    app.campaigns.control(campaign, "cancel")
    busy = {"status": "error", "policyName": "TEN_SECONDLY_ROLLING", "message": "You have reached your secondly limit."}

    original = fake.handle
    seen: list[int] = []

    def second_batch_busy(method, path, query, body):  # the first batch passes, the second meets the limit once
        if path.endswith("/batch/update"):
            seen.append(1)
            if len(seen) == 2:
                return 429, busy, {"Retry-After": "30"}  # longer than an inline retry may wait (0.2 s)
        return original(method, path, query, body)

    monkeypatch.setattr(fake, "handle", second_batch_busy)
    asyncio.run(Worker(app).run_until_idle())
    first = [r.body["inputs"] for r in fake.calls("POST", "/crm/v3/objects/contacts/batch/update")]
    assert [[i["id"] for i in batch] for batch in first] == [["101", "102"], ["106", "107"]]
    assert "connectzap_last_campaign" not in fake.records["contacts"]["106"]["properties"]
    # The 30 s pause has passed: the client's shared pause ends and the delivery's retry falls due
    # (a short Retry-After and a sleep raced the first run's own retry on a loaded machine).
    monkeypatch.setattr(Limiter, "paused_for", lambda self: 0.0)
    make_due(app)
    asyncio.run(Worker(app).run_until_idle())
    after = [[i["id"] for i in r.body["inputs"]] for r in fake.calls("POST", "/crm/v3/objects/contacts/batch/update")]
    assert after == [["101", "102"], ["106", "107"], ["106", "107"]]  # the written batch is not written again
    assert fake.records["contacts"]["107"]["properties"]["connectzap_last_campaign_outcome"] == "cancelled"


# --- outcomes as timeline notes (campaign_timeline) -------------------------------------------------

def timeline_engine(make, fake: FakeHubSpot):
    app = make(api=SETTINGS["api"], connectors={**SETTINGS["connectors"], "hubspot": hubspot_config(
        fake.url, default_region="DE", campaign_timeline=True)})
    seed_template(app, "winter_news", "Hi {{first_name}}, the winter collection is in", category="MARKETING",
                  parameter_format="NAMED")
    return app


def campaign_notes(fake: FakeHubSpot) -> dict[str, list[str]]:
    """The notes' bodies by the contact they are on."""
    on: dict[str, list[str]] = {}
    for kind, note, contact, type_id in fake.associations:
        if kind == "notes" and type_id == 202:
            on.setdefault(contact, []).append(fake.records["notes"][note]["properties"]["hs_note_body"])
    return on


def test_each_recipient_gets_one_timeline_note_across_a_replay(make, fake) -> None:
    contacts_in(fake)
    app = timeline_engine(make, fake)
    grant(app, A)
    campaign, _ = load(app)
    app.campaigns.start(campaign)
    asyncio.run(Worker(app).run_until_idle())
    notes = campaign_notes(fake)
    assert sorted(notes) == ["101", "102", "106", "107"] and all(len(n) == 1 for n in notes.values())
    assert "WhatsApp campaign winter" in notes["101"][0] and "Outcome: refused (no_consent)" in notes["106"][0]
    assert notes["101"][0].endswith(f"connectzap campaign entry {campaign}/101</p>")
    assert len(fake.calls("POST", "/crm/v3/objects/notes/batch/create")) == 1  # one batch of four
    ended, ctx = replay_finished(app, campaign)
    assert len(fake.calls("POST", "/crm/v3/objects/notes/batch/create")) == 1
    assert campaign_notes(fake) == notes


def test_a_create_whose_answer_was_lost_is_found_not_made_again(make, fake, monkeypatch) -> None:
    from hubspot_support import make_due

    from connectzap.connectors.hubspot import campaign_timeline
    contacts_in(fake)
    monkeypatch.setattr(campaign_timeline, "CREATE_BATCH", 2)
    monkeypatch.setattr(campaign_timeline, "SEARCH_PAGE", 1)  # the search pages through what it finds
    app = timeline_engine(make, fake)
    campaign, _ = load(app)  # four recipients: two batches of two
    app.campaigns.control(campaign, "cancel")
    original = fake.handle
    creates: list[int] = []

    def second_answer_lost(method, path, query, body):  # HubSpot made the second batch, its answer never came
        answer = original(method, path, query, body)
        if path.endswith("/notes/batch/create"):
            creates.append(1)
            if len(creates) == 2:
                return 502, {"status": "error", "message": "Bad gateway"}, {}
        return answer

    monkeypatch.setattr(fake, "handle", second_answer_lost)
    asyncio.run(Worker(app).run_until_idle())
    make_due(app)
    asyncio.run(Worker(app).run_until_idle())
    notes = campaign_notes(fake)
    assert sorted(notes) == ["101", "102", "106", "107"]
    assert all(len(n) == 1 and "Outcome: cancelled" in n[0] for n in notes.values())  # none twice
    assert len(creates) == 2  # the retry found the lost batch's notes and created nothing


def test_without_campaign_timeline_no_note_is_written(make, fake) -> None:
    contacts_in(fake)
    app = engine(make, fake)
    campaign, _ = load(app)
    app.campaigns.control(campaign, "cancel")
    asyncio.run(Worker(app).run_until_idle())
    assert fake.calls("POST", "/crm/v3/objects/notes/batch/create") == [] and campaign_notes(fake) == {}


def test_cassette_batch_create_of_timeline_notes() -> None:
    from connectzap.connectors.hubspot.campaign_timeline import CampaignTimeline
    from connectzap.core.campaigns.write_back import Outcome
    client = HubSpotClient(settings())
    ended = CampaignFinished(id="c1a23b0000000000beef", name="december", state="finished", template="december_news",
                             language="en", ended_at=datetime(2026, 12, 1, 10, tzinfo=UTC), recipients=2,
                             audience_source="hubspot_list")
    batch = [Outcome("51234567801", "delivered", None), Outcome("51234567803", "refused", "no_consent")]
    with replay().use_cassette("notes_batch_create_campaign.yaml") as cassette:
        asyncio.run(CampaignTimeline(client, 0).create(ended, batch, 1796119200000))
    assert cassette.all_played


async def test_the_console_refuses_a_list_with_nobody_and_creates_nothing(make, fake) -> None:
    """The console's New campaign from `hubspot-list:ID` with nobody reachable created a draft of 0
    recipients (and said "0 recipients from ...")."""
    from console_support import PASSWORD, USER, csrf_of, log_in
    from test_console_routes import console

    from connectzap.console.passwords import hash_password
    fake.add_list("8", [fake.add_contact({"firstname": "Nobody"}, "108")])
    app = make(api=SETTINGS["api"], console={"enabled": True},
               connectors={**SETTINGS["connectors"], "hubspot": hubspot_config(fake.url, default_region="DE")})
    seed_template(app, "winter_news", "Hi {{first_name}}, the winter collection is in", category="MARKETING",
                  parameter_format="NAMED")
    app.operators.add_user(USER, hash_password(PASSWORD))
    async with console(app) as client:
        await log_in(client)
        page = await client.get("/console/campaigns")
        answer = await client.post("/console/campaigns", data={
            "csrf": csrf_of(page.text), "name": "winter", "template": "winter_news|en", "source": "hubspot-list:8"},
            files={"audience": ("", b"", "application/octet-stream")})  # the form's empty file field
        assert answer.status_code == 400, answer.text
        assert 'id="error">hubspot-list:8: no recipients, 1 record skipped (no phone number 1), nothing was created.<' \
            in answer.text
    assert app.campaigns.listing() == []
