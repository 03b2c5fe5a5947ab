"""``[connectors.whatsapp]``: Cloud API credentials, webhook secrets, limits.

With no ``access_token`` the connector still runs (webhooks, if secrets are set) and sends go
to the sandbox. With an ``access_token``, ``phone_number_id`` is required, and the webhook
needs ``app_secrets`` and ``verify_token``: a connector that could accept unsigned webhooks
does not start.

Several business accounts (WABAs) behind one service: ``[[connectors.whatsapp.accounts]]``,
each with its own ``waba_id``, ``access_token``, ``app_secrets``, ``numbers`` and limits (see
docs/several-accounts.md). The section's own credentials are then left out; the single-account
configuration is the one-account case, and every part of the connector works on per-account
views of the settings (:meth:`WhatsAppSettings.account_settings`).
"""

from __future__ import annotations

from datetime import date

from collections import Counter

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from ...core.errors import ConfigurationError
from ...core.wording import plural
from ..base import ConnectorSettings

MM_FALLBACK_CODES = (10, 200)
"""Graph's "no permission for this" codes, which is how a business not (yet) onboarded to the
Marketing Messages API is refused there. Meta publishes no code list of its own for that API's
refusals that we could find: [connectors.whatsapp] marketing_messages_fallback_codes adds others."""
MARKETING_TTL = (43_200, 2_592_000)
"""Meta's bounds for a marketing template's ``message_send_ttl_seconds`` (12 h to 30 days), honoured
on the Marketing Messages API only (docs: "Configure message time-to-live")."""
TEMPLATE_TTL = {"MARKETING": MARKETING_TTL, "UTILITY": (30, 43_200), "AUTHENTICATION": (30, 900)}
"""Meta's ``message_send_ttl_seconds`` bounds per template category."""

ACCOUNT_ONLY = ("access_token", "waba_id", "phone_number_ids")
"""Section keys that name one account's credentials or numbers: with ``accounts``, each account says them."""


class WhatsAppAccount(BaseModel):
    """One ``[[connectors.whatsapp.accounts]]`` entry: a WhatsApp Business Account and its numbers."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=64)
    """What ``--account`` calls it (default: its ``waba_id``)."""
    waba_id: str = Field(min_length=1)
    access_token: SecretStr
    """A token with access to this account (a system user's token of the app it is onboarded to)."""
    app_secrets: list[SecretStr] = Field(default_factory=list)
    """The secrets of the Meta app whose webhooks carry this account (new one first while
    rotating); default: the section's ``app_secrets``."""
    numbers: list[str] = Field(min_length=1)
    """Its phone number ids; the first is where its sends leave from unless one is named."""
    messages_per_second: float | None = Field(default=None, gt=0, le=1000)
    """Per number; default: the section's."""
    daily_unique_recipients: int | None = Field(default=None, ge=1)
    """Default: the section's (unset: the messaging limit Meta reports for this account)."""
    marketing_messages_api: bool | None = None
    """Whether this account's MARKETING templates go through the Marketing Messages API; default: the section's."""

    @property
    def label(self) -> str:
        return self.name or self.waba_id


class WhatsAppSettings(ConnectorSettings):
    access_token: SecretStr | None = None
    phone_number_id: str | None = None
    """The default sending number. Inbound webhooks for other numbers are accepted and routed by id."""
    phone_number_ids: list[str] = Field(default_factory=list)
    """Further numbers behind the same webhook URL."""
    waba_id: str | None = None
    app_secrets: list[SecretStr] = Field(default_factory=list)
    """Meta app secrets for X-Hub-Signature-256; list the new one first while rotating."""
    verify_token: SecretStr | None = None
    api_base_url: str = "https://graph.facebook.com"
    api_version: str = "v27.0"
    marketing_messages_api: bool = False
    """Send MARKETING templates through /{phone-number-id}/marketing_messages (Meta's Marketing
    Messages API: the business portfolio must be onboarded to it)."""
    marketing_messages_fallback_codes: list[int] = Field(default_factory=lambda: list(MM_FALLBACK_CODES))
    """Meta error codes with which a refusal of the Marketing Messages API sends the message through
    /messages instead (once; never after a timeout). Empty: never fall back (a refusal fails the
    message, like Meta's STRICT product policy)."""
    marketing_message_activity_sharing: bool | None = None
    """``message_activity_sharing`` on Marketing Messages API sends (unset: Meta's default)."""
    marketing_ttl_seconds: int | None = Field(default=None, ge=MARKETING_TTL[0], le=MARKETING_TTL[1])
    """Time-to-live of MARKETING templates on the Marketing Messages API (Meta: 12 hours to 30 days;
    its default is 30 days): set as ``message_send_ttl_seconds`` on marketing templates
    ``connectzap templates create`` submits, and by ``connectzap templates ttl`` on existing ones."""
    timeout_seconds: float = Field(default=15.0, gt=0)
    messages_per_second: float = Field(default=80.0, gt=0, le=1000)
    pair_spacing_seconds: float = Field(default=6.0, ge=0)
    """Minimum time between two messages to the same recipient (Meta's pair rate limit)."""
    daily_unique_recipients: int | None = Field(default=None, ge=1)
    """Unique recipients of business-initiated messages per rolling 24 h. Unset: the messaging limit
    Meta reports, in ``phone_number_quality_update`` webhooks and in the phone number's Graph fields
    (250, where every portfolio starts, until one arrives); a number fixes it and Meta's reports
    are ignored."""
    messaging_limit_refresh_minutes: float = Field(default=60.0, ge=0)
    """With ``daily_unique_recipients`` unset, the workers read the messaging limit from the phone
    number's Graph fields when they start and again this often (0: at start only)."""
    coexistence_numbers: list[str] = Field(default_factory=list)
    """Phone number ids also used in the WhatsApp Business app (coexistence): the pacer keeps them at
    Meta's fixed 20 messages per second whatever ``messages_per_second`` says. A number is also
    treated so, without being listed, once a coexistence webhook (message echoes, app contacts,
    history) arrived for it."""
    coexistence_history: bool = False
    """Forward the chat history a coexistence number shares at onboarding (Meta's ``history``
    webhook: up to 180 days of WhatsApp Business app chats) to hooks and CRM connectors as past
    messages (``on_past_message``, ``sync_past_message``). Off: those webhooks are acknowledged and
    nothing of them is journaled. Either way connectzap keeps no history once dispatched."""
    transport: str = "aiohttp"
    """HTTP transport under httpx: "aiohttp" (httpx-aiohttp) or "httpx" (httpx's own)."""
    accounts: list[WhatsAppAccount] = Field(default_factory=list)
    """Several business accounts behind this service, each with its own token, app secrets,
    numbers and limits. With accounts, ``phone_number_id`` (optional) names the default sending
    number among theirs, and ``app_secrets`` is the default for accounts that set none."""

    _account: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _fail_closed(self) -> WhatsAppSettings:
        if self.accounts:
            self._check_accounts()
        elif self.access_token is not None and self.enabled:
            missing = [name for name, value in (("phone_number_id", self.phone_number_id),
                                                ("app_secrets", self.app_secrets),
                                                ("verify_token", self.verify_token)) if not value]
            if missing:
                raise ValueError(f"with an access_token, also set {', '.join(missing)}")
        return self

    def _check_accounts(self) -> None:
        """Every account is fully configured and no id is claimed twice (one line names the first mistake)."""
        given = [key for key in ACCOUNT_ONLY if getattr(self, key)]
        if given:
            raise ValueError(f"with accounts, set {', '.join(given)} in each [[connectors.whatsapp.accounts]] "
                             "instead of the section")
        for what, values in (("waba_id", [a.waba_id for a in self.accounts]),
                             ("account name", [a.label for a in self.accounts]),
                             ("phone number id", [n for a in self.accounts for n in a.numbers])):
            twice = sorted(v for v, count in Counter(values).items() if count > 1)
            if twice:
                raise ValueError(f"{what} {twice[0]} appears in two accounts (or twice in one)")
        if self.phone_number_id and self.owner_of(self.phone_number_id) is None:
            raise ValueError(f"phone_number_id {self.phone_number_id} is in no account's numbers")
        if self.enabled:
            for account in self.accounts:
                if not account.access_token.get_secret_value():
                    raise ValueError(f"account {account.label}: access_token is empty")
                if not (account.app_secrets or self.app_secrets):
                    raise ValueError(f"account {account.label}: set its app_secrets (or the section's)")
            if not self.verify_token:
                raise ValueError("with accounts, also set verify_token")

    # --- several accounts: each seen as a one-account configuration -----------------------------

    def account_settings(self) -> list[WhatsAppSettings]:
        """One settings view per business account (with no ``accounts``: this configuration): the
        section's settings with that account's token, secrets, numbers and limits in place, so a
        client, pacer or command built from a view speaks for that account only."""
        if not self.accounts:
            return [self]
        views = []
        for account in self.accounts:
            view = self.model_copy(update={
                "access_token": account.access_token, "waba_id": account.waba_id,
                "app_secrets": account.app_secrets or self.app_secrets,
                "phone_number_id": account.numbers[0], "phone_number_ids": account.numbers[1:],
                "messages_per_second": account.messages_per_second or self.messages_per_second,
                "daily_unique_recipients": account.daily_unique_recipients or self.daily_unique_recipients,
                "marketing_messages_api": (self.marketing_messages_api if account.marketing_messages_api is None
                                           else account.marketing_messages_api),
                "accounts": []})
            view._account = account.label
            views.append(view)
        return views

    @property
    def account_label(self) -> str:
        """The account this view speaks for (``--account``): its name or WABA id."""
        return self._account or self.waba_id or "default"

    @property
    def numbers(self) -> list[str]:
        """Every configured phone number id (the default sending one first)."""
        listed = [n for view in self.account_settings() for n in (view.phone_number_id, *view.phone_number_ids) if n]
        default = self.default_number
        return ([default] if default else []) + [n for n in listed if n != default]

    @property
    def default_number(self) -> str | None:
        """Where a send that names no number leaves from."""
        if self.phone_number_id or not self.accounts:
            return self.phone_number_id
        return self.accounts[0].numbers[0]

    def owner_of(self, number: str) -> WhatsAppSettings | None:
        """The account view whose numbers include ``number`` (None: no configured account's)."""
        for view in self.account_settings():
            if number in (view.phone_number_id, *view.phone_number_ids):
                return view
        return None

    def account_view(self, account: str | None = None, number: str | None = None) -> WhatsAppSettings:
        """The view ``--account``/``--number`` pick; with neither, the one of the default number.
        An unknown name or number is a one-line :class:`ConfigurationError`."""
        views = self.account_settings()
        if account is not None:
            found = [v for v in views if account in (v.account_label, v.waba_id)]
            if not found:
                known = ", ".join(v.account_label for v in views)
                raise ConfigurationError(f"no account {account!r} in [connectors.whatsapp] (known: {known})")
            view = found[0]
            if number is not None and number not in (view.phone_number_id, *view.phone_number_ids):
                raise ConfigurationError(f"number {number} is not one of account {view.account_label}'s numbers")
            return view
        wanted = number or self.default_number
        if wanted is None or not self.accounts:
            return views[0]
        owner = self.owner_of(wanted)
        if owner is None:
            raise ConfigurationError(f"number {wanted} is in no account of [connectors.whatsapp]")
        return owner

    def doctor_warnings(self, today: date) -> list[str]:
        """The configured ``api_version`` when Meta retires it within 90 days, or it is unknown; a
        coexistence number that no account lists."""
        from .api_versions import warning
        found = warning(self.api_version, today) if self.enabled else None
        known = set(self.numbers)
        stray = [n for n in self.coexistence_numbers if self.accounts and n not in known]
        return ([found] if found else []) + [
            f"connectors.whatsapp.coexistence_numbers: {n} is none of the configured numbers" for n in stray]

    def doctor_notes(self) -> list[str]:
        """Each business account with its numbers (several accounts only; never a token or secret)."""
        if not (self.accounts and self.enabled):
            return []
        default = self.default_number
        notes = []
        for view in self.account_settings():
            numbers = [f"{n} (default)" if n == default else n for n in (view.phone_number_id, *view.phone_number_ids)
                       if n]
            notes.append(f"whatsapp account {view.account_label} (waba {view.waba_id}): "
                         f"{plural(len(numbers), 'number')} {', '.join(numbers)}")
        return notes

    @property
    def live(self) -> bool:
        """True when sends go to the Cloud API (credentials configured), False for the sandbox."""
        return (self.access_token is not None or bool(self.accounts)) and self.enabled

    @property
    def graph_url(self) -> str:
        return f"{self.api_base_url.rstrip('/')}/{self.api_version.strip('/')}"
