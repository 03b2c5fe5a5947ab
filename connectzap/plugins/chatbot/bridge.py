"""One question to the bot: the inbound message as the generic outbound webhooks' JSON, signed the
same way (Standard Webhooks), and the bot's answer read and validated."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from connectzap import EventContext, EventKind, InboundMessage, MessageContent
from connectzap.core.models import Event
from connectzap.connectors.generic.subscriptions import envelope, signed_headers, webhook_id

from .settings import ChatbotSettings

SUBSCRIPTION = "chatbot"
_CONTENTS: TypeAdapter[list[MessageContent]] = TypeAdapter(list[MessageContent])


class BotFailure(Exception):
    """The bot gave no usable answer; the message says why (no message text in it)."""


@dataclass(frozen=True)
class Question:
    body: bytes
    headers: dict[str, str]


def question(message: InboundMessage, ctx: EventContext, settings: ChatbotSettings) -> Question:
    """The exact body and signed headers: the ``webhook-id`` is stable for the message, so a bot
    asked twice (a retried hook) can tell."""
    event = Event.of(EventKind.INBOUND_MESSAGE, message, source=ctx.source, dedupe_key=ctx.dedupe_key,
                     occurred_at=message.timestamp)
    body = json.dumps(envelope(event, ctx.event_id), separators=(",", ":"), ensure_ascii=False).encode()
    assert settings.secret is not None  # the settings refuse a url without one
    headers = signed_headers(webhook_id(ctx.source, ctx.dedupe_key, SUBSCRIPTION), body,
                             settings.secret.get_secret_value())
    return Question(body, headers)


async def ask(settings: ChatbotSettings, asked: Question) -> list[MessageContent] | None:
    """The bot's answer: its messages, or None when it will answer later (202, 204 or no
    messages). Raises :class:`BotFailure` on a timeout, an error or a malformed answer."""
    try:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            response = await client.post(str(settings.url), content=asked.body, headers=asked.headers,
                                         timeout=settings.timeout_seconds)
    except httpx.TimeoutException:
        raise BotFailure(f"no answer within {settings.timeout_seconds:g} s") from None
    except httpx.HTTPError as exc:
        raise BotFailure(f"could not reach the bot: {type(exc).__name__}") from None
    if response.status_code in (202, 204):
        return None
    if response.status_code not in (200, 201):
        raise BotFailure(f"the bot answered HTTP {response.status_code}")
    return _contents(response, settings.max_messages)


def _contents(response: httpx.Response, limit: int) -> list[MessageContent] | None:
    try:
        answer: Any = response.json()
    except ValueError:
        raise BotFailure("the bot's answer is not JSON") from None
    messages = answer.get("messages") if isinstance(answer, dict) else None
    if not isinstance(messages, list):
        raise BotFailure('the bot\'s answer has no "messages" list')
    if len(messages) > limit:
        raise BotFailure(f"the bot answered {len(messages)} messages; at most {limit} (max_messages)")
    try:
        contents = _CONTENTS.validate_python(messages)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BotFailure(f"the bot's message {where} is not valid: {first['msg']}") from None
    return contents or None
