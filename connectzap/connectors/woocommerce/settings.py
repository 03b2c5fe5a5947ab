"""``[connectors.woocommerce]``: one entry per shop, each with its own secrets and REST keys.

::

    [connectors.woocommerce]
    reconcile_interval_minutes = 15

    [connectors.woocommerce.shops.main]
    url = "https://shop.example.com"
    webhook_secrets = ["the secret typed into WooCommerce -> Settings -> Advanced -> Webhooks"]
    consumer_key = "ck_..."
    consumer_secret = "cs_..."

``POST /webhooks/woocommerce/main`` serves that shop; ``POST /webhooks/woocommerce`` serves the
only shop (or the one named ``default``). One shop may also be written flat, straight under
``[connectors.woocommerce]`` (``url = ...``, ``webhook_secrets = [...]``): it is the shop ``default``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ...core.media import WHATSAPP, FallbackMedia, checked
from ...core.models import Category
from ...core.plugin_settings import TemplateUse
from ..base import ConnectorSettings
from .lookup_settings import OrderLookupSettings
from .review_settings import ReviewRequestSettings
from .cod_settings import CodSettings

SHOP_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")

DEFAULT_CONSENT_KEYS = ["_connectzap_whatsapp_optin", "_wc_other/connectzap/whatsapp-optin"]
TRUTHY = {"1", "yes", "on", "true", "y", "checked"}


class ShopSettings(BaseModel):
    """One WooCommerce shop."""

    model_config = ConfigDict(extra="forbid")

    url: str
    """The shop's home URL; the REST API lives under ``{url}/wp-json/wc/v3`` (a local fake in tests)."""
    webhook_secrets: list[SecretStr] = Field(default_factory=list)
    """Secrets of the shop's webhooks. List two while rotating; an empty list refuses to start."""
    consumer_key: SecretStr | None = None
    consumer_secret: SecretStr | None = None
    """REST API keys (read/write) for order notes and reconcile. Without them both are off."""
    consent_meta_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_CONSENT_KEYS))
    """Order/customer meta keys holding the checkout opt-in (classic field and block-checkout field)."""
    consent_categories: list[Category] = Field(default_factory=lambda: [Category.UTILITY])
    """What the checkout opt-in covers. Order updates are ``utility`` templates."""
    marketing_meta_keys: list[str] = Field(default_factory=list)
    """Separate opt-in field(s) for promotions; a ticked box grants ``marketing``."""
    medium_consent_meta_keys: dict[str, list[str]] = Field(default_factory=dict)
    """Opt-in fields for other media, e.g. ``{ sms = ["_connectzap_sms_optin"], email =
    ["_connectzap_email_optin"] }``: a ticked box grants ``consent_categories`` on that medium (what
    a ``fallback`` there needs). The WhatsApp opt-in's key may be listed when its wording covers them."""
    consent_wording: str | None = None
    """The text next to the checkbox, stored with the proof."""
    fallback: FallbackMedia | None = None
    """The media a WhatsApp message about this shop's orders (order notifications, review requests;
    not a note to the customer, a person's reply) falls back on when WhatsApp cannot deliver it,
    e.g. ``["sms", "email"]``; ``[]``: none. Default: ``[fallback] media``. Cash-on-delivery
    questions use ``cod.fallback``."""
    tracking_meta_keys: list[str] = Field(default_factory=lambda: ["_connectzap_tracking_url", "_tracking_url"])
    """Meta keys that may hold a parcel tracking URL (the first one present wins)."""
    notes_window_hours: float = Field(default=72, ge=0)
    """Customer WhatsApp messages this long after their latest order become private order notes (0 = never)."""
    note_failures: bool = True
    """Add a private order note when an order notification could not be delivered."""
    send_customer_notes: bool = True
    """Send each note to the customer written on an order to the customer on WhatsApp (needs an
    Action webhook for ``woocommerce_new_customer_note``; the text inside the 24-hour window, the
    ``[replies]`` template outside it), and note on the order what became of it."""
    cod: CodSettings = Field(default_factory=CodSettings)
    """Ask cash-on-delivery customers to confirm or cancel on WhatsApp (:mod:`.cod_settings`)."""
    reconcile_page_size: int = Field(default=100, ge=1, le=100)
    """Orders per REST page when reconciling (WordPress allows at most 100)."""
    timeout_seconds: float = Field(default=15, gt=0)
    verify_ssl: bool = True
    query_string_auth: bool = False
    """Send the REST keys as query parameters (for servers that strip the Authorization header)."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for a local test shop)")
        return value.rstrip("/")

    @property
    def secrets(self) -> list[str]:
        return [s.get_secret_value() for s in self.webhook_secrets if s.get_secret_value()]

    @property
    def has_rest_keys(self) -> bool:
        return bool(self.consumer_key and self.consumer_secret and self.consumer_key.get_secret_value()
                    and self.consumer_secret.get_secret_value())

    @field_validator("medium_consent_meta_keys")
    @classmethod
    def _media(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for medium in value:
            if checked(medium) == WHATSAPP:
                raise ValueError("the WhatsApp opt-in's fields are consent_meta_keys")
        return value

    def consent_keys(self) -> dict[str, list[Category]]:
        """Meta key -> the categories a ticked box grants."""
        out: dict[str, list[Category]] = {k: list(self.consent_categories) for k in self.consent_meta_keys}
        for key in self.marketing_meta_keys:
            out.setdefault(key, []).append(Category.MARKETING)
        return out


class WooCommerceSettings(ConnectorSettings):
    shops: dict[str, ShopSettings] = Field(default_factory=dict)
    reconcile_interval_minutes: float = Field(default=0, ge=0)
    """How often ``serve`` fetches recently modified orders (WooCommerce never retries a webhook). 0 = off."""
    reconcile_first_lookback_hours: float = Field(default=24, gt=0)
    """How far back the first reconcile of a shop looks."""
    review_requests: ReviewRequestSettings = Field(default_factory=ReviewRequestSettings)
    """Ask for a product review N days after an order is completed (off by default)."""
    order_lookup: OrderLookupSettings = Field(default_factory=OrderLookupSettings)
    """Answer a customer who writes an order number or taps "Where is my order?" (off by default)."""

    # Single-shop shorthand: shop settings written at the top level become the shop "default"
    # (declared here so they are known as secrets; after validation they live in ``shops``).
    url: str | None = None
    webhook_secrets: list[SecretStr] = Field(default_factory=list)
    consumer_key: SecretStr | None = None
    consumer_secret: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _shops(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        flat = {k: v for k, v in data.items() if k in ShopSettings.model_fields}
        if flat:
            shops = dict(data.get("shops") or {})
            if "default" in shops:
                raise ValueError("give the shop either at the top level or as shops.default, not both")
            shops["default"] = flat
            data = {**{k: v for k, v in data.items() if k not in flat}, "shops": shops}
        for name in (data.get("shops") or {}):
            if not SHOP_NAME.match(str(name)):
                raise ValueError(f"shop name {name!r}: use letters, digits, '-' or '_' (it is part of the URL)")
        return data

    @model_validator(mode="after")
    def _fail_closed(self) -> WooCommerceSettings:
        if not self.shops:
            raise ValueError("no shop configured: add [connectors.woocommerce.shops.NAME] with url and webhook_secrets")
        for name, shop in self.shops.items():
            if not shop.secrets:
                raise ValueError(f"shop {name!r} has no webhook_secrets; refusing to accept unsigned webhooks")
        return self

    def templates_used(self) -> list[TemplateUse]:
        cod = [use for name, shop in sorted(self.shops.items()) for use in shop.cod.templates_used(f"shops.{name}.cod")]
        return [*self.review_requests.templates_used("review_requests.template"), *cod]

    def default_shop(self) -> str | None:
        """The shop served by the path without a shop name."""
        if len(self.shops) == 1:
            return next(iter(self.shops))
        return "default" if "default" in self.shops else None


def ticked(value: Any) -> bool:
    """Whether a checkout field value means "yes" (checkbox values differ between checkouts)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value == 1
    return isinstance(value, str) and value.strip().lower() in TRUTHY
