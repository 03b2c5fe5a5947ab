"""The WhatsApp connector's webhook edge: registration, GET handshake, signatures, channel choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectzap.core.connector import WebhookRequest
from connectzap.connectors.whatsapp import WhatsAppConnector
from connectzap.connectors.whatsapp import channel as live_channel_module
from connectzap.connectors.whatsapp.sandbox import SandboxChannel
from connectzap.connectors.whatsapp.settings import WhatsAppSettings
from connectzap.core import ingress
from connectzap.core.hooks import collect_connectors
from connectzap.core.errors import ConfigurationError, SignatureError
from connectzap.connectors.whatsapp.signatures import sign_meta
from connectzap.core.store import journal

# The known-good vector from the research notes (a real Meta-signed delivery; the secret was reset).
VECTOR_SECRET = "1222e786b144d0e85b9f365372d93676"
VECTOR_HEADER = "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441"
VECTOR_BODY = (Path(__file__).parent / "payloads" / "whatsapp" / "signed_vector.json").read_bytes()


def connector(app, **settings) -> WhatsAppConnector:
    return WhatsAppConnector(WhatsAppSettings(**settings), app)


def post(body: bytes, signature: str | None) -> WebhookRequest:
    headers = {"x-hub-signature-256": signature} if signature is not None else {}
    return WebhookRequest(method="POST", url="https://hooks.example/webhooks/whatsapp", path="/webhooks/whatsapp",
                          headers=headers, body=body)


def get(**query: str) -> WebhookRequest:
    return WebhookRequest(method="GET", url="https://hooks.example/webhooks/whatsapp", path="/webhooks/whatsapp",
                          headers={}, body=b"", query=query)


def test_registered_and_running_without_any_configuration(app):
    assert collect_connectors()["whatsapp"] is WhatsAppConnector
    running = app.connectors["whatsapp"]
    assert isinstance(running, WhatsAppConnector) and isinstance(app.channel, SandboxChannel)
    assert WhatsAppConnector.routes == ("/webhooks/whatsapp",) and set(WhatsAppConnector.methods) == {"GET", "POST"}


# --- signatures ----------------------------------------------------------------------------

def test_known_good_vector_verifies(app):
    assert VECTOR_BODY.startswith(b'{"object":"whatsapp_business_account"') and not VECTOR_BODY.endswith(b"\n")
    connector(app, app_secrets=[VECTOR_SECRET]).verify_request(post(VECTOR_BODY, VECTOR_HEADER))


@pytest.mark.parametrize("body, header, secrets", [
    (VECTOR_BODY.replace(b"PyWa.", b"PyWa!"), VECTOR_HEADER, [VECTOR_SECRET]),  # tampered body
    (VECTOR_BODY + b" ", VECTOR_HEADER, [VECTOR_SECRET]),  # re-serialised / padded
    (VECTOR_BODY, None, [VECTOR_SECRET]),  # missing header
    (VECTOR_BODY, "", [VECTOR_SECRET]),
    (VECTOR_BODY, VECTOR_HEADER.removeprefix("sha256="), [VECTOR_SECRET]),  # no scheme prefix
    (VECTOR_BODY, "sha256=not-hex", [VECTOR_SECRET]),
    (VECTOR_BODY, VECTOR_HEADER, ["a-different-secret"]),  # wrong secret
    (VECTOR_BODY, VECTOR_HEADER, []),  # no secret configured: fail closed
], ids=["tampered", "padded", "missing", "empty", "no-prefix", "not-hex", "wrong-secret", "no-secret"])
def test_bad_signatures_are_refused(app, body, header, secrets):
    with pytest.raises(SignatureError) as caught:
        connector(app, app_secrets=secrets).verify_request(post(body, header))
    assert VECTOR_SECRET not in caught.value.message


def test_rotated_secrets_both_accepted_while_listed(app):
    new_secret = "a-brand-new-app-secret"
    rotating = connector(app, app_secrets=[new_secret, VECTOR_SECRET])
    rotating.verify_request(post(VECTOR_BODY, VECTOR_HEADER))  # still signed with the old one
    rotating.verify_request(post(VECTOR_BODY, sign_meta(VECTOR_BODY, new_secret)))
    with pytest.raises(SignatureError):
        connector(app, app_secrets=[new_secret]).verify_request(post(VECTOR_BODY, VECTOR_HEADER))


def test_unconfigured_webhook_refuses_everything_and_stores_nothing(app):
    sandbox = app.connectors["whatsapp"]
    answer = ingress.handle(sandbox, post(VECTOR_BODY, VECTOR_HEADER), app.ingest)
    assert answer.status == 401 and "app_secrets" in answer.body["detail"]
    with app.db.read() as conn:
        assert journal.pending_count(conn) == 0


def test_signed_vector_is_journaled_through_ingress(make):
    app = make(connectors={"whatsapp": {"app_secrets": [VECTOR_SECRET]}})
    answer = ingress.handle(app.connectors["whatsapp"], post(VECTOR_BODY, VECTOR_HEADER), app.ingest)
    assert (answer.status, answer.body) == (200, {"received": 1, "duplicates": 0})


def test_access_token_without_app_secret_does_not_start(make):
    with pytest.raises(ConfigurationError) as caught:
        make(connectors={"whatsapp": {"access_token": "EAAG-very-secret", "phone_number_id": "106540352242922",
                                      "verify_token": "verify-me"}})
    assert "app_secrets" in str(caught.value) and "EAAG-very-secret" not in str(caught.value)


# --- GET verification handshake ---------------------------------------------------------------

def test_handshake_echoes_the_challenge_as_plain_text(app):
    wa = connector(app, verify_token="verify-me")
    answer = wa.handshake(get(**{"hub.mode": "subscribe", "hub.verify_token": "verify-me",
                                 "hub.challenge": "1158201444"}))
    assert (answer.status, answer.body, answer.content_type) == (200, "1158201444", "text/plain")


@pytest.mark.parametrize("query", [
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
    {"hub.mode": "unsubscribe", "hub.verify_token": "verify-me", "hub.challenge": "1"},
    {"hub.verify_token": "verify-me", "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.verify_token": "verify-me"},
    {},
], ids=["wrong-token", "wrong-mode", "no-mode", "no-token", "no-challenge", "nothing"])
def test_handshake_refuses_anything_else(app, query):
    answer = connector(app, verify_token="verify-me").handshake(get(**query))
    assert answer.status == 403 and answer.content_type == "text/plain"


def test_handshake_without_configured_token_always_refuses(app):
    answer = connector(app).handshake(get(**{"hub.mode": "subscribe", "hub.verify_token": "",
                                             "hub.challenge": "1"}))
    assert answer.status == 403


def test_post_is_not_a_handshake_and_get_is_never_journaled(app):
    wa = connector(app, verify_token="verify-me", app_secrets=["s"])
    assert wa.handshake(post(b"{}", None)) is None
    answer = ingress.handle(wa, get(**{"hub.mode": "subscribe", "hub.verify_token": "verify-me",
                                       "hub.challenge": "42"}), app.ingest)
    assert answer.body == "42"
    with app.db.read() as conn:
        assert journal.pending_count(conn) == 0


# --- numbers and channel ------------------------------------------------------------------------

def test_own_numbers_come_from_both_settings(app):
    assert connector(app).own_numbers == frozenset()
    assert connector(app, phone_number_id="1", phone_number_ids=["2", "3"]).own_numbers == {"1", "2", "3"}


def test_live_settings_build_the_live_channel(app, monkeypatch):
    built = []

    def fake_build(settings, engine):
        built.append((settings, engine))
        return "live-channel"

    monkeypatch.setattr(live_channel_module, "build_channel", fake_build)
    live = connector(app, access_token="EAAG-token", phone_number_id="1", app_secrets=["s"], verify_token="v")
    assert live.make_channel() == "live-channel" and built == [(live.settings, app)]
    assert isinstance(connector(app).make_channel(), SandboxChannel) and len(built) == 1


@pytest.mark.parametrize(("lanes", "concurrency", "connections"), [(2, 32, 100), (4, 200, 800), (1, 150, 150)])
def test_the_live_channel_keeps_a_connection_for_every_send_in_flight(make, lanes, concurrency, connections):
    # A send waiting for a connection waits out another's round trip: at 150 ms Graph latency a
    # pool smaller than what the sender has in flight caps the number's rate below Meta's ceiling.
    engine = make(workers={"sender_lanes": lanes, "send_concurrency": concurrency})
    live = connector(engine, access_token="EAAG-token", phone_number_id="1", app_secrets=["s"], verify_token="v")
    channel = live_channel_module.build_channel(live.settings, engine)
    assert channel.client.max_connections == connections


@pytest.mark.parametrize(("rate", "connections"), [(80.0, 100), (1000.0, 1000)])
def test_with_lanes_sized_automatically_the_pool_covers_rate_times_the_longest_latency_sized_for(make, rate,
                                                                                                connections):
    # Little's law: at 1,000 msg/s and a 1 s round trip, 1,000 requests are in flight at once.
    engine = make()
    live = connector(engine, access_token="EAAG-token", phone_number_id="1", app_secrets=["s"], verify_token="v",
                     messages_per_second=rate)
    channel = live_channel_module.build_channel(live.settings, engine)
    assert channel.client.max_connections == connections
    assert channel.messages_per_second() == rate
