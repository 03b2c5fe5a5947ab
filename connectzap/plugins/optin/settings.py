"""``[plugins.optin]``: the business name and number the links show, the wording per language,
single or double opt-in, and links declared in config (docs/automation.md, "Opt-in by link")."""

from __future__ import annotations

import string
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectzap import Category, PluginSettings

from ..languages import language_of

PLACEHOLDERS = frozenset({"business", "keyword", "what"})
"""What a wording may name: ``{business}`` (``business_name``), ``{keyword}`` and ``{what}`` (what
the customer signs up for, in words: "offers and news" for marketing)."""

WHAT: dict[str, dict[Category, str]] = {
    "en": {Category.MARKETING: "offers and news", Category.UTILITY: "order and account updates",
           Category.AUTHENTICATION: "verification codes"},
    "es": {Category.MARKETING: "ofertas y novedades", Category.UTILITY: "avisos de tus pedidos y tu cuenta",
           Category.AUTHENTICATION: "códigos de verificación"},
    "pt": {Category.MARKETING: "ofertas e novidades", Category.UTILITY: "avisos dos seus pedidos e da sua conta",
           Category.AUTHENTICATION: "códigos de verificação"},
}

BUILT_IN: dict[str, dict[str, str]] = {
    "en": {"text": "{keyword}: I want to receive {what} from {business} on WhatsApp.",
           "confirmed": "Thank you! You will receive {what} from {business} on WhatsApp. Reply STOP to unsubscribe.",
           "ask": "Do you want to receive {what} from {business} on WhatsApp? Tap Yes to confirm.",
           "button": "Yes"},
    "es": {"text": "{keyword}: quiero recibir {what} de {business} por WhatsApp.",
           "confirmed": "¡Gracias! Recibirás {what} de {business} por WhatsApp. Responde BAJA para darte de baja.",
           "ask": "¿Quieres recibir {what} de {business} por WhatsApp? Toca Sí para confirmar.",
           "button": "Sí"},
    "pt": {"text": "{keyword}: quero receber {what} de {business} pelo WhatsApp.",
           "confirmed": "Obrigado! Você receberá {what} de {business} pelo WhatsApp. Responda SAIR para cancelar.",
           "ask": "Você quer receber {what} de {business} pelo WhatsApp? Toque em Sim para confirmar.",
           "button": "Sim"},
}


def international(shown: str) -> str:
    """``+34 600 000 000`` -> ``+34600000000``. Not checked against a numbering plan: Meta's test
    numbers (+1 555...) are real WhatsApp numbers that phone libraries call invalid."""
    digits = "".join(ch for ch in shown if ch.isdigit())
    if not shown.strip().startswith("+") or not 6 <= len(digits) <= 15:
        raise ValueError(f"{shown!r} is not an international number: write it with + and its country code")
    return "+" + digits


def _placeholders(text: str) -> str:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ValueError(f"{text[:40]!r}: {exc}") from None
    unknown = sorted(names - PLACEHOLDERS)
    if unknown:
        allowed = ", ".join("{" + name + "}" for name in sorted(PLACEHOLDERS))
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}: use {allowed}")
    return text


class Wording(BaseModel):
    """The texts of one language; a text left out keeps the built-in one."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, min_length=1, max_length=1024)
    """The message the link prefills (it starts with the keyword)."""
    confirmed: str | None = Field(default=None, min_length=1, max_length=1024)
    """The answer once consent is recorded."""
    ask: str | None = Field(default=None, min_length=1, max_length=1024)
    """Double opt-in: the question sent with the Yes button."""
    button: str | None = Field(default=None, min_length=1, max_length=20)
    """Double opt-in: the button's title (WhatsApp allows 20 characters)."""

    _checked = field_validator("text", "confirmed", "ask")(lambda v: v if v is None else _placeholders(v))


class DeclaredLink(BaseModel):
    """A link declared in config rather than made with ``connectzap optin link``."""

    model_config = ConfigDict(extra="forbid")

    keyword: str = Field(min_length=1, max_length=40)
    category: Category = Category.MARKETING
    text: str | None = Field(default=None, min_length=1, max_length=1024)
    language: str | None = None


class OptinSettings(PluginSettings):
    """``[plugins.optin]``, validated when the engine starts; every key optional."""

    business_name: str | None = Field(default=None, min_length=1, max_length=100)
    """Named in every wording: WhatsApp's policy wants an opt-in to say who will write."""
    number: str | None = None
    """The number customers write to, E.164. Unset: asked from the Cloud API (the connector's
    ``phone_number_id``); the sandbox has no number, so set it there."""
    numbers: dict[str, str] = Field(default_factory=dict)
    """Further business numbers: phone_number_id -> the number customers see."""
    double_opt_in: bool = False
    """Answer with a Yes button and record consent only when it is tapped."""
    language: str = "en"
    """The language of links made without ``--language``, and of the answers to them."""
    replies: dict[str, Wording] = Field(default_factory=dict)
    links: list[DeclaredLink] = Field(default_factory=list)

    @field_validator("number")
    @classmethod
    def _number(cls, value: str | None) -> str | None:
        return international(value) if value else None

    @field_validator("numbers")
    @classmethod
    def _numbers(cls, numbers: dict[str, str]) -> dict[str, str]:
        return {number_id: international(shown) for number_id, shown in numbers.items()}

    @field_validator("language")
    @classmethod
    def _language(cls, tag: str) -> str:
        return language_of(tag)

    @field_validator("replies")
    @classmethod
    def _reply_languages(cls, replies: dict[str, Wording]) -> dict[str, Wording]:
        return {language_of(tag): wording for tag, wording in replies.items()}

    @model_validator(mode="after")
    def _complete(self) -> OptinSettings:
        for lang in {self.language, *(language_of(link.language) for link in self.links if link.language)}:
            self.wording(lang, "confirmed")  # a language with no texts at all fails here, at start
        if self.links and not self.business_name:
            raise ValueError("links need business_name: WhatsApp's policy wants an opt-in to name the business")
        return self

    def console_summary(self) -> list[tuple[str, str]]:
        mode = "double opt-in (a Yes button records it)" if self.double_opt_in else "the keyword records it"
        return [("opt-in", f"{mode}; links in {self.language} by default; business: {self.business_name or '(unset)'}"),
                *((f"link {link.keyword}", f"{link.category.value}{f' ({link.language})' if link.language else ''}")
                  for link in self.links)]

    def wording(self, language: str, which: str) -> str:
        """The ``which`` text (text, confirmed, ask, button) of ``language``: configured, else built in."""
        configured = self.replies.get(language)
        text = getattr(configured, which) if configured is not None else None
        text = text or BUILT_IN.get(language, {}).get(which)
        if text is None:
            raise ValueError(f"no {which!r} text for language {language!r}: add [plugins.optin.replies.{language}] "
                             f"(built in: {', '.join(sorted(BUILT_IN))})")
        return text

    def render(self, language: str, which: str, *, keyword: str, category: Category) -> str:
        values: dict[str, Any] = {"keyword": keyword.upper(), "business": self.business_name or "",
                                  "what": WHAT.get(language, WHAT["en"])[category]}
        return self.wording(language, which).format_map(values)
