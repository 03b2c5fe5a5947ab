"""``[connectors.woocommerce.shops.NAME.cod]``: asking cash-on-delivery customers to confirm.

::

    [connectors.woocommerce.shops.main.cod]
    enabled = true
    payment_methods = ["cod"]
    minimum_total = 20
    template = "cod_confirmation"           # body, then the buttons Confirm (0) and Cancel (1)
    language = "en"
    params = ["{{ first_name }}", "{{ number }}", "{{ total_with_currency }}"]
    reminder_hours = 6
    timeout_hours = 24
    timeout_action = "on-hold"              # "nothing" | "on-hold" | "cancel"

The message part (``template``, ``language``/``languages``, ``params``, ``header``) is written as
an order notification rule is (:mod:`connectzap.plugins.order_notifications`); connectzap fills the
two quick-reply buttons' payloads itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator

from ...core.media import FallbackMedia
from ...core.plugin_settings import TemplateUse
from ...plugins.order_notifications import MessageSpec, OrderText

TIMEOUT_STATUS = {"on-hold": "on-hold", "cancel": None}
"""The status each timeout action sets (``cancel``: the configured ``cancel_status``)."""


class CodSettings(MessageSpec):
    """Cash-on-delivery confirmation for one shop (off unless ``enabled``)."""

    enabled: bool = False
    template: str = ""
    """The utility template asking to confirm; its buttons ``confirm_button`` and ``cancel_button``
    must be quick replies."""
    payment_methods: list[str] = Field(default_factory=lambda: ["cod"])
    """WooCommerce payment method ids (the order's ``payment_method``) that count as cash on delivery."""
    minimum_total: Decimal = Field(default=Decimal(0), ge=0)
    """Orders whose total is below this are not asked."""
    awaiting_statuses: list[str] = Field(default_factory=lambda: ["pending", "on-hold"])
    """Statuses in which an order waits for the customer: asked only then, changed by a tap only then."""
    confirm_button: int = Field(default=0, ge=0, le=9)
    cancel_button: int = Field(default=1, ge=0, le=9)
    confirm_status: str = "processing"
    cancel_status: str = "cancelled"
    reminder_hours: float = Field(default=0, ge=0)
    """Ask again this long after the first message when no answer came (0 = never)."""
    reminder_template: str | None = None
    """The reminder's template (same language and parameters); default: ``template`` again."""
    timeout_hours: float = Field(default=0, ge=0)
    """Give up this long after the first message (0 = never) and apply ``timeout_action``."""
    timeout_action: Literal["nothing", "on-hold", "cancel"] = "nothing"
    confirmed_reply: OrderText = "Thank you! Order {{ number }} is confirmed: we will deliver it soon."
    cancelled_reply: OrderText = "Order {{ number }} is cancelled, as you asked."
    fallback: FallbackMedia = Field(default_factory=list)
    """The media the question (and its reminder) falls back on when WhatsApp cannot deliver it,
    e.g. ``["sms"]``: the SMS or email template of the same name, which must say how to confirm
    without the buttons. Default: none (the shop's ``fallback`` does not apply: a tap is the answer)."""
    unchanged_reply: OrderText = "Order {{ number }} can no longer be changed here: it is {{ status }}."
    """The answer to a tap that changes nothing (a second tap, after the timeout, after the shop changed
    the order); ``{{ status }}`` is the order's current status."""

    @model_validator(mode="after")
    def _complete(self) -> CodSettings:
        if not self.enabled:
            return self
        if not self.template:
            raise ValueError("cod.enabled needs cod.template (a utility template with Confirm / Cancel quick replies)")
        if self.confirm_button == self.cancel_button:
            raise ValueError("cod.confirm_button and cod.cancel_button must be different buttons")
        if self.timeout_hours and self.reminder_hours >= self.timeout_hours:
            raise ValueError("cod.reminder_hours must come before cod.timeout_hours")
        return self

    def timeout_status(self) -> str | None:
        """The status the timeout sets (None: it only adds a note)."""
        if self.timeout_action == "nothing":
            return None
        return TIMEOUT_STATUS[self.timeout_action] or self.cancel_status

    def templates_used(self, key: str) -> Iterator[TemplateUse]:
        if not self.enabled:
            return
        yield TemplateUse(f"{key}.template", self.template, self.possible_languages())
        if self.reminder_hours and self.reminder_template:
            yield TemplateUse(f"{key}.reminder_template", self.reminder_template, self.possible_languages())
