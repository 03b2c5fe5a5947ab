"""``[connectors.woocommerce.review_requests]``: ask for a product review some days after an order
is completed (the logic is in :mod:`.review_requests`).

::

    [connectors.woocommerce.review_requests]
    enabled = true
    days_after_completion = 7
    template = "review_request"                  # a utility or marketing template, as approved by Meta
    category = "utility"                         # what it must be; a template Meta re-categorised is not sent
    language = "en"
    languages = { ES = "es", MX = "es" }         # by billing country, else `language`
    params = ["{{ first_name or 'there' }}", "{{ product_name }}"]
    buttons = [{ index = 0, text = "{{ review_path }}" }]   # a URL button's variable suffix
    review_url = "{{ permalink }}#reviews"        # or e.g. "{{ shop_url }}/review?order={{ number }}"
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from ...core.plugin_settings import TemplateUse, jinja_names_known

REVIEW_URL_VARIABLES = frozenset({"permalink", "product_id", "product_name", "sku", "shop_url", "id", "number"})
"""What ``review_url`` may read (``permalink`` costs one ``GET products/{id}``; the others none)."""

REVIEW_VARIABLES = frozenset({"first_name", "last_name", "name", "id", "number", "shop", "shop_url", "product_id",
                              "product_name", "review_url", "review_path", "permalink"})
"""What a parameter or button may read: the order's customer and number, the first product and its
review link (``review_path`` is the link without the shop's address, for a URL button whose base
is the shop)."""


def _url_text(source: str) -> str:
    return jinja_names_known(source, REVIEW_URL_VARIABLES)


def _param_text(source: str) -> str:
    return jinja_names_known(source, REVIEW_VARIABLES)


class ReviewButton(BaseModel):
    """A URL button's variable part (``https://shop.example.com/{{1}}`` in the template)."""

    model_config = ConfigDict(extra="forbid")
    index: int = Field(default=0, ge=0, le=9)
    text: Annotated[str, AfterValidator(_param_text)]


class ReviewRequestSettings(BaseModel):
    """When and with what template to ask a customer for a review."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    days_after_completion: float = Field(default=7, ge=0)
    """Days from the order's completion to the request (the order is read again then)."""
    template: str | None = None
    """The approved template; its category (utility or marketing, as Meta approved it) decides which
    consent the gate asks for."""
    category: Literal["utility", "marketing"] = "utility"
    """What the request is meant to go as. The gate asks the consent of the template's own category
    (as Meta approved it); a template whose category is another one -- Meta re-categorises templates
    -- is not sent, and the order note says why."""
    language: str = "en"
    languages: dict[str, str] = Field(default_factory=dict)
    """Billing country -> template language; other countries get ``language``."""
    params: list[Annotated[str, AfterValidator(_param_text)]] = Field(default_factory=list)
    """Body parameters in order, Jinja over :data:`REVIEW_VARIABLES`."""
    buttons: list[ReviewButton] = Field(default_factory=list)
    review_url: Annotated[str, AfterValidator(_url_text)] = "{{ permalink }}#reviews"
    """The review link of the order's first product."""
    skip_partial_refunds: bool = True
    """Skip an order with any refund; False asks customers whose order was only partly refunded too
    (a fully refunded order is always skipped)."""
    shops: list[str] = Field(default_factory=list)
    """Only these shops (default: every shop)."""

    @field_validator("languages")
    @classmethod
    def _upper(cls, value: dict[str, str]) -> dict[str, str]:
        return {country.upper(): language for country, language in value.items()}

    @model_validator(mode="after")
    def _template_when_enabled(self) -> ReviewRequestSettings:
        if self.enabled and not self.template:
            raise ValueError("review_requests: enabled needs a template")
        return self

    def language_for(self, country: str | None) -> str:
        return self.languages.get((country or "").upper(), self.language)

    def applies_to(self, shop: str) -> bool:
        return self.enabled and (not self.shops or shop in self.shops)

    def templates_used(self, where: str) -> list[TemplateUse]:
        if not self.enabled or not self.template:
            return []
        return [TemplateUse(where, self.template, tuple(sorted({self.language, *self.languages.values()})))]
