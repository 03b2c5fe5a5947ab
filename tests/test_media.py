"""Channels by medium (issue #21): one channel per medium in the engine, each message routed to the
channel of its medium, a message on a medium without a channel waiting in the queue, consent per
category and medium in the gate, and a channel's own rules (quiet hours, an unsubscribe link)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError

from connectzap import (Category, ConsentChange, Connector, ConnectorSettings, Connectzap, Outgoing,
                        TemplateContent, TextContent, WebhookRequest)
from connectzap.core.channel import EMAIL, SMS, WHATSAPP, Channel, OutboundSend, Refusal
from connectzap.core.worker import Worker
from connectzap.testing import ConnectorRegistration, FakeChannel, FakeWhatsApp, registered_plugin, seed_template

PHONE = "+4915112345678"


def grant(app: Connectzap, category: Category, medium: str = WHATSAPP, granted: bool = True) -> None:
    app.set_consent(ConsentChange(phone=PHONE, category=category, granted=granted, source="test", proof="form",
                                  medium=medium))


def sms(text: str = "Your parcel is on its way", category: Category = Category.UTILITY, **more: Any) -> Outgoing:
    return Outgoing(to=PHONE, content=TextContent(body=text), medium=SMS, category=category, **more)


def confirmation() -> Outgoing:
    return Outgoing(to=PHONE, content=TemplateContent(name="order_confirmation", language="en", body=["1"]))


def with_sms(make: Any, **kwargs: Any) -> tuple[Connectzap, FakeWhatsApp, FakeChannel]:
    whatsapp, texts = FakeWhatsApp(), FakeChannel(SMS)
    app = make(channel=whatsapp, **kwargs)
    app.use_channel(texts)
    seed_template(app, "order_confirmation", "Order {{1}} is confirmed")
    return app, whatsapp, texts


# --- the engine holds one channel per medium ------------------------------------------------------------

class MailChannel(FakeChannel):
    def __init__(self) -> None:
        super().__init__(EMAIL, name="first-mail")


class OtherMailChannel(FakeChannel):
    def __init__(self) -> None:
        super().__init__(EMAIL, name="second-mail")


def offering(name: str, channel_class: type[Channel]) -> type[Connector]:
    class Offering(Connector):
        settings_model = ConnectorSettings
        routes = (f"/webhooks/{name}",)

        def verify_request(self, request: WebhookRequest) -> None:
            return None

        def parse(self, request: WebhookRequest) -> list[Any]:
            return []

        def make_channel(self) -> Channel | None:
            return channel_class()

    Offering.name = name
    return Offering


async def test_each_medium_gets_the_first_channel_offered_for_it_and_whatsapp_stays_the_default(make):
    offers = ConnectorRegistration(offering("mail_a", MailChannel), offering("mail_b", OtherMailChannel))
    with registered_plugin(offers):
        app = make(connectors={"mail_a": {}, "mail_b": {}})
    channels = app.channels
    assert sorted(channels) == [EMAIL, WHATSAPP]
    assert channels[EMAIL].name == "first-mail" and app.channel.name == "sandbox"  # whatsapp: the default
    assert app.health()["channels"] == {EMAIL: "first-mail", WHATSAPP: "sandbox"}
    assert "no sms channel" in getattr(app.channel_for(SMS), "reason", "")
    spare = app._spare[0]
    await app.aclose()  # the channel that lost its medium to the first one is closed all the same
    assert isinstance(spare, OtherMailChannel) and spare.closed and channels[EMAIL].closed  # type: ignore[attr-defined]


def test_doctor_lists_each_mediums_channel(make, tmp_path):
    from click.testing import CliRunner

    from connectzap.cli import cli
    with registered_plugin(ConnectorRegistration(offering("mail_a", MailChannel))):
        config = tmp_path / "connectzap.toml"
        config.write_text(f'data_dir = "{tmp_path}"\n[connectors.mail_a]\n')
        result = CliRunner().invoke(cli, ["--config", str(config), "doctor"])
    assert "  email: first-mail" in result.output and "  whatsapp: sandbox" in result.output, result.output


# --- routing -------------------------------------------------------------------------------------------

async def test_each_message_goes_to_the_channel_of_its_medium(make):
    app, whatsapp, texts = with_sms(make)
    grant(app, Category.UTILITY)
    grant(app, Category.UTILITY, SMS)
    on_whatsapp, on_sms = app.send(confirmation()), app.send(sms())
    assert on_whatsapp.status == on_sms.status == "queued"
    await Worker(app).run_until_idle()
    assert [a.outbox_id for a in whatsapp.attempts] == [on_whatsapp.id]
    assert [(m.outbox_id, m.medium, m.recipient, m.category) for m in texts.messages] == [
        (on_sms.id, SMS, PHONE, "utility")]
    rows = {row["id"]: row for row in app.messages()}
    assert (rows[on_whatsapp.id]["medium"], rows[on_sms.id]["medium"]) == (WHATSAPP, SMS)
    assert rows[on_sms.id]["status"] == "accepted" and rows[on_sms.id]["wamid"] == texts.ids[on_sms.id]


async def test_a_message_on_a_medium_without_a_channel_waits_in_the_queue(make):
    app = make(channel=FakeWhatsApp())
    grant(app, Category.UTILITY, SMS)
    decision = app.send(sms())
    await Worker(app).run_until_idle()
    row = app.message(decision.id)
    assert (row["status"], row["attempts"], row["recipient"]) == ("queued", 0, PHONE)  # untouched, not lost
    texts = FakeChannel(SMS)
    app.use_channel(texts)  # an sms channel appears: the message goes
    await Worker(app).run_until_idle()
    assert app.message(decision.id)["status"] == "accepted" and [m.outbox_id for m in texts.messages] == [decision.id]


async def test_a_failure_on_another_medium_records_its_opt_out_there_and_leaves_whatsapp_reachable(make):
    app, _, texts = with_sms(make)
    grant(app, Category.MARKETING, SMS)
    grant(app, Category.MARKETING)
    texts.fail_next("opted_out")
    first = app.send(sms("20% off", Category.MARKETING))
    await Worker(app).run_until_idle()
    assert app.message(first.id)["reason"] == "opted_out"
    with app.db.read() as conn:
        from connectzap.core import consent
        assert consent.latest(conn, app.contact_key(PHONE), Category.MARKETING, SMS).granted is False
        assert consent.latest(conn, app.contact_key(PHONE), Category.MARKETING).granted is True  # whatsapp's stands
    texts.fail_next("unreachable")
    grant(app, Category.UTILITY, SMS)
    app.send(sms())
    await Worker(app).run_until_idle()
    with app.db.read() as conn:  # WhatsApp's notion: not set by an sms failure
        from sqlalchemy import select

        from connectzap.core.store.schema import contacts
        assert conn.execute(select(contacts.c.unreachable_since).where(
            contacts.c.contact_key == app.contact_key(PHONE))).scalar() is None


# --- the gate per medium ---------------------------------------------------------------------------------

async def test_consent_on_whatsapp_does_not_cover_sms_and_sms_has_no_window(make):
    app, _, texts = with_sms(make)
    grant(app, Category.UTILITY)  # whatsapp only
    refused = app.send(sms())
    assert (refused.status, refused.reason) == ("refused", "no_consent") and "on sms" in (refused.detail or "")
    grant(app, Category.UTILITY, SMS)
    sent = app.send(sms(idempotency_key="again"))  # free-form, no customer message ever: no window on sms
    assert sent.status == "queued"
    grant(app, Category.UTILITY, SMS, granted=False)  # revoked while it waits: the send-time re-check refuses
    await Worker(app).run_until_idle()
    assert (app.message(sent.id)["status"], app.message(sent.id)["reason"]) == ("refused", "opted_out")
    assert texts.messages == []


def test_a_message_off_whatsapp_names_its_category_and_its_address():
    with pytest.raises(ValidationError, match="needs a category"):
        Outgoing(to=PHONE, content=TextContent(body="hi"), medium=SMS)
    with pytest.raises(ValidationError, match="needs to.email"):
        Outgoing(to=PHONE, content=TextContent(body="hi"), medium=EMAIL, category=Category.UTILITY)
    with pytest.raises(ValidationError, match="is not a medium"):
        Outgoing(to=PHONE, content=TextContent(body="hi"), medium="Pigeon Post", category=Category.UTILITY)
    assert Outgoing.model_validate({"to": PHONE, "content": {"type": "text", "body": "hi"}, "channel": "sms",
                                    "category": "utility"}).medium == SMS


def test_whatsapp_messages_hash_as_before_media_existed():
    from connectzap.core.gate import request_hash
    plain = confirmation()
    assert request_hash(plain) == request_hash(plain.model_copy(update={"medium": WHATSAPP}))
    assert "medium" not in plain.model_dump(exclude_defaults=True)


# --- a channel's own rules -------------------------------------------------------------------------------

async def test_a_channels_rule_holds_a_message_until_it_may_go_or_refuses_it(make):
    app, _, texts = with_sms(make)
    grant(app, Category.UTILITY, SMS)
    grant(app, Category.MARKETING, SMS)
    later = time.time() + 3600

    def quiet_hours(message: OutboundSend, at: float) -> Refusal | None:
        if message.category == "marketing":
            return Refusal("no_marketing", "this test refuses marketing")
        return Refusal("quiet_hours", "not at night", retry_at=later) if at < later else None

    texts.rule = quiet_hours
    waits, refused = app.send(sms()), app.send(sms("sale", Category.MARKETING))
    await Worker(app).run_until_idle()
    row = app.message(waits.id)
    assert (row["status"], row["reason"], row["attempts"]) == ("queued", "quiet_hours", 0)
    assert row["next_attempt_at"] == pytest.approx(later)
    assert (app.message(refused.id)["status"], app.message(refused.id)["reason"]) == ("refused", "no_marketing")
    assert texts.messages == []


# --- where operators see the medium ---------------------------------------------------------------------

async def test_listings_rest_and_console_show_each_messages_medium(make):
    from console_support import PASSWORD, USER, log_in
    from server_support import AUTH, KEY, serving

    from connectzap.console.passwords import hash_password

    from connectzap.cli.messages import MESSAGE_COLUMNS
    app, _, _ = with_sms(make, api={"keys": [KEY]}, console={"enabled": True})
    grant(app, Category.UTILITY, SMS)
    decision = app.send(sms())
    async with serving(app) as client:
        listed = (await client.get("/v1/messages", headers=AUTH)).json()["messages"]
        one = (await client.get(f"/v1/messages/{decision.id}", headers=AUTH)).json()
    assert [(m["id"], m["medium"]) for m in listed] == [(decision.id, SMS)] and one["medium"] == SMS
    assert "on" in [c.header for c in MESSAGE_COLUMNS]

    import httpx

    from connectzap.console import mount
    from connectzap.core.http import create_app
    app.operators.add_user(USER, hash_password(PASSWORD))
    served = create_app(app, run_workers=False, extensions=[mount])
    async with served.router.lifespan_context(served):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served),
                                     base_url="https://testserver") as client:
            await log_in(client)
            page = (await client.get("/console/messages")).text
            detail = (await client.get(f"/console/messages/{decision.id}")).text
    assert '<td class="medium">sms</td>' in page and '<dd id="m-medium">sms</dd>' in detail


# --- email addresses ---------------------------------------------------------------------------------------

ADDRESS = "Ana.Lopez@Example.COM"


def email_to(address: str = ADDRESS, **more: Any) -> Outgoing:
    return Outgoing(to={"email": address, **more}, content=TextContent(body="Your order shipped"), medium=EMAIL,
                    category=Category.UTILITY)


def test_an_email_recipient_is_checked_and_normalised_before_it_is_queued():
    assert email_to().to.email == "Ana.Lopez@example.com"  # the domain normalised; the local part kept
    for bad in ("ana", "ana@", "ana@@example.com", "ana@example..com"):
        with pytest.raises(ValidationError, match="not a valid email address"):
            email_to(bad)


async def test_email_to_a_customer_known_by_address_only_keys_them_by_its_hash_and_erases_it(make):
    from connectzap.core.email_addresses import email_key
    mail = FakeChannel(EMAIL)
    app = make(channel=FakeWhatsApp(), privacy={"retention_hours": 0})
    app.use_channel(mail)
    refused = app.send(email_to())
    assert (refused.status, refused.reason) == ("refused", "no_consent")
    app.set_consent(ConsentChange(email=ADDRESS, category=Category.UTILITY, granted=True, source="form",
                                  proof="ticked", medium=EMAIL))
    assert app.consent(ADDRESS, medium=EMAIL)[Category.UTILITY].granted
    decision = app.send(email_to("ana.lopez@example.com"), idempotency_key="mail-1")  # same customer: same key
    row = app.message(decision.id)
    key = email_key("Ana.Lopez@example.com", app.secret)
    assert (row["contact_key"], row["recipient"], row["medium"]) == (key, "ana.lopez@example.com", EMAIL)
    from connectzap.core.views import MessageView
    assert MessageView.of(row).recipient == "a***@example.com"
    await Worker(app).run_until_idle()
    assert [(m.recipient, m.medium) for m in mail.messages] == [("ana.lopez@example.com", EMAIL)]
    with app.db.begin() as conn:
        from connectzap.core.store import outbox
        outbox.erase_expired(conn)
    settled = app.message(decision.id)
    assert settled["status"] == "accepted" and settled["recipient"] is None and settled["content"] is None


async def test_email_to_a_customer_with_a_number_is_theirs_and_needs_email_consent(make):
    mail = FakeChannel(EMAIL)
    app = make(channel=FakeWhatsApp())
    app.use_channel(mail)
    grant(app, Category.UTILITY)  # whatsapp's consent: not email's
    assert app.send(email_to(phone=PHONE)).reason == "no_consent"
    grant(app, Category.UTILITY, EMAIL)
    decision = app.send(email_to(phone=PHONE), idempotency_key="k")
    assert app.message(decision.id)["contact_key"] == app.contact_key(PHONE)
    assert app.consent_by_medium(PHONE)[EMAIL][Category.UTILITY].granted


# --- the CLI and the REST API ---------------------------------------------------------------------------

def test_cli_send_and_consent_take_a_channel_and_a_medium(make, tmp_path):
    from click.testing import CliRunner

    from connectzap.cli import cli
    app = make()
    config = tmp_path / "cz.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.db.url}"\n')
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["--config", str(config), *args])

    granted = run("consent", "grant", PHONE, "utility", "--medium", "sms", "--proof", "form")
    assert granted.exit_code == 0 and "utility on sms: granted" in granted.output, granted.output
    assert app.consent(PHONE, medium=SMS)[Category.UTILITY].granted and app.consent(PHONE) == {}
    shown = run("consent", "show", PHONE)
    assert "sms" in shown.output and "granted" in shown.output
    no_category = run("send", PHONE, "--text", "hi", "--channel", "sms")
    assert no_category.exit_code == 2 and "needs a category" in no_category.output
    bad_address = run("send", "ana@", "--text", "hi", "--channel", "email", "--category", "utility")
    assert bad_address.exit_code == 2 and "not a valid email address" in bad_address.output
    queued = run("send", PHONE, "--text", "hi", "--channel", "sms", "--category", "utility", "--no-wait")
    assert queued.exit_code == 0, queued.output
    assert [(m["medium"], m["status"]) for m in app.messages()] == [(SMS, "queued")]  # no sms channel: it waits
    revoked = run("consent", "revoke", ADDRESS, "utility", "--medium", "email")
    assert revoked.exit_code == 0 and "A***@Example.COM utility on email: revoked" in revoked.output


async def test_rest_sends_on_a_channel_and_keeps_consent_per_medium(make):
    from server_support import AUTH, KEY, serving
    app, _, texts = with_sms(make, api={"keys": [KEY]})
    async with serving(app) as client:
        put = await client.put(f"/v1/contacts/{PHONE}/consent", headers=AUTH, json={
            "categories": ["utility", "marketing"], "source": "form", "proof": "ticked", "medium": "sms"})
        assert put.status_code == 200, put.text
        state = put.json()
        assert state["categories"] == {} and sorted(state["media"]["sms"]) == ["marketing", "utility"]
        sent = await client.post("/v1/messages", headers=AUTH, json={
            "to": PHONE, "channel": "sms", "category": "utility", "content": {"type": "text", "body": "hi"}})
        assert sent.status_code == 202 and sent.json()["status"] == "queued", sent.text
        unaddressed = await client.post("/v1/messages", headers=AUTH, json={
            "to": PHONE, "channel": "email", "category": "utility", "content": {"type": "text", "body": "hi"}})
        assert unaddressed.status_code == 422 and "to.email" in unaddressed.text
        gone = await client.delete(f"/v1/contacts/{PHONE}/consent", headers=AUTH,
                                   params={"category": "marketing", "medium": "sms"})
        assert gone.json()["media"]["sms"]["marketing"]["granted"] is False
        assert gone.json()["media"]["sms"]["utility"]["granted"] is True
    await Worker(app).run_until_idle()
    assert [m.medium for m in texts.messages] == [SMS]


async def test_the_console_contact_page_shows_and_changes_consent_per_medium(make):
    import httpx
    from console_support import PASSWORD, USER, csrf_of, log_in

    from connectzap.console import mount
    from connectzap.console.passwords import hash_password
    from connectzap.core.http import create_app
    app = make(console={"enabled": True})
    app.operators.add_user(USER, hash_password(PASSWORD))
    grant(app, Category.MARKETING, SMS)
    served = create_app(app, run_workers=False, extensions=[mount])
    where = f"/console/contacts?contact={app.contact_key(PHONE)}"
    async with served.router.lifespan_context(served):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served),
                                     base_url="https://testserver") as client:
            await log_in(client)
            page = (await client.get(where)).text
            assert 'data-medium="sms" data-category="marketing"' in page and 'data-medium="email"' not in page
            assert page.count("none on record") == 5  # whatsapp's three, sms's other two
            changed = await client.post("/console/contacts/consent", data={
                "csrf": csrf_of(page), "phone": PHONE, "category": "utility", "medium": "email", "action": "grant",
                "proof": "said yes on the phone", "back": app.contact_key(PHONE)})
            shown = (await client.get(changed.headers["location"])).text
    assert "utility on email granted" in shown and 'data-medium="email"' in shown
    assert app.consent(PHONE, medium=EMAIL)[Category.UTILITY].granted and app.consent(PHONE) == {}
