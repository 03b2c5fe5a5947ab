"""Signed test requests for every scheme: the core's generic ones (:mod:`connectzap.core.signatures`)
and each bundled connector's (``connectzap/connectors/NAME/signatures.py``).

Each ``*_headers`` function returns a ready header dict (lower-case names, as
:class:`~connectzap.WebhookRequest` expects). A :class:`Signer` bundles one scheme for the
conformance suite: it signs a request with a given secret at a given time, and says whether the
scheme covers the body and carries a timestamp (so the suite knows which attacks apply).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from ..connectors.email.signatures import sign_basic_auth
from ..connectors.hubspot.signatures import sign_hubspot_v1, sign_hubspot_v2, sign_hubspot_v3
from ..connectors.sms.signatures import form_params, sign_twilio
from ..connectors.whatsapp.signatures import sign_meta
from ..connectors.woocommerce.signatures import sign_woocommerce
from ..core.connector import WebhookRequest
from ..core.signatures import sign_hmac, sign_standard

DEFAULT_HOST = "https://connectzap.test"


def as_body(body: Any) -> bytes:
    """Raw bytes for ``body``: bytes as given, text encoded, anything else compact JSON."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_request(path: str, body: Any = b"", *, headers: Mapping[str, str] | None = None,
                    method: str = "POST", query: Mapping[str, str] | None = None,
                    path_params: Mapping[str, str] | None = None, host: str = DEFAULT_HOST,
                    content_type: str | None = "application/json") -> WebhookRequest:
    """A :class:`WebhookRequest` as the HTTP edge would build it (header names lower-cased)."""
    raw = as_body(body)
    query = dict(query or {})
    url = host.rstrip("/") + path + (f"?{urlencode(query)}" if query else "")
    merged = {"content-type": content_type} if content_type and raw else {}
    merged.update({k.lower(): v for k, v in (headers or {}).items()})
    return WebhookRequest(method=method.upper(), url=url, path=path, headers=merged, body=raw, query=query,
                          path_params=dict(path_params or {}), received_at=time.time())


# --- one function per scheme -------------------------------------------------------------------

def meta_headers(body: bytes, app_secret: str) -> dict[str, str]:
    """``X-Hub-Signature-256`` as Meta (WhatsApp) sends it."""
    return {"x-hub-signature-256": sign_meta(body, app_secret)}


def woocommerce_headers(body: bytes, secret: str, *, topic: str = "order.created", delivery_id: str = "1",
                        webhook_id: str = "1", source: str = "https://shop.example/") -> dict[str, str]:
    """The headers WooCommerce sends with a webhook delivery, signed."""
    resource, _, event = topic.partition(".")
    return {"x-wc-webhook-signature": sign_woocommerce(body, secret), "x-wc-webhook-topic": topic,
            "x-wc-webhook-resource": resource, "x-wc-webhook-event": event,
            "x-wc-webhook-delivery-id": delivery_id, "x-wc-webhook-id": webhook_id,
            "x-wc-webhook-source": source}


def twilio_headers(url: str, body: bytes, auth_token: str) -> dict[str, str]:
    """``X-Twilio-Signature`` as Twilio sends it with a form POST of ``body`` to ``url``."""
    return {"x-twilio-signature": sign_twilio(url, form_params(body), auth_token)}


def hubspot_v1_headers(body: bytes, client_secret: str) -> dict[str, str]:
    return {"x-hubspot-signature": sign_hubspot_v1(body, client_secret),
            "x-hubspot-signature-version": "v1"}


def hubspot_v2_headers(method: str, uri: str, body: bytes, client_secret: str) -> dict[str, str]:
    return {"x-hubspot-signature": sign_hubspot_v2(method, uri, body, client_secret),
            "x-hubspot-signature-version": "v2"}


def hubspot_v3_headers(method: str, uri: str, body: bytes, client_secret: str, *,
                       timestamp_ms: int | None = None) -> dict[str, str]:
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return {"x-hubspot-signature-v3": sign_hubspot_v3(method, uri, body, ts, client_secret),
            "x-hubspot-request-timestamp": str(ts)}


def standard_webhooks_headers(body: bytes, secret: str, *, msg_id: str | None = None,
                              timestamp: int | None = None) -> dict[str, str]:
    """``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature``. The default id is derived from
    the body, so re-signing the same body (a retry) keeps its id, as senders do."""
    ts = int(time.time()) if timestamp is None else timestamp
    mid = msg_id or "msg_" + hashlib.sha256(body).hexdigest()[:24]
    return {"webhook-id": mid, "webhook-timestamp": str(ts),
            "webhook-signature": sign_standard(mid, ts, body, secret)}


def hmac_headers(body: bytes, secret: str, *, header: str = "x-signature", encoding: str = "hex",
                 prefix: str = "", algo: str = "sha256") -> dict[str, str]:
    return {header.lower(): sign_hmac(body, secret, encoding=encoding, prefix=prefix, algo=algo)}


def basic_auth_headers(username: str, password: str) -> dict[str, str]:
    """``Authorization: Basic ...``, as a sender with credentials in the webhook URL sends it (Postmark)."""
    return {"authorization": sign_basic_auth(username, password)}


def shared_secret_headers(secret: str, *, header: str = "x-webhook-secret") -> dict[str, str]:
    return {header.lower(): secret}


# --- signers for the conformance suite -----------------------------------------------------------

SignFunction = Callable[[WebhookRequest, str, float], dict[str, str]]


@dataclass(frozen=True)
class Signer:
    """One signature scheme, as the conformance suite uses it.

    :ivar scheme: a readable name (``"standard-webhooks"``, ...).
    :ivar build: ``(request, secret, now) -> headers`` for an unsigned request.
    :ivar covers_body: the signature covers the body, so a changed body must be rejected.
    :ivar timestamped: the signature carries a time, so an old one must be rejected.
    """

    scheme: str
    build: SignFunction
    covers_body: bool = True
    timestamped: bool = False

    def sign(self, request: WebhookRequest, secret: str, *, now: float | None = None) -> WebhookRequest:
        """A copy of ``request`` with this scheme's headers added."""
        added = self.build(request, secret, time.time() if now is None else now)
        return replace(request, headers={**request.headers, **added})

    def header_names(self, request: WebhookRequest, secret: str) -> list[str]:
        return sorted(self.build(request, secret, time.time()))

    # --- the schemes connectzap knows ---

    @classmethod
    def meta(cls) -> Signer:
        return cls("meta", lambda r, s, now: meta_headers(r.body, s))

    @classmethod
    def woocommerce(cls, **extra: str) -> Signer:
        return cls("woocommerce", lambda r, s, now: woocommerce_headers(r.body, s, **extra))

    @classmethod
    def twilio(cls) -> Signer:
        return cls("twilio", lambda r, s, now: twilio_headers(r.url, r.body, s))

    @classmethod
    def hubspot_v1(cls) -> Signer:
        return cls("hubspot-v1", lambda r, s, now: hubspot_v1_headers(r.body, s))

    @classmethod
    def hubspot_v2(cls) -> Signer:
        return cls("hubspot-v2", lambda r, s, now: hubspot_v2_headers(r.method, r.url, r.body, s))

    @classmethod
    def hubspot_v3(cls) -> Signer:
        return cls("hubspot-v3", lambda r, s, now: hubspot_v3_headers(r.method, r.url, r.body, s,
                                                                     timestamp_ms=int(now * 1000)),
                   timestamped=True)

    @classmethod
    def standard_webhooks(cls) -> Signer:
        return cls("standard-webhooks", lambda r, s, now: standard_webhooks_headers(r.body, s, timestamp=int(now)),
                   timestamped=True)

    @classmethod
    def hmac(cls, header: str = "x-signature", *, encoding: str = "hex", prefix: str = "",
             algo: str = "sha256") -> Signer:
        return cls(f"hmac-{algo}", lambda r, s, now: hmac_headers(r.body, s, header=header, encoding=encoding,
                                                                  prefix=prefix, algo=algo))

    @classmethod
    def basic_auth(cls, username: str) -> Signer:
        """HTTP Basic credentials: ``username`` and the secret as the password (it covers no body)."""
        return cls("http-basic", lambda r, s, now: basic_auth_headers(username, s), covers_body=False)

    @classmethod
    def shared_secret(cls, header: str = "x-webhook-secret") -> Signer:
        return cls("shared-secret", lambda r, s, now: shared_secret_headers(s, header=header), covers_body=False)
