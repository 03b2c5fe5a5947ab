"""Times connectzap makes up -- the sandbox's log and its simulated statuses, `connectzap
simulate`'s timestamps and received_at, `connectzap.testing.sample_event` -- come from the engine's
clock (:mod:`connectzap.core.clock`), so under a clock a test moved they agree with the windows,
leases and outbox times the engine reads from it. They came from the wall clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from connectzap.core import clock
from connectzap.core.clock import iso_utc

FROZEN = datetime(2026, 3, 8, 12, 0, 0, 250000, tzinfo=UTC)


def frozen() -> Any:
    return clock.use_clock(lambda: FROZEN.timestamp())


async def test_the_sandbox_log_and_its_simulated_statuses_follow_the_clock(make: Any) -> None:
    from connectzap.connectors.whatsapp.sandbox import SandboxChannel
    from connectzap.core.channel import OutboundSend
    from connectzap.core.messages import TextContent
    app = make(sandbox={"quiet": True, "simulate_statuses": True})
    channel = SandboxChannel(app, app.settings.data_dir / "sends.jsonl")
    ingested: list[Any] = []
    app.ingest = ingested.extend  # the simulated statuses, as they would be journaled
    with frozen():
        await channel.send(OutboundSend(outbox_id="m1", recipient="+34612345678",
                                        content=TextContent(body="Hola"), category="service"))
        await channel.mark_read("wamid.in.1")
    stamps = [json.loads(line)["at"] for line in channel.path.read_text().splitlines()]
    assert stamps == [iso_utc(FROZEN)] * 2
    assert [(e.data["status"], e.payload().timestamp) for e in ingested] == [("sent", FROZEN), ("delivered", FROZEN)]


def test_simulate_stamps_its_messages_and_webhooks_by_the_clock() -> None:
    from connectzap.cli.simulate import _events
    from connectzap.testing import sample_event
    data = {k: v for k, v in sample_event("inbound_message").data.items() if k != "timestamp"}

    class Stub:  # a connector that answers the request it was given
        routes = ["/webhooks/stub"]

        def handshake(self, request: Any) -> None:
            return None

        def parse(self, request: Any) -> list[Any]:
            return [request.received_at]

    app = SimpleNamespace(connectors={"stub": Stub()})
    with frozen():
        [event, received_at] = _events(app, [{"kind": "inbound_message", "data": data},
                                             {"webhook": "/webhooks/stub", "body": {}}])
    assert (event.data["timestamp"], received_at) == (iso_utc(FROZEN), FROZEN.timestamp())


def test_sample_events_are_stamped_by_the_clock() -> None:
    from connectzap.testing import sample_event
    with frozen():
        stamped = [sample_event(kind).data["timestamp"] for kind in ("inbound_message", "message_status")]
    assert stamped == [iso_utc(FROZEN)] * 2
