"""Request and response bodies of the REST API (they are what ``/openapi.json`` describes)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidatorFunctionWrapHandler,
                      WrapValidator, field_validator)
from pydantic_core import PydanticCustomError

from ..errors import PayloadError
from ..gate import Decision
from ..media import NAME
from ..messages import Outgoing, TemplateContent
from ..replies import WindowState
from ..models import Category, ConsentRecord, TemplateInfo
from ..views import EventDetail, EventPage, EventSummary, MessageView

__all__ = ["BATCH_LIMIT", "BatchItemResult", "BatchResult", "ConsentGrant", "ConsentState", "ConsentView",
           "EventDetail", "EventPage", "EventSummary", "Health", "MessageBatch", "MessagePage", "MessageView",
           "PluginError", "Queued", "ReplyRequest", "ReplyResult", "TemplateList", "WindowView"]

BATCH_LIMIT = 1000


class Queued(BaseModel):
    """The gate accepted the message; it waits in the outbox for the sender."""

    id: str
    status: str
    duplicate: bool = Field(False, description="True when this Idempotency-Key was seen before.")


_OUTGOING = TypeAdapter(Outgoing)


def _strict_item(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A batch item validated as the JSON it was: no coercion the document does not describe
    (``false`` for a number, ``"1"`` for an integer). A 200 answer would otherwise accept input
    the OpenAPI schema calls invalid."""
    if not isinstance(value, dict):
        return handler(value)
    try:
        try:
            return _OUTGOING.validate_json(json.dumps(value), strict=True)
        except ValidationError as exc:
            first = exc.errors(include_input=False)[0]
        handler(value)  # ordinary problems: raised here with their full location
    except PayloadError as exc:
        # An unreadable number raises InvalidPhoneError, which would end validation at the first
        # bad item with no index; as a validation error every bad item is reported with its position.
        raise PydanticCustomError(exc.code, "{problem}", {"problem": exc.message}) from None
    where = ".".join(str(part) for part in first["loc"])
    raise PydanticCustomError(first["type"], "{where}: {problem}", {"where": where, "problem": first["msg"]})


BatchItem = Annotated[Outgoing, WrapValidator(_strict_item)]


class MessageBatch(BaseModel):
    """Up to 1000 messages for the gate, admitted together in one transaction."""

    model_config = ConfigDict(extra="forbid")

    messages: list[BatchItem] = Field(
        min_length=1, max_length=BATCH_LIMIT,
        description="Each item is what POST /v1/messages takes; its own `idempotency_key` makes it idempotent.")

    @field_validator("messages", mode="before")
    @classmethod
    def _within_limit(cls, value: Any) -> Any:
        # Checked before any item is validated: an oversized batch costs nothing to refuse.
        if isinstance(value, list) and len(value) > BATCH_LIMIT:
            raise PydanticCustomError("too_long", "at most {limit} messages per request, got {count}; split the batch",
                                      {"limit": BATCH_LIMIT, "count": len(value)})
        return value


class BatchItemResult(BaseModel):
    """What the gate did with one item of a batch."""

    id: str | None = Field(description="The message id; null for a conflict (nothing was stored for it).")
    status: str = Field(description="`queued`, `refused`, `conflict`, or for a duplicate the message's status now.")
    reason: str | None = Field(None, description="For `refused` and `conflict`: the machine-readable reason.")
    detail: str | None = Field(None, description="For `refused` and `conflict`: one readable line.")
    duplicate: bool = Field(False, description="True when this item's idempotency key was seen before.")

    @classmethod
    def of(cls, decision: Decision) -> BatchItemResult:
        if decision.status == "conflict":
            return cls(id=None, status="conflict", reason=decision.reason, detail=decision.detail)
        explained = decision.status == "refused"
        return cls(id=decision.id, status=decision.status, reason=decision.reason if explained else None,
                   detail=(decision.detail or decision.reason) if explained else None,
                   duplicate=decision.duplicate)


class BatchResult(BaseModel):
    """One result per item, in the order sent, and how many ended which way."""

    results: list[BatchItemResult]
    accepted: int = Field(description="Items the gate accepted, now or (duplicates) before, whatever their status now.")
    refused: int = Field(description="Items the gate refused (duplicates of refusals included).")
    conflicts: int = Field(description="Items whose idempotency key belongs to a different message.")
    duplicates: int = Field(description="Items whose idempotency key was seen before.")

    @classmethod
    def of(cls, decisions: list[Decision]) -> BatchResult:
        results = [BatchItemResult.of(d) for d in decisions]
        refused = sum(r.status == "refused" for r in results)
        conflicts = sum(r.status == "conflict" for r in results)
        return cls(results=results, accepted=len(results) - refused - conflicts, refused=refused,
                   conflicts=conflicts, duplicates=sum(r.duplicate for r in results))


class MessagePage(BaseModel):
    messages: list[MessageView]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next (older) page; null at the end.")


class ConsentView(BaseModel):
    category: Category
    granted: bool
    source: str
    proof: str | None = None
    at: datetime
    medium: str = Field("whatsapp", description="The medium the consent is for (whatsapp, email, sms, ...).")

    @classmethod
    def of(cls, record: ConsentRecord) -> ConsentView:
        return cls(category=record.category, granted=record.granted, source=record.source, proof=record.proof,
                   at=record.at, medium=record.medium)


class ConsentState(BaseModel):
    """Consent of one contact: the deciding record per category, and the full history (oldest first)."""

    phone: str = Field(description="The number (or BSUID, or email address), masked.")
    categories: dict[str, ConsentView] = Field(description="The deciding record per category on WhatsApp.")
    media: dict[str, dict[str, ConsentView]] = Field(
        default_factory=dict, description="The deciding record per category, for each medium with any record.")
    history: list[ConsentView]


MEDIUM_PATTERN = NAME.pattern


class ConsentGrant(BaseModel):
    """Record an opt-in for one or more categories, with where it was collected and its proof."""

    model_config = ConfigDict(extra="forbid")

    categories: list[Category] = Field(min_length=1)
    source: str = Field(min_length=1, max_length=128, description="Where the opt-in was collected.")
    # A proof of blanks is no proof: refused here as `consent grant` and `consent import` refuse it.
    proof: str = Field(min_length=1, max_length=4000, pattern=r"\S",
                       description="The wording the customer agreed to, or a reference to it.")
    at: datetime | None = Field(None, description="When consent was given; default now.")
    country: str | None = Field(None, min_length=2, max_length=2,
                                description="ISO country for a number without country code.")
    medium: str = Field("whatsapp", pattern=MEDIUM_PATTERN, max_length=16,
                        description="The medium the opt-in is for: whatsapp (the default), email, sms, ...")


class TemplateList(BaseModel):
    templates: list[TemplateInfo]


class PluginError(BaseModel):
    name: str
    distribution: str | None = None
    error: str


class Health(BaseModel):
    ok: bool
    database: str
    channel: str | None = Field(None, description="The WhatsApp channel's name (the default medium).")
    channels: dict[str, str] = Field(default_factory=dict,
                                     description="Each medium's channel by name (whatsapp, email, sms, ...).")
    workers: int = Field(description="Workers with a heartbeat in the last 30 seconds.")
    paused: str | None = Field(None, description="Why sending is paused, when it is.")
    plugin_errors: list[PluginError]
    queue: dict[str, Any]


class ConversationView(BaseModel):
    """Who handles the conversation with one contact: the bot (automatic answers) or a person."""

    contact: str = Field(description="The number (or BSUID), masked.")
    handled_by: Literal["bot", "human"]
    reason: str | None = Field(default=None, description="Why a person has it.")
    since: datetime | None = None
    until: datetime | None = Field(default=None, description="When it goes back to the bot by itself; "
                                                             "null while a person has it: until released.")
    changed: bool = Field(default=False, description="Whether this request changed hands.")


class HandoffRequest(BaseModel):
    """Hand a conversation to people: no automatic answers to this contact meanwhile."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=255)
    minutes: int | None = Field(default=None, gt=0, le=525_600,
                                description="For how long; omit to keep it until released.")
    country: str | None = Field(default=None, min_length=2, max_length=2)


class NumberWindowView(BaseModel):
    business_phone_number_id: str = Field(description="The business number the customer wrote to "
                                                      "(empty: recorded before the number was known).")
    last_inbound_at: datetime
    closes_at: datetime
    open: bool


class WindowView(BaseModel):
    """The customer's 24-hour service windows: free-form messages are allowed while one is open."""

    contact: str = Field(description="The number (or BSUID), masked.")
    open: bool
    closes_at: datetime | None = Field(default=None, description="When the last open window closes; "
                                                                 "null when none is open.")
    numbers: list[NumberWindowView] = Field(description="One window per business number, newest first.")

    @classmethod
    def of(cls, contact: str, state: WindowState) -> WindowView:
        return cls(contact=contact, open=state.open, closes_at=state.closes_at,
                   numbers=[NumberWindowView(business_phone_number_id=n.business_phone_number_id,
                                             last_inbound_at=n.last_inbound_at, closes_at=n.closes_at, open=n.open)
                            for n in state.numbers])


class ReplyRequest(BaseModel):
    """A person's reply: free-form inside the 24-hour window, a template outside it."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4096)
    fallback: TemplateContent | None = Field(default=None, description="The template to send when the "
                                             "window is closed; default: the `[replies]` template.")
    fallback_params: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(
        default_factory=list, max_length=20, description="Body parameters of the `[replies]` template.")
    business_phone_number_id: str | None = Field(default=None, min_length=1, max_length=64, description=(
        "The number to answer from; default: the one the customer wrote to last."))
    country: str | None = Field(default=None, min_length=2, max_length=2)


class ReplyResult(BaseModel):
    """What became of the reply."""

    id: str
    status: str
    sent_as: Literal["text", "template"] = Field(description="`text` inside the window, `template` outside.")
    duplicate: bool = Field(False, description="True when this Idempotency-Key was seen before.")
    handed_off: bool = Field(description="Whether this reply handed the conversation to people.")
    window: WindowView
