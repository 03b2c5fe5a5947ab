"""Catch what WooCommerce never re-sends: a failed webhook is not retried, and the webhook is
disabled after repeated failures. Reconcile lists the orders modified since the last seen time
(all pages) and feeds each change through the same path as a webhook.

Each fetched change is journaled with the dedupe key ``reconcile:{shop}:{order}:{date_modified_gmt}``,
so running reconcile twice journals a change once; a change that also came by webhook is
journaled twice but notifies once (the notifications plugin remembers per order what it sent).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ...core.errors import ConfigurationError, ConnectzapError
from ...core.models import EventKind
from ...core.store.database import now
from ...core.store.schema import plugin_state
from .mapping import gmt

if TYPE_CHECKING:
    from ...core.app import Connectzap
    from .connector import WooCommerceConnector

log = logging.getLogger("connectzap.woocommerce.reconcile")
STATE_PLUGIN = "woocommerce"
OVERLAP = timedelta(minutes=1)  # re-read a little: same-second changes and clock skew; dedupe absorbs it


@dataclass
class ReconcileResult:
    shop: str
    since: datetime
    fetched: int = 0
    journaled: int = 0
    last_seen: datetime | None = None


def change_key(shop: str, data: dict[str, Any]) -> str:
    return f"reconcile:{shop}:{data.get('id')}:{data.get('date_modified_gmt') or data.get('date_modified')}"


def connector_of(app: Connectzap) -> WooCommerceConnector:
    connector = app.connectors.get("woocommerce")
    if connector is None:
        raise ConfigurationError("the woocommerce connector is not configured ([connectors.woocommerce])")
    return connector  # type: ignore[return-value]


def _state_key(shop: str) -> str:
    return f"reconcile:{shop}:last_seen"


def last_seen(app: Connectzap, shop: str) -> datetime | None:
    with app.db.read() as conn:
        row = conn.execute(select(plugin_state.c.value).where(plugin_state.c.plugin == STATE_PLUGIN,
                                                              plugin_state.c.key == _state_key(shop))).first()
    return datetime.fromisoformat(json.loads(row[0])) if row else None


def _save_last_seen(app: Connectzap, shop: str, when: datetime) -> None:
    with app.db.begin() as conn:
        app.db.upsert(conn, plugin_state, {"plugin": STATE_PLUGIN, "key": _state_key(shop),
                                           "value": json.dumps(when.isoformat()), "updated_at": now()},
                      ["plugin", "key"])


def feed_order(app: Connectzap, shop: str, data: dict[str, Any]) -> bool:
    """Journal one fetched order as an ``order_updated`` event. True when it was new."""
    connector = connector_of(app)
    event = connector.order_event(shop, data, EventKind.ORDER_UPDATED, change_key(shop, data))
    return not app.ingest([event])[0].duplicate


def reconcile_shop(app: Connectzap, shop: str, since: datetime | None = None) -> ReconcileResult:
    """Fetch every order of ``shop`` modified after ``since`` (default: last seen, minus a minute)."""
    connector = connector_of(app)
    if shop not in connector.settings.shops:
        raise ConfigurationError(f"no shop {shop!r} in [connectors.woocommerce.shops]")
    if since is None:
        seen = last_seen(app, shop)
        since = seen - OVERLAP if seen else datetime.now(UTC) - timedelta(
            hours=connector.settings.reconcile_first_lookback_hours)
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    result = ReconcileResult(shop=shop, since=since, last_seen=last_seen(app, shop))
    for data in connector.client(shop).orders_modified_after(since.astimezone(UTC)):
        result.fetched += 1
        try:
            result.journaled += feed_order(app, shop, data)
        except ConnectzapError as exc:  # one bad order must not stop the rest
            log.warning("reconcile %s: order %s skipped: %s", shop, data.get("id"), exc.message)
        modified = gmt(data.get("date_modified_gmt"))
        if modified and (result.last_seen is None or modified > result.last_seen):
            result.last_seen = modified
            _save_last_seen(app, shop, modified)  # saved as we go: a crash mid-way resumes from here
    return result


def reconcile_all(app: Connectzap, shop: str | None = None, since: datetime | None = None) -> list[ReconcileResult]:
    connector = connector_of(app)
    names = [shop] if shop else [n for n, s in connector.settings.shops.items() if s.has_rest_keys]
    return [reconcile_shop(app, name, since) for name in names]


async def reconcile_forever(app: Connectzap, stop: asyncio.Event) -> None:
    """Reconcile every shop every ``reconcile_interval_minutes`` until ``stop`` is set (for ``serve``).

    Returns at once when the connector is off or the interval is 0. Errors are logged and the
    next round tries again.
    """
    connector = app.connectors.get("woocommerce")
    interval = connector.settings.reconcile_interval_minutes * 60 if connector else 0  # type: ignore[attr-defined]
    if not interval:
        return
    while not stop.is_set():
        try:
            for result in await asyncio.to_thread(reconcile_all, app):
                if result.journaled:
                    log.info("reconcile %s: %d missed change(s) journaled", result.shop, result.journaled)
        except Exception as exc:  # noqa: BLE001 - the loop must survive a shop being down
            log.warning("reconcile failed: %s: %s", type(exc).__name__, getattr(exc, "message", exc))
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
