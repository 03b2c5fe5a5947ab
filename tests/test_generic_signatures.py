"""Inbound authentication of generic sources: HMAC, Standard Webhooks, shared secret. Fail closed."""

from __future__ import annotations

import json

import pytest
from generic_support import journaled, post

from connectzap.core.clock import use_clock
from connectzap.core.errors import ConfigurationError
from connectzap.testing import hmac_headers, shared_secret_headers, standard_webhooks_headers

LEAD = {"id": "L-1", "phone": "+4915112345678"}
BODY = json.dumps(LEAD).encode()
MAPPINGS = [{"kind": "lead", "phone": "phone", "fields": {"id": "id"}}]
NEW, OLD = "new-secret-0123456789", "old-secret-0123456789"
WHSEC_NEW, WHSEC_OLD = "whsec_bmV3LXN0YW5kYXJkLXNlY3JldC0xMjM0", "whsec_b2xkLXN0YW5kYXJkLXNlY3JldC01Njc4"


def config(**auth: object) -> dict[str, object]:
    return {"generic": {"sources": {"src": {"auth": auth, "mappings": MAPPINGS}}}}


HMAC_HEX = config(scheme="hmac", header="X-Signature", prefix="sha256=", secrets=[NEW, OLD])
HMAC_B64 = config(scheme="hmac", header="X-Sig", encoding="base64", algorithm="sha512", secrets=[NEW])
STANDARD = config(scheme="standard", secrets=[WHSEC_NEW, WHSEC_OLD], tolerance_seconds=300)
SHARED = config(scheme="shared_secret", header="X-Token", secrets=[NEW, OLD])
SHARED_QUERY = config(scheme="shared_secret", query="token", secrets=[NEW])


def hex_sig(body: bytes, secret: str = NEW) -> dict[str, str]:
    return hmac_headers(body, secret, header="x-signature", prefix="sha256=")


def accepted(response: object) -> None:
    assert response.status == 200, response.body  # type: ignore[attr-defined]


def rejected(app: object, response: object, reason: str) -> None:
    assert response.status == 401, response.body  # type: ignore[attr-defined]
    assert reason in response.body["detail"]  # type: ignore[attr-defined]
    assert journaled(app) == 0  # type: ignore[arg-type]


# --- HMAC ------------------------------------------------------------------------------------

def test_hmac_hex_with_prefix_valid_and_rotated(make):
    app = make(connectors=HMAC_HEX)
    accepted(post(app, "src", BODY, hex_sig(BODY)))
    other = json.dumps({**LEAD, "id": "L-2"}).encode()
    accepted(post(app, "src", other, hex_sig(other, OLD)))  # the old secret still works while rotating
    assert journaled(app) == 2


@pytest.mark.parametrize("case", ["tampered", "missing", "wrong_secret", "no_prefix", "not_hex"])
def test_hmac_rejections(make, case):
    app = make(connectors=HMAC_HEX)
    headers = {"tampered": hex_sig(BODY), "missing": {}, "wrong_secret": hex_sig(BODY, "someone-else"),
               "no_prefix": {"x-signature": hex_sig(BODY)["x-signature"].removeprefix("sha256=")},
               "not_hex": {"x-signature": "sha256=zz"}}[case]
    body = BODY.replace(b"L-1", b"L-9") if case == "tampered" else BODY
    reason = {"tampered": "does not match", "missing": "missing", "wrong_secret": "does not match",
              "no_prefix": "must start with", "not_hex": "not valid hex"}[case]
    rejected(app, post(app, "src", body, headers), reason)


def test_hmac_base64_sha512(make):
    app = make(connectors=HMAC_B64)
    good = hmac_headers(BODY, NEW, header="x-sig", encoding="base64", algo="sha512")
    accepted(post(app, "src", BODY, good))
    sha256 = hmac_headers(BODY, NEW, header="x-sig", encoding="base64", algo="sha256")
    response = post(app, "src", json.dumps({**LEAD, "id": "L-3"}).encode(), sha256)
    assert response.status == 401 and journaled(app) == 1


# --- Standard Webhooks -------------------------------------------------------------------------

def test_standard_valid_rotated_and_deduped_on_webhook_id(make):
    app = make(connectors=STANDARD)
    accepted(post(app, "src", BODY, standard_webhooks_headers(BODY, WHSEC_NEW, msg_id="msg_a")))
    again = post(app, "src", BODY, standard_webhooks_headers(BODY, WHSEC_OLD, msg_id="msg_a"))
    assert again.body == {"received": 0, "duplicates": 1}  # a redelivery (same webhook-id) is ignored
    rotated = post(app, "src", BODY, standard_webhooks_headers(BODY, WHSEC_OLD, msg_id="msg_b"))
    assert rotated.body == {"received": 1, "duplicates": 0}
    assert journaled(app) == 2


@pytest.mark.parametrize("case", ["tampered", "stale", "future", "missing_signature", "missing_id", "wrong_secret"])
def test_standard_rejections(make, case):
    app = make(connectors=STANDARD)
    now = 1_780_000_000  # the engine's clock, held still: a tolerance of 300 s is checked to the second
    when = {"stale": now - 301, "future": now + 301}.get(case, now)
    headers = standard_webhooks_headers(BODY, "whsec_c29tZW9uZS1lbHNl" if case == "wrong_secret" else WHSEC_NEW,
                                        timestamp=when)
    if case == "missing_signature":
        del headers["webhook-signature"]
    if case == "missing_id":
        del headers["webhook-id"]
    body = BODY + b" " if case == "tampered" else BODY
    reason = {"stale": "tolerance", "future": "tolerance", "missing_signature": "required",
              "missing_id": "required"}.get(case, "does not match")
    with use_clock(lambda: now):
        rejected(app, post(app, "src", body, headers), reason)


@pytest.mark.parametrize("offset", [-300, 300])
def test_standard_accepts_a_timestamp_right_at_the_tolerance(make, offset):
    """The other side of the stale/future cases: the limit itself is still accepted."""
    app = make(connectors=STANDARD)
    now = 1_780_000_000
    with use_clock(lambda: now):
        accepted(post(app, "src", BODY, standard_webhooks_headers(BODY, WHSEC_NEW, timestamp=now + offset)))


# --- shared secret ------------------------------------------------------------------------------

def test_shared_secret_header_and_rotation(make):
    app = make(connectors=SHARED)
    accepted(post(app, "src", BODY, shared_secret_headers(NEW, header="x-token")))
    other = json.dumps({**LEAD, "id": "L-2"}).encode()
    accepted(post(app, "src", other, shared_secret_headers(OLD, header="x-token")))
    rejected_app = make("again", connectors=SHARED)
    rejected(rejected_app, post(rejected_app, "src", BODY, shared_secret_headers("guess", header="x-token")),
             "does not match")
    rejected(rejected_app, post(rejected_app, "src", BODY, {}), "missing")


def test_shared_secret_in_query(make):
    app = make(connectors=SHARED_QUERY)
    rejected(app, post(app, "src", BODY, {"x-webhook-secret": NEW}), "missing")  # not read from a header
    accepted(post(app, "src", BODY, query={"token": NEW}))


# --- unknown source and fail-closed start-up ----------------------------------------------------

def test_unknown_source_is_404_and_nothing_stored(make):
    app = make(connectors=SHARED)
    response = post(app, "nope", BODY, shared_secret_headers(NEW, header="x-token"))
    assert response.status == 404 and response.body["error"] == "unknown_source"
    assert journaled(app) == 0


@pytest.mark.parametrize("secrets", [[], [""]])
def test_source_without_secret_does_not_start(make, secrets):
    with pytest.raises(ConfigurationError) as caught:
        make(connectors=config(scheme="standard", secrets=secrets))
    text = str(caught.value)
    assert "\n" not in text and "connectors.generic.sources.src.auth" in text and "secret" in text


def test_subscription_without_secret_does_not_start(make):
    with pytest.raises(ConfigurationError) as caught:
        make(connectors={"generic": {"subscriptions": {"crm": {"url": "http://127.0.0.1:9/hook"}}}})
    assert "connectors.generic.subscriptions.crm.secret" in str(caught.value)


def test_secrets_never_in_reprs_or_errors(make):
    app = make(connectors=HMAC_HEX)
    settings = app.connectors["generic"].settings
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    response = post(app, "src", BODY, hex_sig(BODY, "wrong"))
    assert NEW not in shown and OLD not in shown and NEW not in json.dumps(response.body)
