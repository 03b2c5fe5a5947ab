"""The WhatsApp Cloud API connector: the webhook edge for Meta, and the channel sends go through.

It runs with no configuration at all (the sandbox): sends then go to the sandbox channel and
the webhook answers every request with a refusal, because with no app secret nothing can be
authenticated. With credentials, :meth:`WhatsAppConnector.make_channel` builds the live channel.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel
from sqlalchemy import select

from ...core.errors import SignatureError
from ...core.connector import OutboundCall
from ...core.context import EventContext
from ...core.models import Event, EventKind
from ...core.phones import contact_key
from ...core.store.schema import events
from ...core.templates import BusinessAccounts
from ..base import Connector, WebhookRequest, WebhookResponse, secret_value
from . import limits, pacer, webhooks
from .sandbox import SandboxChannel
from .settings import WhatsAppSettings
from .template_management import WhatsAppTemplates
from .signatures import SigningAccount, verify_meta_accounts

if TYPE_CHECKING:
    from ...core.app import Connectzap
    from ...core.channel import Channel

SIGNATURE_HEADER = "X-Hub-Signature-256"


class WhatsAppConnector(Connector):
    name: ClassVar[str] = "whatsapp"
    title: ClassVar[str] = "WhatsApp Cloud API"
    settings_model = WhatsAppSettings
    routes: ClassVar[tuple[str, ...]] = ("/webhooks/whatsapp",)
    methods: ClassVar[tuple[str, ...]] = ("GET", "POST")
    enabled_by_default: ClassVar[bool] = True
    payload_models: ClassVar[Mapping[EventKind, type[BaseModel]]] = {EventKind.RESOLVE: webhooks.AccountNotice}

    settings: WhatsAppSettings
    _coexistence_seen: set[str]

    def __init__(self, settings: WhatsAppSettings, app: Connectzap) -> None:
        super().__init__(settings, app)
        self._coexistence_seen = set(self.settings.coexistence_numbers)  # already paced as such

    @cached_property
    def own_numbers(self) -> frozenset[str]:
        """The phone number ids configured as ours, in every account (empty = accept every number)."""
        return frozenset(self.settings.numbers)

    @cached_property
    def signing_accounts(self) -> list[SigningAccount]:
        """Each account's webhook secrets and the ids it owns (one entry for a single account);
        worked out once, not per webhook (settings do not change while the connector runs)."""
        return [SigningAccount(view.account_label, view.waba_id,
                               frozenset(n for n in (view.phone_number_id, *view.phone_number_ids) if n),
                               tuple(secret_value(s) for s in view.app_secrets))
                for view in self.settings.account_settings()]

    def business_accounts(self) -> BusinessAccounts | None:
        """With several accounts, each number's WABA: its sends use its own account's templates."""
        if not self.settings.accounts or not self.settings.live:
            return None  # one account (or the sandbox): every cached template is its
        return BusinessAccounts({number: view.waba_id for view in self.settings.account_settings() if view.waba_id
                                 for number in (view.phone_number_id, *view.phone_number_ids) if number},
                                self.settings.account_view().waba_id)

    def marketing_messages_api(self, number: str | None) -> bool | None:
        """The ``marketing_messages_api`` setting of the account ``number`` belongs to (None: the
        default number's); None for a number no account lists."""
        wanted = number or self.settings.default_number
        for view in self.settings.account_settings():
            if wanted is None or wanted in (view.phone_number_id, *view.phone_number_ids):
                return view.marketing_messages_api
        return None

    def handshake(self, request: WebhookRequest) -> WebhookResponse | None:
        """Meta's GET verification: echo ``hub.challenge`` as plain text, only for the right token."""
        if request.method.upper() != "GET":
            return None
        expected = secret_value(self.settings.verify_token)
        given = request.query.get("hub.verify_token") or ""
        challenge = request.query.get("hub.challenge")
        # Compare even when nothing is configured, so timing does not tell whether a token is set.
        token_ok = hmac.compare_digest(given.encode(), expected.encode()) and bool(expected)
        if request.query.get("hub.mode") == "subscribe" and token_ok and challenge is not None:
            # text/plain: a JSON-quoted challenge fails Meta's check; HTML would reflect input.
            return WebhookResponse(status=200, body=challenge, content_type="text/plain")
        return WebhookResponse(status=403, body="Forbidden", content_type="text/plain")

    def verify_request(self, request: WebhookRequest) -> None:
        """The signature must come from the app secret of the account that owns every business
        account and number the body names (:func:`.signatures.verify_meta_accounts`)."""
        accounts = self.signing_accounts
        if not any(any(account.secrets) for account in accounts):
            raise SignatureError("no app secret configured: set app_secrets in [connectors.whatsapp]")
        verify_meta_accounts(request.body, request.header(SIGNATURE_HEADER), accounts)

    def parse(self, request: WebhookRequest) -> list[Event]:
        events = webhooks.parse_body(request.body, own_numbers=self.own_numbers,
                                     key_of=lambda e164: contact_key(e164, self.app.secret),
                                     history=self.settings.coexistence_history)
        self._note_coexistence(events)
        return events

    def _note_coexistence(self, events: list[Event]) -> None:
        """A coexistence webhook names a number that is also in the WhatsApp Business app: the pacer
        (in every worker) holds it to Meta's 20 messages per second from then on."""
        for number in webhooks.coexistence_numbers(events) - self._coexistence_seen:
            pacer.record_coexistence(self.app.db, number, time.time())
            self._coexistence_seen.add(number)

    # --- Meta's messaging limit -----------------------------------------------------------------

    def delivery_targets(self, kind: str) -> dict[str, Callable[[Any, EventContext], Awaitable[Any]]]:
        if kind == EventKind.RESOLVE.value:
            return {f"connector:{self.name}": self._apply_notice}
        return super().delivery_targets(kind)

    def _account_notice(self, ctx: EventContext) -> webhooks.LimitNotice | webhooks.PricingTierNotice | None:
        """The journaled notice of ``ctx``'s event when it is this connector's."""
        if ctx.source != self.name:
            return None  # another connector's thin event
        with self.app.db.read() as conn:
            payload: str = conn.execute(select(events.c.payload).where(events.c.id == ctx.event_id)).scalar_one()
        return webhooks.AccountNotice.model_validate(Event.model_validate_json(payload).data).root

    def _limit_notice(self, notice: webhooks.LimitNotice) -> tuple[webhooks.LimitNotice, WhatsAppSettings] | None:
        """``notice`` with the settings of the configured account it is about (None: no configured account's)."""
        if self.settings.accounts and notice.waba_id is None:
            return None  # with several accounts, a notice that names none could be anyone's
        for view in self.settings.account_settings():
            if not view.waba_id or not notice.waba_id or notice.waba_id == view.waba_id:
                return notice, view
        return None

    async def _apply_notice(self, _payload: Any, ctx: EventContext) -> None:
        notice = await asyncio.to_thread(self._account_notice, ctx)
        if isinstance(notice, webhooks.PricingTierNotice):
            # Where operators look: the event's outcome (`connectzap events`, kept after its payload
            # is erased) and the log, once per journaled update.
            ctx.note("pricing_tier_update", notice.subject())
            webhooks.log.warning("%s", notice.subject())
            return
        found = self._limit_notice(notice) if notice is not None else None
        if found is None:
            return
        notice, view = found
        reading = limits.LimitReading("the phone_number_quality_update webhook", notice.reported, True, notice.limit)
        await asyncio.to_thread(limits.apply, self.app.db, view, reading, ctx.received_at.timestamp())

    def status_lines(self) -> list[tuple[str, str]]:
        at = time.time()
        if not self.settings.accounts:
            return [("messaging limit", limits.usage(self.app.db, self.settings, at))]
        return [(f"messaging limit ({view.account_label})", limits.usage(self.app.db, view, at))
                for view in self.settings.account_settings()]

    async def background(self, stop: asyncio.Event) -> None:
        """Follow each account's messaging limit on its phone number's Graph fields (:mod:`.limits`):
        read at start, then every ``messaging_limit_refresh_minutes``. Nothing to do on the sandbox
        or for an account with ``daily_unique_recipients`` configured."""
        if not self.settings.live:
            return
        followed = [view for view in self.settings.account_settings() if view.daily_unique_recipients is None]
        await asyncio.gather(*(self._follow_limit(view, stop) for view in followed))

    async def _follow_limit(self, view: WhatsAppSettings, stop: asyncio.Event) -> None:
        from .client import GraphClient  # the HTTP client stack, imported only when it is used
        client = GraphClient(view)
        try:
            await limits.follow(self.app.db, view, client, stop)
        finally:
            await client.aclose()

    async def display_number(self, phone_number_id: str | None = None) -> str | None:
        """The number's ``display_phone_number`` field from the Graph API (what customers see and
        what ``wa.me`` links need). None on the sandbox, which has no number."""
        number = phone_number_id or self.settings.default_number
        if not self.settings.live or not number:
            return None
        from .client import GraphClient
        from .profile import display_number
        client = GraphClient(self.settings.account_view(number=number))  # the token of the number's account
        try:
            return await display_number(client, number)
        finally:
            await client.aclose()

    async def rehearse(self, target: str, kind: str, payload: Any, ctx: EventContext) -> list[OutboundCall]:
        notice = await asyncio.to_thread(self._account_notice, ctx) if kind == EventKind.RESOLVE.value else None
        if isinstance(notice, webhooks.PricingTierNotice):
            return [OutboundCall(None, None, note=f"would report: {notice.subject()}")]
        found = self._limit_notice(notice) if notice is not None else None
        if found is not None:
            return [OutboundCall(None, None, note=f"would apply Meta's messaging limit {found[0].reported} "
                                                  "to the pacer (a simulation changes no limit)")]
        return await super().rehearse(target, kind, payload, ctx)

    def make_channel(self) -> Channel:
        """The live Cloud API channel (with its database-backed pacing) when credentials are
        configured, else the sandbox."""
        if self.settings.live:
            from . import channel  # the HTTP client stack, imported only when it is used
            return channel.build_channel(self.settings, self.app)
        return SandboxChannel(self.app)

    def template_management(self) -> WhatsAppTemplates:
        """The business accounts' templates (the sandbox's without credentials), synced and created
        by the functions ``connectzap templates sync|create`` run."""
        return WhatsAppTemplates(self.app, self.settings)

    def make_rehearsal_channel(self) -> Channel:
        """Simulations always get the sandbox, credentials or not: it validates each request and
        records it, and sends nothing."""
        return SandboxChannel(self.app)
