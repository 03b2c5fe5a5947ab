"""Away: outside business hours, tell the customer when the business opens again.

Config (``[plugins.away]``, with ``[business_hours]``; docs/automation.md, "Away")::

    enabled = true
    once_every_hours = 12          # at most one away message per customer in this time
    default_language = "es"
    [plugins.away.texts]
    es = "Ahora estamos cerrados. Abrimos {{ next_opening }} y te responderemos entonces."

``{{ next_opening }}`` is the next opening on the business's clock, written in the text's
language: "hoy a las 17:00", "mañana a las 9:00", "el lunes 7 de diciembre a las 9:00";
"amanhã às 9:00", "na segunda-feira, 7 de dezembro, às 9:00"; "today at 5:00 PM", "on Monday,
December 7 at 9:00 AM" (other languages: ``2026-12-07 09:00``). ``{{ timezone }}`` is the
business's time zone name. A customer's language is their number's country's when it has a text,
else ``default_language``.

The "once every N hours" mark is kept per contact under its keyed hash (no number, no text), from
the time of the message answered, so a replayed or late webhook does not move it; like the
welcome's, it follows the customer when their number and BSUID are linked or change
(:class:`connectzap.ContactTime`). The answer is an automatic one (``AutomaticAnswer.away``): the
core sends at most one automatic answer per inbound message (a keyword confirmation or an FAQ answer
goes instead of this), none while a person handles the conversation, none to a stale message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar

from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field, field_validator

from connectzap import (AutomaticAnswer, ContactTime, EventContext, InboundMessage, PluginSettings, Settings,
                        TextContent, hookimpl, jinja_names_known)
from connectzap.core.wording import counted
from connectzap.plugins.languages import TextsByLanguage
from connectzap.plugins.welcome import customer_of

AWAY_TEXTS: dict[str, str] = {
    "es": "¡Gracias por escribirnos! Ahora estamos cerrados. Abrimos {{ next_opening }} y te responderemos entonces.",
    "pt": "Obrigado pela mensagem! Agora estamos fechados. Abrimos {{ next_opening }} e responderemos assim que "
          "possível.",
    "en": "Thanks for your message! We are closed right now. We open {{ next_opening }} and will answer you then.",
}
VARIABLES = ("next_opening", "timezone")

LAST_AWAY = ContactTime("away")
"""When the customer was last answered with the away message; it follows them across identifiers."""

DAYS: dict[str, tuple[str, ...]] = {
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    "pt": ("segunda-feira", "terça-feira", "quarta-feira", "quinta-feira", "sexta-feira", "sábado", "domingo"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTHS: dict[str, tuple[str, ...]] = {
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"),
    "pt": ("janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro", "outubro",
           "novembro", "dezembro"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}


def opening_words(opening: datetime, now: datetime, language: str) -> str:
    """When ``opening`` is, as a customer reading ``language`` says it, seen from ``now`` (both on the
    business's clock): today, tomorrow, a weekday within the week, else a weekday and a date."""
    days = (opening.date() - now.date()).days
    if language not in DAYS:
        return f"{opening:%Y-%m-%d %H:%M}"
    day, month = DAYS[language][opening.weekday()], MONTHS[language][opening.month - 1]
    if language == "en":
        hour = opening.hour % 12 or 12
        clock = f"{hour}:{opening.minute:02d} {'AM' if opening.hour < 12 else 'PM'}"
        named = {0: "today", 1: "tomorrow"}.get(days) or (f"on {day}" if days < 7 else f"on {day}, {month} "
                                                                                         f"{opening.day}")
        return f"{named} at {clock}"
    clock = f"{opening.hour}:{opening.minute:02d}"
    if language == "es":
        at = f"a la {clock}" if opening.hour == 1 else f"a las {clock}"
        named = {0: "hoy", 1: "mañana"}.get(days) or (f"el {day}" if days < 7 else f"el {day} {opening.day} de {month}")
        return f"{named} {at}"
    at = f"à {clock}" if opening.hour == 1 else f"às {clock}"
    article = "no" if opening.weekday() >= 5 else "na"
    if days in (0, 1):
        return f"{'hoje' if days == 0 else 'amanhã'} {at}"
    return f"{article} {day} {at}" if days < 7 else f"{article} {day}, {opening.day} de {month}, {at}"


class AwaySettings(TextsByLanguage):
    """``[plugins.away]``, validated when the engine starts. Off unless ``enabled``; needs opening
    ranges in ``[business_hours]``."""

    BUILT_IN: ClassVar[dict[str, str]] = AWAY_TEXTS
    SECTION: ClassVar[str] = "plugins.away"

    enabled: bool = False
    once_every_hours: float = Field(default=12, gt=0)

    def console_summary(self) -> list[tuple[str, str]]:
        state = f"on: outside business hours, at most once every {counted(self.once_every_hours, 'hour')}"
        return [("away", state), *self.texts_summary()] if self.enabled else [("away", "off")]
    """At most one away message per customer within this many hours."""

    def wants(self, kind: str) -> bool:
        return self.enabled

    @field_validator("texts")
    @classmethod
    def _known_variables(cls, texts: dict[str, str]) -> dict[str, str]:
        for text in texts.values():
            jinja_names_known(text, VARIABLES)
        return texts

    def problem_with(self, settings: Settings) -> str | None:
        if self.enabled and not settings.business_hours.schedule().configured:
            return "enabled, but [business_hours] has no opening ranges: the business would never be closed"
        return None


@hookimpl
def register_plugin_settings(register: Callable[[str, type[PluginSettings]], None]) -> None:
    register("away", AwaySettings)


@lru_cache(maxsize=64)
def _compiled(text: str) -> Any:
    return SandboxedEnvironment(autoescape=False).from_string(text)


@hookimpl
def on_inbound_message(message: InboundMessage, ctx: EventContext) -> None:
    config = ctx.settings_as(AwaySettings)
    who = customer_of(message)
    hours = ctx.business_hours
    if not config.enabled or who is None or message.type in ("system", "reaction") or not hours.configured:
        return
    if hours.is_open(message.timestamp):
        return
    key = ctx.contact_key(who)
    if key is None:
        return
    at = message.timestamp.timestamp()
    last = LAST_AWAY.get(ctx, key)
    if last is not None and abs(at - last) < config.once_every_hours * 3600:
        ctx.note("away_recently", f"an away message went {abs(at - last) / 3600:.1f} h ago "
                                  f"(once_every_hours = {config.once_every_hours:g})")
        return
    opening = hours.next_opening(message.timestamp)
    if opening is None:
        ctx.note("no_opening_ahead", "[business_hours] opens on no day in the next two years")
        return
    language, text = config.text_for(who)
    words = opening_words(opening.astimezone(hours.zone), message.timestamp.astimezone(hours.zone), language)
    body = str(_compiled(text).render(next_opening=words, timezone=str(hours.zone))).strip()
    LAST_AWAY.set(ctx, key, at)
    ctx.send(who, TextContent(body=body), reply_to=message.wamid, key=f"away:{message.wamid}",
             business_phone_number_id=message.business_phone_number_id, automatic=AutomaticAnswer.away)
