"""Meta's messaging limit read from the business phone number itself (``GET /{phone-number-id}``).

The ``phone_number_quality_update`` webhook reports each *change* of the limit
(:func:`.webhooks.messaging_limit` reads it); a change made while connectzap was not running, or a
webhook field nobody subscribed to, would leave the budget at 250 for ever. So the connector also
asks the Graph API: when its workers start, every ``messaging_limit_refresh_minutes`` after that,
and on ``connectzap whatsapp limits``.

Meta's messaging-limits page ("Checking your limit" / "Via API", read on 2026-12-02): request
``whatsapp_business_manager_messaging_limit`` on the phone number for Graph v24.0 and newer, and
``messaging_limit_tier`` (now deprecated) for v23.0 and older; the example answer is
``{"whatsapp_business_manager_messaging_limit": "TIER_250", "id": "106540352242922"}``. Only the
field of the configured ``api_version`` is requested: asking an API version for a field it does
not have fails the whole request.

The reading goes into the same stored limit the webhook updates (:func:`.pacer.record_limit`),
so every worker's budget follows it. When the request fails or the answer has no usable value,
nothing is stored: the budget keeps what it had (the last reported limit, else 250), and the log
says why -- Meta's error message and code, never the token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ...core.errors import ConnectzapError
from .pacer import STARTING_LIMIT, recipients_today, record_limit, stored_limit
from .webhooks import messaging_limit

if TYPE_CHECKING:
    from ...core.store.database import Database
    from .client import GraphClient
    from .settings import WhatsAppSettings

CURRENT_FIELD = "whatsapp_business_manager_messaging_limit"
"""The phone number's messaging limit field from Graph API v24.0."""
LEGACY_FIELD = "messaging_limit_tier"
"""The same for v23.0 and older (deprecated by Meta)."""
FIRST_VERSION_WITH_CURRENT_FIELD = 24

log = logging.getLogger("connectzap.whatsapp")


def limit_field(api_version: str) -> str:
    """The field ``api_version`` knows the limit by; the current one for a version not understood."""
    match = re.fullmatch(r"v?(\d+)(?:\.\d+)?", api_version.strip().strip("/"))
    if match and int(match.group(1)) < FIRST_VERSION_WITH_CURRENT_FIELD:
        return LEGACY_FIELD
    return CURRENT_FIELD


@dataclass(frozen=True)
class LimitReading:
    """What one ``GET /{phone-number-id}`` said about the messaging limit."""

    field: str
    """Where the value was read: the Graph field, or the webhook field that reported it."""
    reported: str | None
    """The value as Meta wrote it (``TIER_2K``); None when the answer did not carry the field."""
    known: bool
    """The value names a limit (``TIER_NOT_SET`` or an unknown spelling does not)."""
    limit: int | None
    """Unique recipients per rolling 24 h when known; None = unlimited."""


async def read(client: GraphClient, phone_number_id: str | None = None) -> LimitReading:
    """Ask the Graph API for the number's messaging limit (raises the client's classified errors)."""
    field = limit_field(client.settings.api_version)
    number = phone_number_id or client.settings.phone_number_id
    answer = await client.request("GET", str(number), params={"fields": field})
    value = answer.get(field) if isinstance(answer, dict) else None
    reported = value.strip() if isinstance(value, str) and value.strip() else None
    known, limit = messaging_limit(reported) if reported else (False, None)
    return LimitReading(field, reported, known, limit)


def scope_of(settings: WhatsAppSettings) -> str:
    """Where the budget is kept: per ``waba_id``, else one for the install (as the pacer keeps it)."""
    return settings.waba_id or "portfolio"


def in_force(db: Database, settings: WhatsAppSettings) -> tuple[int | None, str]:
    """The daily unique-recipient budget in force now (None = unlimited) and where it comes from."""
    if settings.daily_unique_recipients is not None:
        return settings.daily_unique_recipients, "daily_unique_recipients (configured)"
    with db.read() as conn:
        stored = stored_limit(conn, scope_of(settings))
    if stored is None:
        return STARTING_LIMIT, "the starting limit (Meta has reported none yet)"
    limit, at = stored
    return limit, f"reported by Meta, stored {datetime.fromtimestamp(at, UTC):%Y-%m-%d %H:%M:%S} UTC"


def usage(db: Database, settings: WhatsAppSettings, at: float) -> str:
    """The budget in force and how much of it the last 24 hours used, in one line."""
    budget, source = in_force(db, settings)
    with db.read() as conn:
        used = recipients_today(conn, scope_of(settings), at)
    return f"{used} of {shown(budget)} unique recipients in the last 24 h ({source})"


def apply(db: Database, settings: WhatsAppSettings, reading: LimitReading, at: float) -> bool:
    """Store a reading for every worker's budget; False (and a log line saying why) when it is not
    a limit or ``daily_unique_recipients`` is configured -- the budget then stays as it was."""
    if not reading.known:
        log.warning("whatsapp: %s = %r is not a messaging limit; the daily budget stays at %s",
                    reading.field, reading.reported, shown(in_force(db, settings)[0]))
        return False
    if settings.daily_unique_recipients is not None:
        log.info("whatsapp: Meta reports a messaging limit of %s; daily_unique_recipients = %d stays in force",
                 reading.reported, settings.daily_unique_recipients)
        return False
    record_limit(db, scope_of(settings), reading.limit, at)
    log.info("whatsapp: messaging limit now %s (%s in %s)", shown(reading.limit), reading.reported, reading.field)
    return True


async def refresh(db: Database, settings: WhatsAppSettings, client: GraphClient) -> LimitReading | None:
    """Read the limit and store it for every worker; None when the request failed (logged, the
    budget unchanged)."""
    try:
        reading = await read(client)
    except ConnectzapError as exc:
        kept = (await asyncio.to_thread(in_force, db, settings))[0]
        log.warning("whatsapp: could not read the messaging limit from the Graph API (%s: %s); the daily "
                    "budget stays at %s", exc.code, exc.message, shown(kept))
        return None
    await asyncio.to_thread(apply, db, settings, reading, time.time())
    return reading


async def follow(db: Database, settings: WhatsAppSettings, client: GraphClient, stop: asyncio.Event) -> None:
    """Refresh at once, then every ``messaging_limit_refresh_minutes`` until ``stop`` is set."""
    interval = settings.messaging_limit_refresh_minutes * 60
    while not stop.is_set():
        await refresh(db, settings, client)
        if not interval:
            return
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass


def shown(limit: int | None) -> str:
    """A budget as people read it."""
    return "unlimited" if limit is None else str(limit)
