"""``POST /v1/chatbot/answers``: the bot's answer to a message it said it would answer later."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from connectzap import (AutomaticAnswer, Connectzap, MessageContentItem, NotFoundError, Outgoing,
                        PayloadError)

from .settings import NAME, ChatbotSettings, waiting_key

_ERROR: dict[str, Any] = {"content": {"application/json": {}}}


class LateAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    in_reply_to: Annotated[str, Field(min_length=1, max_length=255, description="The inbound message's wamid")]
    to: Annotated[str, Field(min_length=1, max_length=140, description="The customer (data.contact of the request)")]
    messages: Annotated[list[MessageContentItem], Field(min_length=1, max_length=5)]


class LateAnswerResult(BaseModel):
    messages: list[dict[str, Any]]


def answer(app: Connectzap, late: LateAnswer) -> LateAnswerResult:
    settings = app.plugin_settings.get(NAME)
    limit = settings.max_messages if isinstance(settings, ChatbotSettings) else 3
    state = app.plugin_state(NAME)
    waiting = state.get(waiting_key(late.in_reply_to))
    if not waiting or waiting["until"] < time.time():
        raise NotFoundError("no answer from the bot is awaited for this message (never asked, already "
                            "answered, or later_minutes passed)")
    if app.contact_key(late.to) != waiting["contact"]:
        raise PayloadError("to is not the customer who wrote this message", field="to")
    if len(late.messages) > limit:
        raise PayloadError(f"at most {limit} messages (max_messages)", field="messages")
    outgoing = [Outgoing.model_validate({"to": late.to, "content": content, "automatic": AutomaticAnswer.chatbot,
                                         "reply_to": late.in_reply_to if n == 0 else None,
                                         "business_phone_number_id": waiting.get("number")})
                for n, content in enumerate(late.messages)]
    try:
        decisions = app.answer_later(late.in_reply_to, waiting["event"], outgoing, source=f"plugin:{NAME}")
    finally:
        state.delete(waiting_key(late.in_reply_to))  # one answer, whatever became of it
    return LateAnswerResult(messages=[d.as_dict() for d in decisions])


def add_routes(router: APIRouter) -> None:
    @router.post("/chatbot/answers", tags=["chatbot"], summary="A bot's late answer to an inbound message",
                 response_model=LateAnswerResult,
                 responses={404: {**_ERROR, "description": "No answer is awaited for this message"},
                            409: {**_ERROR, "description": "The message already had its automatic answer"}})
    async def chatbot_answer(request: Request, late: LateAnswer) -> LateAnswerResult:
        """Send the bot's answer (its messages go through the send gate as one automatic answer of kind
        ``chatbot``), if the message has had no automatic answer meanwhile (409 otherwise)."""
        return await run_in_threadpool(answer, request.app.state.engine, late)


