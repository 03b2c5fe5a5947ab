"""What connectzap shows of its records: the read models the CLI and the REST API share.

Each view is safe to print: recipients are masked, message texts and payloads never appear
(an event shows a one-line ``subject`` while its payload is kept, and ``payload: erased`` after),
and times are UTC datetimes (ISO 8601 in JSON).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal, overload

from pydantic import BaseModel, Field

from .email_addresses import masked_recipient
from .phones import mask
from .store.outbox import settles_by


@overload
def utc(ts: float) -> datetime: ...
@overload
def utc(ts: None) -> None: ...
@overload
def utc(ts: float | None) -> datetime | None: ...


def utc(ts: float | None) -> datetime | None:
    """A stored time (float seconds since the epoch) as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


class MessageView(BaseModel):
    """One outbound message. ``recipient`` is masked; ``content`` and ``recipient`` are null once erased."""

    id: str
    status: str
    reason: str | None = None
    detail: str | None = None
    error_code: str | None = None
    fbtrace_id: str | None = Field(None, description="The channel's trace id of a failed call (for Meta support).")
    category: str
    medium: str = Field("whatsapp", description="The medium it goes out on: whatsapp, email, sms, ...")
    fallback_of: str | None = Field(
        None, description="The WhatsApp message this one is the fallback of (fallback_channels), if it is one.")
    segments: int | None = Field(None, description="An SMS's segments (GSM-7 or UCS-2), as sent and billed.")
    content_type: str
    template_name: str | None = None
    language: str | None = None
    recipient: str | None = None
    content: dict[str, Any] | None = None
    wamid: str | None = None
    attempts: int
    cancel_key: str | None = None
    plugin: str | None = None
    source_event_id: int | None = None
    not_before: datetime | None = None
    next_attempt_at: datetime | None = Field(None, description="When a queued message is tried next.")
    unknown_since: datetime | None = Field(
        None, description="When an unknown message became unknown: it may have been sent, no status came yet.")
    sent_at: datetime | None = Field(None, description="When the channel first reported it sent.")
    delivered_at: datetime | None = Field(None, description="When it was first reported delivered.")
    read_at: datetime | None = Field(None, description="When it was first reported read (or played).")
    failed_at: datetime | None = Field(None, description="When it was first reported failed.")
    billable: bool | None = Field(None, description="Meta's per-message pricing: whether it is charged.")
    pricing_category: str | None = Field(None, description="Meta's pricing category (marketing, utility, ...).")
    pricing_type: str | None = Field(
        None, description="Meta's pricing type: regular, free_customer_service, free_entry_point, ...")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> MessageView:
        stored = json.loads(row["content"]) if row.get("content") else None
        return cls(id=row["id"], status=row["status"], reason=row["reason"], detail=row["error_details"],
                   error_code=row["error_code"], fbtrace_id=row.get("fbtrace_id"), category=row["category"],
                   medium=row.get("medium") or "whatsapp", fallback_of=row.get("fallback_of"),
                   segments=row.get("segments"), content_type=row["content_type"],
                   template_name=row["template_name"], language=row["language"],
                   recipient=masked_recipient(row["recipient"], row.get("medium") or "whatsapp")
                   if row["recipient"] else None,
                   content=stored.get("original") if isinstance(stored, dict) else None,
                   wamid=row["wamid"], attempts=row["attempts"], cancel_key=row["cancel_key"],
                   plugin=row["plugin"], source_event_id=row["source_event_id"],
                   not_before=utc(row["not_before"]),
                   next_attempt_at=utc(row["next_attempt_at"]) if row["status"] == "queued" else None,
                   unknown_since=utc(row.get("unknown_since")) if row["status"] == "unknown" else None,
                   sent_at=utc(row.get("sent_at")), delivered_at=utc(row.get("delivered_at")),
                   read_at=utc(row.get("read_at")), failed_at=utc(row.get("failed_at")),
                   billable=row.get("billable"), pricing_category=row.get("pricing_category"),
                   pricing_type=row.get("pricing_type"),
                   created_at=utc(row["created_at"]),
                   updated_at=utc(row["updated_at"]))


class UnknownMessage(BaseModel):
    """A message that may or may not have been sent, and what will settle it if no status does."""

    id: str
    unknown_since: datetime
    age_seconds: float
    settles_at: datetime = Field(description="When workers.unknown_policy applies unless a status came first.")
    then: Literal["resend", "fail"] = Field(description="What workers.unknown_policy will do then.")
    reason: str | None = None
    recipient: str | None = None
    template_name: str | None = None
    content_type: str
    attempts: int
    plugin: str | None = None

    @classmethod
    def of(cls, row: dict[str, Any], *, at: float, grace: float, policy: Literal["resend", "fail"],
           max_attempts: int) -> UnknownMessage:
        since = row.get("unknown_since") or row["updated_at"]
        return cls(id=row["id"], unknown_since=utc(since), age_seconds=round(max(at - since, 0.0), 1),
                   settles_at=utc(since + grace), then=settles_by(row, policy, max_attempts),
                   reason=row["reason"], recipient=mask(row["recipient"]) if row["recipient"] else None,
                   template_name=row["template_name"], content_type=row["content_type"],
                   attempts=row["attempts"], plugin=row["plugin"])


class Note(BaseModel):
    """Why a plugin did what it did (or nothing): a stable ``code`` and one readable line."""

    code: str
    detail: str


class MessageOutcome(BaseModel):
    """A message an event's delivery proposed, and what became of it (its status now)."""

    id: str
    status: str = Field(description="queued, refused, accepted, sent, delivered, read, failed, cancelled, ...")
    reason: str | None = Field(None, description="Why it was refused or failed (`no_consent`, `window_closed`...).")
    detail: str | None = None
    what: str = Field(description="The template name, or the message type.")
    recipient: str | None = Field(None, description="Masked; null once erased.")
    not_before: datetime | None = Field(None, description="Scheduled: not sent before this time.")
    duplicate: bool = Field(False, description="An earlier event already proposed this message (same key).")


class DeliveryView(BaseModel):
    """One receiver of an event: the core's bookkeeping, a plugin hook or a connector, each retried alone."""

    target: str = Field(description="`core`, a plugin name, or `connector:<name>`.")
    role: Literal["core", "plugin", "connector"]
    status: str = Field(description="pending, done or dead (a dead letter).")
    outcome: str = Field(description="What it did, and why, in one line.")
    attempts: int
    last_error: str | None = None
    next_attempt_at: datetime | None = Field(None, description="When a pending delivery is tried next.")
    updated_at: datetime
    skipped: Note | None = Field(None, description="Set when the plugin skipped the event on purpose.")
    notes: list[Note] = Field(default_factory=list)
    messages: list[MessageOutcome] = Field(default_factory=list)


class EventSummary(BaseModel):
    """One journaled event and, in one line, what it became."""

    id: int
    source: str
    kind: str
    dedupe_key: str
    status: str = Field(description="pending, done or dead (some delivery failed every attempt).")
    subject: str | None = Field(None, description="What the event is about (masked); null once the payload is erased.")
    payload: Literal["kept", "erased"]
    outcome: str = Field(description="What it became, and why, in one line.")
    attempts: int
    received_at: datetime
    completed_at: datetime | None = None
    next_attempt_at: datetime | None = Field(None, description="When a pending event is looked at next.")


class EventDetail(EventSummary):
    """An event with each of its deliveries: status, attempts, last error, and result."""

    deliveries: list[DeliveryView]


class EventPage(BaseModel):
    events: list[EventSummary]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next (older) page; null at the end.")


class DeadLetter(BaseModel):
    """A delivery that failed every attempt; ``connectzap events retry EVENT_ID`` queues it again."""

    event_id: int
    source: str
    kind: str
    target: str
    attempts: int
    last_error: str | None = None
    updated_at: datetime
