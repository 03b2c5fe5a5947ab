"""When each status happened: the first time Meta reported a message sent, delivered, read (or
played) and failed is kept on the message from the status webhooks' timestamps, in any arrival
order, and shown by ``GET /v1/messages/{id}``, ``connectzap messages show`` and the console."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from click.testing import CliRunner
from console_support import PASSWORD, USER, log_in
from server_support import AUTH, KEY, api_engine, serving
from test_console_routes import console
from test_message_pricing import FIXTURES, sent_message

from connectzap import Connectzap
from connectzap.cli import cli
from connectzap.console.passwords import hash_password
from connectzap.connectors.whatsapp import webhooks
from connectzap.core.store import outbox
from connectzap.core.store.schema import outbox as outbox_table
from connectzap.core.worker import Worker
from connectzap.testing import FakeWhatsApp
from test_status_batches import admitted

T0 = 1_780_000_000


def status_at(app: Any, row: dict[str, Any], status: str, at: int, pricing: dict[str, Any] | None = None) -> None:
    """Meta's delivered fixture re-aimed at ``row``, with ``status`` at ``at`` (epoch seconds)."""
    doc = json.loads((FIXTURES / "status_delivered.json").read_text())
    item = doc["entry"][0]["changes"][0]["value"]["statuses"][0]
    item.update(id=row["wamid"], biz_opaque_callback_data=row["id"], status=status, timestamp=str(at))
    item.pop("pricing")
    if pricing:
        item["pricing"] = pricing
    app.ingest(webhooks.parse_body(json.dumps(doc).encode()))


async def test_times_from_the_webhooks_in_any_order_and_shown_by_rest(make):
    engine = api_engine(make, channel=FakeWhatsApp())
    row = await sent_message(engine)
    status_at(engine, row, "read", T0 + 60)
    status_at(engine, row, "delivered", T0 + 5, {"billable": True, "pricing_model": "PMP", "category": "marketing",
                                                 "type": "regular"})
    status_at(engine, row, "sent", T0)
    status_at(engine, row, "delivered", T0 + 500)  # Meta retries a webhook: the first time stays
    await Worker(engine).run_until_idle()
    stored = engine.message(row["id"])
    assert (stored["sent_at"], stored["delivered_at"], stored["read_at"], stored["failed_at"]) == (
        T0, T0 + 5, T0 + 60, None)
    async with serving(engine) as client:
        shown = (await client.get(f"/v1/messages/{row['id']}", headers=AUTH)).json()
    assert shown["sent_at"] == datetime.fromtimestamp(T0, UTC).isoformat().replace("+00:00", "Z")
    assert shown["read_at"].startswith(datetime.fromtimestamp(T0 + 60, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    assert (shown["billable"], shown["pricing_category"], shown["pricing_type"]) == (True, "marketing", "regular")


async def test_messages_show_and_the_console_page_list_the_times(make, tmp_path):
    app = make(channel=FakeWhatsApp(), api={"keys": [KEY]}, console={"enabled": True})
    row = await sent_message(app)
    status_at(app, row, "sent", T0)
    status_at(app, row, "failed", T0 + 9)
    await Worker(app).run_until_idle()
    assert (app.message(row["id"])["sent_at"], app.message(row["id"])["failed_at"]) == (T0, T0 + 9)
    config = tmp_path / "cli.toml"
    config.write_text(f'data_dir = "{app.settings.data_dir}"\n[database]\nurl = "{app.settings.database_url}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "messages", "show", row["id"], "--json"])
    assert result.exit_code == 0, result.output
    failed = datetime.fromtimestamp(T0 + 9, UTC)
    assert json.loads(result.output)["failed_at"].startswith(failed.strftime("%Y-%m-%dT%H:%M:%S"))
    app.operators.add_user(USER, hash_password(PASSWORD))
    async with console(app) as client:
        await log_in(client)
        page = (await client.get(f"/console/messages/{row['id']}")).text
    assert 'id="m-sent-at"' in page and 'id="m-failed-at"' in page and 'id="m-read-at"' not in page


times = st.lists(st.tuples(st.sampled_from(["sent", "delivered", "read", "played", "failed"]),
                           st.integers(0, 10_000)), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reports=times)
def test_each_time_is_the_earliest_reported(app: Connectzap, reports: list[tuple[str, int]]) -> None:
    """Whatever order and repetition the statuses come in, in one batch or several, each column
    holds the earliest time reported for its status (read and played share one) and no other."""
    ids = getattr(app, "_times_ids", None) or admitted(app, 1)
    app._times_ids = ids  # type: ignore[attr-defined]  # admitted once for every example
    batch = [outbox.StatusReport("wamid.t", status, outbox_id=ids[0], at=T0 + at) for status, at in reports]
    with app.db.engine.connect() as conn, conn.begin() as tx:
        conn.execute(outbox_table.update().where(outbox_table.c.id == ids[0]).values(
            status="accepted", wamid="wamid.t", sent_at=None, delivered_at=None, read_at=None, failed_at=None))
        half = len(batch) // 2
        outbox.apply_statuses(conn, batch[:half])
        outbox.apply_statuses(conn, batch[half:])
        row = conn.execute(select(outbox_table).where(outbox_table.c.id == ids[0])).one()._mapping
        tx.rollback()
    for column, statuses in (("sent_at", {"sent"}), ("delivered_at", {"delivered"}),
                             ("read_at", {"read", "played"}), ("failed_at", {"failed"})):
        reported = [T0 + at for status, at in reports if status in statuses]
        assert row[column] == (min(reported) if reported else None), column
