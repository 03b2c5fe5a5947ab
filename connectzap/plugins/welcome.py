"""Welcome: greet a customer on their first message -- or on the first after a long silence.

Config (``[plugins.welcome]``; docs/automation.md, "Welcome")::

    enabled = true
    after_silence_days = 90        # greet again after this long without a message; 0 = only the first
    default_language = "es"
    [plugins.welcome.texts]
    es = "¡Hola! Gracias por escribirnos. Te respondemos enseguida."

How "first" is known without keeping any message: the plugin keeps, per contact, the time of the
customer's last message, under the contact's keyed hash (the same HMAC key consent and windows use;
no number, no text). It is a :class:`connectzap.ContactTime`: when WhatsApp links the customer's
BSUID to their number, or they change number, it moves with them, so they are not greeted again for
writing under another identifier. The time is rewritten only when it moved by an hour or more, so a
busy chat does not write on every message; a silence is therefore measured to within an hour. The
core's 24-hour window table cannot tell: it is refreshed by the very message being answered before
any plugin sees it.

The greeting is an automatic answer (``AutomaticAnswer.welcome``, the lowest precedence): the
core sends it only if no other automatic answer (a keyword confirmation, an FAQ, the away
message...) answers the same message, never while a person handles the conversation and never to
a stale message. A first message answered by something else counts as greeted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from pydantic import Field

from connectzap import (AutomaticAnswer, ContactTime, EventContext, InboundMessage, PluginSettings, TextContent,
                        hookimpl, is_bsuid)
from connectzap.core.wording import counted
from connectzap.plugins.languages import TextsByLanguage

GREETINGS: dict[str, str] = {
    "es": "¡Hola! Gracias por escribirnos. Te respondemos enseguida.",
    "pt": "Olá! Obrigado por nos escrever. Já vamos te responder.",
    "en": "Hi! Thanks for writing to us. We will get back to you shortly.",
}

LAST_SEEN = ContactTime("seen")
"""When the customer last wrote; it follows them when their number and BSUID are linked or change."""

SEEN_EVERY_SECONDS = 3600
"""How far the customer's last-message time must move before it is written again."""

# Not written by the customer, or not a message to greet (a reaction to one of ours).
_NOT_GREETED = frozenset({"system", "reaction", "unsupported"})


class WelcomeSettings(TextsByLanguage):
    """``[plugins.welcome]``, validated when the engine starts. Off unless ``enabled``."""

    BUILT_IN: ClassVar[dict[str, str]] = GREETINGS
    SECTION: ClassVar[str] = "plugins.welcome"

    enabled: bool = False
    after_silence_days: float = Field(default=0, ge=0)

    def console_summary(self) -> list[tuple[str, str]]:
        days = self.after_silence_days
        again = f"again after {counted(days, 'day')} of silence" if days else "once"
        return [("welcome", f"on: {again}"), *self.texts_summary()] if self.enabled else [("welcome", "off")]
    """Greet again a customer who wrote nothing for this many days; 0: only the very first message."""

    def wants(self, kind: str) -> bool:
        return self.enabled


@hookimpl
def register_plugin_settings(register: Callable[[str, type[PluginSettings]], None]) -> None:
    register("welcome", WelcomeSettings)


def customer_of(message: InboundMessage) -> str | None:
    """Who wrote: their number, or their business-scoped user id when WhatsApp shows no number."""
    phone, user_id = message.contact.phone, message.contact.user_id
    return phone or (user_id if is_bsuid(user_id) else None)


@hookimpl
def on_inbound_message(message: InboundMessage, ctx: EventContext) -> None:
    config = ctx.settings_as(WelcomeSettings)
    who = customer_of(message)
    if not config.enabled or who is None or message.type in _NOT_GREETED:
        return
    key = ctx.contact_key(who)
    if key is None:
        return
    at = message.timestamp.timestamp()
    last = LAST_SEEN.get(ctx, key)
    if last is None or at - last >= SEEN_EVERY_SECONDS:
        LAST_SEEN.set(ctx, key, at)
    if last is not None:
        silence = at - last
        if not config.after_silence_days or silence < config.after_silence_days * 86400:
            ago = counted(round(silence / 86400, 1), "day")  # to a tenth, as before: "1 day", "0.5 days"
            ctx.note("known_contact", "the customer wrote before" + (
                f" ({ago} ago, less than after_silence_days)" if config.after_silence_days and silence >= 0 else ""))
            return
    ctx.send(who, TextContent(body=config.text_for(who)[1]), reply_to=message.wamid, key=f"welcome:{message.wamid}",
             business_phone_number_id=message.business_phone_number_id, automatic=AutomaticAnswer.welcome)
