"""Chatbot bridge: each inbound message is forwarded to an external bot (the generic outbound
webhooks' JSON, signed the same way), and the bot's answer -- in its HTTP response, or later
through ``POST /v1/chatbot/answers`` -- is sent as an automatic answer of kind ``chatbot``.

Precedence does the rest: a keyword confirmation or an FAQ answer to the same message wins over
the bot's. When the bot fails (timeout, error, malformed answer) the plugin proposes
``fallback_text`` as kind ``fallback``, the lowest: an FAQ rule, the away message or a welcome
answers instead when one applies, and the customer is never left in silence nor answered twice.
Nothing is forwarded while a person handles the conversation.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from collections.abc import Callable
from typing import TYPE_CHECKING

from connectzap import (AutomaticAnswer, EventContext, InboundMessage, OutboundCall, PluginSettings, TextContent,
                        hookimpl, is_bsuid)

from . import bridge
from .settings import NAME, ChatbotSettings, waiting_key

if TYPE_CHECKING:
    from fastapi import APIRouter

@hookimpl
def register_plugin_settings(register: Callable[[str, type[PluginSettings]], None]) -> None:
    register(NAME, ChatbotSettings)


@hookimpl
def register_api_routes(router: APIRouter) -> None:
    from .routes import add_routes
    add_routes(router)


def settings_of(ctx: EventContext) -> ChatbotSettings:
    return ctx.settings_as(ChatbotSettings)


@hookimpl
async def on_inbound_message(message: InboundMessage, ctx: EventContext) -> None:
    settings = settings_of(ctx)
    phone, user_id = message.contact.phone, message.contact.user_id
    who = phone or (user_id if is_bsuid(user_id) else None)
    if settings.url is None or who is None:
        return
    if message.type in settings.skip_types:
        ctx.note("not_forwarded", f"{message.type} messages are not forwarded to the bot")
        return
    if ctx.conversation.handled_by == "human":
        ctx.note("human_handling", "a person handles this conversation: not forwarded to the bot")
        return
    asked = bridge.question(message, ctx, settings)
    if ctx.simulating:
        ctx.would(OutboundCall("POST", str(settings.url), body=asked.body.decode(), headers=asked.headers))
        return
    reply = {"business_phone_number_id": message.business_phone_number_id}
    try:
        answer = await bridge.ask(settings, asked)
    except bridge.BotFailure as failure:
        ctx.note("bot_failed", str(failure))
        if settings.fallback_text:
            ctx.send(who, TextContent(body=settings.fallback_text), key=f"{message.wamid}:chatbot-fallback",
                     reply_to=message.wamid, automatic=AutomaticAnswer.fallback, **reply)
        if settings.hand_to_human_on_failure:
            ctx.conversation.hand_to_human("the chatbot could not answer")
        return
    if answer is None:
        until = time.time() + settings.later_minutes * 60
        ctx.state.set(waiting_key(message.wamid), {
            "event": ctx.event_id, "contact": ctx.contact_key(who), "until": until,
            "number": message.business_phone_number_id}, forget_at=until)  # no answer is taken after `until`
        ctx.note("bot_answers_later", "the bot will answer through POST /v1/chatbot/answers")
        if settings.fallback_text:  # goes at `until` unless the bot's answer (or another) replaces it
            ctx.send(who, TextContent(body=settings.fallback_text), key=f"{message.wamid}:chatbot-fallback",
                     reply_to=message.wamid, automatic=AutomaticAnswer.fallback,
                     not_before=datetime.fromtimestamp(until, UTC), **reply)
        return
    for n, content in enumerate(answer):
        ctx.send(who, content, key=f"{message.wamid}:chatbot:{n}", reply_to=message.wamid if n == 0 else None,
                 automatic=AutomaticAnswer.chatbot, **reply)
