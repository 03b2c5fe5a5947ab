"""Syncing and creating message templates: what ``connectzap templates sync|create`` run and the
console's Templates page calls (:class:`WhatsAppTemplates`, the connector's
:meth:`~connectzap.core.connector.Connector.template_management`). With Cloud API credentials they
work on the business accounts (:mod:`.templates_api`), else on the sandbox (:mod:`.sandbox_templates`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ...core.connector import TemplateAccount, TemplateManagement
from ...core.errors import PayloadError
from ...core.wording import counted
from . import sandbox_templates, template_rules
from .settings import WhatsAppSettings

if TYPE_CHECKING:
    from ...core.app import Connectzap
    from .client import GraphClient

T = TypeVar("T")


def fmt_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


async def _with_client(settings: WhatsAppSettings, work: Callable[[GraphClient], Awaitable[T]]) -> T:
    from .client import GraphClient  # the HTTP client stack, imported only when it is used
    client = GraphClient(settings)
    try:
        return await work(client)
    finally:
        await client.aclose()


def _said(kept: int, removed: int, where: str) -> str:
    return f"synced {counted(kept, 'template')} from {where}" + (f", removed {removed} gone from it" if removed else "")


async def sync(app: Connectzap, settings: WhatsAppSettings, account: str | None = None) -> list[str]:
    """Fetch every template (all pages) of each account (or the one ``account`` names), or the
    sandbox's, into the cache; one line per account."""
    if not settings.live:
        return [_said(*sandbox_templates.sync(app), "the sandbox")]
    from . import templates_api
    views = [settings.account_view(account)] if account is not None else settings.account_settings()
    lines = []
    for view in views:
        kept, removed = await _with_client(view, lambda c: templates_api.sync(c, app))
        lines.append(_said(kept, removed, f"business account {view.account_label}" if settings.accounts
                           else "the business account"))
    return lines


async def create(app: Connectzap, settings: WhatsAppSettings, definition: dict[str, Any],
                 account: str | None = None) -> str:
    """Check ``definition`` as Meta does (:mod:`.template_rules`), then submit it for review on the
    account (with several, the one ``account`` names) or the sandbox, and cache it."""
    template_rules.check(definition)
    if not settings.live:
        created = sandbox_templates.create(app, definition)
        return (f"created {created.name} ({created.language}) on the sandbox: PENDING, {created.category}, "
                f"id {created.id}; its review ends at {fmt_time(created.review_at)} UTC "
                f"([sandbox] template_approval_seconds = {app.settings.sandbox.template_approval_seconds:g})")
    if account is None and len(settings.accounts) > 1:
        names = ", ".join(a.label for a in settings.accounts)
        raise PayloadError(f"account: several accounts are configured, say which one the template goes to ({names})",
                           field="account")
    from . import templates_api
    info = await _with_client(settings.account_view(account), lambda c: templates_api.create(c, app, definition))
    return f"created {info.name} ({info.language}): {info.status}, {info.category}, id {info.id}"


class WhatsAppTemplates(TemplateManagement):
    """The connector's templates for the console: the functions above, on its settings."""

    def __init__(self, app: Connectzap, settings: WhatsAppSettings) -> None:
        self.app = app
        self.settings = settings

    def accounts(self) -> list[TemplateAccount]:
        if not self.settings.live:
            return [TemplateAccount("sandbox", sandbox_templates.WABA_ID)]
        return [TemplateAccount(view.account_label, view.waba_id) for view in self.settings.account_settings()]

    async def sync(self, account: str | None = None) -> list[str]:
        return await sync(self.app, self.settings, None if not self.settings.live else account)

    def check(self, definition: dict[str, Any]) -> None:
        template_rules.check(definition)

    async def create(self, definition: dict[str, Any], account: str | None = None) -> str:
        return await create(self.app, self.settings, definition, None if not self.settings.live else account)
