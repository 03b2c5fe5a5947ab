"""The live channel: messages go to the Cloud API (or a BSP / a local fake at ``api_base_url``).

``pace`` waits for the message's slot under Meta's limits (:mod:`.pacer`, shared by every worker
through the database). ``send`` uploads local media, builds the request body (:mod:`.payloads`),
routes MARKETING templates to ``/marketing_messages`` when enabled (falling back to ``/messages``
only on a refusal Meta answered, never after a timeout), and returns the wamid -- or
raises from the core's exception tree (:mod:`.errors`, which also maps Meta's codes to neutral
outcomes), telling the pacer about pair and throughput limits.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ...core.channel import NOT_SUPPORTED, BaseChannel, OutboundSend
from ...core.errors import (ConfigurationError, FatalDeliveryError, PacedError, PayloadError,
                            RetriableDeliveryError, SendingPausedError)
from ...core.lanes import MAX_LATENCY_SECONDS
from ...core.phones import contact_key
from . import errors
from .client import GraphClient
from .media import MediaUploader
from .pacer import Pacer
from .payloads import message_body
from .settings import WhatsAppSettings

if TYPE_CHECKING:
    from ...core.app import Connectzap
    from ...core.settings import WorkerSettings

log = logging.getLogger(__name__)

REFUSAL_HOLD_SECONDS = 600
"""After the Marketing Messages API refused a number, its marketing goes through /messages (where the
code allows it) or waits this long before the API is tried again (onboarding may be completed meanwhile)."""


def mm_refusal(exc: FatalDeliveryError | SendingPausedError) -> bool:
    """Whether an error answer of ``/marketing_messages`` refuses that API, not the account: Graph's
    "no permission for this" codes (10, 200-299). Sent to ``/messages`` they would pause all sending;
    there they say only that the portfolio may not use the Marketing Messages API (the token and the
    account still send through ``/messages``, where a real permission problem shows and pauses)."""
    code = exc.vendor_code
    return isinstance(code, int) and (code == 10 or 200 <= code <= 299)


class CloudApiChannel(BaseChannel):
    name = "whatsapp"

    def __init__(self, settings: WhatsAppSettings, client: GraphClient, *, pacer: Pacer | None = None,
                 secret: bytes | None = None) -> None:
        if not settings.phone_number_id:
            raise ConfigurationError("connectors.whatsapp.phone_number_id is not set")
        self.settings = settings
        self.client = client
        self.pacer = pacer
        self.secret = secret
        self.media = MediaUploader(client)
        self._mm_refused_until: dict[str, tuple[float, int]] = {}
        """Per number: until when (wall time), and with which code, the Marketing Messages API refused it
        last. With a pacer, as every worker sharing the database recorded it (:meth:`_mm_refresh`)."""
        self._clock = pacer.clock if pacer is not None else time.time

    def __repr__(self) -> str:
        return f"CloudApiChannel(number={self.settings.phone_number_id!r}, client={self.client!r})"

    def route(self, message: OutboundSend) -> str:
        """``messages`` or ``marketing_messages`` for this message."""
        return route(self.settings, message.category, message.content.is_template, message.prefer_marketing_api)

    async def pace(self, message: OutboundSend) -> None:
        """Wait for this message's slot (per number, per recipient, daily unique recipients); a marketing
        message the Marketing Messages API's refusal holds back waits without taking one (:meth:`_mm_wait`)."""
        if self.route(message) == "marketing_messages":
            await self._mm_refresh()
            self._mm_wait(message, message.business_phone_number_id or self.settings.phone_number_id or "")
        if self.pacer is not None:
            await self.pacer.acquire(message)

    async def send(self, message: OutboundSend) -> str:
        number = message.business_phone_number_id or self.settings.phone_number_id
        assert number is not None
        content = await self.media.resolve(message.content, number)
        if content is not message.content:
            message = replace(message, content=content)
        try:
            body = message_body(message)
        except PayloadError as exc:
            raise FatalDeliveryError(f"cannot build the request: {exc.message}", code="invalid_parameter",
                                     details=exc.message) from None
        # A campaign that chose the Marketing Messages API (prefer_marketing_api) never falls back:
        # Meta's refusal fails the message, with its code, rather than sending it another way.
        chosen = message.prefer_marketing_api is True
        marketing = self.route(message) == "marketing_messages"
        if marketing:
            await self._mm_refresh()
            if self._mm_wait(message, number):
                marketing = False  # a listed refusal: through /messages until the hold ends
        try:
            if marketing:
                return await self._send_marketing(number, body, fallback=not chosen)
            return await self.client.send_message(number, body)
        except RetriableDeliveryError as exc:
            await self._tell_pacer(exc, message, number)
            raise

    async def _send_marketing(self, number: str, body: dict[str, Any], *, fallback: bool = True) -> str:
        """Through ``/marketing_messages``. When Meta *refuses* it there (:func:`mm_refusal`: an error
        answer, nothing was sent), the number's marketing is held off that API for
        :data:`REFUSAL_HOLD_SECONDS`, and this message goes once through ``/messages`` when the code
        is one of ``marketing_messages_fallback_codes`` (and ``fallback``), else fails -- a refusal
        of this API never pauses the channel's other sends. A timeout, a dropped connection or a
        retriable answer never falls back: the request may have acted (or is to be tried again on
        the same route), and a second route could send twice."""
        sharing = self.settings.marketing_message_activity_sharing
        try:
            return await self.client.send_message(
                number, body if sharing is None else {**body, "message_activity_sharing": sharing}, marketing=True)
        except (FatalDeliveryError, SendingPausedError) as exc:
            listed = exc.vendor_code in self.settings.marketing_messages_fallback_codes
            if not (listed or mm_refusal(exc)):
                raise
            code = int(exc.vendor_code or 0)
            if self.pacer is not None:  # every worker holds the number's marketing, not only this one
                until = await self.pacer.hold_marketing(number, code, REFUSAL_HOLD_SECONDS)
            else:
                until = self._clock() + REFUSAL_HOLD_SECONDS
            self._mm_refused_until[number] = (until, code)
            if not (fallback and listed):  # this message only: the number's other sends are not at fault
                why = ("its campaign chose that API (marketing_api = use)" if listed else
                       "marketing_messages_fallback_codes does not list that code")
                log.warning("the Marketing Messages API refused number %s (WhatsApp error %s): the message fails and "
                            "marketing that may only go through that API waits %d minutes before it is tried again",
                            number, code, REFUSAL_HOLD_SECONDS // 60)
                raise FatalDeliveryError(
                    f"the Marketing Messages API refused it (WhatsApp error {exc.vendor_code}) and {why}: "
                    "not sent through the Cloud API instead",
                    code="marketing_messages_refused", vendor_code=exc.vendor_code, details=exc.details,
                    trace_id=exc.trace_id, http_status=exc.http_status) from None
            log.warning("the Marketing Messages API refused number %s (WhatsApp error %s): sending its marketing "
                        "templates through the Cloud API's /messages for %d minutes", number, exc.vendor_code,
                        REFUSAL_HOLD_SECONDS // 60)
        return await self.client.send_message(number, body)

    def _mm_wait(self, message: OutboundSend, number: str) -> bool:
        """While the Marketing Messages API's refusal of ``number`` holds: True when ``message`` goes
        through ``/messages`` instead (the refusal's code is listed and its campaign did not choose
        the API); else :class:`PacedError` -- it waits (not a failed attempt, nothing asked) and the
        API is asked again after the hold. False when nothing holds."""
        held = self._mm_hold(number)
        if held is None:
            return False
        until, code = held
        if message.prefer_marketing_api is not True and code in self.settings.marketing_messages_fallback_codes:
            return True
        raise PacedError(f"the Marketing Messages API refused number {number} (WhatsApp error {code}) moments ago; "
                         "its marketing that may only go through that API waits until it is tried again",
                         code="marketing_messages_held", retry_after=max(1.0, until - self._clock()))

    def _mm_hold(self, number: str) -> tuple[float, int] | None:
        """(until, Meta's code) while the Marketing Messages API's last refusal of ``number`` holds."""
        held = self._mm_refused_until.get(number)
        return held if held is not None and held[0] > self._clock() else None

    async def _mm_refresh(self) -> None:
        """Take in the refusals other workers recorded (the pacer reads them again every few seconds)."""
        if self.pacer is not None:
            self._mm_refused_until = await self.pacer.marketing_holds()

    async def _tell_pacer(self, exc: RetriableDeliveryError, message: OutboundSend, number: str) -> None:
        if self.pacer is None:
            return
        if exc.vendor_code == errors.PAIR_LIMIT and self.secret is not None:
            key = message.contact_key or contact_key(message.recipient, self.secret)
            await self.pacer.cool_down(key, number, exc.retry_after)
        elif exc.vendor_code == errors.THROUGHPUT_LIMIT:
            await self.pacer.slow_down(number, exc.retry_after or 1.0)

    def messages_per_second(self) -> float:
        """The configured rate of each number this channel sends from, together (the sender sizes
        its lanes from it); a coexistence number counts at Meta's fixed 20."""
        numbers = [n for n in (self.settings.phone_number_id, *self.settings.phone_number_ids) if n]
        if self.pacer is None:
            return self.settings.messages_per_second * len(numbers)
        return sum(1.0 / self.pacer.interval_for(n) for n in numbers)

    async def mark_read(self, wamid: str, *, typing: bool = False, phone_number_id: str | None = None) -> bool:
        """Blue ticks for an inbound message (optionally with a typing indicator)."""
        number = phone_number_id or self.settings.phone_number_id
        assert number is not None
        return await self.client.mark_read(number, wamid, typing=typing)

    async def reconcile(self, outbox_id: str) -> Any:
        # The Cloud API cannot be asked "did you get this?": status webhooks carrying
        # biz_opaque_callback_data (= the outbox id) settle it.
        return NOT_SUPPORTED

    async def aclose(self) -> None:
        await self.client.aclose()


class AccountsChannel(BaseChannel):
    """Several business accounts: each send leaves from its number (``business_phone_number_id``,
    else the default number) through that number's account -- its token, its pacing, its daily
    budget. A number no account lists is refused (fatal, with the number named); nothing is sent."""

    name = "whatsapp"

    def __init__(self, channels: dict[str, CloudApiChannel], default_number: str) -> None:
        self.by_number = channels
        self.default_number = default_number

    def __repr__(self) -> str:
        return f"AccountsChannel(numbers={sorted(self.by_number)!r})"

    def _routed(self, message: OutboundSend) -> tuple[CloudApiChannel, OutboundSend]:
        number = message.business_phone_number_id or self.default_number
        channel = self.by_number.get(number)
        if channel is None:
            raise FatalDeliveryError(f"business_phone_number_id {number} is in no account of [connectors.whatsapp]",
                                     code="unknown_number")
        if message.business_phone_number_id != number:
            message = replace(message, business_phone_number_id=number)
        return channel, message

    async def pace(self, message: OutboundSend) -> None:
        if (message.business_phone_number_id or self.default_number) in self.by_number:
            channel, message = self._routed(message)
            await channel.pace(message)  # an unknown number waits for nothing: its send is refused

    async def send(self, message: OutboundSend) -> str:
        channel, message = self._routed(message)
        return await channel.send(message)

    def messages_per_second(self) -> float:
        return sum(c.messages_per_second() for c in {id(c): c for c in self.by_number.values()}.values())

    async def mark_read(self, wamid: str, *, typing: bool = False, phone_number_id: str | None = None) -> bool:
        channel = self.by_number.get(phone_number_id or self.default_number)
        if channel is None:
            raise FatalDeliveryError(f"phone number {phone_number_id} is in no account of [connectors.whatsapp]",
                                     code="unknown_number")
        return await channel.mark_read(wamid, typing=typing, phone_number_id=phone_number_id)

    async def aclose(self) -> None:
        for channel in {id(c): c for c in self.by_number.values()}.values():
            await channel.aclose()


def route(settings: WhatsAppSettings, category: str, is_template: bool, prefer: bool | None = None) -> str:
    """``messages``, or ``marketing_messages`` for a MARKETING template when that API is chosen:
    ``prefer`` (a campaign's ``marketing_api``: True use, False avoid), else the account's setting."""
    wanted = settings.marketing_messages_api if prefer is None else prefer
    marketing = wanted and category == "marketing" and is_template
    return "marketing_messages" if marketing else "messages"


def request_path(settings: WhatsAppSettings, category: str, is_template: bool, number: str | None = None,
                 prefer: bool | None = None) -> str:
    """``{phone-number-id}/messages`` (or ``marketing_messages``): where a send is POSTed; ``prefer``
    as for :func:`route` (a campaign's choice, else the account's setting)."""
    path = route(settings, category, is_template, prefer)
    return f"{number or settings.default_number or '{phone-number-id}'}/{path}"


def build_channel(settings: WhatsAppSettings, app: Connectzap) -> CloudApiChannel | AccountsChannel:
    """The live channel for ``app``, paced through ``app``'s database, with a connection for every
    send the worker may have in flight (:func:`connections_for`); with several accounts, one such
    channel per account behind an :class:`AccountsChannel`."""
    def one(view: WhatsAppSettings) -> CloudApiChannel:
        client = GraphClient(view, max_connections=connections_for(app.settings.workers, view.messages_per_second))
        return CloudApiChannel(view, client, pacer=Pacer.from_settings(app.db, view), secret=app.secret)

    if not settings.accounts:
        return one(settings)
    by_number: dict[str, CloudApiChannel] = {}
    for view in settings.account_settings():
        channel = one(view)
        by_number.update((number, channel) for number in (view.phone_number_id, *view.phone_number_ids) if number)
    assert settings.default_number is not None  # an account has at least one number
    return AccountsChannel(by_number, settings.default_number)


def connections_for(workers: WorkerSettings, messages_per_second: float) -> int:
    """HTTP connections to keep for the worker's sends (at least 100). A request waiting for a free
    connection waits out a whole round trip of another one (at 150 ms, 100 connections cap a number
    at about 660 msg/s). With ``sender_lanes`` set, each lane has up to ``send_concurrency`` requests
    in flight; unset, the sender keeps rate x latency in flight (:mod:`connectzap.core.lanes`), so
    the pool covers round trips of up to :data:`~connectzap.core.lanes.MAX_LATENCY_SECONDS`."""
    if workers.sender_lanes is not None:
        return max(100, workers.sender_lanes * workers.send_concurrency)
    return max(100, math.ceil(messages_per_second * MAX_LATENCY_SECONDS))
