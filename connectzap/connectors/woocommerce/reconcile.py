"""Catch what WooCommerce never re-sends: a failed webhook is not retried, and the webhook is
disabled after repeated failures. Reconcile lists the orders modified since the last seen time
(all pages) and feeds each change through the same path as a webhook.

Each fetched change is journaled with the dedupe key ``reconcile:{shop}:{order}:{date_modified_gmt}``,
so running reconcile twice journals a change once; a change that also came by webhook is
journaled twice but notifies once (the notifications plugin remembers per order what it sent).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ...core.clock import iso_utc
from ...core.errors import ConfigurationError, ConnectzapError
from ...core.models import EventKind
from ...core.wording import counted
from .mapping import SOURCE, gmt, order_event
from .rest import ShopClient
from .settings import WooCommerceSettings

if TYPE_CHECKING:
    from ...core.app import Connectzap

log = logging.getLogger("connectzap.woocommerce.reconcile")
STATE_PLUGIN = "woocommerce"  # the plugin module's state holds each shop's last seen change
OVERLAP = timedelta(minutes=1)  # re-read a little: same-second changes and clock skew; dedupe absorbs it


@dataclass
class ReconcileResult:
    shop: str
    since: datetime
    fetched: int = 0
    journaled: int = 0
    last_seen: datetime | None = None

    def summary(self) -> str:
        """One line for the operator (the CLI's and the console's)."""
        seen = iso_utc(self.last_seen) if self.last_seen else "-"
        return (f"{self.shop}: {counted(self.fetched, 'order')} modified since {self.since:%Y-%m-%d %H:%M:%S}Z, "
                f"{counted(self.journaled, 'new change')}; last seen {seen}")


def change_key(shop: str, data: dict[str, Any]) -> str:
    return f"reconcile:{shop}:{data.get('id')}:{data.get('date_modified_gmt') or data.get('date_modified')}"


def settings_of(app: Connectzap) -> WooCommerceSettings:
    """The running WooCommerce connector's settings, or a clear error when it is not enabled."""
    connector = app.connectors.get(SOURCE)
    settings = connector.settings if connector is not None else None
    if not isinstance(settings, WooCommerceSettings):
        raise ConfigurationError("the woocommerce connector is not configured ([connectors.woocommerce])")
    return settings


def _state_key(shop: str) -> str:
    return f"reconcile:{shop}:last_seen"


def last_seen(app: Connectzap, shop: str) -> datetime | None:
    seen = app.plugin_state(STATE_PLUGIN).get(_state_key(shop))
    return datetime.fromisoformat(seen) if seen else None


def _save_last_seen(app: Connectzap, shop: str, when: datetime) -> None:
    app.plugin_state(STATE_PLUGIN).set(_state_key(shop), iso_utc(when))


def feed_order(app: Connectzap, shop: str, data: dict[str, Any]) -> bool:
    """Journal one fetched order as an ``order_updated`` event. True when it was new."""
    event = order_event(shop, settings_of(app).shops[shop], data, EventKind.ORDER_UPDATED, change_key(shop, data))
    return not app.ingest([event])[0].duplicate


def reconcile_shop(app: Connectzap, shop: str, since: datetime | None = None) -> ReconcileResult:
    """Fetch every order of ``shop`` modified after ``since`` (default: last seen, minus a minute)."""
    settings = settings_of(app)
    if shop not in settings.shops:
        raise ConfigurationError(f"no shop {shop!r} in [connectors.woocommerce.shops]")
    if since is None:
        seen = last_seen(app, shop)
        since = seen - OVERLAP if seen else datetime.now(UTC) - timedelta(
            hours=settings.reconcile_first_lookback_hours)
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    result = ReconcileResult(shop=shop, since=since, last_seen=last_seen(app, shop))
    for data in ShopClient(shop, settings.shops[shop]).orders_modified_after(since.astimezone(UTC)):
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
    names = [shop] if shop else [n for n, s in settings_of(app).shops.items() if s.has_rest_keys]
    return [reconcile_shop(app, name, since) for name in names]


async def reconcile_forever(app: Connectzap, stop: asyncio.Event) -> None:
    """Reconcile every shop every ``reconcile_interval_minutes`` until ``stop`` is set (for ``serve``).

    Returns at once when the connector is off or the interval is 0. Errors are logged and the
    next round tries again.
    """
    try:
        interval = settings_of(app).reconcile_interval_minutes * 60
    except ConfigurationError:  # the connector is off
        return
    if not interval:
        return
    while not stop.is_set():
        try:
            for result in await asyncio.to_thread(reconcile_all, app):
                if result.journaled:
                    log.info("reconcile %s: %s journaled", result.shop, counted(result.journaled, "missed change"))
        except Exception as exc:  # noqa: BLE001 - the loop must survive a shop being down
            log.warning("reconcile failed: %s: %s", type(exc).__name__,
                        exc.message if isinstance(exc, ConnectzapError) else exc)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
