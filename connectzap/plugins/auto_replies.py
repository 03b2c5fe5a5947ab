"""Automatic answers to frequent questions (issue 17): rules matched against each inbound message,
each answering with any outbound content -- text, reply buttons, a list, media, a location, an
approved template -- in the customer's language. docs/automation.md, "auto_replies".

A rule matches, in this order: an interactive reply (a tapped button or list row) whose id is the
rule's name or one of its ``buttons`` -- so a button in one answer leads to another rule, a menu
tree --, the message's type (``types``: a location, an image...), its words (``keywords``: whole
words or phrases, any case, with or without accents; per language or not), a regular expression
(``regex``, case-insensitive). The first rule in the file that matches answers; a message no rule
matches gets nothing from this plugin.

Guards: a per-contact cooldown per rule (a tap is never held back: the customer asked); no answer
to a message older than ``stale_after_minutes`` nor while a person handles the conversation; and,
from the core, at most one automatic answer per inbound message (answers are of kind ``faq``). A
rule may also hand the conversation to people (``handoff = true``), its answer the last automatic one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectzap import (AutomaticAnswer, ButtonsContent, EventContext, InboundMessage, ListContent, MessageContent,
                        PluginSettings, TemplateContent, TemplateUse, hookimpl, is_bsuid)
from connectzap.core.wording import counted

from .languages import LanguageChoice, choose_language, language_of
from .matching import contains, words_of

RuleName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,200}$")]


class Rule(BaseModel):
    """One ``[[plugins.auto_replies.rules]]`` entry."""

    model_config = ConfigDict(extra="forbid")

    name: RuleName
    """Unique; also the id of the buttons and list rows that lead to this rule."""
    keywords: list[str] | dict[str, list[str]] = Field(default_factory=list)
    """Words or phrases (whole words, any case and accents): a list, or language -> list, which then
    also chooses the answer's language."""
    regex: list[str] = Field(default_factory=list)
    buttons: list[str] = Field(default_factory=list)
    """More reply ids that lead here (a template's quick-reply payloads, say)."""
    types: list[str] = Field(default_factory=list)
    """Message types answered whatever they say: ``location``, ``image``, ``audio``, ``document``..."""
    answer: dict[str, MessageContent] = Field(default_factory=dict)
    """Language -> the content to send (any outbound content: ``type = "text"``, ``"buttons"``...)."""
    handoff: bool = False
    """Also hand the conversation to people (no automatic answers until released or ``handoff_minutes``)."""
    handoff_minutes: int = Field(default=240, ge=0, le=525_600)
    """0: until released."""
    cooldown_minutes: float | None = Field(default=None, ge=0)
    """This rule's own cooldown (default: the plugin's)."""

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str] | dict[str, list[str]]) -> dict[str, list[str]]:
        table = {"": value} if isinstance(value, list) else {language_of(k): v for k, v in value.items()}
        out = {lang: [" ".join(words_of(w)) for w in words] for lang, words in table.items()}
        if any(not w for words in out.values() for w in words):
            raise ValueError("a keyword is empty (or punctuation only)")
        return out

    @field_validator("regex")
    @classmethod
    def _regex(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
        return patterns

    @field_validator("answer")
    @classmethod
    def _languages(cls, answer: dict[str, MessageContent]) -> dict[str, MessageContent]:
        return {language_of(lang): content for lang, content in answer.items()}

    @model_validator(mode="after")
    def _does_something(self) -> Rule:
        if not self.answer and not self.handoff:
            raise ValueError(f"rule {self.name!r} has no answer (and no handoff)")
        return self

    def keyword_table(self) -> dict[str, list[str]]:
        """Language ("" for none) -> the keywords, normalised (the validator made it a table)."""
        return self.keywords if isinstance(self.keywords, dict) else {"": self.keywords}

    def matches(self) -> str:
        """What this rule answers, in words (the console's automation page)."""
        words = [w for words in self.keyword_table().values() for w in words]
        parts = [f"the tap {', '.join([self.name, *self.buttons])}"]
        parts += [f"words {', '.join(words)}"] if words else []
        parts += [f"patterns {', '.join(self.regex)}"] if self.regex else []
        parts += [f"{', '.join(self.types)} messages"] if self.types else []
        return " or ".join(parts)

    def answer_preview(self, language: str) -> str:
        """The answer in ``language`` (else the first), as its text or its kind."""
        content = self.answer.get(language) or next(iter(self.answer.values()), None)
        if content is None:
            return "nothing"
        if isinstance(content, TemplateContent):
            return f"the template {content.name}"
        shown = content.model_dump()
        return str(shown.get("body") or shown.get("text") or f"a {shown.get('type', 'message')} message")

    def targets(self) -> Iterator[str]:
        """The reply ids its answers offer (buttons, list rows): each must name a rule."""
        for content in self.answer.values():
            if isinstance(content, ButtonsContent):
                yield from (b.id for b in content.buttons)
            elif isinstance(content, ListContent):
                yield from (row.id for section in content.sections for row in section.rows)


class AutoRepliesSettings(LanguageChoice):
    """``[plugins.auto_replies]``, validated when the engine starts (one line naming the mistake)."""

    rules: list[Rule] = Field(default_factory=list)
    cooldown_minutes: float = Field(default=60, ge=0)
    """A rule answers a contact at most once in this time (0: always); taps are always answered."""
    stale_after_minutes: float | None = Field(default=None, gt=0)
    """Answer no message older than this (the core's ``[automation] stale_after_minutes`` applies too)."""

    def wants(self, kind: str) -> bool:
        return bool(self.rules)  # no rule: nothing ever answers

    @model_validator(mode="after")
    def _consistent(self) -> AutoRepliesSettings:
        names = [rule.name for rule in self.rules]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"rule names must be unique: {', '.join(twice)}")
        reachable = set(names) | {b for rule in self.rules for b in rule.buttons}
        for rule in self.rules:
            unknown = [target for target in rule.targets() if target not in reachable]
            if unknown:
                raise ValueError(f"rule {rule.name!r}: {', '.join(map(repr, unknown))} names no rule (the ids of "
                                 "an answer's buttons and list rows are the rules they lead to)")
            if rule.answer and self.default_language not in rule.answer:
                raise ValueError(f"rule {rule.name!r} has no answer in default_language "
                                 f"{self.default_language!r}")
        return self

    def console_summary(self) -> list[tuple[str, str]]:
        return [(f"rule {rule.name}", f"matches {rule.matches()}; answers {rule.answer_preview(self.default_language)}"
                                      f"{'; then a person takes over' if rule.handoff else ''}")
                for rule in self.rules]

    def longest_cooldown(self) -> float:
        return max([self.cooldown_minutes, *(r.cooldown_minutes or 0 for r in self.rules)])

    def templates_used(self) -> Iterator[TemplateUse]:
        for n, rule in enumerate(self.rules):
            for lang, content in rule.answer.items():
                if isinstance(content, TemplateContent):
                    yield TemplateUse(f"rules[{n}].answer.{lang}", content.name, (content.language,), replies=True)

    def match(self, message: InboundMessage) -> tuple[Rule, list[str], bool] | None:
        """The rule answering ``message``, the languages of the words that chose it, and whether
        the customer tapped it (a button or list row)."""
        tapped = (message.reply.id or message.reply.payload) if message.reply else None
        if tapped:
            for rule in self.rules:
                if tapped == rule.name or tapped in rule.buttons:
                    return rule, [], True
        said = words_of(message.text) if message.text else ()
        for rule in self.rules:
            if message.type in rule.types:
                return rule, [], False
            if said:
                languages = [lang for lang, phrases in rule.keyword_table().items() for phrase in phrases
                             if contains(said, tuple(phrase.split()))]
                if languages:
                    return rule, [lang for lang in dict.fromkeys(languages) if lang], False
            if message.text and any(re.search(p, message.text, re.IGNORECASE) for p in rule.regex):
                return rule, [], False
        return None


@hookimpl
def register_plugin_settings(register: Callable[[str, type[PluginSettings]], None]) -> None:
    register("auto_replies", AutoRepliesSettings)


def settings_of(ctx: EventContext) -> AutoRepliesSettings:
    return ctx.settings_as(AutoRepliesSettings)


def _cooling(ctx: EventContext, config: AutoRepliesSettings, rule: Rule, contact_key: str, at: float,
             minutes: float, tapped: bool) -> bool:
    """Whether ``rule`` answered this contact less than ``minutes`` ago (a tap never waits); if not,
    remember now. The state holds, per contact (by keyed hash), the last answer time of each rule
    still cooling down."""
    key = f"cooldown:{contact_key}"
    answered: dict[str, Any] = dict(ctx.state.get(key) or {})
    last = answered.get(rule.name)
    if not tapped and last is not None and at - float(last) < minutes * 60:
        return True
    longest = config.longest_cooldown() * 60
    answered = {name: t for name, t in answered.items() if at - float(t) < longest}
    answered[rule.name] = at
    ctx.state.set(key, answered)
    return False


@hookimpl
def on_inbound_message(message: InboundMessage, ctx: EventContext) -> None:
    config = settings_of(ctx)
    if not config.rules or message.type == "system":
        return
    found = config.match(message)
    if found is None:
        return
    rule, languages, tapped = found
    user_id = message.contact.user_id if is_bsuid(message.contact.user_id) else None
    who = message.contact.phone or user_id
    contact_key = ctx.contact_key(who) if who else None
    if who is None or contact_key is None:
        return
    now = datetime.now(UTC).timestamp()
    if config.stale_after_minutes is not None and now - message.timestamp.timestamp() > config.stale_after_minutes * 60:
        ctx.note("stale", f"rule {rule.name}: the message is older than "
                          f"{counted(config.stale_after_minutes, 'minute')}")
        return
    if ctx.conversation.handled_by == "human":
        ctx.note("human_handling", f"rule {rule.name}: a person handles this conversation")
        return
    cooldown = config.cooldown_minutes if rule.cooldown_minutes is None else rule.cooldown_minutes
    if cooldown and _cooling(ctx, config, rule, contact_key, now, cooldown, tapped):
        ctx.note("cooldown", f"rule {rule.name} answered this contact less than {counted(cooldown, 'minute')} ago")
        return
    if rule.handoff:
        ctx.conversation.hand_to_human(f"auto_replies rule {rule.name}", rule.handoff_minutes or None)
    if rule.answer:
        language = choose_language(languages, who, rule.answer, config.default_language, config.countries)
        ctx.send(who, rule.answer[language], key=f"{message.wamid}:{rule.name}", reply_to=message.wamid,
                 business_phone_number_id=message.business_phone_number_id, automatic=AutomaticAnswer.faq)
    ctx.note("answered" if rule.answer else "handed_over", f"rule {rule.name}")
