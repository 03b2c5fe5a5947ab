"""Opt-out (and opt-in) by keyword: a customer writing STOP -- or BAJA, SAIR, PARE... -- stops
marketing messages at once, and START (ALTA, VOLTAR...) resumes them. docs/consent.md explains it.

A keyword counts when it is the whole message (or a quick-reply button's payload), in any case and
with or without accents or surrounding punctuation: ``Baja``, ``BAJA!`` and ``  baja `` all match.
The confirmation is a free-form reply (the customer just opened the 24-hour window), sent from the
business number the customer wrote to, in the customer's language: the keyword's own language when
only one language uses it, else the language of the phone number's country, else
``default_language``.

Config (``[plugins.opt_out_keywords]``, every key optional)::

    categories = ["marketing"]     # what STOP revokes and START grants again
    confirm = true                 # send the confirmation reply
    default_language = "en"
    stop = ["stop", "baja", "sair"]    # replaces the built-in STOP words (all languages)
    start = ["start", "alta", "voltar"]
    [plugins.opt_out_keywords.replies.es]
    stop = "Listo, no te enviaremos más ofertas. Responde ALTA para volver a recibirlas."
    [plugins.opt_out_keywords.countries]
    CH = "de"                      # which language a country's customers read
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connectzap import (AutomaticAnswer, Category, ConsentChange, EventContext, InboundMessage, PluginSettings,
                        TextContent, hookimpl, is_bsuid, normalise_keyword)

from . import optin
from .languages import COUNTRY_LANGUAGES, LanguageChoice, choose_language, language_of

__all__ = ["COUNTRY_LANGUAGES", "REPLIES", "START_WORDS", "STOP_WORDS", "KeywordSettings", "normalise", "settings_of"]

log = logging.getLogger("connectzap.plugins.opt_out_keywords")

# Words per language, as customers write them. A word may belong to several languages (PARAR and
# CANCELAR are Spanish and Portuguese); then the phone number's country picks the reply's language.
STOP_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("stop", "unsubscribe", "stop promotions", "stop all", "stopall", "opt out", "optout"),
    "es": ("baja", "darme de baja", "dar de baja", "parar", "cancelar", "cancelar suscripcion", "stop",
           "no mas", "basta"),
    "pt": ("sair", "pare", "parar", "cancelar", "descadastrar", "cancelar inscricao", "stop"),
    "de": ("stopp", "stop", "abmelden"),
    "fr": ("arret", "desabonner", "stop"),
}
START_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("start", "subscribe", "unstop"),
    "es": ("alta", "darme de alta", "volver", "suscribir", "suscribirme", "start"),
    "pt": ("voltar", "assinar", "inscrever", "receber", "start"),
    "de": ("anmelden", "start"),
    "fr": ("abonner", "start"),
}

# The confirmation, per language. Each names the word that undoes it, in the same language.
REPLIES: dict[str, dict[str, str]] = {
    "en": {"stop": "You will no longer receive offers from us. Reply START to subscribe again.",
           "start": "You are subscribed to our offers again. Reply STOP to unsubscribe."},
    "es": {"stop": "Ya no recibirás nuestras ofertas. Responde ALTA para volver a suscribirte.",
           "start": "Vuelves a recibir nuestras ofertas. Responde BAJA para darte de baja."},
    "pt": {"stop": "Você não receberá mais nossas ofertas. Responda VOLTAR para se inscrever novamente.",
           "start": "Você voltou a receber nossas ofertas. Responda SAIR para cancelar."},
}

normalise = normalise_keyword
"""How a message is compared with the keywords (shared with every plugin that reacts to words)."""


_language = language_of
"""``pt_BR``, ``pt-br`` and ``PT`` are all ``pt``: replies are chosen by language, not region."""


class Reply(BaseModel):
    """The confirmation texts of one language; a text left out keeps the built-in one."""

    model_config = ConfigDict(extra="forbid")

    stop: str | None = Field(default=None, min_length=1, max_length=4096)
    start: str | None = Field(default=None, min_length=1, max_length=4096)


class KeywordSettings(LanguageChoice):
    """``[plugins.opt_out_keywords]``, validated when the engine starts. Unknown keys are refused:
    a misspelt ``replies`` must not silently keep the defaults."""

    stop: list[str] = Field(default_factory=lambda: _all(STOP_WORDS))
    """The STOP words (replaces the built-in list of every language)."""
    start: list[str] = Field(default_factory=lambda: _all(START_WORDS))
    categories: list[Category] = Field(default_factory=lambda: [Category.MARKETING], min_length=1)
    confirm: bool = True
    replies: dict[str, Reply] = Field(default_factory=dict)
    stop_reply: str | None = Field(default=None, min_length=1)
    """Deprecated: one STOP reply for every language; use ``[replies.LANG] stop``."""
    start_reply: str | None = Field(default=None, min_length=1)
    """Deprecated: one START reply for every language; use ``[replies.LANG] start``."""

    @field_validator("stop", "start")
    @classmethod
    def _words(cls, words: list[str]) -> list[str]:
        cleaned = [normalise(w) for w in words]
        if any(not w for w in cleaned):
            raise ValueError("a keyword is empty (or punctuation only)")
        return cleaned

    @field_validator("replies")
    @classmethod
    def _reply_languages(cls, replies: dict[str, Reply]) -> dict[str, Reply]:
        return {_language(tag): reply for tag, reply in replies.items()}

    @model_validator(mode="after")
    def _consistent(self) -> KeywordSettings:
        both = sorted(set(self.stop) & set(self.start))
        if both:
            raise ValueError(f"{', '.join(both)}: a word cannot be both a stop and a start keyword")
        if self.default_language not in self.languages():
            raise ValueError(f"default_language {self.default_language!r} has no reply texts: add "
                             f"[plugins.opt_out_keywords.replies.{self.default_language}] with stop and start "
                             f"(built in: {', '.join(sorted(REPLIES))})")
        return self

    def reply(self, which: str, language: str) -> str:
        """The confirmation text for ``which`` ("stop" or "start") in ``language``; a text a language
        lacks comes from ``default_language``, then English."""
        single = self.stop_reply if which == "stop" else self.start_reply
        for lang in (language, self.default_language, "en"):
            configured = self.replies.get(lang)
            text = getattr(configured, which) if configured is not None else None
            # The deprecated single wording beats the built-in translations, as it always did.
            text = text or single or REPLIES.get(lang, {}).get(which)
            if text:
                return text
        return REPLIES["en"][which]

    def languages(self) -> set[str]:
        """Languages a reply can be written in: the built-in ones and those configured."""
        return set(REPLIES) | set(self.replies)

    def choose_language(self, said: str, which: str, phone: str) -> str:
        """The reply's language: the keyword's own when one language alone uses it, else the phone
        number's country's (when the keyword is one of its words, or the keyword is language-less),
        else ``default_language``. Only languages with a reply qualify."""
        table = STOP_WORDS if which == "stop" else START_WORDS
        of_word = [lang for lang, words in table.items() if said in words]
        return choose_language(of_word, phone, self.languages(), self.default_language, self.countries)


def _all(table: dict[str, tuple[str, ...]]) -> list[str]:
    return list(dict.fromkeys(word for words in table.values() for word in words))


_cache: tuple[dict[str, Any], KeywordSettings] | None = None


@hookimpl
def register_plugin_settings(register: Callable[[str, type[PluginSettings]], None]) -> None:
    register("opt_out_keywords", KeywordSettings)


def settings_of(ctx: EventContext) -> KeywordSettings:
    """This plugin's section as :class:`KeywordSettings`: the one the engine validated at start-up,
    or (a context built by hand) validated here once per distinct section."""
    global _cache
    declared = ctx.plugin_settings
    if isinstance(declared, KeywordSettings):
        return declared
    config = ctx.config
    if _cache is not None and _cache[0] == config:
        return _cache[1]
    try:
        settings = KeywordSettings.model_validate(config)
    except ValidationError as exc:
        from connectzap.core.settings import describe_validation_error
        raise ValueError(describe_validation_error(exc, "plugins.opt_out_keywords")) from None
    _cache = (dict(config), settings)
    return settings


@hookimpl
def on_inbound_message(message: InboundMessage, ctx: EventContext) -> None:
    raw = (message.reply.payload if message.reply and message.reply.payload else message.text) or ""
    # A customer known by business-scoped user id only (a username, no number) may opt out too.
    phone, user_id = message.contact.phone, message.contact.user_id
    said = normalise(raw)
    who = phone or (user_id if is_bsuid(user_id) else None)
    if not said or who is None:
        return
    config = settings_of(ctx)
    if said in config.stop:
        granted, which = False, "stop"
    elif said in config.start:
        granted, which = True, "start"
    else:
        return
    if granted and optin.claims(ctx.app, raw):
        # ALTA may also be an opt-in link's keyword: that plugin records and confirms it, once.
        ctx.note("left_to_optin", "an opt-in link's keyword: the optin plugin answers it")
        return
    for category in config.categories:
        ctx.set_consent(ConsentChange(phone=phone, user_id=None if phone else who, category=category,
                                      granted=granted,
                                      source="whatsapp:keyword", at=message.timestamp,
                                      proof=f"customer wrote {said!r} (message {message.wamid})"))
    if config.confirm:
        language = config.choose_language(said, which, who)
        # From the number the customer wrote to: its window is the one just opened, and a reply
        # from another of the business's numbers would come from a stranger.
        # A keyword's confirmation: it goes instead of a welcome, an away message or an FAQ answer.
        ctx.send(who, TextContent(body=config.reply(which, language)), reply_to=message.wamid,
                 key=f"{message.wamid}:confirm", business_phone_number_id=message.business_phone_number_id,
                 automatic=AutomaticAnswer.keyword)
