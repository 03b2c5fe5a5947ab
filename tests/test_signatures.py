"""Every webhook signature scheme: valid, tampered, stale (where timestamped), missing, rotated secret."""

from __future__ import annotations

import base64
import time

import pytest

from connectzap.connectors.hubspot import signatures as hubspot
from connectzap.connectors.whatsapp import signatures as meta
from connectzap.connectors.woocommerce import signatures as woo
from connectzap.core import signatures as sig
from connectzap.core.errors import SignatureError

BODY = b'{"id": 1, "status": "processing"}'
TAMPERED = b'{"id": 1, "status": "cancelled!"}'
OLD, NEW = "old-secret-0123456789", "new-secret-9876543210"

# research/whatsapp.md section 5.3: a real Meta-signed payload (the secret has since been reset).
META_SECRET = "1222e786b144d0e85b9f365372d93676"
META_BODY = (b'{"object":"whatsapp_business_account","entry":[{"id":"264937493375603","changes":[{"value":'
             b'{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550953877","phone_number_id":'
             b'"277321005464405"},"contacts":[{"profile":{"name":"PyWa Tests"},"wa_id":"972544401243"}],"messages":'
             b'[{"from":"972544401243","id":"wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4'
             b'ODAxM0YA","timestamp":"1730231903","text":{"body":"Hey there! I am using PyWa."},"type":"text"}]},'
             b'"field":"messages"}]}]}')
META_HEADER = "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441"


def rejects(call, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(SignatureError) as caught:
        call(*args, **kwargs)
    message = caught.value.message
    assert OLD not in message and NEW not in message and META_SECRET not in message
    return message


def test_meta_known_vector() -> None:
    assert meta.sign_meta(META_BODY, META_SECRET) == META_HEADER
    meta.verify_meta(META_BODY, META_HEADER, [META_SECRET])
    meta.verify_meta(META_BODY, META_HEADER.upper().replace("SHA256=", "sha256="), META_SECRET)  # hex case
    assert "does not match" in rejects(meta.verify_meta, META_BODY + b" ", META_HEADER, META_SECRET)
    assert "does not match" in rejects(meta.verify_meta, META_BODY, META_HEADER, "another-app-secret")


@pytest.mark.parametrize(("sign", "verify"), [
    (meta.sign_meta, meta.verify_meta),
    (woo.sign_woocommerce, woo.verify_woocommerce),
    (hubspot.sign_hubspot_v1, hubspot.verify_hubspot_v1),
    (lambda body, secret: sig.sign_hmac(body, secret, prefix="v1="),
     lambda body, header, secrets: sig.verify_hmac(body, header, secrets, prefix="v1=")),
    (lambda body, secret: sig.sign_hmac(body, secret, encoding="base64", algo="sha1"),
     lambda body, header, secrets: sig.verify_hmac(body, header, secrets, encoding="base64", algo="sha1")),
])
def test_body_signatures(sign, verify) -> None:  # type: ignore[no-untyped-def]
    header = sign(BODY, OLD)
    verify(BODY, header, OLD)
    verify(BODY, header, [NEW, OLD])  # rotation: the old secret still verifies while both are listed
    rejects(verify, TAMPERED, header, OLD)
    rejects(verify, BODY, header, NEW)
    rejects(verify, BODY, None, OLD)
    rejects(verify, BODY, "", OLD)
    rejects(verify, BODY, "not a signature at all", OLD)
    assert "no secret" in rejects(verify, BODY, header, [])


def test_hubspot_v2_signs_method_uri_and_body() -> None:
    uri = "https://example.com/webhooks/hubspot?portal=1"
    header = hubspot.sign_hubspot_v2("POST", uri, BODY, OLD)
    hubspot.verify_hubspot_v2("post", uri, BODY, header, [NEW, OLD])
    rejects(hubspot.verify_hubspot_v2, "POST", uri + "&x=1", BODY, header, OLD)
    rejects(hubspot.verify_hubspot_v2, "POST", uri, TAMPERED, header, OLD)
    rejects(hubspot.verify_hubspot_v2, "POST", uri, BODY, None, OLD)


def test_hubspot_v3_timestamp_uri_decoding_and_staleness() -> None:
    now = 1_750_000_000.0
    ts = str(int(now * 1000))
    uri = "https://example.com/webhooks/hubspot?x=a%3Ab"
    header = hubspot.sign_hubspot_v3("POST", uri, BODY, ts, OLD)
    assert header == hubspot.sign_hubspot_v3("POST", "https://example.com/webhooks/hubspot?x=a:b", BODY, ts, OLD)
    hubspot.verify_hubspot_v3("POST", uri, BODY, header, ts, [NEW, OLD], now=now + 299)
    assert "tolerance" in rejects(hubspot.verify_hubspot_v3, "POST", uri, BODY, header, ts, OLD, now=now + 301)
    rejects(hubspot.verify_hubspot_v3, "POST", uri, TAMPERED, header, ts, OLD, now=now)
    rejects(hubspot.verify_hubspot_v3, "POST", uri, BODY, header, str(int(ts) + 1), OLD, now=now)
    assert "Timestamp missing" in rejects(hubspot.verify_hubspot_v3, "POST", uri, BODY, header, None, OLD, now=now)
    assert "not a number" in rejects(hubspot.verify_hubspot_v3, "POST", uri, BODY, header, "soon", OLD, now=now)
    assert "missing" in rejects(hubspot.verify_hubspot_v3, "POST", uri, BODY, None, ts, OLD, now=now)


def test_standard_webhooks() -> None:
    secret = "whsec_" + base64.b64encode(b"standard-webhooks-key").decode()
    other = "whsec_" + base64.b64encode(b"another-key").decode()
    ts = str(int(time.time()))
    signature = sig.sign_standard("msg_1", ts, BODY, secret)
    sig.verify_standard("msg_1", ts, signature, BODY, [other, secret])
    sig.verify_standard("msg_1", ts, f"v1,bm90LWl0 {signature}", BODY, secret)  # several signatures
    rejects(sig.verify_standard, "msg_2", ts, signature, BODY, secret)
    rejects(sig.verify_standard, "msg_1", ts, signature, TAMPERED, secret)
    rejects(sig.verify_standard, "msg_1", ts, signature.replace("v1,", "v2,"), BODY, secret)
    assert "tolerance" in rejects(sig.verify_standard, "msg_1", ts, signature, BODY, secret,
                                  now=int(ts) + 301)
    assert "required" in rejects(sig.verify_standard, "msg_1", None, signature, BODY, secret)
    assert "required" in rejects(sig.verify_standard, "msg_1", ts, None, BODY, secret)
    assert "no secret" in rejects(sig.verify_standard, "msg_1", ts, signature, BODY, [])


def test_shared_secret() -> None:
    sig.verify_shared_secret(OLD, [NEW, OLD])
    rejects(sig.verify_shared_secret, OLD + "x", OLD)
    rejects(sig.verify_shared_secret, None, OLD)
    rejects(sig.verify_shared_secret, "", OLD)


# --- where the schemes live -------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "home"), [
    ("sign_meta", meta), ("verify_meta", meta), ("sign_woocommerce", woo), ("verify_woocommerce", woo),
    ("sign_hubspot_v1", hubspot), ("verify_hubspot_v2", hubspot), ("verify_hubspot_v3", hubspot),
])
def test_vendor_schemes_live_in_their_connectors_and_keep_their_public_names(name, home) -> None:  # type: ignore[no-untyped-def]
    import warnings

    import connectzap
    assert name not in vars(sig), "a vendor's scheme in the core"
    with pytest.warns(DeprecationWarning, match=rf"{home.__name__}\.{name}"):
        assert getattr(connectzap.signatures, name) is getattr(home, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the core's generic primitives are not deprecated
        assert connectzap.signatures.verify_standard is sig.verify_standard
    with pytest.raises(AttributeError):
        connectzap.signatures.verify_nothing  # noqa: B018 - the attribute access itself is what must fail
