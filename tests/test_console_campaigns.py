"""The console's Campaigns page without a browser: login and CSRF on every action, an uploaded
audience checked line by line (a bad line keeps nothing), the preview the CLI shows, pause/resume/
cancel in the database, the live numbers, and results with masked numbers only (the CLI's CSV)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from console_support import PASSWORD, USER, csrf_of, log_in
from server_support import KEY
from test_campaigns import NUMBERS, grant
from test_console_routes import console, digits

from connectzap.cli import cli
from connectzap.console import campaigns as console_campaigns
from connectzap.console.passwords import hash_password
from connectzap.core.campaigns import State, read_file
from connectzap.core.store.schema import campaign_recipients, campaigns
from connectzap.testing import seed_template
from sqlalchemy import func, select

AUDIENCE = "phone,1,2\n" + "".join(f"{n},Di,30%\n" for n in NUMBERS[:3])
"""Three recipients; the first two consented to marketing, the third did not."""


@pytest.fixture
def shop(make):
    app = make(api={"keys": [KEY]}, console={"enabled": True})
    app.operators.add_user(USER, hash_password(PASSWORD))
    seed_template(app, "spring_sale", "Hi {{1}}, {{2}} off today", category="MARKETING")
    for phone in NUMBERS[:2]:
        grant(app, phone)
    return app


def stored(app) -> tuple[int, int]:
    """Campaigns and campaign recipients in the database."""
    with app.db.read() as conn:
        return (conn.execute(select(func.count()).select_from(campaigns)).scalar_one(),
                conn.execute(select(func.count()).select_from(campaign_recipients)).scalar_one())


async def create(client, text: str, *, filename: str = "list.csv", **fields: str):
    page = await client.get("/console/campaigns")
    form = {"csrf": csrf_of(page.text), "name": "autumn", "template": "spring_sale|en", **fields}
    return await client.post("/console/campaigns", data=form,
                             files={"audience": (filename, text.encode(), "text/csv")})


def cli_run(app, tmp_path: Path, *args: str) -> str:
    config = tmp_path / "cli.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.settings.database_url}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


async def test_every_campaign_page_needs_a_login_and_every_action_its_csrf_token(shop):
    app = shop
    made = app.campaigns.create("draft", {"name": "spring_sale", "language": "en"})
    async with console(app) as client:
        for path in ("/console/campaigns", f"/console/campaigns/{made.id}", f"/console/campaigns/{made.id}/preview",
                     f"/console/campaigns/{made.id}/results.csv"):
            answer = await client.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login"), path
        assert (await client.get(f"/console/campaigns/{made.id}/live")).status_code == 401
        upload = {"audience": ("list.csv", AUDIENCE.encode(), "text/csv")}
        form = {"csrf": "0" * 64, "name": "x", "template": "spring_sale|en"}
        nobody = await client.post("/console/campaigns", data=form, files=upload)
        assert nobody.status_code == 403 and "session has ended" in nobody.text and stored(app) == (1, 0)
        await log_in(client)
        forged = await client.post("/console/campaigns", data=form, files=upload)
        assert forged.status_code == 403 and "out of date" in forged.text and stored(app) == (1, 0)
        plain = await client.post("/console/campaigns", data={"name": "x", "template": "spring_sale|en"})
        assert plain.status_code == 403 and stored(app) == (1, 0)
        for what in ("start", "pause", "resume", "cancel"):
            for csrf in ({"csrf": "f" * 64}, {}):
                answer = await client.post(f"/console/campaigns/{made.id}/{what}", data=csrf)
                assert answer.status_code == 403, what
        assert app.campaigns.get(made.id).state == State.DRAFT
    assert not [a for a in app.operators.audit_log() if a["action"].startswith("campaign")]


async def test_an_upload_with_a_bad_line_names_it_and_keeps_nothing(shop):
    app = shop
    bad = AUDIENCE + "not a number,Di,30%\n" + f"{NUMBERS[4]},Di,\n"
    async with console(app) as client:
        await log_in(client)
        answer = await create(client, bad)
        assert answer.status_code == 400
        shown = answer.text
        assert "line 5: invalid phone number" in shown and "line 6: a parameter is empty" in shown
        assert "2 bad lines, nothing was created; fix them" in shown
        assert stored(app) == (0, 0)
        jsonl = await create(client, '{"phone": "+4915112345600"}\n{"phone": 7, "nope": 1}\n', filename="l.jsonl")
        assert jsonl.status_code == 400 and "line 2: unknown field: nope" in jsonl.text
        header = await create(client, "name,1\nAna,x\n")
        assert header.status_code == 400 and "the header needs a phone column" in header.text
        assert stored(app) == (0, 0)
        # the other lines, when asked for
        skipped = await create(client, bad, skip_invalid="on")
        assert skipped.status_code == 303
        assert "3 recipients, 2 bad lines skipped" in (await client.get(skipped.headers["location"])).text
    assert stored(app) == (1, 3)


async def test_the_preview_is_the_clis_for_the_same_audience(shop, tmp_path):
    app = shop
    async with console(app) as client:
        await log_in(client)
        made = await create(client, AUDIENCE, params="")
        assert made.status_code == 303
        campaign_id = made.headers["location"].split("?")[0].rsplit("/", 1)[1]
        page = (await client.get(f"/console/campaigns/{campaign_id}/preview")).text
    audience = tmp_path / "list.csv"
    audience.write_text(AUDIENCE)
    cli_run(app, tmp_path, "campaigns", "create", "by-cli", "--template", "spring_sale", "--audience", str(audience))
    for ref in (campaign_id, "by-cli"):
        expected = json.loads(cli_run(app, tmp_path, "campaigns", "preview", ref, "--json"))
        assert re.search(rf'id="preview-recipients">{expected["recipients"]}<', page)
        assert re.search(rf'id="preview-reachable" class="ok">{expected["reachable"]}<', page)
        shown = dict(re.findall(r'<tr data-reason="([a-z_]+)"><th scope="row">[a-z_]+</th><td class="n">(\d+)<',
                                page))
        assert {k: int(v) for k, v in shown.items()} == expected["refused"]
    assert expected["reachable"] == 2 and expected["refused"] == {"no_consent": 1}


async def test_start_pause_resume_cancel_change_the_state_in_the_database(shop):
    app = shop
    async with console(app) as client:
        await log_in(client)
        made = await create(client, AUDIENCE, rate="1", window="00:00-23:59")
        where = made.headers["location"]
        campaign_id = where.split("?")[0].rsplit("/", 1)[1]
        page = (await client.get(where)).text
        assert "created autumn: 3 recipients" in page and 'id="campaign-state">draft<' in page

        async def act(what: str, **form: str) -> str:
            current = (await client.get(f"/console/campaigns/{campaign_id}")).text
            answer = await client.post(f"/console/campaigns/{campaign_id}/{what}",
                                       data={"csrf": csrf_of(current), **form})
            assert answer.status_code == 303
            return (await client.get(answer.headers["location"])).text

        later = await act("start", at="2999-01-01T09:00")
        assert app.campaigns.get(campaign_id).state == State.SCHEDULED and "scheduled for 2999-01-01 09:00" in later
        await act("start")
        assert app.campaigns.get(campaign_id).state == State.RUNNING
        live = (await client.get(f"/console/campaigns/{campaign_id}/live")).json()["numbers"]
        assert live["campaign-state"] == "running" and live["campaign-recipients"] == 3
        await act("pause")
        assert app.campaigns.get(campaign_id).state == State.PAUSED
        refused = await act("pause")  # the engine's refusal, shown; nothing changes
        assert "cannot pause a campaign that is paused" in refused
        assert app.campaigns.get(campaign_id).state == State.PAUSED
        await act("resume")
        assert app.campaigns.get(campaign_id).state == State.RUNNING
        await act("cancel")
        assert app.campaigns.get(campaign_id).state == State.CANCELLED
        assert (await client.post(f"/console/campaigns/{campaign_id}/explode",
                                  data={"csrf": csrf_of(page)})).status_code == 404
    audit = [(a["action"], a["detail"]) for a in app.operators.audit_log() if a["action"].startswith("campaign")]
    assert audit == [("campaign_cancel", "cancelled"), ("campaign_resume", "running"), ("campaign_pause", "paused"),
                     ("campaign_start", "running"), ("campaign_start", "scheduled for 2999-01-01 09:00 UTC"),
                     ("campaign_create", "3 recipients")]


async def test_results_and_their_csv_show_masked_numbers_only_and_equal_the_clis(shop, tmp_path):
    from connectzap.core.worker import Worker
    app = shop
    async with console(app) as client:
        await log_in(client)
        made = await create(client, AUDIENCE)
        assert made.status_code == 303, made.text
        campaign_id = made.headers["location"].split("?")[0].rsplit("/", 1)[1]
        app.campaigns.start(campaign_id)
        await Worker(app).run_until_idle()
        page = (await client.get(f"/console/campaigns/{campaign_id}")).text
        listing = (await client.get("/console/campaigns")).text
        download = await client.get(f"/console/campaigns/{campaign_id}/results.csv")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert download.text == cli_run(app, tmp_path, "campaigns", "results", campaign_id, "--csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert [r["phone"] for r in rows] == ["+49*********00", "+49*********01", "+49*********02"]
    assert rows[2]["reason"] == "no_consent"
    for text in (page, listing, download.text):
        assert not any(digits(n) in digits(text) for n in NUMBERS[:3])
    assert "+49*********02" in page and "no_consent" in page and f'data-campaign="{campaign_id}"' in listing


async def test_a_new_audience_with_a_bad_line_leaves_the_old_one_and_a_started_campaign_keeps_its_own(shop):
    app = shop
    async with console(app) as client:
        await log_in(client)
        made = await create(client, AUDIENCE)
        campaign_id = made.headers["location"].split("?")[0].rsplit("/", 1)[1]
        path = f"/console/campaigns/{campaign_id}"

        async def replace(text: str, csrf: str | None = None):
            token = csrf or csrf_of((await client.get(path)).text)
            return await client.post(f"{path}/audience", data={"csrf": token},
                                     files={"audience": ("new.csv", text.encode(), "text/csv")})

        forged = await replace("phone,1,2\n" + f"{NUMBERS[5]},Di,30%\n", csrf="e" * 64)
        assert forged.status_code == 403 and stored(app) == (1, 3)
        bad = await replace("phone,1,2\n" + f"{NUMBERS[5]},Di,30%\n" + "12,Di,30%\n")
        assert bad.status_code == 400 and "line 3: invalid phone number" in bad.text
        assert "the audience is unchanged" in bad.text
        assert [r["phone"] for r in app.campaigns.results(campaign_id)] == ["+49*********00", "+49*********01",
                                                                           "+49*********02"]
        good = await replace("phone,1,2\n" + f"{NUMBERS[5]},Di,30%\n")
        assert ">new audience: 1 recipient<" in (await client.get(good.headers["location"])).text
        assert [r["phone"] for r in app.campaigns.results(campaign_id)] == ["+49*********05"]
        app.campaigns.start(campaign_id)
        assert 'id="audience"' not in (await client.get(path)).text
        late = await replace(AUDIENCE, csrf=csrf_of((await client.get(path)).text))
        assert "its audience can only change while it is a draft or scheduled" in (
            await client.get(late.headers["location"])).text
        assert stored(app) == (1, 1)
    assert [a["detail"] for a in app.operators.audit_log() if a["action"] == "campaign_audience"] == ["1 recipient"]


@pytest.mark.parametrize(("text", "filename"), [("phone,1,2\n", "new.csv"), ("phone,1,2\n\n", "new.csv"),
                                                ("", "new.jsonl"), ("\n", "new.jsonl")])
async def test_an_audience_file_without_recipients_is_refused_and_keeps_the_audience(shop, text, filename):
    """A header-only file replaced the audience with nobody ("new audience: 0 recipients"), and
    created a draft with nobody to send to."""
    app = shop
    async with console(app) as client:
        await log_in(client)
        made = await create(client, AUDIENCE)
        path = made.headers["location"].split("?")[0]
        token = csrf_of((await client.get(path)).text)
        refused = await client.post(f"{path}/audience", data={"csrf": token},
                                    files={"audience": (filename, text.encode(), "text/csv")})
        assert refused.status_code == 400
        assert f'id="error">{filename}: no recipients, the audience is unchanged.<' in refused.text
        assert stored(app) == (1, 3)
        created = await create(client, text, filename=filename, name="winter")
        assert created.status_code == 400
        assert f'id="error">{filename}: no recipients, nothing was created.<' in created.text
        skipped = await create(client, "phone,1,2\n12,Di,30%\n", name="winter", skip_invalid="on")
        assert skipped.status_code == 400
        assert "list.csv: no recipients, 1 bad line skipped, nothing was created." in skipped.text
        assert stored(app) == (1, 3)
    assert [a["action"] for a in app.operators.audit_log() if a["action"].startswith("campaign")] == \
        ["campaign_create"]


async def test_the_console_counts_agree_in_number(shop):
    """It said "1 bad line(s)", "1 duplicate(s) skipped" and "1 recipients"; duplicates are worded as
    everywhere (AudienceResult.skipped_text), no longer "1 duplicate skipped"."""
    app = shop
    async with console(app) as client:
        await log_in(client)
        one_bad = await create(client, AUDIENCE + "12,Di,30%\n")
        assert one_bad.status_code == 400
        assert "list.csv: 1 bad line, nothing was created; fix it (or tick" in one_bad.text
        made = await create(client, AUDIENCE + f"{NUMBERS[0]},Di,30%\n" + "12,Di,30%\n", skip_invalid="on")
        page = (await client.get(made.headers["location"])).text
        assert 'id="done">created autumn: 3 recipients, 1 duplicate of an earlier line skipped, ' \
               '1 bad line skipped<' in page
        path = made.headers["location"].split("?")[0]
        replaced = await client.post(f"{path}/audience", data={"csrf": csrf_of(page)},
                                     files={"audience": ("one.csv", f"phone,1,2\n{NUMBERS[5]},Di,30%\n".encode(),
                                                         "text/csv")})
        assert "(CSV or JSON lines; replaces the 3 recipients)" in page
        after = (await client.get(replaced.headers["location"])).text
        assert 'id="done">new audience: 1 recipient<' in after and "replaces the 1 recipient)" in after


async def test_an_audience_may_be_larger_than_other_requests_up_to_its_own_limit(make):
    """``console.max_upload_bytes`` for the audience uploads; ``api.max_body_bytes`` for the rest."""
    app = make(api={"keys": [KEY], "max_body_bytes": 4000}, console={"enabled": True, "max_upload_bytes": 40_000})
    app.operators.add_user(USER, hash_password(PASSWORD))
    seed_template(app, "spring_sale", "Hi {{1}}, {{2}} off today", category="MARKETING")
    big = "phone,1,2\n" + "".join(f"+4915112{n:06d},Di,30%\n" for n in range(300))  # ~6,600 bytes
    assert 4000 < len(big) < 40_000
    async with console(app) as client:
        await log_in(client)
        made = await create(client, big)
        assert made.status_code == 303 and stored(app) == (1, 300)
        campaign_id = made.headers["location"].split("?")[0].rsplit("/", 1)[1]
        page = (await client.get(f"/console/campaigns/{campaign_id}")).text
        replaced = await client.post(f"/console/campaigns/{campaign_id}/audience", data={"csrf": csrf_of(page)},
                                     files={"audience": ("new.csv", big.encode(), "text/csv")})
        assert replaced.status_code == 303
        huge = await create(client, big * 7)
        assert huge.status_code == 413 and stored(app) == (1, 300)
        other = await client.post(f"/console/campaigns/{campaign_id}/pause", data={"csrf": csrf_of(page),
                                                                                   "pad": "x" * 5000})
        assert other.status_code == 413


async def test_an_uploaded_audience_is_read_once(shop, monkeypatch):
    """The upload was read twice, checked and then loaded: the loader's own refusal (InvalidLines,
    NoRecipients) now gives the page its words."""
    app = shop
    reads: list[str] = []

    def counted_read(stream, fmt, *args):
        reads.append(fmt)
        return read_file(stream, fmt, *args)

    monkeypatch.setattr(console_campaigns, "read_file", counted_read)
    async with console(app) as client:
        await log_in(client)
        refused = await create(client, AUDIENCE + "12,Di,30%\n")
        assert refused.status_code == 400 and "1 bad line, nothing was created" in refused.text
        made = await create(client, AUDIENCE)
        assert made.status_code == 303 and stored(app) == (1, 3)
        path = made.headers["location"].split("?")[0]
        for text, status in (("phone,1,2\n12,Di,30%\n", 400), (f"phone,1,2\n{NUMBERS[5]},Di,30%\n", 303)):
            replaced = await client.post(f"{path}/audience", data={"csrf": csrf_of((await client.get(path)).text)},
                                         files={"audience": ("new.csv", text.encode(), "text/csv")})
            assert replaced.status_code == status
    assert reads == ["csv"] * 4 and stored(app) == (1, 1)
