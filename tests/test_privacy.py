"""Privacy scan: once everything is finished, the database holds no phone number and no message text.

On SQLite the raw bytes of the database file and its WAL are searched (freed pages included);
on PostgreSQL every text column of every table. With ``retention_hours`` set, the same data is
present until it expires (which also shows the scan can see it) and gone after ``erase_expired``.

Real ``serve`` processes: a backlog of status webhooks that no worker has dispatched holds no
number (``serve --no-workers``), and a campaign against the Graph stand-in, with status webhooks
flowing back and one SIGKILL, leaves no number and no text in the database or the JSON log.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import phonenumbers
import pytest
from sqlalchemy import create_engine, text

from connectzap import (Category, ConsentChange, Connectzap, Contact, Event, EventKind, InboundMessage, MessageStatus,
                        Order, Outgoing, TemplateContent, TextContent, hookimpl)
from connectzap.connectors.whatsapp.signatures import sign_meta
from connectzap.core import clock
from connectzap.core.plugins import pm
from connectzap.core.worker import Worker
from connectzap.testing import seed_template
from connectzap.testing.fake_graph import FakeGraph
from serve_support import Served, config_file

PHONE = "+4915112345678"
PHONE_FORMS = ["+4915112345678", "4915112345678", "015112345678", "0151 12345678", "15112345678"]
INBOUND_TEXT = "Where is my parcel? Ring Zebrastrasse 17 please"
FREE_FORM_TEXT = "Your parcel waits at Kiosk Quastenflosser"
CUSTOMER_NAME = "Annelore Privatnamova"
SECRETS = [*PHONE_FORMS, INBOUND_TEXT, FREE_FORM_TEXT, CUSTOMER_NAME]


class ConfirmingPlugin:
    @hookimpl
    def on_order_created(self, order: Order, ctx: Any) -> None:
        assert order.customer is not None
        ctx.send(order.customer, TemplateContent(name="order_confirmation", language="en",
                                                 body=[order.customer.name or "", order.id]), key=f"o:{order.id}")


@pytest.fixture(autouse=True)
def confirming_plugin() -> Iterator[None]:
    pm.register(ConfirmingPlugin(), name="privacy_plugin")
    yield
    pm.unregister(name="privacy_plugin")


def exercise(app: Connectzap) -> None:
    """Inbound message, order with a customer phone, template and free-form sends, statuses."""
    seed_template(app, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed")
    inbound = InboundMessage(wamid="wamid.in.privacy", type="text", timestamp=clock.utcnow(),
                             contact=Contact(phone="4915112345678", name=CUSTOMER_NAME), text=INBOUND_TEXT)
    order = Event(kind=EventKind.ORDER_CREATED, source="shop", dedupe_key="order-77",
                  consents=[ConsentChange(phone="0151 12345678", country="DE", category=Category.UTILITY,
                                          granted=True, source="checkout", proof="checkbox at checkout")],
                  data={"id": "77", "status": "processing",
                        "customer": {"phone": "0151 12345678", "country": "DE", "name": CUSTOMER_NAME}})
    app.ingest([Event.of(EventKind.INBOUND_MESSAGE, inbound, source="whatsapp", dedupe_key=inbound.wamid), order])
    asyncio.run(Worker(app).run_until_idle())
    decision = app.send(Outgoing(to=PHONE, content=TextContent(body=FREE_FORM_TEXT)))
    assert decision.status == "queued", decision
    asyncio.run(Worker(app).run_until_idle())
    statuses = sorted(m["status"] for m in app.messages())
    assert statuses == ["delivered", "delivered"], statuses  # both went out, statuses applied


def found_in_database(app: Connectzap) -> list[str]:
    """Which of SECRETS the database still holds anywhere."""
    return found_at(app.db.url, SECRETS)


def found_at(url: str, secrets: list[str]) -> list[str]:
    """Which of ``secrets`` the database at ``url`` holds: in the raw bytes of a SQLite file and its
    WAL (freed pages included), in any text column on PostgreSQL."""
    if url.startswith("sqlite"):  # the bytes as they are: no checkpoint here, the product's own must have run
        path = Path(url.split(":///", 1)[1])
        raw = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
        return [s for s in secrets if s.encode() in raw]
    found = set()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        columns = conn.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying')")).all()
        assert columns
        for table, column in columns:
            for (value,) in conn.execute(text(f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL')):
                found.update(s for s in secrets if s in value)
    engine.dispose()
    return sorted(found)


def test_nothing_personal_remains_after_processing(app: Connectzap) -> None:
    exercise(app)
    Worker(app).housekeeping()  # what a running worker does every few seconds
    assert found_in_database(app) == []


def test_the_wal_keeps_erased_data_until_the_housekeeping_checkpoint(app: Connectzap) -> None:
    """SQLite writes changes to the -wal file first: the page versions from before an erasure stay
    there until a checkpoint. The worker's housekeeping checkpoints (TRUNCATE)."""
    if not app.db.is_sqlite:
        pytest.skip("SQLite only")
    exercise(app)
    wal = Path(app.db.url.split(":///", 1)[1] + "-wal")
    assert INBOUND_TEXT.encode() in wal.read_bytes()  # erased in the tables, not yet in the WAL
    Worker(app).housekeeping()
    assert wal.stat().st_size == 0
    assert found_in_database(app) == []


def test_retention_keeps_payloads_until_they_expire(make: Any) -> None:
    app = make(privacy={"retention_hours": 2})
    exercise(app)
    assert set(found_in_database(app)) >= {"+4915112345678", INBOUND_TEXT, FREE_FORM_TEXT, CUSTOMER_NAME}
    later = datetime.now(UTC).timestamp() + 2 * 3600 + 60
    with clock.use_clock(lambda: later):
        Worker(app).housekeeping()
    assert found_in_database(app) == []



class FailingCrmPlugin:
    @hookimpl
    def on_order_created(self, order: Order, ctx: Any) -> None:
        raise LookupError(f"no CRM contact for {PHONE} (wa_id {PHONE[1:]})")


def test_error_texts_kept_for_good_mask_the_numbers_they_quote(make: Any) -> None:
    """A dead letter's error and a failed message's details outlive the payloads: a number quoted in
    them is masked when it is written, not only when it is shown."""
    app = make(workers={"max_attempts": 1})
    pm.register(FailingCrmPlugin(), name="privacy_failing_crm")
    try:
        app.ingest([Event(kind=EventKind.ORDER_CREATED, source="shop", dedupe_key="order-88",
                          data={"id": "88", "status": "processing"})])
        asyncio.run(Worker(app).run_until_idle())
    finally:
        pm.unregister(name="privacy_failing_crm")
    seed_template(app, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed")
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="test"))
    sent = app.send(Outgoing(to=PHONE, content=TemplateContent(name="order_confirmation", language="en",
                                                               body=["A", "1"])))
    asyncio.run(Worker(app).run_until_idle())
    wamid = app.message(sent.id)["wamid"]
    failed = MessageStatus(wamid=wamid, status="failed", timestamp=clock.utcnow(),
                           errors=[{"code": 131026, "title": "Message undeliverable",
                                    "details": f"Recipient {PHONE} cannot be reached"}])
    app.ingest([Event.of(EventKind.MESSAGE_STATUS, failed, source="whatsapp", dedupe_key=f"{wamid}:failed")])
    asyncio.run(Worker(app).run_until_idle())
    with app.db.engine.connect() as conn:
        kept = [value for (value,) in conn.execute(text(
            "SELECT last_error FROM deliveries WHERE last_error IS NOT NULL UNION ALL "
            "SELECT last_error FROM events WHERE last_error IS NOT NULL UNION ALL "
            "SELECT error_details FROM outbox WHERE error_details IS NOT NULL"))]
    assert any("LookupError: no CRM contact for +49*********78" in value for value in kept), kept
    assert any("Recipient +49*********78 cannot be reached" in value for value in kept), kept
    assert [form for form in (PHONE, PHONE[1:]) for value in kept if form in value] == []

# --- real serve processes ------------------------------------------------------------------------

APP_SECRET = "privacy-app-secret-0123456789"
HASH_SECRET = "privacy-hash-secret-0123456789abcdef"
TOKEN = "EAAG-privacy-access-token"
PNID = "106540352242922"
REGIONS = ["DE", "US", "GB", "FR", "BR", "IN", "ES", "IT"]


def campaign_numbers(count: int) -> list[str]:
    """``count`` distinct valid mobile numbers from several countries (E.164)."""
    out: list[str] = []
    for i in itertools.count():
        region = REGIONS[i % len(REGIONS)]
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        digits = str(example.national_number)
        candidate = phonenumbers.parse(f"+{example.country_code}{digits[:-4]}{(i * 7919) % 10000:04d}")
        e164 = phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164)
        if phonenumbers.is_valid_number(candidate) and e164 not in out:
            out.append(e164)
        if len(out) == count:
            return out
    raise AssertionError("unreachable")


def number_forms(e164: str) -> list[str]:
    """Every way the number could be written: E.164, digits only, national (as printed and as digits)."""
    parsed = phonenumbers.parse(e164)
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return sorted({e164, e164[1:], national, re.sub(r"\D", "", national), str(parsed.national_number)})


def status_webhook(items: list[dict[str, Any]], names: dict[str, str]) -> bytes:
    """One Meta delivery with several statuses (and the contacts block Meta adds, with profile names)."""
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
             "contacts": [{"wa_id": item["recipient_id"], "profile": {"name": names[item["recipient_id"]]}}
                          for item in items],
             "statuses": items}
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "419561257915477", "changes": [{"field": "messages", "value": value}]}]}
                      ).encode()


def status_item(wamid: str, status: str, wa_id: str, callback: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(time.time())),
                            "recipient_id": wa_id,
                            "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility"}}
    if callback:
        item["biz_opaque_callback_data"] = callback
    return item


def signed(body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature-256": sign_meta(body, APP_SECRET), "Content-Type": "application/json"}


def serve_config(folder: Path, database_url: str, graph_url: str | None = None) -> Path:
    live = (f'access_token = "{TOKEN}"\nphone_number_id = "{PNID}"\napi_base_url = "{graph_url}"\n'
            if graph_url else "")
    return config_file(folder / "serve.toml", data_dir=folder, database_url=database_url, rest=f"""
[privacy]
hash_secret = "{HASH_SECRET}"
[workers]
poll_interval_seconds = 0.05
[sandbox]
quiet = true
simulate_statuses = false
[connectors.whatsapp]
app_secrets = ["{APP_SECRET}"]
verify_token = "privacy-verify-token"
{live}""")


def table_count(url: str, sql: str) -> int:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_backlog_of_undispatched_status_events_holds_no_number(make: Any) -> None:
    """Workers down (``serve --no-workers``), status webhooks keep coming: the journal fills with
    undispatched events, and not one of them holds a recipient's number or name."""
    engine = make()
    url, folder = engine.db.url, Path(engine.settings.data_dir)
    engine.close()
    recipients = campaign_numbers(120)
    names = {n[1:]: f"Profilname-{i:03d}-Quokka" for i, n in enumerate(recipients)}
    wamids = [f"wamid.backlog.{i:04d}" for i in range(len(recipients))]
    served = Served(serve_config(folder, url), options=("--no-workers", "--log-format", "json"))
    try:
        with httpx.Client(base_url=served.url(), timeout=30) as client:
            for at in range(0, len(recipients), 10):
                items = [status_item(wamid, status, number[1:])
                         for wamid, number in zip(wamids[at:at + 10], recipients[at:at + 10], strict=True)
                         for status in ("sent", "delivered", "read")]
                answer = client.post("/webhooks/whatsapp", content=(body := status_webhook(items, names)),
                                     headers=signed(body))
                assert answer.status_code == 200 and answer.json()["received"] == 30, answer.text
    finally:
        code = served.stop()
    assert code == 0
    assert table_count(url, "SELECT count(*) FROM events WHERE status = 'pending' AND payload IS NOT NULL") == 360
    assert found_at(url, wamids) == wamids  # the backlog is there, and the scan reads it
    personal = [form for number in recipients for form in number_forms(number)] + list(names.values())
    assert found_at(url, personal) == []
    log = "".join(served.output)
    assert "webhook accepted" in log
    assert [form for form in personal if form in log] == []


def inbound_webhook(wamid: str, wa_id: str, name: str, body: str) -> bytes:
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
             "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
             "messages": [{"from": wa_id, "id": wamid, "timestamp": str(int(time.time())), "type": "text",
                           "text": {"body": body}}]}
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "419561257915477", "changes": [{"field": "messages", "value": value}]}]}
                      ).encode()


def until(check: Any, what: str, within: float = 180) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` and the last answer."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what} (last: {last!r})")


def statuses_of(url: str) -> dict[str, int]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT status, count(*) FROM outbox GROUP BY status")).all())
    finally:
        engine.dispose()


def rows_of(url: str, sql: str) -> list[Any]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql)).all()]
    finally:
        engine.dispose()


UNFINISHED = ("SELECT (SELECT count(*) FROM outbox WHERE status IN ('queued', 'sending', 'unknown'))"
              " + (SELECT count(*) FROM events WHERE status = 'pending')")


@pytest.mark.slow
def test_a_crash_and_a_campaign_leave_no_number_and_no_text_in_the_database_or_the_log(make: Any) -> None:
    """A real ``serve`` sends a 300-message campaign (and replies to five customers who wrote)
    through the Graph stand-in, whose status webhooks flow back; it is SIGKILLed mid-campaign and
    restarted. Once the work is done, neither the database (SQLite file and WAL byte for byte, or
    every PostgreSQL text column) nor the JSON log holds a number in any format, a name or a text."""
    engine = make()
    url, folder = engine.db.url, Path(engine.settings.data_dir)
    seed_template(engine, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    engine.close()
    recipients = campaign_numbers(300)
    writers = recipients[:5]
    names = {n: f"Kundin-{i:03d}-Zephyrine" for i, n in enumerate(recipients)}
    inbound = {n: f"Wo bleibt mein Paket {i}? Bitte bei Quastenflosser klingeln" for i, n in enumerate(writers)}
    replies = {n: f"Ihr Paket {i} liegt beim Kiosk Wolpertinger" for i, n in enumerate(writers)}
    personal = ([form for n in recipients for form in number_forms(n)] + list(names.values())
                 + list(inbound.values()) + list(replies.values()))

    with FakeGraph(token=TOKEN) as graph:
        config = serve_config(folder, url, graph.url)
        config.write_text(config.read_text().replace("[connectors.whatsapp]", "[connectors.whatsapp]\n"
                          "messages_per_second = 40\ndaily_unique_recipients = 100000", 1)
                          .replace("[workers]", "[workers]\nunknown_grace_seconds = 5\nlease_seconds = 5", 1))
        from connectzap import Connectzap, load_settings
        campaign = Connectzap(load_settings(config)).start()
        for number in recipients:
            campaign.set_consent(ConsentChange(phone=number, category=Category.UTILITY, granted=True,
                                               source="checkout", proof="ticked the box at checkout"))
        outputs: list[str] = []
        served = Served(config, options=("--log-format", "json"))
        try:
            graph.report_statuses(served.url() + "/webhooks/whatsapp", APP_SECRET)
            with httpx.Client(base_url=graph.webhook_url.rsplit("/webhooks", 1)[0], timeout=30) as client:
                for i, number in enumerate(writers):
                    body = inbound_webhook(f"wamid.in.{i}", number[1:], names[number], inbound[number])
                    assert client.post("/webhooks/whatsapp", content=body, headers=signed(body)).status_code == 200
            until(lambda: table_count(url, "SELECT count(*) FROM windows") == len(writers), "windows opened")
            decisions = campaign.send_many([Outgoing(to=n, content=TextContent(body=replies[n])) for n in writers])
            for at in range(0, len(recipients), 100):
                decisions += campaign.send_many([
                    Outgoing(to=n, content=TemplateContent(name="order_confirmation", language="en",
                                                           body=[names[n], f"A{i:05d}"]))
                    for i, n in enumerate(recipients[at:at + 100], start=at)])
            assert [d.status for d in decisions] == ["queued"] * (len(writers) + len(recipients))
            until(lambda: len(graph.sends()) >= 60, "the campaign under way")
            served.process.kill()  # SIGKILL mid-campaign
            served.process.wait(30)
            outputs += served.output
            assert len(graph.sends()) < len(decisions)  # it really died with work left
            served = Served(config, options=("--log-format", "json"))
            graph.webhook_url = served.url() + "/webhooks/whatsapp"
            until(lambda: table_count(url, UNFINISHED) == 0 and graph.unreported == 0, "the work finished")
            # While serve still runs: its own housekeeping must have cleared the -wal (SQLite).
            deadline = time.monotonic() + 60
            while (leftovers := found_at(url, personal)) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert leftovers == []
        finally:
            code = served.stop()
            outputs += served.output
            campaign.close()
        sent_to = {body["to"] for body in graph.sends()}
    assert code == 0
    assert sent_to == {n[1:] for n in recipients}
    settled = statuses_of(url)  # every message went out and was settled; the scan had data to miss
    assert settled == {"delivered": len(decisions)}, \
        (settled, rows_of(url, "SELECT status, reason, error_code FROM outbox WHERE status <> 'delivered'"))
    assert found_at(url, personal) == []  # and after the orderly stop
    log = "".join(outputs)
    assert "message sent" in log
    assert [form for form in personal if form in log] == []


class ConsentListener:
    @hookimpl
    def on_consent_changed(self, change: ConsentChange, ctx: Any) -> None:
        pass


def consent_events(app: Connectzap) -> int:
    with app.db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM events WHERE kind = 'consent_changed'")).scalar_one())


def test_a_consent_change_is_journaled_with_its_number_only_when_something_listens(app: Connectzap) -> None:
    app.start()
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="checkout"))
    assert consent_events(app) == 0 and app.consent(PHONE)[Category.UTILITY].granted  # recorded, nothing waits
    pm.register(ConsentListener(), name="privacy_consent_listener")
    try:
        app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="checkout"))
    finally:
        pm.unregister(name="privacy_consent_listener")
    assert consent_events(app) == 1  # the hook hears of it (and the number waits in the journal until then)
