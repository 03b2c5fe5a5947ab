"""Opt-out (and opt-in) by keyword: a customer writing STOP stops marketing messages at once.

Config (``[plugins.opt_out_keywords]``)::

    stop = ["stop", "unsubscribe", "stopp", "cancelar", "arrêt"]   # case-insensitive, whole message
    start = ["start", "subscribe"]       # re-subscribes marketing, with the message as proof
    categories = ["marketing"]           # which categories a STOP revokes
    confirm = true                       # reply with a short confirmation (free-form, inside the window)
    stop_reply = "You will no longer receive offers from us. Reply START to subscribe again."

Template quick-reply buttons whose payload is one of the keywords (an "Unsubscribe" button)
count too.
"""

from __future__ import annotations

from connectzap import Category, ConsentChange, EventContext, InboundMessage, TextContent, hookimpl

DEFAULT_STOP = ("stop", "unsubscribe", "stop promotions", "stopp", "cancelar", "arrêt", "parar")
DEFAULT_START = ("start", "subscribe")


def _words(ctx: EventContext, key: str, default: tuple[str, ...]) -> set[str]:
    return {str(w).strip().casefold() for w in ctx.config.get(key, default)}


@hookimpl
def on_inbound_message(message: InboundMessage, ctx: EventContext) -> None:
    said = (message.reply.payload if message.reply and message.reply.payload else message.text) or ""
    said = said.strip().casefold()
    phone = message.contact.phone
    if not said or phone is None:
        return
    categories = [Category(c) for c in ctx.config.get("categories", ["marketing"])]
    if said in _words(ctx, "stop", DEFAULT_STOP):
        granted, reply_key, default_reply = False, "stop_reply", \
            "You will no longer receive offers from us. Reply START to subscribe again."
    elif said in _words(ctx, "start", DEFAULT_START):
        granted, reply_key, default_reply = True, "start_reply", "You are subscribed to our offers again."
    else:
        return
    for category in categories:
        ctx.set_consent(ConsentChange(phone=phone, category=category, granted=granted,
                                      source="whatsapp:keyword", at=message.timestamp,
                                      proof=f"customer wrote {said!r} (message {message.wamid})"))
    if ctx.config.get("confirm", True):
        ctx.send(phone, TextContent(body=ctx.config.get(reply_key, default_reply)), reply_to=message.wamid,
                 key=f"{message.wamid}:confirm")
