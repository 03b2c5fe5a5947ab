"""The sender: outbox -> gate re-check -> rate limits -> channel -> what the channel said.

Consent may have been revoked while a reminder waited, so the gate is checked again before
each send. A message whose sender died mid-send is reconciled, never blindly resent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from . import gate, reachability
from .bookkeeping import Bookkeeping
from .channel import NOT_SUPPORTED, OutboundSend
from .errors import (AmbiguousDeliveryError, FatalError, PacedError, RetriableError, SendingPausedError,
                     SkippableDeliveryError, SkippableError)
from .messages import MessageContent
from .models import Category, ConsentChange, Event, EventKind, MessageStatus
from .retries import backoff
from .store import journal, outbox
from .store.database import now
from .store.schema import flags

if TYPE_CHECKING:
    from .app import Connectzap

log = logging.getLogger("connectzap.sender")
CONTENT = TypeAdapter(MessageContent)


@dataclass
class SendOutcome:
    row: dict[str, Any]
    kind: str  # ok | retry | skip | fatal | paused | unknown | refused
    wamid: str | None = None
    error: Exception | None = None
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)



class Sender:
    """Claims due outbox messages, re-checks the gate, paces them and hands them to the channel."""

    def __init__(self, app: Connectzap, worker_id: str, bookkeeping: Bookkeeping,
                 has_targets: Callable[[str], bool]) -> None:
        self.app = app
        self.db = app.db
        self.cfg = app.settings.workers
        self.id = worker_id
        self.bookkeeping = bookkeeping
        self.has_targets = has_targets
        self.pacer: Any = getattr(app, "pacer", None)

    async def send_once(self) -> int:
        if await asyncio.to_thread(self.app.paused):
            return 0
        claimed = await asyncio.to_thread(self._claim_outbox)
        if not claimed:
            return 0
        semaphore = asyncio.Semaphore(self.cfg.send_concurrency)

        async def one(item: tuple[dict[str, Any], OutboundSend]) -> SendOutcome:
            async with semaphore:
                return await self._send_one(*item)

        outcomes = await asyncio.gather(*(one(item) for item in claimed))
        await asyncio.to_thread(self._record, list(outcomes))
        return len(outcomes)

    def _claim_outbox(self) -> list[tuple[dict[str, Any], OutboundSend]]:
        ready = []
        with self.db.begin() as conn:
            rows = outbox.claim(self.db, conn, self.id, self.cfg.batch_size, self.cfg.lease_seconds)
            if not rows:
                return []
            stored = [outbox.content_of(row) or {} for row in rows]
            names = {c["name"] for item in stored for c in (item.get("original"), item.get("fallback"))
                     if c and c.get("type") == "template"}
            facts = gate.BatchFacts(conn, {row["contact_key"] for row in rows}, names)
            for row, item in zip(rows, stored, strict=True):
                original = CONTENT.validate_python(item["original"])
                fallback = item.get("fallback")
                verdict = gate.evaluate(facts, row["contact_key"], original,
                                        gate.TemplateContent.model_validate(fallback) if fallback else None,
                                        row["business_phone_number_id"])
                if verdict.reason:
                    outbox.update(conn, row["id"], status="refused", reason=verdict.reason,
                                  error_details=verdict.detail, claimed_by=None, claimed_until=None,
                                  **outbox.erase_values(0))
                    continue
                ready.append((row, OutboundSend(outbox_id=row["id"], recipient=row["recipient"],
                                                content=verdict.content, category=verdict.category,
                                                reply_to=item.get("reply_to"),
                                                business_phone_number_id=row["business_phone_number_id"])))
        return ready

    async def _send_one(self, row: dict[str, Any], message: OutboundSend) -> SendOutcome:
        try:
            if self.pacer is not None:
                await self.pacer.acquire(message, row)
            wamid = await self.app.channel.send(message)
            return SendOutcome(row, "ok", wamid=wamid, extra={"message": message})
        except SendingPausedError as exc:
            return SendOutcome(row, "paused", error=exc)
        except AmbiguousDeliveryError as exc:
            return SendOutcome(row, "unknown", error=exc)
        except RetriableError as exc:
            return SendOutcome(row, "retry", error=exc, retry_after=exc.retry_after)
        except SkippableDeliveryError as exc:
            return SendOutcome(row, "skip", error=exc, extra={"message": message})
        except (FatalError, SkippableError) as exc:
            return SendOutcome(row, "fatal", error=exc)
        except Exception as exc:
            log.exception("message %s: unexpected error while sending", row["id"])
            return SendOutcome(row, "retry", error=exc)

    def _record(self, outcomes: list[SendOutcome]) -> None:
        retention = self.app.settings.privacy.retention_hours * 3600
        want_accepted = self.has_targets("message_status")
        with self.db.begin() as conn:
            sent = [o for o in outcomes if o.kind == "ok"]
            outbox.mark_accepted_many(conn, [(o.row["id"], o.wamid) for o in sent], outbox.erase_values(retention))
            if want_accepted and sent:
                journal.append(self.db, conn, [self._accepted_event(o) for o in sent])
            for o in outcomes:
                row = o.row
                release = {"claimed_by": None, "claimed_until": None}
                err = o.error
                details = _error_fields(err)
                if o.kind == "ok":
                    continue
                elif o.kind == "retry" and isinstance(err, PacedError):
                    # held back by a rate limit before sending: it waits, and the attempt is given back
                    outbox.update(conn, row["id"], status="queued", next_attempt_at=now() + (o.retry_after or 1.0),
                                  attempts=row["attempts"], **release)
                elif o.kind == "retry":
                    if row["attempts"] + 1 > self.cfg.max_attempts:
                        outbox.update(conn, row["id"], status="failed", reason="max_attempts", **details, **release,
                                      **outbox.erase_values(retention))
                    else:
                        delay = o.retry_after or backoff(row["attempts"] + 1, self.cfg.backoff_base_seconds,
                                                         self.cfg.backoff_max_seconds)
                        outbox.update(conn, row["id"], status="queued", next_attempt_at=now() + delay, **details,
                                      **release)
                elif o.kind == "paused":
                    outbox.update(conn, row["id"], status="queued", next_attempt_at=now() + 30, **details, **release)
                    self.db.upsert(conn, flags, {"name": "sending_paused", "value": f"{err}", "updated_at": now()}, ["name"])
                elif o.kind == "unknown":
                    outbox.update(conn, row["id"], status="unknown", **details, **release)
                elif o.kind == "skip":
                    self._skipped(conn, row, o, details, release, retention)
                else:
                    outbox.update(conn, row["id"], status="failed", reason=getattr(err, "code", "fatal"),
                                  **details, **release, **outbox.erase_values(retention))

    def _skipped(self, conn: Any, row: dict[str, Any], o: SendOutcome, details: dict[str, Any],
                 release: dict[str, Any], retention: float) -> None:
        code = getattr(o.error, "code", "undeliverable")
        stored = outbox.content_of(row) or {}
        message: OutboundSend = o.extra["message"]
        if code == "window_closed" and stored.get("fallback") and not message.content.is_template:
            fallback = stored["fallback"]
            outbox.update(conn, row["id"], status="queued", next_attempt_at=now(), **release, **details,
                          content=json.dumps({"content": fallback, "original": fallback, "fallback": None,
                                              "reply_to": stored.get("reply_to")}),
                          content_type="template", template_name=fallback.get("name"),
                          language=fallback.get("language"))
            return
        if code == "opted_out":
            self.bookkeeping.record_consent(conn, ConsentChange(phone=message.recipient, category=Category.MARKETING,
                                                     granted=False, source="whatsapp:131050",
                                                     proof="WhatsApp refused a marketing message: the user "
                                                           "stopped marketing messages"),
                                 origin=f"send:{row['id']}")
        elif code == "unreachable":
            reachability.mark_unreachable(self.db, conn, row["contact_key"])
        outbox.update(conn, row["id"], status="failed", reason=code, **details, **release,
                      **outbox.erase_values(retention))

    def _accepted_event(self, o: SendOutcome) -> Event:
        """The ``accepted`` status hooks see: it carries what was sent, until the event is done."""
        message: OutboundSend = o.extra["message"]
        status = MessageStatus(wamid=o.wamid or "", status="accepted", timestamp=datetime.now(UTC),
                               recipient=message.recipient, outbox_id=o.row["id"],
                               business_phone_number_id=message.business_phone_number_id,
                               content=message.content.model_dump(mode="json", exclude_none=True),
                               category=message.category, source_event_id=o.row["source_event_id"])
        return Event.of(EventKind.MESSAGE_STATUS, status, source="connectzap", dedupe_key=f"accepted:{o.row['id']}")

    # --- crash recovery --------------------------------------------------------------------

    async def recover_once(self) -> int:
        """Settle messages left in ``sending`` by a dead worker, and resend old unknowns if configured."""
        stale = await asyncio.to_thread(self._stale)
        for row in stale:
            answer = await self.app.channel.reconcile(row["id"])
            await asyncio.to_thread(self._reconciled, row, answer)
        resent = 0
        if self.cfg.resend_unknown_after_seconds:
            resent = await asyncio.to_thread(self._requeue_unknown, self.cfg.resend_unknown_after_seconds)
        return len(stale) + resent

    def _stale(self) -> list[dict[str, Any]]:
        with self.db.begin() as conn:
            rows = outbox.stale_sending(self.db, conn)
            for row in rows:  # hold them while we ask the channel
                outbox.update(conn, row["id"], claimed_by=self.id, claimed_until=now() + self.cfg.lease_seconds)
            return rows

    def _reconciled(self, row: dict[str, Any], answer: Any) -> None:
        retention = self.app.settings.privacy.retention_hours * 3600
        with self.db.begin() as conn:
            release = {"claimed_by": None, "claimed_until": None}
            if answer is NOT_SUPPORTED:
                outbox.update(conn, row["id"], status="unknown", reason="crashed_mid_send", **release)
            elif answer:
                outbox.mark_accepted(conn, row["id"], answer, outbox.erase_values(retention))
            else:
                outbox.update(conn, row["id"], status="queued", next_attempt_at=now(), **release)

    def _requeue_unknown(self, older_than: float) -> int:
        from .store.schema import outbox as table
        with self.db.begin() as conn:
            return conn.execute(table.update().where(table.c.status == "unknown",
                                                     table.c.updated_at < now() - older_than,
                                                     table.c.content.is_not(None))
                                .values(status="queued", next_attempt_at=now(), updated_at=now())).rowcount


def _error_fields(err: Exception | None) -> dict[str, Any]:
    if err is None:
        return {}
    details = getattr(err, "details", None) or str(err)
    return {"error_code": str(getattr(err, "vendor_code", None) or getattr(err, "code", "")) or None,
            "error_details": details[:2000] if details else None,
            "fbtrace_id": getattr(err, "trace_id", None)}
