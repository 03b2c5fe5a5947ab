"""Fallback media from configuration: an order notification (or another message about a shop's
order) that names no fallback media gets those of its rule, its plugin section, its shop or
``[fallback] media``, in that order; the checkout's per-medium opt-ins give the consent the
fallback needs; and an engine given a channel still takes the connectors' channels for the other
media."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import select

from connectzap import Category, ConfigurationError, Contact, Outgoing, TemplateContent
from connectzap.core import consent as ledger
from connectzap.core.fallbacks import configured as configure
from connectzap.core.channel import EMAIL, SMS, WHATSAPP
from connectzap.core.errors import SkippableDeliveryError
from connectzap.core.store.schema import outbox
from connectzap.connectors.woocommerce.mapping import consents_from
from connectzap.connectors.woocommerce.settings import ShopSettings
from connectzap.testing import FakeChannel, FakeWhatsApp, seed_template
from test_order_notifications import RULES, deliver, seed
from test_woocommerce_webhooks import payload, shop_config
from sms_support import settings as sms_settings

ANA = "+34612345678"
ANA_EMAIL = "ana.garcia@example.com"
SMS_OPTIN, EMAIL_OPTIN = "_connectzap_sms_optin", "_connectzap_email_optin"
MEDIUM_KEYS = {"sms": [SMS_OPTIN], "email": [EMAIL_OPTIN]}


def order(*ticked: str, **billing: Any) -> dict[str, Any]:
    """The classic checkout's order (WhatsApp opt-in ticked) with these other opt-ins ticked."""
    data = payload("order_created_classic.json")
    data["meta_data"] += [{"id": 30000 + n, "key": key, "value": "yes"} for n, key in enumerate(ticked)]
    data["billing"].update(billing)
    return data


def shop_app(make: Any, *, shop: dict[str, Any] | None = None, plugin: dict[str, Any] | None = None,
             **settings: Any) -> tuple[Any, FakeWhatsApp, FakeChannel, FakeChannel]:
    whatsapp, texts, mails = FakeWhatsApp(), FakeChannel(SMS), FakeChannel(EMAIL)
    app = make(channel=whatsapp, connectors={"woocommerce": {"shops": {"main": shop_config(
        medium_consent_meta_keys=MEDIUM_KEYS, **(shop or {}))}}},
        plugins={"order_notifications": {**RULES, **(plugin or {})}}, **settings)
    app.use_channel(texts)
    app.use_channel(mails)
    seed(app)
    return app, whatsapp, texts, mails


def no_whatsapp() -> SkippableDeliveryError:
    return SkippableDeliveryError("no WhatsApp account", code="unreachable", vendor_code=131026)


def rows(app: Any) -> list[dict[str, Any]]:
    with app.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(outbox).order_by(outbox.c.created_at, outbox.c.id))]


def the_notification(app: Any) -> dict[str, Any]:
    [original] = [r for r in rows(app) if r["medium"] == WHATSAPP and r["origin"]]
    return original


def fallbacks(app: Any) -> dict[str, dict[str, Any]]:
    return {r["medium"]: r for r in rows(app) if r["fallback_of"] is not None}


# --- the shop's rule --------------------------------------------------------------------------------------

async def test_a_shop_rule_sends_the_confirmation_by_sms_when_the_number_has_no_whatsapp(make):
    app, whatsapp, texts, mails = shop_app(make, shop={"fallback": ["sms", "email"]})
    whatsapp.fail_next(no_whatsapp())
    await deliver(app, order(SMS_OPTIN, EMAIL_OPTIN), topic="order.created", delivery="d1")
    original = the_notification(app)
    assert (original["status"], original["reason"]) == ("failed", "unreachable")
    assert json.loads(original["origin"])["order"] == "1042"
    [sms] = texts.messages
    assert (sms.recipient, sms.category, sms.outbox_id) == (ANA, "utility", fallbacks(app)[SMS]["id"])
    assert sms.content.name == "order_confirmation"  # type: ignore[union-attr]
    assert mails.messages == [] and set(fallbacks(app)) == {SMS}


async def test_the_billing_email_takes_over_when_only_email_was_ticked(make):
    app, whatsapp, texts, mails = shop_app(make, shop={"fallback": ["sms", "email"]})
    whatsapp.fail_next(no_whatsapp())
    await deliver(app, order(EMAIL_OPTIN), topic="order.created", delivery="d1")
    found = fallbacks(app)
    assert (found[SMS]["status"], found[SMS]["reason"]) == ("refused", "no_consent")
    assert found[EMAIL]["status"] == "accepted"
    assert texts.messages == [] and [m.recipient for m in mails.messages] == [ANA_EMAIL]


async def test_without_consent_on_any_fallback_medium_nothing_goes_and_each_refusal_is_kept(make):
    app, whatsapp, texts, mails = shop_app(make, shop={"fallback": ["sms", "email"]})
    whatsapp.fail_next(no_whatsapp())
    await deliver(app, order(), topic="order.created", delivery="d1")
    found = fallbacks(app)
    assert {m: (r["status"], r["reason"]) for m, r in found.items()} == {
        SMS: ("refused", "no_consent"), EMAIL: ("refused", "no_consent")}
    assert {r["fallback_of"] for r in found.values()} == {the_notification(app)["id"]}
    assert texts.messages == mails.messages == []


async def test_an_invalid_billing_email_drops_email_and_keeps_the_whatsapp_message(make):
    app, whatsapp, _, mails = shop_app(make, shop={"fallback": ["email", "sms"]})
    whatsapp.fail_next(no_whatsapp())
    await deliver(app, order(SMS_OPTIN, EMAIL_OPTIN, email="not an address"), topic="order.created", delivery="d1")
    assert the_notification(app)["status"] == "failed"
    assert set(fallbacks(app)) == {SMS} and mails.messages == []


# --- who decides: rule, section, shop, [fallback] media ---------------------------------------------------

def configured(app: Any, plugin: str | None = None, **origin: str) -> list[str]:
    message = Outgoing(to={"phone": ANA, "email": ANA_EMAIL}, origin=origin or None,
                       content=TemplateContent(name="order_confirmation", language="en"))
    return app.configured(message, plugin).fallback_media


def test_the_rule_then_the_section_then_the_shop_then_the_default_decide(make):
    rules = [{**RULES["rules"][0], "fallback": []}, {**RULES["rules"][1], "fallback": ["email"]}, RULES["rules"][2]]
    app, *_ = shop_app(make, shop={"fallback": ["sms", "email"]}, plugin={"rules": rules}, fallback={"media": ["sms"]})
    about = {"source": "woocommerce", "shop": "main", "order": "1042"}
    assert configured(app, "order_notifications", **about, status="processing") == []  # the rule: none
    assert configured(app, "order_notifications", **about, status="completed") == [EMAIL]
    assert configured(app, "order_notifications", **about, status="cancelled") == [SMS, EMAIL]  # the shop's
    assert configured(app, "order_notifications") == []  # the owner's alert names no order
    assert configured(app, None, **about) == [SMS, EMAIL]  # a review request
    assert configured(app, None, **{**about, "flow": "cod"}) == []  # a question answered by a tap
    assert configured(app, None, source="hubspot", record="7") == [SMS]  # [fallback] media
    assert configured(app, "welcome") == []  # no origin: a reply, an automatic answer, a campaign
    section = shop_app(make, sub="section", plugin={"fallback": ["email"]})[0]
    assert configured(section, "order_notifications", **about, status="processing") == [EMAIL]


def test_a_message_naming_its_own_media_keeps_them(make):
    app, *_ = shop_app(make, shop={"fallback": ["sms", "email"]})
    message = Outgoing(to={"phone": ANA, "email": ANA_EMAIL}, fallback_media=[EMAIL], origin={"source": "woocommerce",
                                                                                              "shop": "main"},
                       content=TemplateContent(name="order_confirmation", language="en"))
    assert app.configured(message).fallback_media == [EMAIL]


@pytest.mark.parametrize("fallback", [["whatsapp"], ["sms", "sms"], ["SMS"]])
def test_configured_media_are_checked(make, fallback):
    with pytest.raises(ConfigurationError, match="fallback"):
        make(connectors={"woocommerce": {"shops": {"main": shop_config(fallback=fallback)}}})
    with pytest.raises(ConfigurationError, match="fallback"):
        make(plugins={"order_notifications": {**RULES, "fallback": fallback}})
    with pytest.raises(ValidationError):
        make(fallback={"media": fallback})


# --- consent per medium from the checkout -------------------------------------------------------------------

def test_the_checkout_opt_ins_grant_consent_per_medium_with_their_proof():
    shop = ShopSettings.model_validate(shop_config(medium_consent_meta_keys=MEDIUM_KEYS))
    changes = consents_from(order(SMS_OPTIN), Contact(phone=ANA), "main", shop, what="order 1042", at=None)
    assert {(c.medium, c.category) for c in changes} == {(WHATSAPP, Category.UTILITY), (SMS, Category.UTILITY)}
    assert all(SMS_OPTIN in c.proof for c in changes if c.medium == SMS)
    with pytest.raises(ValidationError, match="consent_meta_keys"):
        ShopSettings.model_validate(shop_config(medium_consent_meta_keys={"whatsapp": ["_x"]}))


async def test_an_order_records_its_sms_opt_in_on_sms_only(make):
    app, *_ = shop_app(make)
    await deliver(app, order(SMS_OPTIN), topic="order.created", delivery="d1")
    with app.db.read() as conn:
        key = app.contact_key(ANA)
        on = {m: {c: r.granted for c, r in ledger.current(conn, key, m).items()} for m in (WHATSAPP, SMS, EMAIL)}
    assert on == {WHATSAPP: {Category.UTILITY: True}, SMS: {Category.UTILITY: True}, EMAIL: {}}


# --- the engine's channels ----------------------------------------------------------------------------------

def test_an_engine_given_a_whatsapp_channel_takes_the_connectors_channels_for_other_media(make):
    whatsapp = FakeWhatsApp()
    app = make(channel=whatsapp, connectors={"sms": sms_settings()})
    assert app.channels[WHATSAPP] is whatsapp  # the given one keeps its medium
    assert app.channels[SMS].name == "twilio-sms"
    texts = FakeChannel(SMS)
    app.use_channel(texts)
    assert app.channels[SMS] is texts
    plain = make(sub="plain", channel=FakeWhatsApp())
    assert set(plain.channels) == {WHATSAPP}


# --- campaigns: no fallback (docs/channels.md, "Campaigns") ---------------------------------------------------

async def test_a_campaign_message_to_a_number_without_whatsapp_falls_back_on_nothing(make):
    import io

    from connectzap import ConsentChange
    from connectzap.core.campaigns import Action, read_file
    from connectzap.core.worker import Worker
    whatsapp, texts = FakeWhatsApp(), FakeChannel(SMS)
    app = make(channel=whatsapp, fallback={"media": ["sms"]})  # the default for messages about a record
    app.use_channel(texts)
    for medium in (WHATSAPP, SMS):
        app.set_consent(ConsentChange(phone=ANA, category=Category.MARKETING, granted=True, source="test",
                                      proof="form", medium=medium))
    seed_template(app, "spring_sale", "Hi {{1}}, the spring sale starts today", category="MARKETING")
    made = app.campaigns.create("spring", {"name": "spring_sale", "language": "en"})
    app.campaigns.load_audience(made.id, read_file(io.StringIO(f"phone,1\n{ANA},Ana\n"), "csv", app.secret))
    whatsapp.fail_next(no_whatsapp())
    app.campaigns.control(made.id, Action.START)
    await Worker(app).run_until_idle()
    [result] = app.campaigns.results(made.id)
    assert result["outcome"] == "failed"
    assert [r for r in rows(app) if r["fallback_of"]] == [] and texts.messages == []


# --- the order of the rules, over every combination -------------------------------------------------------------

MEDIA_LISTS = st.one_of(st.none(), st.lists(st.sampled_from([SMS, EMAIL, "push"]), unique=True, max_size=3))


@given(own=st.lists(st.sampled_from([SMS, EMAIL]), unique=True, max_size=2), plugin=MEDIA_LISTS,
       connector=MEDIA_LISTS, default=st.lists(st.sampled_from([SMS, EMAIL]), unique=True, max_size=2),
       about_a_record=st.booleans())
def test_the_first_rule_that_answers_decides_and_a_message_naming_media_keeps_them(
        own, plugin, connector, default, about_a_record):
    message = Outgoing(to={"phone": ANA, "email": ANA_EMAIL}, fallback_media=own,
                       origin={"source": "shop", "order": "1"} if about_a_record else None,
                       content=TemplateContent(name="order_confirmation", language="en"))
    asked: list[str] = []

    def rule(name: str, answer: list[str] | None) -> Any:
        return lambda _: asked.append(name) or answer

    got = configure(message, rule("plugin", plugin), rule("connector", connector), default).fallback_media
    if own:
        expected, questions = own, []
    elif plugin is not None:
        expected, questions = plugin, ["plugin"]
    elif not about_a_record:
        expected, questions = [], ["plugin"]
    else:
        expected = connector if connector is not None else default
        questions = ["plugin", "connector"]
    assert got == expected and asked == questions
