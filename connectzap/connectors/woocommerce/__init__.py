"""The WooCommerce plugin: the connector, the ``connectzap woocommerce`` commands, and two order
hooks -- one completes the partial orders of ``action.woocommerce_order_status_*`` webhooks with
a REST fetch, one remembers each customer's latest order so their replies land on it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ...core.hookspecs import hookimpl
from ...core.connector import OutboundCall, needs_connector
from ..base import Connector
from . import order_lookup, replies, review_requests
from .connector import WooCommerceConnector
from .mapping import SOURCE
from .reconcile import feed_order, reconcile_all, reconcile_forever
from .rest import ShopClient

if TYPE_CHECKING:
    import click

    from ...core.context import EventContext
    from ...core.models import InboundMessage, Order

__all__ = ["WooCommerceConnector", "reconcile_forever"]


@hookimpl
def register_connectors(register: Callable[[type[Connector]], None]) -> None:
    register(WooCommerceConnector)


async def _track(order: Order, ctx: EventContext) -> None:
    if ctx.source != SOURCE or order.shop is None:
        return
    if order.partial:
        connector = ctx.app.connectors.get("woocommerce")
        if isinstance(connector, WooCommerceConnector) and order.shop in connector.settings.shops:
            if ctx.simulating:  # a rehearsal reads no shop: say what the fetch would be
                ctx.would(OutboundCall("GET", ShopClient.url_for(connector.shop(order.shop), f"orders/{order.id}"),
                                       note="fetch the order, then handle it as an order update"))
                return
            data = await asyncio.to_thread(connector.client(order.shop).get_order, order.id)
            await asyncio.to_thread(feed_order, ctx.app, order.shop, data)
        return
    replies.remember_order(order, ctx)
    connector = ctx.app.connectors.get("woocommerce")
    if isinstance(connector, WooCommerceConnector) and order.shop in connector.settings.shops:
        review_requests.schedule(order, ctx, connector.settings.review_requests)


# The order hooks need the connector too: a partial order is completed with its REST keys, and the
# latest order remembered is read only by it (order notes, order lookup). Without it, no delivery
# row per order event (e.g. orders from a generic webhook on a shop that is not WooCommerce).
@hookimpl
@needs_connector("woocommerce")
async def on_order_created(order: Order, ctx: EventContext) -> None:
    await _track(order, ctx)


@hookimpl
@needs_connector("woocommerce")
async def on_order_updated(order: Order, ctx: EventContext) -> None:
    await _track(order, ctx)


@hookimpl
@needs_connector("woocommerce")  # a deployment without a shop records no delivery per inbound message
def on_inbound_message(message: InboundMessage, ctx: EventContext) -> Coroutine[Any, Any, None] | None:
    # A plain function returning the lookup's coroutine, not an async hook: one async hook in a wave
    # makes the dispatcher send each other plain hook to a thread on its own.
    connector = ctx.app.connectors.get("woocommerce")
    if isinstance(connector, WooCommerceConnector):
        return order_lookup.answer(message, ctx, connector)
    return None


@hookimpl
def register_commands(cli: click.Group) -> None:
    import click

    @cli.group("woocommerce")
    def woocommerce() -> None:
        """WooCommerce shops: catch up on missed webhooks."""

    @woocommerce.command("reconcile")
    @click.option("--shop", help="Only this shop (default: every shop with REST keys).")
    @click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]),
                  help="Fetch orders modified after this UTC time (default: the last one seen).")
    @click.option("--wait/--no-wait", default=True, help="Run the workers until the fetched changes are handled.")
    @click.pass_obj
    def reconcile(obj: Any, shop: str | None, since: datetime | None, wait: bool) -> None:
        """Fetch orders modified since the last seen time and feed missed changes through the usual path.

        WooCommerce never retries a failed webhook; run this from cron, or set
        reconcile_interval_minutes and let `connectzap serve` do it.
        """
        app = obj.app()
        for result in reconcile_all(app, shop, since):
            click.echo(result.summary())
        if wait:
            from ...core.worker import Worker

            async def handle() -> None:
                try:
                    await Worker(app).run_until_idle()
                finally:  # the live channel's HTTP connections belong to this event loop: close them in it
                    await app.channel.aclose()

            asyncio.run(handle())
