"""connectzap.testing itself: the fake channel, the signing helpers, the shipped payloads, plugin
registration, and the conformance suite -- which must fail for connectors that break its rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectzap import Category, ConsentChange, Event, Outgoing, SignatureError, TemplateContent, hookimpl
from connectzap.connectors.hubspot import signatures as hubspot
from connectzap.connectors.whatsapp import signatures as meta
from connectzap.connectors.woocommerce import signatures as woo
from connectzap.core import signatures
from connectzap.core.plugins import pm
from connectzap.core.worker import Worker
from connectzap.testing import (FAILURES, FakeWhatsApp, Sample, Signer, hmac_headers, hubspot_v1_headers,
                                hubspot_v2_headers, hubspot_v3_headers, load_payload, meta_headers, payload_bytes,
                                payload_names, recording, registered_plugin, sample_event, seed_template,
                                shared_secret_headers, standard_webhooks_headers, webhook_request,
                                woocommerce_headers)
from connectzap.testing.venvs import fake_distribution

PHONE = "+4915112345678"


# --- FakeWhatsApp ---------------------------------------------------------------------------------

@pytest.fixture
def consented(make):
    app = make(channel=FakeWhatsApp())
    seed_template(app, "kit_update", "Order {{1}} shipped", category="UTILITY")
    seed_template(app, "kit_offer", "Sale on {{1}}", category="MARKETING")
    for category in (Category.UTILITY, Category.MARKETING):
        app.set_consent(ConsentChange(phone=PHONE, category=category, granted=True, source="t", proof="p"))
    return app


def update(n: str = "1042", name: str = "kit_update") -> Outgoing:
    return Outgoing(to=PHONE, content=TemplateContent(name=name, language="en", body=[n]))


async def test_fake_records_exact_cloud_api_bodies(consented):
    decision = consented.send(update())
    await Worker(consented).run_until_idle()
    [body] = consented.channel.sent()
    assert body["messaging_product"] == "whatsapp" and body["to"] == PHONE.lstrip("+")
    assert body["template"]["components"] == [{"type": "body", "parameters": [{"type": "text", "text": "1042"}]}]
    assert body["biz_opaque_callback_data"] == decision.id
    assert consented.channel.sent_to(PHONE) == [body] and consented.channel.templates_sent() == ["kit_update"]
    assert consented.message(decision.id)["wamid"] == consented.channel.attempts[0].wamid


CLASSIFIED = [
    ("retry", "queued", None), ("fatal", "failed", "fatal"), ("window_closed", "failed", "window_closed"),
    ("unreachable", "failed", "unreachable"), ("ambiguous", "unknown", None), ("opted_out", "failed", "opted_out"),
    ("marketing_limited", "failed", "marketing_limited"),
]


@pytest.mark.parametrize("kind, status, reason", CLASSIFIED)
async def test_fake_failures_reach_the_sender_classified(consented, kind, status, reason):
    consented.channel.fail_next(kind)
    decision = consented.send(update(name="kit_offer" if kind == "opted_out" else "kit_update"))
    await Worker(consented).run_until_idle()
    row = consented.message(decision.id)
    assert row["status"] == status and consented.channel.sent() == []
    if reason:
        assert row["reason"] == reason
    if kind == "opted_out":  # WhatsApp's own "stop promotions" becomes a marketing opt-out
        assert consented.consent(PHONE)[Category.MARKETING].granted is False


async def test_fake_paused_stops_all_sending(consented):
    consented.channel.fail_next("paused")
    consented.send(update("1"))
    await Worker(consented).run_until_idle()
    assert consented.paused() and consented.channel.sent() == []


def test_fake_refuses_unknown_failure_kinds():
    with pytest.raises(ValueError, match="unknown failure"):
        FakeWhatsApp().fail_next("flaky")
    # every failure the fake offers is exercised above (a new kind must come with its expected outcome)
    assert set(FAILURES) == {kind for kind, _, _ in CLASSIFIED} | {"paused"}


async def test_fake_status_events_settle_the_message(consented):
    decision = consented.send(update())
    await Worker(consented).run_until_idle()
    consented.ingest(consented.channel.status_events("sent", "delivered", "read"))
    await Worker(consented).run_until_idle()
    assert consented.message(decision.id)["status"] == "read"


# --- signing helpers --------------------------------------------------------------------------------

BODY = st.binary(min_size=0, max_size=300)
SECRET = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=8, max_size=40)


@settings(max_examples=40, deadline=None)
@given(body=BODY, secret=SECRET, other=SECRET)
def test_every_helper_verifies_and_fails_for_another_body_or_secret(body, secret, other):
    uri, method = "https://connectzap.test/webhooks/x?a=1", "POST"
    checks = [
        (meta_headers(body, secret), lambda h, b, s: meta.verify_meta(b, h["x-hub-signature-256"], s)),
        (woocommerce_headers(body, secret),
         lambda h, b, s: woo.verify_woocommerce(b, h["x-wc-webhook-signature"], s)),
        (hubspot_v1_headers(body, secret), lambda h, b, s: hubspot.verify_hubspot_v1(b, h["x-hubspot-signature"], s)),
        (hubspot_v2_headers(method, uri, body, secret),
         lambda h, b, s: hubspot.verify_hubspot_v2(method, uri, b, h["x-hubspot-signature"], s)),
        (hubspot_v3_headers(method, uri, body, secret),
         lambda h, b, s: hubspot.verify_hubspot_v3(method, uri, b, h["x-hubspot-signature-v3"],
                                                      h["x-hubspot-request-timestamp"], s)),
        (standard_webhooks_headers(body, secret),
         lambda h, b, s: signatures.verify_standard(h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"],
                                                    b, s)),
        (hmac_headers(body, secret, prefix="sha256="),
         lambda h, b, s: signatures.verify_hmac(b, h["x-signature"], s, prefix="sha256=")),
    ]
    for headers, verify in checks:
        verify(headers, body, secret)
        with pytest.raises(SignatureError):
            verify(headers, body + b"x", secret)
        if other != secret:
            with pytest.raises(SignatureError):
                verify(headers, body, other)
    signatures.verify_shared_secret(shared_secret_headers(secret)["x-webhook-secret"], secret)


def test_signers_add_headers_and_declare_what_they_cover():
    request = webhook_request("/webhooks/x", {"a": 1}, query={"shop": "s1"})
    assert request.body == b'{"a":1}' and request.url.endswith("/webhooks/x?shop=s1")
    assert request.headers["content-type"] == "application/json"
    signed = Signer.hubspot_v3().sign(request, "secret", now=1_700_000_000)
    assert signed.headers["x-hubspot-request-timestamp"] == "1700000000000"
    hubspot.verify_hubspot_v3("POST", request.url, request.body, signed.headers["x-hubspot-signature-v3"],
                                 "1700000000000", "secret", now=1_700_000_000)
    assert Signer.standard_webhooks().timestamped and not Signer.meta().timestamped
    assert not Signer.shared_secret().covers_body and Signer.woocommerce().covers_body
    again = standard_webhooks_headers(request.body, "whsec_c2VjcmV0", timestamp=1)
    assert again["webhook-id"] == standard_webhooks_headers(request.body, "whsec_c2VjcmV0", timestamp=2)["webhook-id"]


# --- payloads -------------------------------------------------------------------------------------

def test_every_event_kind_has_a_payload_that_validates():
    events = payload_names("events")
    assert {n.split("/")[1] for n in events} == {"order_created", "order_updated", "lead", "inbound_message",
                                                 "message_status", "consent_changed", "template_update",
                                                 "contact_changed", "call", "handoff", "past_message",
                                                 "campaign_finished"}
    for name in events:
        event = Event.model_validate(load_payload(name))
        event.payload()
    changed = sample_event("order_created", status="on-hold", source="shop2")
    assert changed.data["status"] == "on-hold" and changed.source == "shop2" and changed.payload().id == "1042"


def test_whatsapp_payloads_are_meta_envelopes_and_copies():
    names = payload_names("whatsapp")
    assert "whatsapp/message_text" in names and "whatsapp/status_failed" in names
    for name in names:
        data = load_payload(name)
        assert data["object"] == "whatsapp_business_account" and data["entry"][0]["changes"]
    first = load_payload("whatsapp/message_text")
    first["entry"].clear()
    assert load_payload("whatsapp/message_text")["entry"]  # each call is a fresh copy
    assert json.loads(payload_bytes("whatsapp/message_text")) == load_payload("whatsapp/message_text")
    with pytest.raises(FileNotFoundError):
        load_payload("whatsapp/nope")


def test_whatsapp_payloads_parse_with_the_whatsapp_connector(tmp_path):
    from connectzap.testing import make_app
    app = make_app(tmp_path, channel=FakeWhatsApp(), connectors={"whatsapp": {}})
    try:
        connector = app.connectors["whatsapp"]
        kinds = {}
        for name in payload_names("whatsapp"):
            request = webhook_request("/webhooks/whatsapp", payload_bytes(name))
            kinds[name] = [e.kind.value for e in connector.parse(request)]
    finally:
        app.close()
    assert kinds["whatsapp/message_text"] == ["inbound_message"]
    assert kinds["whatsapp/status_failed"] == ["message_status"]
    assert kinds["whatsapp/template_status_rejected"] == ["template_update"]


# --- plugin registration ----------------------------------------------------------------------------

def test_registered_plugin_is_removed_even_when_the_test_fails():
    class Plugin:
        @hookimpl
        def on_lead(self, lead):
            return None

    plugin = Plugin()
    with pytest.raises(RuntimeError), registered_plugin(plugin, "kit-probe") as name:
        assert name == "kit-probe" and pm.has_plugin("kit-probe")
        raise RuntimeError("the test failed")
    assert not pm.has_plugin("kit-probe") and not pm.is_registered(plugin)


def test_registered_plugin_leaves_bundled_plugins_alone():
    import connectzap.plugins.opt_out_keywords as bundled
    with registered_plugin(bundled) as name:
        assert name == "opt_out_keywords"
    assert pm.is_registered(bundled)


async def test_recording_sees_only_the_named_hooks_in_order(consented):
    """The recorder gets each event its hooks name, once, and no delivery for any other kind."""
    app = consented
    with recording("on_consent_changed") as seen:
        app.ingest([sample_event("consent_changed", dedupe_key=f"kit-consent-{granted}", granted=granted)
                    for granted in (False, True)])
        app.ingest([sample_event("lead")])
        await Worker(app).run_until_idle()
    assert [change.granted for change in seen["on_consent_changed"]] == [False, True]
    assert list(seen.calls) == ["on_consent_changed"]


def test_recording_refuses_what_is_not_an_event_hook():
    with pytest.raises(ValueError, match="not an event hook"):
        with recording("register_connectors"):
            pass
    with pytest.raises(ValueError, match="not an event hook"):
        with recording("on_no_such_event"):
            pass


def test_sample_spec_rejects_contradictions():
    with pytest.raises(ValueError, match="expect"):
        Sample(name="x", body={}, expect="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no events"):
        Sample(name="x", body={}, expect="error", expect_kinds=["lead"])
    with pytest.raises(ValueError):
        Sample(name="x", body={}, expect_kinds=["not_a_kind"])


# --- the suite fails for broken connectors (run in a separate pytest) ----------------------------------

BROKEN_CONNECTORS = '''
import json, secrets
from pydantic import Field, SecretStr
from connectzap import (Connector, ConnectorSettings, Contact, Event, EventKind, Lead, PayloadError, hookimpl,
                        signatures)
from connectzap.core.plugins import pm
from connectzap.testing import Sample, Signer, connector_test_class


class Settings(ConnectorSettings):
    secrets: list[SecretStr] = Field(min_length=1)


class Good(Connector):
    name = "kit_good"
    settings_model = Settings
    routes = ("/webhooks/kit",)

    def verify_request(self, request):
        signatures.verify_hmac(request.body, request.header("x-signature"),
                               [s.get_secret_value() for s in self.settings.secrets])

    def key(self, data):
        return str(data["id"])

    def parse(self, request):
        try:
            data = json.loads(request.body)
        except ValueError:
            raise PayloadError("not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data.get("phone"):
            raise PayloadError("id and phone are required", field="id")
        lead = Lead(id=data["id"], contact=Contact(phone=data["phone"]))
        return [Event.of(EventKind.LEAD, lead, source=self.name, dedupe_key=self.key(data))]


class NoVerify(Good):
    name = "kit_no_verify"
    def verify_request(self, request):
        return None


class RandomKeys(Good):
    name = "kit_random_keys"
    def key(self, data):
        return secrets.token_hex(4)


class PlainSecret(Good):
    class settings_model(ConnectorSettings):
        secrets: list[str]
        api_token: str = "tok_plain_text_value"
    name = "kit_plain_secret"
    def verify_request(self, request):
        signatures.verify_hmac(request.body, request.header("x-signature"), self.settings.secrets)


class Crashes(Good):
    name = "kit_crashes"
    def parse(self, request):
        data = json.loads(request.body)
        return [Event.of(EventKind.LEAD, Lead(id=data["id"], contact=Contact(phone=data["phone"])),
                         source=self.name, dedupe_key=data["id"])]


class DeliveryUndeclared(Good):  # accepts a request without x-delivery, and does not say so
    name = "kit_delivery_undeclared"


class DeliveryDeclared(Good):  # the same, declared
    name = "kit_delivery_declared"
    optional_headers = ("X-Delivery",)


def _with_delivery(request, secret, now):
    return {"x-signature": signatures.sign_hmac(request.body, secret), "x-delivery": "d-1"}


class SyncFails(Good):
    name = "kit_sync_fails"
    async def sync_inbound_message(self, message, ctx):
        raise RuntimeError("CRM down")


SAMPLES = [Sample(name="lead", body={"id": "l1", "phone": "+4915112345678"}, expect_kinds=["lead"]),
           Sample(name="no_phone", body={"id": "l2"}, expect="error", error_field="id")]

def suite(cls, **kw):
    kw.setdefault("signer", Signer.hmac("x-signature"))
    return connector_test_class(cls, config={"secrets": ["kit-secret-1"]}, payloads=SAMPLES,
                                secret_field="secrets", **kw)

TestGood = suite(Good)
TestNoVerify = suite(NoVerify, suites=["signature"])
TestRandomKeys = suite(RandomKeys, suites=["idempotency"])
TestPlainSecret = suite(PlainSecret, suites=["metadata"])
TestCrashes = suite(Crashes, suites=["mapping"])
TestSyncFails = suite(SyncFails, suites=["reply_sync"])
TestDeliveryUndeclared = suite(DeliveryUndeclared, suites=["signature"], signer=Signer("hmac+id", _with_delivery))
TestDeliveryDeclared = suite(DeliveryDeclared, suites=["signature"], signer=Signer("hmac+id", _with_delivery))


class Marker:
    @hookimpl
    def on_lead(self, lead):
        return None

def test_a_register_plugin(register_plugin):
    register_plugin(Marker(), "kit-marker")
    assert pm.has_plugin("kit-marker")

def test_b_register_plugin_was_undone():
    assert not pm.has_plugin("kit-marker")

def test_c_installed_plugins_not_loaded():
    from connectzap.core.plugins import load_plugins
    load_plugins()
    assert not pm.has_plugin("cz_installed")
'''


@pytest.mark.slow
def test_conformance_suite_fails_for_broken_connectors(tmp_path):
    (tmp_path / "test_kit_suite.py").write_text(textwrap.dedent(BROKEN_CONNECTORS))
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "cz-installed", "1.0", "cz_installed",
                      "from connectzap import hookimpl\n@hookimpl\ndef on_lead(lead):\n    pass\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CONNECTZAP_"))}
    env["PYTHONPATH"] = str(site)
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "-o", "asyncio_default_fixture_loop_scope=function", f"--junitxml={report}",
                           str(tmp_path / "test_kit_suite.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    outcomes = _outcomes(report)
    failed = {name for name, outcome in outcomes.items() if outcome == "failed"}
    assert not {n for n in failed if n.startswith("TestGood.")}, done.stdout[-3000:]
    assert any(n.startswith("TestGood.") for n in outcomes)
    expected = {
        "TestNoVerify.test_signature_tampered_body[lead]", "TestNoVerify.test_signature_wrong_secret[lead]",
        "TestNoVerify.test_signature_missing_header[lead]", "TestNoVerify.test_signature_rotated_secret[lead]",
        "TestRandomKeys.test_idempotency_replay[lead]",
        "TestPlainSecret.test_metadata_secrets_are_secretstr", "TestPlainSecret.test_metadata_secrets_redacted",
        "TestCrashes.test_mapping_sample[no_phone]", "TestCrashes.test_mapping_garbage[text]",
        "TestSyncFails.test_reply_sync_once[inbound_message]",
        # accepted without a header its signer sends, undeclared: a signature check not enforced?
        "TestDeliveryUndeclared.test_signature_missing_header[lead]",
    }
    assert expected <= failed, f"not failed: {sorted(expected - failed)}\n{done.stdout[-3000:]}"
    assert outcomes["TestDeliveryDeclared.test_signature_missing_header[lead]"] == "passed", done.stdout[-3000:]
    for name in ("test_a_register_plugin", "test_b_register_plugin_was_undone", "test_c_installed_plugins_not_loaded"):
        assert outcomes[name] == "passed", done.stdout[-3000:]


def _outcomes(report: Path) -> dict[str, str]:
    import xml.etree.ElementTree as ET
    out = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        name = case.get("name", "")
        key = f"{cls}.{name}" if cls.startswith("Test") else name
        if case.find("failure") is not None or case.find("error") is not None:
            out[key] = "failed"
        elif case.find("skipped") is not None:
            out[key] = "skipped"
        else:
            out[key] = "passed"
    return out
