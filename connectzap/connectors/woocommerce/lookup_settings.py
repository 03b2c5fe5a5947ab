"""``[connectors.woocommerce.order_lookup]``: a customer who writes an order number, or taps
"Where is my order?", is told its status (the logic is in :mod:`.order_lookup`).

::

    [connectors.woocommerce.order_lookup]
    enabled = true
    patterns = ['#\\s?(\\d{2,12})\\b', '\\b(?:order|pedido)\\s*#?\\s*(\\d{2,12})\\b']   # one group: the number
    quick_replies = ["Where is my order?", "WHERE_IS_MY_ORDER"]   # a tap's payload or title, or the text itself
    default_language = "en"
    [connectors.woocommerce.order_lookup.statuses.en]
    "ready-for-pickup" = "ready for you to pick up at the shop"
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from ...plugins.languages import LanguageChoice, language_of

DEFAULT_PATTERNS = [
    r"#\s?(\d{2,12})\b",
    r"\b(?:order|pedido|encomenda|bestellung|commande|ordine)\s*(?:n[º°o]\.?\s*|nr\.?\s*|number\s*|n[úu]mero\s*"
    r"|nummer\s*|num[ée]ro\s*)?#?\s*(\d{2,12})\b",
]
"""An order number after ``#``, or after the word for order in English, Spanish, Portuguese,
German, French or Italian (``order 1234``, ``pedido nº 1234``, ``Bestellung Nr. 1234``)."""

DEFAULT_QUICK_REPLIES = ["Where is my order?", "¿Dónde está mi pedido?", "Onde está a minha encomenda?",
                         "Onde está meu pedido?", "Wo ist meine Bestellung?", "Où est ma commande ?",
                         "WHERE_IS_MY_ORDER"]


class OrderLookupSettings(LanguageChoice):
    """How customers ask for their order's status, and how often a wrong number may be tried
    (``default_language`` and ``countries`` choose the answer's language, as for the bundled
    automatic answers)."""

    enabled: bool = False
    patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_PATTERNS))
    """Regular expressions (case-insensitive) with exactly one group: the order number. The first
    one that matches the message wins."""
    quick_replies: list[str] = Field(default_factory=lambda: list(DEFAULT_QUICK_REPLIES))
    """A quick-reply or button tap whose payload, id or title is one of these (or a message that is
    exactly one of them, case and spaces aside) asks about the sender's latest orders."""
    latest_orders: int = Field(default=1, ge=1, le=5)
    """How many of the sender's most recent orders a "Where is my order?" answer describes."""
    max_misses: int = Field(default=5, ge=1)
    """Order numbers that found nothing of the sender's, per contact within ``miss_window_minutes``;
    past it the contact gets no answer to numbers until the window has passed."""
    miss_window_minutes: float = Field(default=60, gt=0)
    statuses: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Language -> status -> wording, replacing or adding to the built-in wording."""
    not_found: dict[str, str] = Field(default_factory=dict)
    """Language -> the neutral answer (an order that does not exist and another customer's order
    get the same one)."""
    shops: list[str] = Field(default_factory=list)
    """Only these shops (default: every shop with REST keys)."""

    @field_validator("patterns")
    @classmethod
    def _one_group(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a regular expression: {exc}") from None
            if compiled.groups != 1:
                raise ValueError(f"pattern {pattern!r} needs exactly one group (the order number), "
                                 f"it has {compiled.groups}")
        return patterns

    @field_validator("statuses", "not_found")
    @classmethod
    def _by_language(cls, texts: dict[str, object]) -> dict[str, object]:
        return {language_of(tag): value for tag, value in texts.items()}

    def applies_to(self, shop: str) -> bool:
        return self.enabled and (not self.shops or shop in self.shops)
