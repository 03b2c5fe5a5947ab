"""Campaigns from the REST API (/v1/campaigns) and the CLI (connectzap campaigns ...): the same
engine methods, the same API keys, results as JSON pages and as CSV with masked numbers only."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from server_support import AUTH, api_engine, serving

from connectzap.cli import cli
from connectzap.core.campaigns import BadLine, read_items
from connectzap.core.worker import Worker
from connectzap.testing import seed_template
from test_campaigns import NUMBERS, campaign_messages, grant

TEMPLATE = {"name": "spring_sale", "language": "en"}


def ready(make):
    app = api_engine(make)
    seed_template(app, "spring_sale", "Hi {{1}}, {{2}} off today", category="MARKETING")
    for phone in NUMBERS[:2]:
        grant(app, phone)
    return app


def test_rest_create_preview_start_and_results(make) -> None:
    app = ready(make)

    async def walk() -> None:
        async with serving(app) as client:
            assert (await client.get("/v1/campaigns")).status_code == 401
            audience = [{"phone": n, "params": [f"Ana{i}", "20%"]} for i, n in enumerate(NUMBERS[:3])]
            audience.append({"phone": "12", "params": ["x", "y"]})
            made = await client.post("/v1/campaigns", headers=AUTH, json={
                "name": "spring", "template": TEMPLATE, "audience": audience, "skip_invalid": True})
            assert made.status_code == 201, made.text
            body = made.json()
            assert body["audience"]["added"] == 3 and body["audience"]["invalid_lines"][0]["line"] == 4
            campaign = body["campaign"]["id"]
            assert body["campaign"]["state"] == "draft"
            preview = (await client.get(f"/v1/campaigns/{campaign}/preview", headers=AUTH)).json()
            assert (preview["reachable"], preview["refused"]) == (2, {"no_consent": 1})
            assert (await client.post("/v1/campaigns/spring/resume", headers=AUTH)).status_code == 409  # by name too
            started = await client.post(f"/v1/campaigns/{campaign}/start", headers=AUTH)
            assert started.json()["state"] == "running"
            await Worker(app).run_until_idle()
            shown = (await client.get("/v1/campaigns/spring", headers=AUTH)).json()
            assert (shown["state"], shown["outcomes"]) == ("finished", {"refused": 1, "delivered": 2}) or \
                (shown["state"], shown["outcomes"]) == ("finished", {"refused": 1, "sent": 2})
            page = (await client.get(f"/v1/campaigns/{campaign}/results?limit=2", headers=AUTH)).json()
            assert [r["line"] for r in page["results"]] == [1, 2] and page["next_cursor"] == 2
            rest = (await client.get(f"/v1/campaigns/{campaign}/results?after=2", headers=AUTH)).json()
            assert [r["outcome"] for r in rest["results"]] == ["refused"] and rest["next_cursor"] is None
            exported = await client.get(f"/v1/campaigns/{campaign}/results.csv", headers=AUTH)
            assert exported.headers["content-type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(exported.text)))
            assert [r["phone"] for r in rows] == ["+49*********00", "+49*********01", "+49*********02"]
            assert all(n.lstrip("+") not in exported.text for n in NUMBERS)
            # the CSV writes times as the JSON does (UTC as Z)
            listed = page["results"] + rest["results"]
            assert [r["admitted_at"] for r in rows] == [r["admitted_at"] or "" for r in listed]
            assert rows[0]["admitted_at"].endswith("Z")
            assert (await client.get("/v1/campaigns/nope", headers=AUTH)).status_code == 404

    asyncio.run(walk())


def test_rest_audience_upload_as_csv_and_json_lines(make) -> None:
    app = ready(make)

    async def walk() -> None:
        async with serving(app) as client:
            made = await client.post("/v1/campaigns", headers=AUTH, json={"name": "upload", "template": TEMPLATE})
            campaign = made.json()["campaign"]["id"]
            text = "phone,1,2\n" + "".join(f"{n},Bo,10%\n" for n in NUMBERS[:4]) + "bad,x,y\n"
            stopped = await client.put(f"/v1/campaigns/{campaign}/audience", content=text,
                                       headers={**AUTH, "Content-Type": "text/csv"})
            assert stopped.status_code == 422, stopped.text  # it answered 200 {"loaded": false, ...}
            assert stopped.json() == {"error": "invalid_lines", "field": "audience",
                                      "detail": "audience: 1 bad line; fix it (or load the other lines with "
                                                "skip_invalid) -- no audience is loaded",
                                      "invalid": 1, "invalid_lines": [{"line": 6, "reason": bad_reason("bad")}],
                                      "invalid_by_reason": {"invalid phone number": 1}}
            kept = await client.put(f"/v1/campaigns/{campaign}/audience?skip_invalid=true", content=text,
                                    headers={**AUTH, "Content-Type": "text/csv"})
            assert kept.json()["added"] == 4
            again = await client.put(f"/v1/campaigns/{campaign}/audience", content=text,
                                     headers={**AUTH, "Content-Type": "text/csv"})
            assert again.status_code == 422 and again.json()["detail"].endswith(
                " -- the previous audience (4 recipients) is kept")
            assert (await client.get(f"/v1/campaigns/{campaign}", headers=AUTH)).json()["recipients"] == 4
            lines = "\n".join(json.dumps({"phone": n, "params": ["Cy", "5%"]}) for n in NUMBERS[:2])
            replaced = await client.put(f"/v1/campaigns/{campaign}/audience", content=lines,
                                        headers={**AUTH, "Content-Type": "application/x-ndjson"})
            assert replaced.json()["added"] == 2
            assert (await client.get(f"/v1/campaigns/{campaign}", headers=AUTH)).json()["recipients"] == 2
            wrong = await client.put(f"/v1/campaigns/{campaign}/audience", content="x",
                                     headers={**AUTH, "Content-Type": "text/plain"})
            assert wrong.status_code == 415
            header = await client.put(f"/v1/campaigns/{campaign}/audience", content="name\nAna\n",
                                      headers={**AUTH, "Content-Type": "text/csv"})
            assert header.status_code == 422 and "phone column" in header.text

    asyncio.run(walk())


@pytest.mark.parametrize(("text", "kind"), [("phone,1,2\n", "text/csv"), ("phone,1,2\n\n\n", "text/csv"),
                                            ("", "application/x-ndjson"), ("\n\n", "application/x-ndjson")])
def test_rest_an_audience_upload_without_recipients_is_refused_and_the_audience_kept(make, text: str,
                                                                                     kind: str) -> None:
    """PUT .../audience of a header-only CSV or empty JSON lines answered 200 {"loaded": true,
    "added": 0} and the campaign's audience was gone."""
    app = ready(make)

    async def walk() -> None:
        async with serving(app) as client:
            made = await client.post("/v1/campaigns", headers=AUTH, json={
                "name": "upload", "template": TEMPLATE,
                "audience": [{"phone": n, "params": ["Ana", "5%"]} for n in NUMBERS[:3]]})
            campaign = made.json()["campaign"]["id"]
            refused = await client.put(f"/v1/campaigns/{campaign}/audience", content=text,
                                       headers={**AUTH, "Content-Type": kind})
            assert refused.status_code == 422, refused.text
            assert refused.json() == {"error": "no_recipients", "field": "audience",
                                      "detail": "audience: no recipients -- the previous audience (3 recipients) "
                                                "is kept"}
            skipped = await client.put(f"/v1/campaigns/{campaign}/audience?skip_invalid=true",
                                       content="phone,1,2\n12,x,y\n", headers={**AUTH, "Content-Type": "text/csv"})
            assert skipped.status_code == 422, skipped.text
            assert skipped.json()["detail"] == "audience: no recipients, 1 bad line skipped -- the previous " \
                                               "audience (3 recipients) is kept"
            assert (await client.get(f"/v1/campaigns/{campaign}", headers=AUTH)).json()["recipients"] == 3
            assert len((await client.get(f"/v1/campaigns/{campaign}/results", headers=AUTH)).json()["results"]) == 3
            bare = await client.post("/v1/campaigns", headers=AUTH, json={"name": "bare", "template": TEMPLATE})
            nobody = await client.put(f"/v1/campaigns/{bare.json()['campaign']['id']}/audience", content=text,
                                      headers={**AUTH, "Content-Type": kind})
            assert nobody.status_code == 422 and nobody.json()["detail"].endswith(" -- no audience is loaded")

    asyncio.run(walk())


def test_rest_create_with_an_audience_without_recipients_creates_nothing(make) -> None:
    """POST /v1/campaigns with "audience": [] (or only invalid recipients, skipped) created a draft
    with nobody to send to; it is refused as PUT .../audience refuses such a file. Leaving the
    audience out still creates a draft whose audience is uploaded later."""
    app = ready(make)

    async def walk() -> None:
        async with serving(app) as client:
            empty = await client.post("/v1/campaigns", headers=AUTH, json={
                "name": "empty", "template": TEMPLATE, "audience": []})
            assert empty.status_code == 422, empty.text
            assert empty.json() == {"error": "no_recipients", "field": "audience",
                                    "detail": "audience: no recipients -- no campaign was created"}
            invalid = await client.post("/v1/campaigns", headers=AUTH, json={
                "name": "invalid", "template": TEMPLATE, "skip_invalid": True,
                "audience": [{"phone": "12", "params": ["x", "y"]}, {"phone": "34", "params": ["x", "y"]}]})
            assert invalid.status_code == 422, invalid.text
            assert invalid.json()["detail"] == "audience: no recipients, 2 bad lines skipped -- no campaign was " \
                                               "created"
            assert (await client.get("/v1/campaigns", headers=AUTH)).json() == []
            later = await client.post("/v1/campaigns", headers=AUTH, json={"name": "later", "template": TEMPLATE})
            assert later.status_code == 201 and later.json()["audience"]["added"] == 0
            again = await client.post("/v1/campaigns", headers=AUTH, json={
                "name": "empty", "template": TEMPLATE, "audience": [{"phone": NUMBERS[0], "params": ["Ana", "5%"]}]})
            assert again.status_code == 201, again.text  # the refused create left no campaign of the name
            assert [c["name"] for c in (await client.get("/v1/campaigns", headers=AUTH)).json()] == ["empty", "later"]

    asyncio.run(walk())


def bad_reason(phone: str) -> str:
    """Why the audience loader refuses ``phone``: the reason the CLI prints for its line."""
    [bad] = list(read_items([{"phone": phone}], b"secret"))
    assert isinstance(bad, BadLine)
    return bad.reason


def test_rest_create_with_invalid_recipients_is_refused_and_creates_nothing(make) -> None:
    """POST /v1/campaigns with invalid recipients and no skip_invalid answered 201 {"loaded": false}
    and kept an empty draft of the name (the CLI and the console create nothing then): it is refused
    with each invalid line and why, and no campaign is left."""
    app = ready(make)
    audience = [{"phone": n, "params": ["Ana", "5%"]} for n in NUMBERS[:3]]
    audience[1:1] = [{"phone": "12", "params": ["x", "y"]}]
    audience.append({"phone": "not a number", "params": ["x", "y"]})

    async def walk() -> None:
        async with serving(app) as client:
            refused = await client.post("/v1/campaigns", headers=AUTH, json={
                "name": "spring", "template": TEMPLATE, "audience": audience})
            assert refused.status_code == 422, refused.text
            assert refused.json() == {
                "error": "invalid_lines", "field": "audience",
                "detail": "audience: 2 bad lines; fix them (or load the other lines with skip_invalid) -- no "
                          "campaign was created",
                "invalid": 2, "invalid_lines": [{"line": 2, "reason": bad_reason("12")},
                                                {"line": 5, "reason": bad_reason("not a number")}],
                "invalid_by_reason": {"invalid phone number": 2}}
            assert (await client.get("/v1/campaigns", headers=AUTH)).json() == []
            assert app.campaigns.listing() == []
            kept = await client.post("/v1/campaigns", headers=AUTH, json={
                "name": "spring", "template": TEMPLATE, "audience": audience, "skip_invalid": True})
            assert kept.status_code == 201, kept.text  # the refusal left no campaign of the name behind
            assert (kept.json()["audience"]["added"], [b["line"] for b in kept.json()["audience"]["invalid_lines"]]) \
                == (3, [2, 5])
            listed = (await client.get("/v1/campaigns", headers=AUTH)).json()
            assert [(c["name"], c["recipients"]) for c in listed] == [("spring", 3)]

    asyncio.run(walk())


def cli_files(app, folder: Path, numbers: list[str]) -> tuple[Path, Path]:
    """A config for the CLI on the engine's own folder (its hash key) and database, and an audience
    file of ``numbers`` for spring_sale."""
    config = folder / "cli.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.settings.database_url}"\n')
    audience = folder / "list.csv"
    audience.write_text("phone,1,2\n" + "".join(f"{n},Di,30%\n" for n in numbers))
    return config, audience


def test_cli_walk(make, tmp_path: Path) -> None:
    app = ready(make)
    config, audience = cli_files(app, tmp_path, NUMBERS[:3])
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert "audience: 3 recipients" in run("campaigns", "create", "autumn", "--template", "spring_sale",
                                           "--audience", str(audience))
    preview = json.loads(run("campaigns", "preview", "autumn", "--json"))
    assert preview["reachable"] == 2 and preview["refused"] == {"no_consent": 1}
    assert "running" in run("campaigns", "start", "autumn")
    assert "paused" in run("campaigns", "pause", "autumn")
    refused = runner.invoke(cli, ["--config", str(config), "campaigns", "pause", "autumn"])
    assert refused.exit_code != 0 and "cannot pause a campaign that is paused" in refused.output
    assert "running" in run("campaigns", "resume", "autumn")
    asyncio.run(Worker(app).run_until_idle())
    assert json.loads(run("campaigns", "show", "autumn", "--json"))["state"] == "finished"
    watched = run("campaigns", "show", "autumn", "--watch").splitlines()
    assert watched[0].startswith("finished: ") and "refused 1" in watched[0]  # not a terminal: a line per change
    report = json.loads(run("campaigns", "report", "autumn", "--json"))
    assert report["reached"] == 2 and report["refused_by_reason"] == {"no_consent": 1}
    rows = list(csv.DictReader(io.StringIO(run("campaigns", "results", "autumn", "--csv"))))
    assert [(r["phone"], r["outcome"] in ("sent", "delivered")) for r in rows] == [
        ("+49*********00", True), ("+49*********01", True), ("+49*********02", False)]
    assert [c["name"] for c in json.loads(run("campaigns", "list", "--json"))] == ["autumn"]
    # --json and --csv write times as REST does (UTC as Z); results wrote admitted_at with +00:00
    listed = json.loads(run("campaigns", "results", "autumn", "--json"))
    assert [r["admitted_at"] for r in rows] == [r["admitted_at"] or "" for r in listed]
    shown = json.loads(run("campaigns", "show", "autumn", "--json"))

    async def rest() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        async with serving(app) as client:
            page = (await client.get("/v1/campaigns/autumn/results", headers=AUTH)).json()
            return page["results"], (await client.get("/v1/campaigns/autumn", headers=AUTH)).json()

    rest_results, rest_campaign = asyncio.run(rest())
    assert listed == rest_results and all(r["admitted_at"].endswith("Z") for r in listed)
    assert shown["started_at"] == rest_campaign["started_at"] and shown["started_at"].endswith("Z")


def test_the_report_counts_rates_failures_refusals_replies_and_pricing(make, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from connectzap import Event, EventKind, InboundMessage, MessageStatus
    from connectzap.testing import FakeWhatsApp, run as run_workers
    app = ready(make)
    fake = FakeWhatsApp()
    app.use_channel(fake)
    for phone in NUMBERS[2:4]:
        grant(app, phone)
    made = app.campaigns.create("report", TEMPLATE)
    from connectzap.core.campaigns import read_file
    text = "phone,1,2\n" + "".join(f"{n},Eve,5%\n" for n in NUMBERS[:5])
    app.campaigns.load_audience(made.id, read_file(io.StringIO(text), "csv", app.secret))
    fake.fail_next("fatal")
    app.campaigns.control(made.id, "start")
    run_workers(app)
    at = datetime.now(UTC)
    pricing = {"category": "marketing", "type": "regular", "billable": True}
    events = []
    for attempt in fake.attempts:
        if attempt.wamid:
            for status in ("delivered", "read"):
                events.append(Event.of(EventKind.MESSAGE_STATUS, MessageStatus(
                    wamid=attempt.wamid, status=status, timestamp=at, outbox_id=attempt.outbox_id,
                    recipient="+" + attempt.body["to"], pricing=pricing), source="whatsapp",
                    dedupe_key=f"{attempt.wamid}:{status}"))
    first = "+" + fake.sent()[0]["to"]
    events.append(Event.of(EventKind.INBOUND_MESSAGE, InboundMessage(
        wamid="wamid.reply", type="text", timestamp=at, contact={"phone": first}, text="tell me more"),
        source="whatsapp", dedupe_key="wamid.reply"))
    app.ingest(events)
    run_workers(app)
    report = app.campaigns.report(made.id)
    assert report.outcomes == {"refused": 1, "read": 2, "replied": 1, "failed": 1}
    assert (report.reached, report.delivered_rate, report.read_rate, report.replied_rate) == (3, 1.0, 1.0, 0.3333)
    assert report.failed_by_code == {"100": 1}
    assert report.refused_by_reason == {"no_consent": 1}
    assert report.pricing == [{"category": "marketing", "type": "regular", "billable": True, "messages": 3}]


def test_cli_create_with_an_audience_it_refuses_leaves_no_campaign_behind(make, tmp_path: Path) -> None:
    """`campaigns create` that fails on its audience file (exit 1, "no audience loaded; fix them")
    kept an empty draft of that name: after fixing the file and creating again, `campaigns list`
    showed two campaigns of the name, one of them empty."""
    app = ready(make)
    config, _ = cli_files(app, tmp_path, [])
    bad = tmp_path / "bad.csv"
    bad.write_text(f"phone,1,2\n{NUMBERS[0]},Di,30%\nnot a number,Bo,5%\n")
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text(f"phone;1;2\n{NUMBERS[0]};Di;30%\n")
    runner = CliRunner()
    for audience in (bad, semicolons):
        failed = runner.invoke(cli, ["--config", str(config), "campaigns", "create", "autumn", "--template",
                                     "spring_sale", "--audience", str(audience)])
        assert failed.exit_code == 1 and "error:" in failed.output
        listed = runner.invoke(cli, ["--config", str(config), "campaigns", "list", "--json"])
        assert listed.exit_code == 0 and json.loads(listed.output) == []
    bad.write_text(f"phone,1,2\n{NUMBERS[0]},Di,30%\n")
    made = runner.invoke(cli, ["--config", str(config), "campaigns", "create", "autumn", "--template", "spring_sale",
                               "--audience", str(bad)])
    assert made.exit_code == 0, made.output
    listed = runner.invoke(cli, ["--config", str(config), "campaigns", "list", "--json"])
    assert [(c["name"], c["recipients"]) for c in json.loads(listed.output)] == [("autumn", 1)]


def test_cli_counts_agree_in_number(make, tmp_path: Path) -> None:
    """One recipient read "audience: 1 recipients", "(draft, 1 recipients)" and "1 recipients still
    to send to"; one duplicate or bad line "1 duplicate(s)", "1 bad line(s)"."""
    app = ready(make)
    config, _ = cli_files(app, tmp_path, [])
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Any:
        result = runner.invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == code, result.output
        return result

    one = tmp_path / "one.csv"
    one.write_text(f"phone,1,2\n{NUMBERS[0]},Di,30%\n{NUMBERS[0]},Bo,5%\nnot a number,Cy,5%\n")
    made = run("campaigns", "create", "autumn", "--template", "spring_sale", "--audience", str(one), "--skip-invalid")
    assert made.stdout.splitlines()[0] == "audience: 1 recipient, 1 duplicate of an earlier line skipped, " \
                                          "1 bad line skipped"
    assert made.stdout.splitlines()[1].endswith(" (draft, 1 recipient)")
    assert run("campaigns", "preview", "autumn").stdout.startswith("1 recipient still to send to;")
    two = tmp_path / "two.csv"
    two.write_text("phone,1,2\n" + "".join(f"{n},Di,30%\n{n},Bo,5%\n" for n in NUMBERS[:2])
                   + "not a number,Cy,5%\n" * 2)
    assert run("campaigns", "audience", "autumn", str(two), "--skip-invalid").stdout == \
        "audience: 2 recipients, 2 duplicates of an earlier line skipped, 2 bad lines skipped\n"
    assert run("campaigns", "preview", "autumn").stdout.startswith("2 recipients still to send to;")
    many_bad = tmp_path / "bad.csv"
    many_bad.write_text(f"phone,1,2\n{NUMBERS[0]},Di,30%\n" + "not a number,Cy,5%\n" * 21)
    refused = run("campaigns", "audience", "autumn", str(many_bad), code=1)
    assert f"{many_bad}: ... and 1 more bad line\n" in refused.stderr


def test_cli_a_refused_audience_file_says_the_previous_audience_is_kept(make, tmp_path: Path) -> None:
    """`campaigns audience NAME FILE` refused for a bad line said "no audience loaded" while the
    campaign kept the audience it had (a replacement is staged and swapped in only whole)."""
    app = ready(make)
    config, three = cli_files(app, tmp_path, NUMBERS[:3])
    bad = tmp_path / "bad.csv"
    bad.write_text(f"phone,1,2\n{NUMBERS[4]},Di,30%\nnot a number,Bo,5%\n")
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text(f"phone;1;2\n{NUMBERS[4]};Di;30%\n")
    one = tmp_path / "one.csv"
    one.write_text(f"phone,1,2\n{NUMBERS[5]},Di,30%\n")
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["--config", str(config), *args])

    def recipients(name: str) -> int:
        count: int = json.loads(run("campaigns", "show", name, "--json").stdout)["recipients"]
        return count

    assert run("campaigns", "create", "autumn", "--template", "spring_sale", "--audience", str(three)).exit_code == 0
    assert run("campaigns", "create", "winter", "--template", "spring_sale").exit_code == 0
    assert run("campaigns", "create", "spring", "--template", "spring_sale", "--audience", str(one)).exit_code == 0
    for campaign, kept in (("autumn", "the previous audience (3 recipients) is kept"),
                           ("spring", "the previous audience (1 recipient) is kept"),
                           ("winter", "no audience is loaded")):
        before = recipients(campaign)
        for file in (bad, semicolons):
            refused = run("campaigns", "audience", campaign, str(file))
            assert refused.exit_code == 1, refused.output
            assert refused.stderr.splitlines()[-1].endswith(f" -- {kept}"), refused.stderr
            assert "no audience loaded" not in refused.stderr
            assert recipients(campaign) == before
    refused = run("campaigns", "audience", "autumn", str(bad)).stderr.splitlines()[-1]
    assert refused == f"error: {bad}: 1 bad line; fix it (or load the other lines with --skip-invalid) -- " \
                      "the previous audience (3 recipients) is kept"
    created = run("campaigns", "create", "summer", "--template", "spring_sale", "--audience", str(bad))
    assert created.exit_code == 1 and created.stderr.splitlines()[-1].endswith(" -- no campaign was created")


@pytest.mark.parametrize(("text", "fmt"), [("phone,1,2\n", "csv"), ("phone,1,2\n\n\n", "csv"), ("", "jsonl"),
                                           ("\n", "jsonl")])
def test_cli_an_audience_file_without_recipients_is_refused(make, tmp_path: Path, text: str, fmt: str) -> None:
    """A file with a header line and no recipients loaded 0 recipients and exited 0: `audience`
    replaced the campaign's audience with nobody, `create` made a draft with nobody to send to."""
    app = ready(make)
    config, three = cli_files(app, tmp_path, NUMBERS[:3])
    empty = tmp_path / f"empty.{fmt}"
    empty.write_text(text)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["--config", str(config), *args])

    assert run("campaigns", "create", "autumn", "--template", "spring_sale", "--audience", str(three)).exit_code == 0
    refused = run("campaigns", "audience", "autumn", str(empty))
    assert refused.exit_code == 1, refused.output
    assert refused.stderr == f"error: {empty}: no recipients -- the previous audience (3 recipients) is kept\n"
    assert json.loads(run("campaigns", "show", "autumn", "--json").stdout)["recipients"] == 3
    created = run("campaigns", "create", "winter", "--template", "spring_sale", "--audience", str(empty))
    assert created.exit_code == 1, created.output
    assert created.stderr == f"error: {empty}: no recipients -- no campaign was created\n"
    assert [c["name"] for c in json.loads(run("campaigns", "list", "--json").stdout)] == ["autumn"]


def test_cli_an_audience_of_bad_lines_only_is_refused_even_with_skip_invalid(make, tmp_path: Path) -> None:
    app = ready(make)
    config, three = cli_files(app, tmp_path, NUMBERS[:3])
    bad = tmp_path / "bad.csv"
    bad.write_text("phone,1,2\nnot a number,Bo,5%\n,Cy,5%\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["--config", str(config), "campaigns", "create", "autumn", "--template", "spring_sale",
                               "--audience", str(three)]).exit_code == 0
    refused = runner.invoke(cli, ["--config", str(config), "campaigns", "audience", "autumn", str(bad),
                                  "--skip-invalid"])
    assert refused.exit_code == 1, refused.output
    assert refused.stderr.splitlines()[-1] == f"error: {bad}: no recipients, 2 bad lines skipped -- the " \
                                              "previous audience (3 recipients) is kept"
    shown = runner.invoke(cli, ["--config", str(config), "campaigns", "show", "autumn", "--json"])
    assert json.loads(shown.stdout)["recipients"] == 3


def test_start_at_a_time_in_the_past_is_refused_not_sent_at_once(make, tmp_path: Path) -> None:
    """`start --at 2025-12-24T09:00:00Z` (a year typed wrong) started the campaign at once, to
    everyone, and `show` went on giving the past time as starts_at; a campaign already scheduled
    was started the same way. Now it is refused and changes nothing, on the CLI and REST."""
    app = ready(make)
    config, audience = cli_files(app, tmp_path, NUMBERS[:2])
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["--config", str(config), *args])

    assert run("campaigns", "create", "autumn", "--template", "spring_sale", "--audience", str(audience)).exit_code == 0
    past = run("campaigns", "start", "autumn", "--at", "2025-12-24T09:00:00Z")
    assert past.exit_code == 1, past.output
    assert "2025-12-24 09:00 UTC is in the past" in past.output and "without a time" in past.output
    assert json.loads(run("campaigns", "show", "autumn", "--json").output)["state"] == "draft"
    assert run("campaigns", "start", "autumn", "--at", "2099-12-24T09:00:00Z").exit_code == 0
    assert run("campaigns", "start", "autumn", "--at", "2025-12-24T09:00:00Z").exit_code == 1
    shown = json.loads(run("campaigns", "show", "autumn", "--json").output)
    assert (shown["state"], shown["starts_at"][:10]) == ("scheduled", "2099-12-24")

    async def walk() -> None:
        async with serving(app) as client:
            refused = await client.post("/v1/campaigns/autumn/start?at=2025-12-24T09:00:00Z", headers=AUTH)
            assert refused.status_code == 422 and "in the past" in refused.text
            assert (await client.get("/v1/campaigns/autumn", headers=AUTH)).json()["state"] == "scheduled"

    asyncio.run(walk())
    assert campaign_messages(app, shown["id"]) == 0
