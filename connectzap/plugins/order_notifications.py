"""Order notifications: each order status a shop reports becomes one consented WhatsApp template.

Config (``[plugins.order_notifications]``)::

    [[plugins.order_notifications.rules]]
    status = "processing"                    # or a list: ["processing", "on-hold"]
    template = "order_confirmation"
    languages = { DE = "de", AT = "de", ES = "es" }   # by billing country...
    default_language = "en"                  # ...else this (or set `language = "en"` to fix it)
    params = ["{{ first_name }}", "{{ number }}", { type = "currency" }]   # jinja2, sandboxed
    buttons = [{ index = 0, text = "{{ tracking_url }}" }]             # URL button suffix

    [plugins.order_notifications.owner]      # optional: tell the shop owner about new orders
    phone = "+4915112345678"
    template = "new_order_alert"
    language = "en"
    params = ["{{ number }}", "{{ total }} {{ currency }}"]

Which status notifies (webhooks arrive coalesced, repeated and out of order):

* Each status has a rank (``status_rank``, defaults in :data:`DEFAULT_RANK`; unknown statuses
  rank 3, between processing and completed). The plugin remembers per order the highest rank
  it has seen and the statuses it has notified.
* A status notifies when a rule matches it, it was not notified for this order before, and its
  rank is not below the highest rank seen. So ``pending -> completed`` in one coalesced update
  sends only the completed message; a late ``processing`` after ``completed`` sends nothing; a
  repeated webhook sends nothing. The idempotency key ``{source}:{shop}:{order}:{status}`` makes
  the outbox refuse a second message for the same status even if the memory were lost.
* Draft statuses (``checkout-draft``, ``auto-draft``, ``draft``, ``new``) and partial orders never
  notify and are not remembered.

Without rules (and without ``owner``) the plugin is not called for orders at all and records
nothing on them; ``connectzap doctor`` and the console's Automation page say it is off.

Fallback: ``fallback = ["sms", "email"]`` in the section or a rule names the media a customer's
notification goes on when WhatsApp cannot deliver it (docs/channels.md, "Fallback"); unset, the
shop's ``fallback`` applies (docs/woocommerce.md), else ``[fallback] media``.

The customer needs a consent for the template's category (usually utility; the checkout opt-in
records it). Without it the gate refuses with ``no_consent`` and the refusal is listed by
``connectzap messages list``. The owner needs one too: ``connectzap consent grant +49... utility
--proof "shop owner alerts"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectzap import (ButtonParam, ConfigurationError, Contact, CurrencyParam, DateTimeParam, EventContext,
                        HeaderParam, InvalidPhoneError, Order, PluginSettings, TemplateContent, TemplateUse,
                        TextParam, hookimpl, jinja_names_known, to_e164)
from connectzap.core.media import FallbackMedia
from connectzap.core.messages import Outgoing
from connectzap.core.plugin_settings import render_strict

ORDER_VARIABLES = frozenset({
    "order", "id", "number", "status", "shop", "currency", "total", "total_with_currency", "first_name",
    "last_name", "name", "email", "country", "tracking_url", "meta", "items", "item_count"})
"""What a parameter may read (:func:`order_values`); any other name is refused at start-up."""


def _order_text(source: str) -> str:
    return jinja_names_known(source, ORDER_VARIABLES)


OrderText = Annotated[str, AfterValidator(_order_text)]
"""Jinja rendered from an order: must parse and read only :data:`ORDER_VARIABLES`."""

DEFAULT_RANK: dict[str, int] = {
    "pending": 0, "failed": 1, "on-hold": 1, "processing": 2, "shipped": 3, "partially-shipped": 3,
    "ready-for-pickup": 3, "completed": 4, "delivered": 4, "cancelled": 5, "refunded": 5,
}
UNKNOWN_RANK = 3
DRAFT_STATUSES = frozenset({"checkout-draft", "auto-draft", "draft", "new"})


class ParamSpec(BaseModel):
    """A non-text parameter: ``{type="currency", amount=..., code=...}`` or ``{type="date_time", value=...}``."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["currency", "date_time"]
    amount: OrderText = "{{ total }}"
    code: OrderText = "{{ currency }}"
    value: OrderText = ""
    fallback: OrderText | None = None


class ButtonSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: int = 0
    sub_type: str = "url"
    text: OrderText


class MessageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template: str
    language: str | None = None
    languages: dict[str, str] = Field(default_factory=dict)
    default_language: str = "en"
    params: list[OrderText | ParamSpec] | dict[str, OrderText | ParamSpec] = Field(default_factory=list)
    header: OrderText | None = None
    header_name: str | None = None
    buttons: list[ButtonSpec] = Field(default_factory=list)

    @field_validator("languages")
    @classmethod
    def _upper(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.upper(): v for k, v in value.items()}

    def language_for(self, country: str | None) -> str:
        if self.language:
            return self.language
        return self.languages.get((country or "").upper(), self.default_language)

    def possible_languages(self) -> tuple[str, ...]:
        """Every language this message may go out in, whatever the customer's country."""
        if self.language:
            return (self.language,)
        return tuple(sorted({*self.languages.values(), self.default_language}))


class Rule(MessageSpec):
    status: str | list[str]
    shops: list[str] = Field(default_factory=list)
    fallback: FallbackMedia | None = None
    """The media this rule's messages fall back on when WhatsApp cannot deliver them, e.g.
    ``["sms", "email"]``; ``[]``: none. Default: the section's ``fallback``."""

    def matches(self, status: str, shop: str | None) -> bool:
        statuses = [self.status] if isinstance(self.status, str) else self.status
        return status in statuses and (not self.shops or shop in self.shops)


class OwnerSpec(MessageSpec):
    phone: str
    statuses: list[str] = Field(default_factory=lambda: ["processing", "on-hold", "completed"])
    shops: list[str] = Field(default_factory=list)

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str) -> str:
        try:
            return to_e164(value)
        except InvalidPhoneError:
            raise ValueError("not a valid phone number (write it with its country code, e.g. +49...)") from None


NOT_CONFIGURED = "no rules in [plugins.order_notifications]: orders notify nobody (docs/woocommerce.md)"


def _statuses(status: str | list[str]) -> str:
    return "status " + (status if isinstance(status, str) else " or ".join(status))


def _shops(shops: list[str]) -> str:
    return f" (shop {' or '.join(shops)})" if shops else ""


class NotificationConfig(PluginSettings):
    """``[plugins.order_notifications]``, validated when the engine starts."""

    rules: list[Rule] = Field(default_factory=list)
    status_rank: dict[str, int] = Field(default_factory=dict)
    owner: OwnerSpec | None = None
    fallback: FallbackMedia | None = None
    """The media order notifications fall back on (a rule's own ``fallback`` first); ``[]``: none.
    Default: the shop's (``[connectors.woocommerce.shops.NAME] fallback``), else ``[fallback] media``."""

    def fallback_media(self, outgoing: Outgoing) -> list[str] | None:
        """A customer's notification: its rule's ``fallback``, else the section's. The owner's
        alert names no order (no ``origin``) and never falls back."""
        origin = outgoing.origin or {}
        if "status" not in origin:
            return None if origin else []
        shop = origin.get("shop")
        rule = next((r for r in self.rules if r.matches(origin["status"], None if shop == "-" else shop)), None)
        return rule.fallback if rule is not None and rule.fallback is not None else self.fallback

    def rank(self, status: str) -> int:
        return self.status_rank.get(status, DEFAULT_RANK.get(status, UNKNOWN_RANK))

    @property
    def notifies_anyone(self) -> bool:
        return bool(self.rules) or self.owner is not None

    def wants(self, kind: str) -> bool:
        # Without rules every order would only record that nothing is configured, one entry per
        # order; doctor and the console's Automation page say it once instead.
        return self.notifies_anyone

    def doctor_notes(self) -> list[str]:
        return [] if self.notifies_anyone else [NOT_CONFIGURED]

    def console_summary(self) -> list[tuple[str, str]]:
        if not self.notifies_anyone:
            return [("order notifications", f"off: {NOT_CONFIGURED}")]
        rules = [(f"rule {index}", f"{_statuses(rule.status)}{_shops(rule.shops)}: template {rule.template}")
                 for index, rule in enumerate(self.rules)]
        owner = [] if self.owner is None else [
            ("owner", f"{_statuses(self.owner.statuses)}{_shops(self.owner.shops)}: template {self.owner.template}")]
        return rules + owner

    def templates_used(self) -> Iterator[TemplateUse]:
        for index, rule in enumerate(self.rules):
            yield TemplateUse(f"rules.{index}.template", rule.template, rule.possible_languages())
        if self.owner is not None:
            yield TemplateUse("owner.template", self.owner.template, self.owner.possible_languages())


@hookimpl
def register_plugin_settings(register: Callable[[str, type[PluginSettings]], None]) -> None:
    register("order_notifications", NotificationConfig)


def config_of(ctx: EventContext) -> NotificationConfig:
    """The section the engine validated at start-up; validated here only for a context built by
    hand (a test calling the hook directly)."""
    settings = ctx.plugin_settings
    if isinstance(settings, NotificationConfig):
        return settings
    try:
        return NotificationConfig.model_validate(ctx.config)
    except ValidationError as exc:
        from connectzap.core.settings import describe_validation_error
        raise ConfigurationError(describe_validation_error(exc, "plugins.order_notifications")) from None


# --- rendering ------------------------------------------------------------------------------

def render(source: str, values: dict[str, Any]) -> str:
    """Render one parameter in the sandbox. A typo is a configuration error naming the text."""
    return render_strict(source, values, section="plugins.order_notifications")


def order_values(order: Order) -> dict[str, Any]:
    """What parameters may use: ``{{ first_name }}``, ``{{ number }}``, ``{{ meta['_key'] }}``..."""
    customer = order.customer or Contact()
    total = f"{order.total:.2f}" if order.total is not None else ""
    return {
        "order": order.model_dump(mode="json"), "id": order.id, "number": order.number or order.id,
        "status": order.status, "shop": order.shop, "currency": order.currency or "", "total": total,
        "total_with_currency": f"{total} {order.currency or ''}".strip(),
        "first_name": customer.first_name or "", "last_name": customer.last_name or "",
        "name": customer.display_name or "", "email": customer.email or "", "country": customer.country or "",
        "tracking_url": order.tracking_url, "meta": order.meta,
        "items": [i.model_dump(mode="json") for i in order.items],
        "item_count": len(order.items),
    }


def _param(spec: str | ParamSpec, values: dict[str, Any]) -> Any:
    if isinstance(spec, str):
        return TextParam(text=render(spec, values))
    if spec.type == "currency":
        amount, code = render(spec.amount, values), render(spec.code, values)
        try:
            return CurrencyParam.of(Decimal(amount), code, render(spec.fallback, values) if spec.fallback else None)
        except (InvalidOperation, ValueError):
            raise ConfigurationError(
                f"plugins.order_notifications: currency amount {amount!r} is not a number") from None
    return DateTimeParam(fallback_value=render(spec.value, values))  # "date_time", the only other type


def build_template(spec: MessageSpec, order: Order) -> TemplateContent:
    values = order_values(order)
    body: Any = ({name: _param(p, values) for name, p in spec.params.items()} if isinstance(spec.params, dict)
                 else [_param(p, values) for p in spec.params])
    header = None
    if spec.header is not None:
        header = HeaderParam(type="text", text=render(spec.header, values), parameter_name=spec.header_name)
    # sub_type is a plain str in the plugin's settings; ButtonParam checks it against Meta's four
    buttons = [ButtonParam(index=b.index, sub_type=b.sub_type, text=render(b.text, values))  # type: ignore[arg-type]
               for b in spec.buttons]
    country = order.customer.country if order.customer else None
    return TemplateContent(name=spec.template, language=spec.language_for(country), body=body, header=header,
                           buttons=buttons)


# --- the decision -------------------------------------------------------------------------------

def _notify(order: Order, ctx: EventContext) -> None:
    config = config_of(ctx)
    if not config.notifies_anyone:  # the dispatcher does not call it then (wants); a direct call records nothing
        return
    # Every other way of sending nothing leaves a note, so `connectzap events show` can say why.
    if order.partial or order.status in DRAFT_STATUSES:
        ctx.note("not_notified", f"a {'partial' if order.partial else 'draft'} order ({order.status}) never notifies")
        return
    shop = order.shop or "-"
    memory_key = f"order:{ctx.source}:{shop}:{order.id}"
    memory = ctx.state.get(memory_key) or {"rank": -1, "sent": [], "owner": False}
    rank = config.rank(order.status)
    if rank < memory["rank"]:
        # a late, lower-ranked status: the customer already heard about a later one
        ctx.note("late_status", f"{order.status} arrived after a later status; not notified")
        return
    memory["rank"] = rank
    rule = next((r for r in config.rules if r.matches(order.status, order.shop)), None)
    if rule is None:
        ctx.note("no_rule", f"no rule matches status {order.status!r}"
                            + (f" for shop {order.shop}" if order.shop else ""))
    elif order.status in memory["sent"]:
        ctx.note("already_notified", f"the customer was already notified of {order.status}")
    else:
        ctx.send(order.customer or Contact(), build_template(rule, order),
                 key=f"{ctx.source}:{shop}:{order.id}:{order.status}",
                 origin={"source": ctx.source, "shop": shop, "order": order.id, "status": order.status})
        memory["sent"].append(order.status)
    owner = config.owner
    if owner is not None and not memory["owner"] and order.status in owner.statuses \
            and (not owner.shops or order.shop in owner.shops):
        ctx.send(Contact(phone=owner.phone), build_template(owner, order), key=f"owner:{ctx.source}:{shop}:{order.id}")
        memory["owner"] = True
    ctx.state.set(memory_key, memory)


@hookimpl
def on_order_created(order: Order, ctx: EventContext) -> None:
    _notify(order, ctx)


@hookimpl
def on_order_updated(order: Order, ctx: EventContext) -> None:
    _notify(order, ctx)
