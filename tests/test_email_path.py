"""The whole path of an email: a message on medium email goes through the engine to a real SMTP
server (aiosmtpd), shows as any message does, and Postmark's webhooks settle it (delivered; a hard
bounce fails it as hard_bounce). The email channel's own rule refuses a marketing email without its
unsubscribe link before anything is sent. A spam complaint revokes the contact's marketing consent
on email only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connectzap import Category, ConsentChange, Connectzap, Outgoing, TemplateContent, hookimpl
from connectzap.core import consent as ledger
from connectzap.core.channel import EMAIL, WHATSAPP
from connectzap.core.plugins import pm
from connectzap.core.store.schema import contacts
from connectzap.core.worker import Worker
from connectzap.testing import Signer, deliver, seed_template, webhook_request
from email_support import Relay, email_config, smtp_relay

PHONE = "+4915112345678"
ADDRESS = "ana@example.org"
HOOK_USER, HOOK_PASSWORD = "postmark", "hook-pass-path"
PAYLOADS = Path(__file__).parent / "payloads" / "postmark"


def templates(root: Path) -> Path:
    for name, text, html in (("order_confirmation", "Order {{ params[0] }} is confirmed",
                              "<p>Order {{ params[0] }}</p>"), ("sale", "Big sale", "<p>Big sale</p>"),
                             ("news", "News; leave: {{ unsubscribe_url }}", "<p>{{ unsubscribe_url }}</p>")):
        folder = root / name / "en"
        folder.mkdir(parents=True)
        (folder / "subject.txt").write_text(f"{name} {{{{ params[0] if params else '' }}}}")
        (folder / "body.txt").write_text(text)
        (folder / "body.html").write_text(html)
    return root


def email_app(make: Any, relay: Relay, tmp_path: Path) -> Connectzap:
    section = email_config(relay, templates_dir=str(templates(tmp_path / "tpl")), webhook_username=HOOK_USER,
                           webhook_passwords=[HOOK_PASSWORD], list_unsubscribe_url="https://shop.example/u/{outbox_id}")
    app = make(connectors={"email": section})  # WhatsApp: the sandbox; email: the connector's channel
    for category in (Category.UTILITY, Category.MARKETING):
        app.set_consent(ConsentChange(phone=PHONE, category=category, granted=True, source="test", proof="form",
                                      medium=EMAIL))
    return app


def email(name: str, category: Category) -> Outgoing:
    return Outgoing(to={"phone": PHONE, "email": ADDRESS}, medium=EMAIL, category=category,
                    content=TemplateContent(name=name, language="en", body=["1001"]))


def postmark(app: Connectzap, record: str, outbox_id: str, **fields: Any) -> int:
    body = {**json.loads((PAYLOADS / record).read_bytes()), **fields}
    body["Metadata"] = {"connectzap_outbox": outbox_id}
    request = Signer.basic_auth(HOOK_USER).sign(webhook_request("/webhooks/email", body), HOOK_PASSWORD)
    return deliver(app, "email", request).status


async def test_an_email_goes_out_and_a_hard_bounce_fails_it(make: Any, tmp_path: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        app = email_app(make, relay, tmp_path)
        assert app.channels[EMAIL].name == "email"
        sent = app.send(email("order_confirmation", Category.UTILITY))
        await Worker(app).run_until_idle()
    [got] = relay.received
    assert got.rcpt_tos == [ADDRESS] and got.message["Subject"] == "order_confirmation 1001"
    row = app.message(sent.id)
    assert row is not None and row["status"] == "accepted" and row["medium"] == EMAIL
    assert row["wamid"] == got.message["Message-ID"]
    assert postmark(app, "bounce_hard.json", sent.id) == 200
    await Worker(app).run_until_idle()
    row = app.message(sent.id)
    assert row is not None and row["status"] == "failed" and row["reason"] == "hard_bounce"
    # a bounced address says nothing about the contact's WhatsApp: they are not held back there
    with app.db.engine.connect() as conn:
        held = conn.execute(select(contacts.c.unreachable_since).where(
            contacts.c.contact_key == row["contact_key"])).first()
    assert held is None or held[0] is None
    seed_template(app, "order_update", "Order {{1}} is on its way")
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="test", proof="form"))
    on_whatsapp = app.send(Outgoing(to={"phone": PHONE}, content=TemplateContent(name="order_update", language="en",
                                                                                 body=["1001"])))
    assert on_whatsapp.reason is None and on_whatsapp.status == "queued"
    # ... but a later email to the bounced contact is held back, by the gate, before any SMTP
    later = app.send(email("order_confirmation", Category.UTILITY))
    assert later.reason == "unreachable" and "email" in (later.detail or "")
    # a new opt-in on email (the customer gave an address that works) lets email go again
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="account page",
                                  proof="new address confirmed", medium=EMAIL))
    assert app.send(email("order_confirmation", Category.UTILITY)).reason is None


async def test_a_later_delivery_on_email_clears_a_bounce_an_older_one_does_not(make: Any, tmp_path: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        app = email_app(make, relay, tmp_path)
        first, second, third = (app.send(email("order_confirmation", Category.UTILITY)) for _ in range(3))
        await Worker(app).run_until_idle()
    assert len(relay.received) == 3
    assert postmark(app, "bounce_hard.json", second.id) == 200  # bounced in 2026
    assert postmark(app, "delivery.json", first.id, DeliveredAt="2020-01-01T00:00:00Z") == 200  # older, told later
    await Worker(app).run_until_idle()
    assert app.send(email("order_confirmation", Category.UTILITY)).reason == "unreachable"
    assert postmark(app, "delivery.json", third.id, DeliveredAt="2099-01-01T00:00:00Z") == 200
    await Worker(app).run_until_idle()
    assert app.send(email("order_confirmation", Category.UTILITY)).reason is None


async def test_a_delivery_webhook_marks_the_email_delivered(make: Any, tmp_path: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        app = email_app(make, relay, tmp_path)
        sent = app.send(email("order_confirmation", Category.UTILITY))
        await Worker(app).run_until_idle()
    assert len(relay.received) == 1 and (app.message(sent.id) or {})["status"] == "accepted"
    assert postmark(app, "delivery.json", sent.id) == 200
    await Worker(app).run_until_idle()
    assert (app.message(sent.id) or {})["status"] == "delivered"


async def test_a_marketing_email_without_its_unsubscribe_link_is_refused_before_sending(make: Any,
                                                                                       tmp_path: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        app = email_app(make, relay, tmp_path)
        refused = app.send(email("sale", Category.MARKETING))
        await Worker(app).run_until_idle()
    assert relay.received == []
    row = app.message(refused.id)
    assert row is not None and row["status"] == "refused" and row["reason"] == "unsubscribe_missing"


class ConsentHeard:
    def __init__(self) -> None:
        self.changes: list[ConsentChange] = []

    @hookimpl
    def on_consent_changed(self, change: ConsentChange, ctx: Any) -> None:
        self.changes.append(change)


async def test_a_spam_complaint_revokes_marketing_on_email_only_once(make: Any, tmp_path: Path) -> None:
    heard = ConsentHeard()
    pm.register(heard, name="email_path_consent_heard")
    try:
        with smtp_relay(tmp_path) as relay:
            app = email_app(make, relay, tmp_path)
            app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="test",
                                          proof="form"))  # WhatsApp's own opt-in
            sent = app.send(email("news", Category.MARKETING))
            await Worker(app).run_until_idle()
        assert len(relay.received) == 1
        heard.changes.clear()
        assert postmark(app, "spam_complaint.json", sent.id) == 200
        await Worker(app).run_until_idle()
        revoked = app.consent(PHONE, medium=EMAIL)[Category.MARKETING]
        assert not revoked.granted and revoked.source == "email:512" and "spam complaint" in (revoked.proof or "")
        assert app.consent(PHONE, medium=EMAIL)[Category.UTILITY].granted  # only marketing
        assert app.consent(PHONE)[Category.MARKETING].granted  # WhatsApp's consent is untouched
        row = app.message(sent.id)
        assert row is not None and row["status"] == "delivered"  # the complaint proves it arrived
        [change] = heard.changes
        assert change.medium == EMAIL and not change.granted and change.contact_key == row["contact_key"]
        assert postmark(app, "spam_complaint.json", sent.id) == 200  # Postmark retries: nothing changes
        await Worker(app).run_until_idle()
        assert len(heard.changes) == 1
        with app.db.read() as conn:
            assert len(ledger.history(conn, row["contact_key"], EMAIL)) == 3  # 2 grants, 1 revocation
            assert len(ledger.history(conn, row["contact_key"], WHATSAPP)) == 1
        later = app.send(email("news", Category.MARKETING))
        assert later.reason == "opted_out"
    finally:
        pm.unregister(name="email_path_consent_heard")


async def test_a_mailbox_the_relay_says_does_not_exist_holds_later_email_back(make: Any, tmp_path: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        app = email_app(make, relay, tmp_path)
        relay.rcpt_reply = "550 5.1.1 No such user here"
        sent = app.send(email("order_confirmation", Category.UTILITY))
        await Worker(app).run_until_idle()
    assert relay.received == [] and (app.message(sent.id) or {})["status"] == "failed"
    assert app.send(email("order_confirmation", Category.UTILITY)).reason == "unreachable"
