"""Every time connectzap writes out (REST, --json, CSV exports, reports, outgoing webhooks, logs)
reads one way: ISO 8601 in UTC with ``Z`` -- :func:`connectzap.core.clock.iso_utc`, which must agree
with how pydantic writes the REST API's times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import TypeAdapter

from connectzap.core.clock import iso_utc

REST = TypeAdapter(datetime)


@pytest.mark.parametrize("when", [datetime(2026, 12, 5, 21, 40, 27, tzinfo=UTC),
                                  datetime(2026, 12, 5, 21, 40, 27, 220279, tzinfo=UTC),
                                  datetime(2026, 12, 5, 21, 40, 27, 120000, tzinfo=UTC)])
def test_a_utc_time_is_written_as_the_rest_api_writes_it(when: datetime) -> None:
    assert iso_utc(when) == REST.dump_python(when, mode="json") and iso_utc(when).endswith("Z")


def test_other_offsets_are_written_in_utc_and_a_naive_time_is_taken_as_utc() -> None:
    madrid = datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert iso_utc(madrid) == "2026-06-01T10:00:00Z"
    assert iso_utc(datetime(2026, 6, 1, 12, 0)) == "2026-06-01T12:00:00Z"
    assert iso_utc(datetime(2026, 6, 1, 12, 0, 0, 412345, tzinfo=UTC), timespec="milliseconds") \
        == "2026-06-01T12:00:00.412Z"


# --- what connectzap writes from its own clock --------------------------------------------------------------

SEEN = datetime(2026, 3, 8, 12, tzinfo=UTC)


def test_reconcile_stores_and_shows_last_seen_with_z_and_still_reads_the_old_form(make: Any) -> None:
    from connectzap.connectors.woocommerce.reconcile import (STATE_PLUGIN, ReconcileResult, _save_last_seen,
                                                              last_seen)
    app = make()
    _save_last_seen(app, "main", SEEN)
    assert app.plugin_state(STATE_PLUGIN).get("reconcile:main:last_seen") == "2026-03-08T12:00:00Z"
    assert last_seen(app, "main") == SEEN
    app.plugin_state(STATE_PLUGIN).set("reconcile:main:last_seen", "2026-03-08T12:00:00+00:00")  # an older install's
    assert last_seen(app, "main") == SEEN
    result = ReconcileResult("main", since=datetime(2026, 3, 1, tzinfo=UTC), last_seen=SEEN)
    assert result.summary().endswith("; last seen 2026-03-08T12:00:00Z")


def test_consent_proofs_give_their_time_with_z() -> None:
    from connectzap import Contact
    from connectzap.connectors.hubspot.contacts import Contacts
    from connectzap.connectors.hubspot.settings import HubSpotSettings
    from connectzap.connectors.woocommerce.mapping import consents_from
    from connectzap.connectors.woocommerce.settings import ShopSettings
    from test_fallback_config import ANA, order
    from test_woocommerce_webhooks import shop_config

    shop = ShopSettings.model_validate(shop_config())
    [change] = consents_from(order(), Contact(phone=ANA), "main", shop, what="order 1042", at=SEEN)
    assert " at 2026-03-08T12:00:00Z" in change.proof and "+00:00" not in change.proof
    settings = HubSpotSettings.model_validate({"access_token": "t", "client_secrets": ["s"],
                                               "consent": {"marketing": {"property": "optin"}}})
    contact = {"id": "51", "properties": {"optin": "granted"}}
    [granted] = Contacts(None, settings).consents_of(contact, "62515", ANA, SEEN)  # type: ignore[arg-type]  # no client needed
    assert granted.proof.endswith("(read 2026-03-08T12:00:00Z)")


async def test_the_sandbox_log_stamps_sends_and_read_receipts_with_z(make: Any) -> None:
    from connectzap.connectors.whatsapp.sandbox import SandboxChannel
    from connectzap.core.channel import OutboundSend
    from connectzap.core.messages import TextContent
    app = make(sandbox={"quiet": True, "simulate_statuses": False})
    channel = SandboxChannel(app, app.settings.data_dir / "sends.jsonl")
    await channel.send(OutboundSend(outbox_id="m1", recipient="+34612345678", content=TextContent(body="Hola"),
                                    category="service"))
    await channel.mark_read("wamid.in.1", typing=True)
    stamps = [json.loads(line)["at"] for line in channel.path.read_text().splitlines()]
    assert len(stamps) == 2 and all(at.endswith("Z") and "+00:00" not in at for at in stamps)


def test_made_up_timestamps_of_simulate_and_sample_events_end_with_z() -> None:
    from connectzap.cli.simulate import _events
    from connectzap.testing import sample_event
    stamped = sample_event("inbound_message")
    assert stamped.data["timestamp"].endswith("Z")
    data = {k: v for k, v in stamped.data.items() if k != "timestamp"}
    [event] = _events(None, [{"kind": "inbound_message", "data": data}])
    assert event.data["timestamp"].endswith("Z")
