"""Human handoff by keyword: a customer writing "agente", "humano", "atendente", "agent"... -- as
whole words anywhere in the message, in any case, with or without accents -- hands the conversation
to people. No automatic answer goes to that customer until a person releases it (``connectzap
conversations release``, the REST API) or ``minutes`` pass; the core enforces it, for every plugin.
The customer gets one confirmation (an automatic answer of kind ``keyword``) in their language,
chosen like every bundled plugin's (:mod:`.languages`). docs/automation.md, "Human handoff".

Off until configured: ``enabled = true`` turns it on (words such as "human" are too common to
hand conversations over in every shop that has not asked for it). Config (``[plugins.handoff]``)::

    enabled = true
    minutes = 240                  # 0: until released
    confirm = true
    default_language = "en"
    [plugins.handoff.keywords]     # replaces the built-in words (all languages)
    es = ["agente", "humano"]
    [plugins.handoff.replies]
    es = "Te pasamos con una persona del equipo."
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field, field_validator, model_validator

from connectzap import (AutomaticAnswer, EventContext, InboundMessage, MessageStatus, PluginSettings, StatusValue,
                        TextContent, hookimpl, is_bsuid)
from connectzap.core.models import SENT_FROM_BUSINESS_APP

from .languages import LanguageChoice, choose_language, language_of
from .matching import contains, words_of

# Words (and phrases) per language that ask for a person. HUMANO is Spanish and Portuguese: the
# number's country then picks the confirmation's language.
HANDOFF_WORDS: dict[str, list[str]] = {
    "es": ["agente", "humano", "asesor", "hablar con una persona", "atencion al cliente"],
    "pt": ["atendente", "humano", "falar com uma pessoa", "atendimento humano"],
    "en": ["agent", "human", "talk to a person", "speak to a person", "representative"],
}

REPLIES: dict[str, str] = {
    "es": "Te pasamos con una persona del equipo. Te responderá en cuanto pueda.",
    "pt": "Vamos passar você para uma pessoa da equipe. Ela vai responder assim que puder.",
    "en": "We are passing you to a person on our team, who will answer as soon as they can.",
}


class HandoffSettings(LanguageChoice):
    """``[plugins.handoff]``, validated when the engine starts."""

    enabled: bool = False
    keywords: dict[str, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in HANDOFF_WORDS.items()})
    """Language -> words or phrases that ask for a person (replaces the built-in table)."""
    minutes: int = Field(default=240, ge=0, le=525_600)
    """How long people keep the conversation before automatic answers resume; 0: until released."""
    confirm: bool = True
    app_replies: bool = True
    """A message a person writes in the WhatsApp Business app (a coexistence number) hands the
    conversation to people too: the bot stops talking over them."""
    replies: dict[str, str] = Field(default_factory=dict)
    """Language -> the confirmation text (the built-in ones cover es, pt, en)."""

    def wants(self, kind: str) -> bool:
        return self.enabled

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, table: dict[str, list[str]]) -> dict[str, list[str]]:
        out = {language_of(lang): [" ".join(words_of(w)) for w in words] for lang, words in table.items()}
        if any(not w for words in out.values() for w in words):
            raise ValueError("a handoff keyword is empty (or punctuation only)")
        return out

    @field_validator("replies")
    @classmethod
    def _replies(cls, replies: dict[str, str]) -> dict[str, str]:
        if any(not text.strip() for text in replies.values()):
            raise ValueError("a handoff reply is empty")
        return {language_of(tag): text for tag, text in replies.items()}

    @model_validator(mode="after")
    def _default_has_a_reply(self) -> HandoffSettings:
        if self.default_language not in self.languages():
            raise ValueError(f"default_language {self.default_language!r} has no reply: add it under "
                             f"[plugins.handoff.replies] (built in: {', '.join(sorted(REPLIES))})")
        return self

    def languages(self) -> set[str]:
        return set(REPLIES) | set(self.replies)

    def reply(self, language: str) -> str:
        return self.replies.get(language) or REPLIES.get(language) or self.reply(self.default_language)

    def asked_for(self, text: str) -> list[tuple[str, str]]:
        """The (language, keyword) pairs ``text`` contains."""
        said = words_of(text)
        return [(lang, word) for lang, words in self.keywords.items() for word in words
                if contains(said, tuple(word.split()))]


@hookimpl
def register_plugin_settings(register: Callable[[str, type[PluginSettings]], None]) -> None:
    register("handoff", HandoffSettings)


def settings_of(ctx: EventContext) -> HandoffSettings:
    return ctx.settings_as(HandoffSettings)


@hookimpl
def on_message_status(status: MessageStatus, ctx: EventContext) -> None:
    if status.sent_from != SENT_FROM_BUSINESS_APP or status.status != StatusValue.ACCEPTED:
        return
    config = settings_of(ctx)
    if not (config.enabled and config.app_replies) or ctx.contact is None:
        return
    if ctx.conversation.handled_by == "human":
        ctx.note("already_with_a_person", "the conversation is already handled by a person")
        return
    ctx.conversation.hand_to_human("a person answered from the WhatsApp Business app", config.minutes or None)


@hookimpl
def on_inbound_message(message: InboundMessage, ctx: EventContext) -> None:
    if not message.text:
        return
    config = settings_of(ctx)
    if not config.enabled:
        return
    hits = config.asked_for(message.text)
    user_id = message.contact.user_id if is_bsuid(message.contact.user_id) else None
    who = message.contact.phone or user_id
    if not hits or who is None:
        return
    if ctx.conversation.handled_by == "human":
        ctx.note("already_with_a_person", "the conversation is already handled by a person")
        return
    ctx.conversation.hand_to_human(f"the customer asked for a person ({hits[0][1]})", config.minutes or None)
    if config.confirm:
        language = choose_language(list(dict.fromkeys(lang for lang, _ in hits)), who, config.languages(),
                                   config.default_language, config.countries)
        ctx.send(who, TextContent(body=config.reply(language)), key=f"{message.wamid}:handoff",
                 reply_to=message.wamid, business_phone_number_id=message.business_phone_number_id,
                 automatic=AutomaticAnswer.keyword)
