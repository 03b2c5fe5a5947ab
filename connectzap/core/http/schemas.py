"""Request and response bodies of the REST API (they are what ``/openapi.json`` describes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..models import Category, ConsentRecord, TemplateInfo
from ..views import EventDetail, EventPage, EventSummary, MessageView

__all__ = ["ConsentGrant", "ConsentState", "ConsentView", "EventDetail", "EventPage", "EventSummary", "Health",
           "MessagePage", "MessageView", "PluginError", "Queued", "TemplateList"]


class Queued(BaseModel):
    """The gate accepted the message; it waits in the outbox for the sender."""

    id: str
    status: str
    duplicate: bool = Field(False, description="True when this Idempotency-Key was seen before.")


class MessagePage(BaseModel):
    messages: list[MessageView]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next (older) page; null at the end.")


class ConsentView(BaseModel):
    category: Category
    granted: bool
    source: str
    proof: str | None = None
    at: datetime

    @classmethod
    def of(cls, record: ConsentRecord) -> ConsentView:
        return cls(category=record.category, granted=record.granted, source=record.source, proof=record.proof,
                   at=record.at)


class ConsentState(BaseModel):
    """Consent of one contact: the deciding record per category, and the full history (oldest first)."""

    phone: str = Field(description="The number, masked.")
    categories: dict[str, ConsentView]
    history: list[ConsentView]


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


class TemplateList(BaseModel):
    templates: list[TemplateInfo]


class PluginError(BaseModel):
    name: str
    distribution: str | None = None
    error: str


class Health(BaseModel):
    ok: bool
    database: str
    channel: str | None = None
    workers: int = Field(description="Workers with a heartbeat in the last 30 seconds.")
    paused: str | None = Field(None, description="Why sending is paused, when it is.")
    plugin_errors: list[PluginError]
    queue: dict[str, Any]
