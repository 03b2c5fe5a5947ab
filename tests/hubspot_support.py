"""Shared pieces of the HubSpot tests: signed requests, fixtures on disk, an engine wired to a fake."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import update

from connectzap.core.connector import WebhookRequest
from connectzap.connectors.hubspot import signatures
from connectzap.core.app import Connectzap
from connectzap.core.store.schema import deliveries, events

PAYLOADS = Path(__file__).parent / "payloads" / "hubspot"
CLIENT_SECRET = "hs-client-secret-0123456789"
OLD_CLIENT_SECRET = "hs-client-secret-previous-42"
WORKFLOW_SECRET = "wf-secret-abcdefghijklmnop"
TOKEN = "pat-na1-00000000-test-token"
URL = "https://connectzap.example/webhooks/hubspot"
PHONE = "+34612345678"


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def request(body: bytes, headers: dict[str, str] | None = None, *, url: str = URL,
            query: dict[str, str] | None = None, method: str = "POST") -> WebhookRequest:
    return WebhookRequest(method=method, url=url, path="/webhooks/hubspot", body=body, query=query or {},
                          headers={"content-type": "application/json",
                                   **{k.lower(): v for k, v in (headers or {}).items()}},
                          received_at=time.time())


def v3(body: bytes, *, secret: str = CLIENT_SECRET, url: str = URL, at_ms: int | None = None) -> dict[str, str]:
    ts = int(time.time() * 1000) if at_ms is None else at_ms
    return {"x-hubspot-signature-v3": signatures.sign_hubspot_v3("POST", url, body, ts, secret),
            "x-hubspot-request-timestamp": str(ts)}


def v1(body: bytes, *, secret: str = CLIENT_SECRET) -> dict[str, str]:
    return {"x-hubspot-signature": signatures.sign_hubspot_v1(body, secret), "x-hubspot-signature-version": "v1"}


def v2(body: bytes, *, secret: str = CLIENT_SECRET, url: str = URL) -> dict[str, str]:
    return {"x-hubspot-signature": signatures.sign_hubspot_v2("POST", url, body, secret),
            "x-hubspot-signature-version": "v2"}


def hubspot_config(base_url: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "access_token": TOKEN, "client_secrets": [CLIENT_SECRET, OLD_CLIENT_SECRET],
        "workflow_secrets": [WORKFLOW_SECRET], "api_base_url": base_url, "max_inline_retries": 2,
        "inline_retry_max_seconds": 0.2, "search_index_lag_seconds": 0,
        "consent": {"marketing": {"property": "whatsapp_marketing_optin",
                                  "legal_basis_property": "whatsapp_marketing_legal_basis",
                                  "at_property": "whatsapp_marketing_consent_at",
                                  "source_property": "whatsapp_marketing_consent_source"}},
    }
    config.update(overrides)
    return config


def make_due(app: Connectzap) -> None:
    """Bring every scheduled retry forward to now, as if its wait had passed (no sleeping in tests)."""
    with app.db.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.status == "pending").values(next_attempt_at=0))
        conn.execute(update(events).where(events.c.status == "pending").values(next_attempt_at=0))


def deliveries_of(app: Connectzap, target: str) -> list[dict[str, Any]]:
    from sqlalchemy import select
    with app.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(deliveries).where(deliveries.c.target == target))]


def json_body(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


Factory = Callable[..., Connectzap]
