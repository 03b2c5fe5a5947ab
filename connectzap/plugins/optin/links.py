"""Opt-in links: a ``wa.me`` address that opens a chat with the business with a message already
typed, its QR code, and the book of links the keyword handler recognises.

A link is made with ``connectzap optin link`` or ``GET /v1/optin/qr`` (kept in the plugin's durable
state, so every worker knows it) or declared in ``[[plugins.optin.links]]``. Each keeps every
wording it was shown with: the consent proof names the one the customer sent.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import segno

from connectzap import (Category, ConfigurationError, ConflictError, Connectzap, PayloadError, leading_keyword,
                        normalise_keyword)

from .settings import OptinSettings, language_of

STATE_KEY = "links"
"""The plugin state key holding the links made at run time: normalised keyword -> link."""


@dataclass(frozen=True)
class OptinLink:
    keyword: str
    """As the business wrote it (``ALTA``); matched normalised (``alta``)."""
    category: Category
    language: str
    wordings: tuple[str, ...] = field(default=())
    """Every text a link with this keyword prefilled, oldest first; the last is the current one."""

    @property
    def text(self) -> str:
        return self.wordings[-1]

    def wording_index(self, sent: str | None) -> int:
        """Which of :attr:`wordings` the customer sent (compared normalised); the current one when
        they edited the prefilled text."""
        said = normalise_keyword(sent or "")
        for index in range(len(self.wordings) - 1, -1, -1):
            if normalise_keyword(self.wordings[index]) == said:
                return index
        return len(self.wordings) - 1

    def as_state(self) -> dict[str, Any]:
        return {"keyword": self.keyword, "category": self.category.value, "language": self.language,
                "wordings": list(self.wordings)}


def wa_me(number: str, text: str) -> str:
    """``https://wa.me/<digits>?text=<text>``: wa.me takes the number without ``+``."""
    return f"https://wa.me/{number.lstrip('+')}?text={quote(text, safe='')}"


def qr_png(url: str, *, scale: int = 8) -> bytes:
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def qr_svg(url: str, *, scale: int = 8) -> bytes:
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=scale, border=4, xmldecl=False)
    return out.getvalue()


def book(settings: OptinSettings, stored: Any) -> dict[str, OptinLink]:
    """Every known link by normalised keyword: the stored ones, then those declared in config (a
    declared link wins over a stored one with the same keyword)."""
    links: dict[str, OptinLink] = {}
    for key, item in (stored or {}).items():
        links[key] = OptinLink(keyword=item["keyword"], category=Category(item["category"]),
                               language=item["language"], wordings=tuple(item["wordings"]))
    for declared in settings.links:
        language = language_of(declared.language or settings.language)
        text = declared.text or settings.render(language, "text", keyword=declared.keyword, category=declared.category)
        links[normalise_keyword(declared.keyword)] = OptinLink(declared.keyword, declared.category, language, (text,))
    return links


def make(settings: OptinSettings, stored: Any, *, keyword: str, category: Category, text: str | None,
         language: str | None) -> tuple[OptinLink, dict[str, Any]]:
    """The link for these arguments and the stored links to write back. A keyword already used for
    another category is refused: one word must mean one thing to the customer who sends it."""
    key = normalise_keyword(keyword)
    if not key:
        raise PayloadError("the keyword is empty (or punctuation only)", field="keyword")
    language = language_of(language or settings.language)
    if text is None:
        if not settings.business_name:
            raise ConfigurationError("set business_name in [plugins.optin] (WhatsApp's policy wants an opt-in to "
                                     "name the business), or pass the whole text")
        text = settings.render(language, "text", keyword=keyword, category=category)
    if leading_keyword(text, {key}) != key:
        raise PayloadError(f"the text must start with the keyword {keyword!r}: that is how the answer is recognised",
                           field="text")
    known = book(settings, stored).get(key)
    if known is not None and known.category != category:
        raise ConflictError(f"keyword {keyword!r} already signs up for {known.category.value}; choose another keyword")
    wordings = tuple(w for w in (known.wordings if known else ()) if w != text) + (text,)
    link = OptinLink(keyword=keyword, category=category, language=language, wordings=wordings)
    return link, {**(stored or {}), key: link.as_state()}


async def business_number(app: Connectzap, settings: OptinSettings, phone_number_id: str | None) -> str:
    """The number a link opens a chat with: configured (``numbers`` for ``phone_number_id``,
    ``number`` for the default), else what a connector knows (the Cloud API's
    ``display_phone_number``)."""
    configured = settings.numbers.get(phone_number_id) if phone_number_id else settings.number
    if configured:
        return configured
    for connector in app.connectors.values():
        found = await connector.display_number(phone_number_id)
        if found:
            return found
    what = f"numbers.{phone_number_id}" if phone_number_id else "number"
    raise ConfigurationError(f"no number to link to: set {what} in [plugins.optin] (the number customers write to, "
                             "e.g. \"+34 600 000 000\"), or configure the WhatsApp Cloud API")


async def publish(app: Connectzap, *, keyword: str, category: Category, text: str | None = None,
                  language: str | None = None, phone_number_id: str | None = None) -> tuple[OptinLink, str]:
    """Make (or find again) the link, store it so every worker answers its keyword, and return it
    with its ``wa.me`` address."""
    settings = app.plugin_settings.get("optin")
    if not isinstance(settings, OptinSettings):
        raise ConfigurationError("the optin plugin is not loaded")
    state = app.plugin_state("optin")
    known = await asyncio.to_thread(state.get, STATE_KEY)  # the store blocks: not on the event loop
    link, stored = make(settings, known, keyword=keyword, category=category, text=text, language=language)
    number = await business_number(app, settings, phone_number_id)
    if stored != known:
        await asyncio.to_thread(state.set, STATE_KEY, stored)
    return link, wa_me(number, link.text)
