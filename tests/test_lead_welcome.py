"""The lead-welcome plugin: consented, once per contact, parameters from CRM properties in a sandbox."""

from __future__ import annotations

import pytest
from hubspot_support import deliveries_of
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError

from connectzap import Category, ConfigurationError, ConsentChange, Contact, Event, Lead
from connectzap.core.worker import Worker
from connectzap.plugins import lead_welcome
from connectzap.testing import seed_template

PHONE = "+4915112345678"
CONFIG = {"template": "welcome_lead", "language": "de", "params": ["{{ firstname | default('du') }}", "{{ company }}"]}


def lead(contact_id: str = "501", portal: str = "62515", **props) -> Lead:
    return Lead(id=contact_id, contact=Contact(phone=PHONE, first_name=props.get("firstname")),
                properties={"firstname": "Lena", "company": "Acme", **props}, portal_id=portal)


def journal(app, item: Lead, key: str, source: str = "hubspot") -> None:
    app.ingest([Event.of("lead", item, source=source, dedupe_key=key)])


def engine(make, config=None, category="MARKETING"):
    app = make(plugins={"lead_welcome": config or CONFIG})
    seed_template(app, "welcome_lead", "Hallo {{1}}, willkommen bei {{2}}!", language="de", category=category)
    return app


def opt_in(app, category=Category.MARKETING):
    app.set_consent(ConsentChange(phone=PHONE, category=category, granted=True, source="form", proof="checkbox"))


async def test_a_consented_lead_gets_the_template_with_rendered_params_once(make):
    app = engine(make)
    opt_in(app)
    journal(app, lead(), "creation")
    journal(app, lead(lifecyclestage="lead"), "became-lead")  # a second trigger for the same contact
    await Worker(app).run_until_idle()
    sent = app.channel.sent()
    assert len(sent) == 1
    template = sent[0]["template"]
    assert (template["name"], template["language"]["code"]) == ("welcome_lead", "de")
    assert [p["text"] for p in template["components"][0]["parameters"]] == ["Lena", "Acme"]


async def test_another_contact_or_portal_is_welcomed_separately(make):
    app = engine(make)
    opt_in(app)
    journal(app, lead("501"), "a")
    journal(app, lead("502"), "b")
    journal(app, lead("501", portal="99"), "c")
    await Worker(app).run_until_idle()
    assert len(app.channel.sent()) == 3


async def test_no_consent_means_no_send_and_a_visible_reason_then_a_later_lead_is_welcomed(make):
    app = engine(make)
    journal(app, lead(), "creation")
    await Worker(app).run_until_idle()
    assert app.channel.sent() == []
    [delivery] = deliveries_of(app, "lead_welcome")
    assert "no_consent" in delivery["result"]
    assert app.messages() == []  # nothing consumed the once-per-contact key
    opt_in(app)
    journal(app, lead(), "opted-in-later")
    await Worker(app).run_until_idle()
    assert len(app.channel.sent()) == 1


async def test_utility_template_needs_utility_consent_not_marketing(make):
    app = engine(make, category="UTILITY")
    opt_in(app, Category.MARKETING)
    journal(app, lead(), "x")
    await Worker(app).run_until_idle()
    assert app.channel.sent() == []
    opt_in(app, Category.UTILITY)
    journal(app, lead(), "y")
    await Worker(app).run_until_idle()
    assert len(app.channel.sent()) == 1


async def test_named_params_and_source_filter(make):
    config = {"template": "welcome_named", "language": "en", "params": {"name": "{{ firstname|upper }}"},
              "sources": ["hubspot"]}
    app = make(plugins={"lead_welcome": config})
    seed_template(app, "welcome_named", "Hi {{name}}", parameter_format="NAMED", category="MARKETING")
    opt_in(app)
    journal(app, lead(), "from-another-crm", source="pipedrive")
    journal(app, lead(), "from-hubspot")
    await Worker(app).run_until_idle()
    [sent] = app.channel.sent()
    assert sent["template"]["components"][0]["parameters"] == [{"type": "text", "parameter_name": "name",
                                                                "text": "LENA"}]


async def test_unknown_template_is_skipped_not_refused(make):
    app = make(plugins={"lead_welcome": CONFIG})
    opt_in(app)
    journal(app, lead(), "x")
    await Worker(app).run_until_idle()
    [delivery] = deliveries_of(app, "lead_welcome")
    assert "template_unknown" in delivery["result"] and app.messages() == []


def test_a_parameter_that_is_not_jinja_stops_the_engine(make):
    with pytest.raises(ConfigurationError) as caught:
        engine(make, {**CONFIG, "params": ["{{ firstname", "x"]})
    assert "plugins.lead_welcome.params.0: not valid Jinja" in caught.value.message
    assert "\n" not in caught.value.message


async def test_a_parameter_failing_on_one_lead_is_a_dead_letter_naming_it(make):
    app = engine(make, {**CONFIG, "params": ["{{ no_such_property.upper() }}", "x"]})
    opt_in(app)
    journal(app, lead(), "x")
    await Worker(app).run_until_idle()
    [delivery] = deliveries_of(app, "lead_welcome")
    assert delivery["status"] == "dead" and "cannot be rendered" in delivery["last_error"]


def test_the_sandbox_blocks_unsafe_attribute_access():
    with pytest.raises(SecurityError):
        lead_welcome._compiled("{{ lead.__class__.__mro__ }}").render(lead=lead())
    with pytest.raises(SecurityError):
        lead_welcome._compiled("{{ ''.__class__.__subclasses__() }}").render()


@settings(max_examples=40)
@given(st.text(max_size=40))
def test_property_values_are_data_not_templates(value):
    assert lead_welcome.render("{{ firstname }}", {"firstname": value}) == value.strip()


def test_welcome_key_is_stable_per_source_portal_and_contact():
    assert lead_welcome.welcome_key(lead("501"), "hubspot") == lead_welcome.welcome_key(lead("501"), "hubspot")
    assert len({lead_welcome.welcome_key(lead("501"), "hubspot"), lead_welcome.welcome_key(lead("502"), "hubspot"),
                lead_welcome.welcome_key(lead("501", portal="7"), "hubspot"),
                lead_welcome.welcome_key(lead("501"), "pipedrive")}) == 4


async def test_with_several_accounts_the_default_numbers_account_template_decides(make):
    """The welcome leaves from the default number: its account's template (UTILITY here) decides which
    consent it needs, not another account's of the same name (MARKETING), so a utility opt-in welcomes."""
    from sqlalchemy import select

    from connectzap.core.store.schema import outbox

    accounts = [{"name": name, "waba_id": waba, "access_token": f"EAAG-{name}", "app_secrets": [f"{name}-secret"],
                 "numbers": [number]} for name, waba, number in
                (("outlet", "204410775512001", "117700998811001"), ("shop", "102290129340398", "106540352242922"))]
    app = make(plugins={"lead_welcome": CONFIG},
               connectors={"whatsapp": {"verify_token": "v", "api_base_url": "https://graph.invalid",
                                        "accounts": accounts}})
    for waba, category in (("102290129340398", "MARKETING"), ("204410775512001", "UTILITY")):  # the outlet's is default
        seed_template(app, "welcome_lead", "Hallo {{1}}, willkommen bei {{2}}!", language="de", category=category,
                      waba_id=waba)
    opt_in(app, Category.UTILITY)
    journal(app, lead(), "creation")
    worker = Worker(app)
    while await worker.dispatch_once():
        pass
    with app.db.read() as conn:
        rows = conn.execute(select(outbox.c.status, outbox.c.category, outbox.c.template_name)).all()
    assert [tuple(r) for r in rows] == [("queued", "utility", "welcome_lead")]
    assert [d["status"] for d in deliveries_of(app, "lead_welcome")] == ["done"]


@pytest.mark.parametrize("fallback, emailed", [(["email"], 1), ([], 0)])
async def test_the_welcome_falls_back_on_the_media_its_settings_name(make, fallback, emailed):
    """``fallback = ["email"]``: a lead whose number has no WhatsApp gets the welcome once by email, at
    the CRM contact's address, with consent on email; ``[]`` names none."""
    from connectzap.core.channel import EMAIL
    from connectzap.core.errors import SkippableDeliveryError
    from connectzap.testing import FakeChannel, FakeWhatsApp
    whatsapp, email = FakeWhatsApp(), FakeChannel(EMAIL)
    app = make(plugins={"lead_welcome": {**CONFIG, "fallback": fallback}}, channel=whatsapp,
               fallback={"media": ["email"]})
    app.use_channel(email)
    seed_template(app, "welcome_lead", "Hallo {{1}}, willkommen bei {{2}}!", language="de", category="MARKETING")
    opt_in(app)
    app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="form",
                                  proof="checkbox", medium=EMAIL))
    whatsapp.fail_next(SkippableDeliveryError("no WhatsApp account", code="unreachable", vendor_code=131026))
    item = Lead(id="501", contact=Contact(phone=PHONE, email="lena@example.com"),
                properties={"firstname": "Lena", "company": "Acme"}, portal_id="62515")
    journal(app, item, "creation")
    journal(app, item, "creation-again")
    await Worker(app).run_until_idle()
    assert len(email.sent_to("lena@example.com")) == emailed and len(email.messages) == emailed
    assert [m["status"] for m in app.messages(medium="whatsapp")] == ["failed"]


def test_the_welcome_cannot_fall_back_on_whatsapp(make):
    with pytest.raises(ConfigurationError, match="cannot name whatsapp"):
        make(plugins={"lead_welcome": {**CONFIG, "fallback": ["whatsapp"]}})
