"""Every outcome is visible without reading the database: `connectzap events list|show` and
`GET /v1/events[/{id}]` say what each event became and why -- a message refused by the gate, a
lead skipped for `no_consent`, an order status no rule matches, a dead letter -- masked, paged,
and with an erased payload shown as erased."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from console_support import PLUGINS as ORDER_PLUGINS
from server_support import AUTH, KEY, serving

from connectzap import Contact, Lead, Order
from connectzap.core.models import Event, EventKind, InboundMessage
from connectzap.testing import run, seed_template

CONNECTZAP = Path(sys.executable).with_name("connectzap")
ANA = "+34612345678"
SECRET_TEXT = "my door code is 4711, leave it at the back"

PLUGINS: dict[str, Any] = {
    **ORDER_PLUGINS,  # a confirmation when processing; a shipping note whose delivery dies
    "lead_welcome": {"template": "welcome_lead", "language": "en", "params": ["{{ firstname }}"]},
}


def order(status: str) -> Order:
    return Order(id="88", number="1088", status=status, shop="main",
                 customer=Contact(phone=ANA, first_name="Ana", country="ES"))


@pytest.fixture
def story(make):
    """Five events, five different outcomes; returns (app, event ids by name)."""
    app = make(api={"keys": [KEY]}, plugins=PLUGINS, privacy={"retention_hours": 1})
    seed_template(app, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    seed_template(app, "order_shipped", "Order {{1}} is on its way.")
    seed_template(app, "welcome_lead", "Welcome {{1}}!")
    events = {
        "no_rule": Event.of(EventKind.ORDER_CREATED, order("pending"), source="woocommerce", dedupe_key="o-1"),
        "refused": Event.of(EventKind.ORDER_UPDATED, order("processing"), source="woocommerce", dedupe_key="o-2",
                            previous_status="pending"),
        "dead": Event.of(EventKind.ORDER_UPDATED, order("completed"), source="woocommerce", dedupe_key="o-3",
                         previous_status="processing"),
        "lead": Event.of(EventKind.LEAD, Lead(id="501", contact=Contact(phone=ANA, first_name="Ana")),
                         source="hubspot", dedupe_key="lead-501"),
        "inbound": Event.of(EventKind.INBOUND_MESSAGE, InboundMessage(
            wamid="wamid.in-1", type="text", timestamp="2020-01-01T00:00:00Z", contact=Contact(phone=ANA),
            text=SECRET_TEXT), source="whatsapp", dedupe_key="wamid.in-1"),
    }
    ids = {name: app.ingest([event])[0].event_id for name, event in events.items()}
    run(app)
    return app, ids


def test_each_event_says_what_it_became_and_why(story):
    app, ids = story
    listed = {e.id: e for e in app.events()}
    assert [e.id for e in app.events()] == sorted(ids.values(), reverse=True)  # newest first
    assert "no_rule" in listed[ids["no_rule"]].outcome and "'pending'" in listed[ids["no_rule"]].outcome
    assert "order_confirmation refused (no_consent" in listed[ids["refused"]].outcome
    assert listed[ids["lead"]].outcome.startswith("lead_welcome: skipped (no_consent)")
    dead = listed[ids["dead"]]
    assert dead.status == "dead" and "tracking_numbr" in dead.outcome
    assert f"connectzap events retry {ids['dead']}" in dead.outcome

    shown = app.event(ids["refused"])
    by_target = {d.target: d for d in shown.deliveries}
    assert set(by_target) >= {"core", "order_notifications"}
    plugin = by_target["order_notifications"]
    assert plugin.role == "plugin" and plugin.status == "done" and plugin.attempts == 1
    [message] = plugin.messages
    assert (message.status, message.reason, message.what) == ("refused", "no_consent", "order_confirmation")
    assert app.message(message.id)["source_event_id"] == ids["refused"]

    lead = {d.target: d for d in app.event(ids["lead"]).deliveries}["lead_welcome"]
    assert lead.skipped is not None and lead.skipped.code == "no_consent" and not lead.messages
    no_rule = {d.target: d for d in app.event(ids["no_rule"]).deliveries}["order_notifications"]
    assert [n.code for n in no_rule.notes] == ["no_rule"]
    dead_one = {d.target: d for d in app.event(ids["dead"]).deliveries}["order_notifications"]
    assert dead_one.status == "dead" and "numbr" in (dead_one.last_error or "")
    assert [(d.event_id, d.target) for d in app.dead_letters()] == [(ids["dead"], "order_notifications")]

    inbound = app.event(ids["inbound"])
    assert inbound.subject == "text message from +34*******78"
    everything = json.dumps([e.model_dump(mode="json") for e in app.events()]) \
        + json.dumps([app.event(i).model_dump(mode="json") for i in ids.values()])
    assert ANA not in everything and ANA.lstrip("+") not in everything and SECRET_TEXT not in everything
    assert "Ana" not in everything  # no names either: the subject is about the record, not the person


def test_an_erased_payload_shows_as_erased(make):
    app = make(plugins=PLUGINS, privacy={"retention_hours": 0})
    [done] = app.ingest([Event.of(EventKind.ORDER_CREATED, order("pending"), source="woocommerce",
                                  dedupe_key="o-erased")])
    pending = app.event(done.event_id)
    assert pending.status == "pending" and pending.payload == "kept" and pending.subject.startswith("order 1088")
    assert pending.outcome == "waiting for a worker" and pending.deliveries == []
    run(app)
    finished = app.event(done.event_id)
    assert (finished.status, finished.payload, finished.subject) == ("done", "erased", None)
    assert "no_rule" in finished.outcome  # the outcome outlives the payload


def test_filters_and_time_range(story):
    app, ids = story
    assert {e.id for e in app.events(source="hubspot")} == {ids["lead"]}
    assert {e.id for e in app.events(kind="order_updated")} == {ids["refused"], ids["dead"]}
    assert {e.id for e in app.events(status="dead")} == {ids["dead"]}
    received = app.event(ids["no_rule"]).received_at.timestamp()
    assert app.events(until=received - 0.001) == []
    assert len(app.events(since=received - 0.001)) == len(ids)
    assert [e.id for e in app.events(before_id=ids["refused"])] == [ids["no_rule"]]


async def test_rest_events_are_authenticated_paged_and_documented(story):
    app, ids = story
    async with serving(app) as client:
        assert (await client.get("/v1/events")).status_code == 401
        seen: list[int] = []
        cursor = None
        while True:
            page = await client.get("/v1/events", headers=AUTH,
                                    params={"limit": 2} | ({"cursor": cursor} if cursor else {}))
            assert page.status_code == 200, page.text
            seen += [e["id"] for e in page.json()["events"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(ids.values(), reverse=True)
        dead = (await client.get("/v1/events", headers=AUTH, params={"status": "dead"})).json()["events"]
        assert [e["id"] for e in dead] == [ids["dead"]] and dead[0]["received_at"].endswith("Z")
        one = (await client.get(f"/v1/events/{ids['lead']}", headers=AUTH)).json()
        skipped = {d["target"]: d for d in one["deliveries"]}["lead_welcome"]["skipped"]
        assert skipped["code"] == "no_consent"
        missing = await client.get("/v1/events/99999", headers=AUTH)
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        spec = (await client.get("/openapi.json")).json()
        assert {"/v1/events", "/v1/events/{event_id}"} <= set(spec["paths"])
        assert spec["paths"]["/v1/events"]["get"]["security"]


async def test_a_garbage_cursor_is_a_clear_400_not_an_empty_page(make):
    app = make(api={"keys": [KEY]})
    async with serving(app) as client:
        for path in ("/v1/messages", "/v1/events"):
            for cursor in ("garbage", "0", "-5", "m'; drop", "9" * 30, "mXYZ", "1.5"):
                answer = await client.get(path, headers=AUTH, params={"cursor": cursor})
                assert answer.status_code == 400, (path, cursor, answer.text)
                assert answer.json()["error"] == "bad_cursor" and "next_cursor" in answer.json()["detail"]
        assert (await client.get("/v1/events", headers=AUTH, params={"cursor": "12"})).json()["events"] == []
        assert (await client.get("/v1/messages", headers=AUTH, params={"cursor": "m0123456789abcdef0123456"})
                ).json()["messages"] == []


# --- the CLI, as a user types it -------------------------------------------------------------------

def cli(app, *args: str) -> subprocess.CompletedProcess[str]:
    config = Path(app.settings.data_dir) / "cli.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.db.url}"\n'
                      f'[sandbox]\nquiet = true\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTZAP_")}
    return subprocess.run([str(CONNECTZAP), "--config", str(config), *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_cli_events_list_show_dead_and_retry(story):
    app, ids = story
    newest = sorted(ids.values(), reverse=True)
    table = cli(app, "events", "list", "--limit", "3")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:5] == ["id", "received", "source", "kind", "status"]
    assert [int(r.split()[0]) for r in rows] == newest[:3]
    assert "skipped (no_consent)" in table.stdout
    assert table.stderr.strip() == f"more: connectzap events list --before {newest[2]}"

    everything = cli(app, "events", "list", "--json").stdout
    listed = json.loads(everything)
    assert [e["id"] for e in listed] == newest and all(e["received_at"].endswith("Z") for e in listed)
    assert "no_rule" in {e["id"]: e for e in listed}[ids["no_rule"]]["outcome"]
    assert ANA not in everything + table.stdout and SECRET_TEXT not in everything + table.stdout

    dead = json.loads(cli(app, "events", "list", "--json", "--source", "woocommerce", "--status", "dead").stdout)
    assert [e["id"] for e in dead] == [ids["dead"]]

    shown = cli(app, "events", "show", str(ids["refused"]))
    assert shown.returncode == 0 and "order_notifications" in shown.stdout and "refused (no_consent)" in shown.stdout
    detail = json.loads(cli(app, "events", "show", str(ids["refused"]), "--json").stdout)
    assert {d["target"] for d in detail["deliveries"]} >= {"core", "order_notifications"}

    letters = json.loads(cli(app, "events", "dead", "--json").stdout)
    assert [(d["event_id"], d["target"]) for d in letters] == [(ids["dead"], "order_notifications")]
    assert cli(app, "events", "retry", str(ids["dead"])).stdout.strip() == "requeued 1 delivery"


# --- counts in outcomes agree in number ----------------------------------------------------------

@pytest.mark.parametrize(("status", "attempts", "extra", "said"), [
    ("dead", 1, {}, "dead letter after 1 attempt: boom"),
    ("dead", 2, {}, "dead letter after 2 attempts: boom"),
    ("pending", 1, {}, "failed 1 time, next try soon: boom"),
    ("pending", 2, {}, "failed 2 times, next try soon: boom"),
    ("done", 1, {"released": 1}, "1 message waiting for the template judged again"),
    ("done", 1, {"released": 2}, "2 messages waiting for the template judged again"),
    ("done", 1, {"cancelled": 1}, "cancelled 1 scheduled message"),
    ("done", 1, {"cancelled": 2}, "cancelled 2 scheduled messages"),
])
def test_delivery_outcomes_count_in_words(status, attempts, extra, said):
    from datetime import UTC, datetime

    from connectzap.core.outcomes import _delivery_outcome
    from connectzap.core.views import DeliveryView
    view = DeliveryView(target="core", role="core", status=status, outcome="", attempts=attempts, last_error="boom",
                        updated_at=datetime.now(UTC))
    assert _delivery_outcome(view, extra) == said


@pytest.mark.parametrize(("minutes", "said"), [(1, "after 1 minute?"), (2, "after 2 minutes?")])
def test_a_fallback_check_counts_its_minutes_in_words(minutes, said):
    from connectzap.core.models import FallbackDue
    from connectzap.core.outcomes import _subject
    check = Event.of(EventKind.FALLBACK_DUE, FallbackDue(message_id="m1", minutes=minutes), source="connectzap",
                     dedupe_key="fallback_after:m1")
    assert _subject(check.model_dump_json()) == f"is message m1 delivered {said} if not, its fallback"
