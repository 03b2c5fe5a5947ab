"""docs/generic-webhooks.md shows the example files verbatim, and each example works as written."""

from __future__ import annotations

import re
from pathlib import Path

from generic_support import EXAMPLES, example_body, example_config, post
from sqlalchemy import select

from connectzap.core.models import Category, Event
from connectzap.core.store.schema import events
from connectzap.core.worker import Worker
from connectzap.testing import shared_secret_headers

DOC = Path(__file__).parent.parent / "docs" / "generic-webhooks.md"
SHOWN = re.compile(r"<!-- example: tests/payloads/generic/(?P<name>[\w.-]+) -->\n```\w+\n(?P<text>.*?)```\n", re.S)


def shown_examples() -> dict[str, str]:
    return {m["name"]: m["text"] for m in SHOWN.finditer(DOC.read_text())}


def test_doc_blocks_equal_the_tested_files():
    shown = shown_examples()
    files = {p.name: p.read_text() for p in EXAMPLES.iterdir() if p.suffix in (".toml", ".json")}
    assert sorted(shown) == sorted(files), "every example file appears in the doc exactly once, and only those"
    for name, text in shown.items():
        assert text == files[name], f"docs/generic-webhooks.md shows a different {name} than the tested file"


async def test_form_lead_example_as_written(make):
    app = make(connectors=example_config("form-lead"))
    body = example_body("form-lead")
    response = post(app, "contact-form", body, shared_secret_headers("form-token-new", header="x-form-token"))
    assert response.body == {"received": 1, "duplicates": 0}
    with app.db.read() as conn:
        event = Event.model_validate_json(conn.execute(select(events.c.payload)).scalar_one())
    lead = event.payload()
    assert (lead.id, lead.contact.phone, lead.contact.email) == ("sub_20250612_0042", "+447911123456",
                                                                 "liu.wei@example.com")
    assert lead.properties == {"interest": "Team plan", "form": "Book a demo"}
    await Worker(app).run_until_idle()
    record = app.consent("+447911123456")[Category.MARKETING]
    assert record.granted and record.source == "website-form" and record.proof.startswith("Yes, send me offers")


async def test_examples_over_http(make):
    """The real service mounts /webhooks/generic/{name}: 200, duplicate, 401, 404 and 422 over HTTP."""
    from server_support import serving

    from connectzap.testing import hmac_headers
    engine = make(connectors=example_config("shop-order"))
    body = example_body("shop-order")
    signed = {**hmac_headers(body, "shop-signing-secret-change-me", header="X-Shop-Signature", prefix="sha256="),
              "content-type": "application/json"}
    async with serving(engine) as client:
        first = await client.post("/webhooks/generic/shop", content=body, headers=signed)
        again = await client.post("/webhooks/generic/shop", content=body, headers=signed)
        forged = await client.post("/webhooks/generic/shop", content=body + b" ", headers=signed)
        unknown = await client.post("/webhooks/generic/other", content=body, headers=signed)
        broken = b'{"topic": "order.created", "delivery_id": "d2", "order": {}}'
        missing = await client.post("/webhooks/generic/shop", content=broken, headers={
            **hmac_headers(broken, "shop-signing-secret-change-me", header="X-Shop-Signature", prefix="sha256="),
            "content-type": "application/json"})
    assert (first.status_code, first.json()) == (200, {"received": 1, "duplicates": 0})
    assert again.json() == {"received": 0, "duplicates": 1}
    assert (forged.status_code, unknown.status_code, missing.status_code) == (401, 404, 422)
    assert missing.json()["field"] == "order.id"
