"""The sender: outbox -> gate re-check -> the channel's pacing -> channel -> what the channel said.

Consent may have been revoked while a reminder waited, so the gate is checked again before
each send. Right before a request goes to the channel its message is marked handed off
(:mod:`.handoff`). A message whose sender died before that mark is queued again; one that died
after it is reconciled, never blindly resent: it stays ``unknown`` until a status webhook or,
after ``workers.unknown_grace_seconds``, ``workers.unknown_policy`` settles it. Every change of a
message's state is a named transition of :mod:`connectzap.core.store.outbox`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from sqlalchemy import Connection

from . import bsuids, fallbacks, gate, logs
from .bookkeeping import Bookkeeping
from .campaigns import quiet_hours, rate
from .campaigns.send_rules import SendRules, campaign_of, rules_for
from .channel import EMAIL, NOT_SUPPORTED, WHATSAPP, Channel, MediumRules, OutboundSend, ReadReceipts, Throughput
from .handoff import HandOffMarks
from .lanes import LaneSizing
from .errors import (AmbiguousDeliveryError, ConnectzapError, DeliveryError, FatalError, PacedError, RetriableError,
                     SendingPausedError, SkippableDeliveryError, SkippableError)
from .messages import MessageContent, TemplateContent
from .models import ApiErrorInfo, DeliveryOutcome, Event, EventKind, MessageStatus, StatusValue
from .email_addresses import masked_recipient
from .retries import backoff
from .store import flags, journal, outbox
from .store.database import Database, now
from .store.outbox import ErrorRecord

if TYPE_CHECKING:
    from .app import Connectzap

log = logging.getLogger("connectzap.sender")
CONTENT = TypeAdapter(MessageContent)
PAUSED_RETRY_SECONDS = 30.0
HOLD_RECHECK_SECONDS = 600.0
"""How long a message held by the gate (its template paused) waits before the gate looks again;
the template's status update releases it sooner."""


class SendResult(StrEnum):
    """What one send attempt came to, decided from what the channel returned or raised."""

    SENT = "ok"
    PACED = "paced"              # a rate limit held it back before it was sent; the attempt is given back
    RETRY = "retry"              # not sent; try again later with backoff
    UNDELIVERABLE = "skip"       # this message cannot reach this recipient (see DeliveryOutcome)
    FAILED = "fatal"             # this message is wrong; it will never be sent
    PAUSED = "paused"            # the channel's credentials or account stopped working: pause all sending
    UNKNOWN = "unknown"          # it may have been sent; reconcile, never resend blindly
    LOST = "lost"                # not sent: the lease ran out before the hand-off and recovery took it


def classify(exc: BaseException) -> SendResult:
    """The result of an attempt that raised ``exc`` (the exception tree says what to do next)."""
    if isinstance(exc, SendingPausedError):
        return SendResult.PAUSED
    if isinstance(exc, AmbiguousDeliveryError):
        return SendResult.UNKNOWN
    if isinstance(exc, PacedError):
        return SendResult.PACED
    if isinstance(exc, RetriableError):
        return SendResult.RETRY
    if isinstance(exc, SkippableDeliveryError):
        return SendResult.UNDELIVERABLE
    if isinstance(exc, (FatalError, SkippableError)):
        return SendResult.FAILED
    return SendResult.RETRY  # unexpected: logged by the caller, and tried again


@dataclass
class SendOutcome:
    """One claimed message, what was sent for it, and what came of the attempt."""

    row: dict[str, Any]
    message: OutboundSend
    result: SendResult
    wamid: str | None = None
    error: Exception | None = None


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
        self.handoff = HandOffMarks(self._write_handoff)
        self.sizing = LaneSizing(self.cfg.batch_size, self.cfg.send_concurrency, self.cfg.sender_lanes)

    def _write_handoff(self, message_ids: list[str]) -> set[str]:
        with self.db.begin() as conn:
            return outbox.hand_off(conn, message_ids, self.id)

    def _size(self) -> LaneSizing:
        """The lanes' shape for the channels as they are now (their rates may change with the config):
        sized for the sum of the rates the channels declare."""
        rates = [rate for channel in self.app.channels.values()
                 if isinstance(channel, Throughput) and (rate := channel.messages_per_second()) is not None]
        self.sizing.rate = sum(rates) if rates else None
        return self.sizing

    def lanes(self) -> int:
        """How many send lanes the worker should run now (:mod:`.lanes`)."""
        return self._size().lanes()

    def claim_size(self) -> int:
        """Messages one lane claims at a time: a lane that got fewer waits for the next poll."""
        return self._size().claim_size()

    async def send_once(self) -> int:
        channels = self.app.channels
        if not channels:
            return 0  # nowhere to send: messages wait in the queue (health and doctor say why)
        if await asyncio.to_thread(self.app.paused):
            return 0
        sizing = self._size()
        started = time.perf_counter()
        # only messages on a medium with a channel are claimed: the others wait in the queue
        claimed = await asyncio.to_thread(self._claim_outbox, sizing.claim_size(), channels)
        if not claimed:
            return 0
        claim_seconds = time.perf_counter() - started
        semaphore = asyncio.Semaphore(sizing.concurrency())
        latencies: list[float] = []

        async def one(item: tuple[dict[str, Any], OutboundSend]) -> SendOutcome:
            async with semaphore:
                return await self._send_one(channels[item[1].medium], *item, latencies=latencies)

        outcomes = await asyncio.gather(*(one(item) for item in claimed))
        started = time.perf_counter()
        await asyncio.to_thread(self._record, channels, list(outcomes))
        sizing.observe(sum(latencies) / len(latencies) if latencies else None,
                       claim_seconds + time.perf_counter() - started)
        for outcome in outcomes:
            _log_send(outcome, self.cfg.max_attempts)
        return len(outcomes)

    def _claim_outbox(self, limit: int,
                      channels: dict[str, Channel] | None = None) -> list[tuple[dict[str, Any], OutboundSend]]:
        channels = self.app.channels if channels is None else channels
        ready = []
        # a runtime-checkable Protocol's isinstance walks its members each time: ask once per channel
        with_rules = {medium: channel for medium, channel in channels.items() if isinstance(channel, MediumRules)}
        with self.db.begin() as conn:
            rows = outbox.claim(self.db, conn, self.id, limit, self.cfg.lease_seconds, media=channels)
            if not rows:
                return []
            stored = [outbox.content_of(row) or {} for row in rows]
            names = {c["name"] for item in stored for c in (item.get("original"), item.get("fallback"))
                     if c and c.get("type") == "template"}
            facts = gate.BatchFacts(conn, {row["contact_key"] for row in rows}, names,
                                    accounts=self.app.business_accounts)
            t = now()
            campaign_rules = rules_for(conn, rows)  # a campaign's window, rate and Marketing Messages API choice
            quiet = quiet_hours.held_until(conn, rows, campaign_rules, t)  # its window closed while it waited
            for row, item in zip(rows, stored, strict=True):
                original = CONTENT.validate_python(item["original"])
                fallback = item.get("fallback")
                verdict = gate.evaluate(facts, row["contact_key"], original,
                                        TemplateContent.model_validate(fallback) if fallback else None,
                                        row["business_phone_number_id"], medium=row["medium"],
                                        category=row["category"])
                if verdict.reason is None and row["automatic"] and facts.human_handles(row["contact_key"],
                                                                                      row["source_event_id"]):
                    verdict = gate.Verdict(None, verdict.category, "human_handling", gate.REASONS["human_handling"])
                if verdict.reason:
                    if (trigger := fallbacks.REFUSALS.get(verdict.reason)) is not None:  # before its data is erased
                        self.bookkeeping.fall_back_on(conn, row["id"], trigger)
                    outbox.refuse(conn, row["id"], verdict.reason, verdict.detail)
                    _log_outcome(logging.INFO, "message refused before sending", row, reason=verdict.reason)
                    continue
                if verdict.hold == fallbacks.TEMPLATE_PAUSED and fallbacks.wanted(row) and self.bookkeeping.instead(
                        conn, row["id"], verdict.hold, f"{getattr(verdict.content, 'name', '')} is paused by WhatsApp"):
                    _log_outcome(logging.INFO, "message refused before sending", row, reason=verdict.hold)
                    continue  # withdrawn: its fallback goes instead of waiting for the pause to end
                if verdict.hold:
                    held = verdict.content if isinstance(verdict.content, TemplateContent) else None
                    outbox.wait(conn, row["id"], now() + HOLD_RECHECK_SECONDS, row["attempts"], verdict.hold,
                                verdict.detail, (held.name, held.language) if held else None)
                    _log_outcome(logging.INFO, "message waits", row, reason=verdict.hold)
                    continue
                if row["id"] in quiet:
                    opens, why = quiet[row["id"]]
                    outbox.give_back(conn, row["id"], quiet_hours.REASON, why, opens)
                    _log_outcome(logging.INFO, "message given back to its campaign", row, reason=quiet_hours.REASON)
                    continue
                campaign = campaign_of(row)
                rules = campaign_rules.get(campaign) if campaign is not None else None
                assert verdict.content is not None  # a verdict without a reason carries the content to send
                message = OutboundSend(outbox_id=row["id"], recipient=row["recipient"], content=verdict.content,
                                       category=verdict.category, reply_to=item.get("reply_to"),
                                       business_phone_number_id=row["business_phone_number_id"],
                                       contact_key=row["contact_key"], medium=row["medium"],
                                       prefer_marketing_api=rules.marketing_api if rules is not None else None)
                medium_rules = with_rules.get(row["medium"])
                refusal = medium_rules.refusal(message, now()) if medium_rules is not None else None
                if refusal is not None and refusal.retry_at is not None:
                    outbox.wait(conn, row["id"], refusal.retry_at, row["attempts"], refusal.reason, refusal.detail,
                                None)
                    _log_outcome(logging.INFO, "message waits", row, reason=refusal.reason)
                elif refusal is not None:
                    outbox.refuse(conn, row["id"], refusal.reason, refusal.detail)
                    _log_outcome(logging.INFO, "message refused before sending", row, reason=refusal.reason)
                else:
                    ready.append((row, message))
            return _at_campaign_rates(self.db, conn, ready, campaign_rules, t)

    async def _send_one(self, channel: Channel, row: dict[str, Any], message: OutboundSend, *,
                        latencies: list[float] | None = None) -> SendOutcome:
        try:
            await channel.pace(message)
            if row["automatic"] and message.reply_to and self.app.settings.automation.typing_indicator:
                await _show_typing(channel, row, message)
            if not await self.handoff.mark(row["id"]):  # from here a crash leaves it unknown, not unsent
                return SendOutcome(row, message, SendResult.LOST)
            started = time.perf_counter()
            wamid = await channel.send(message)
            if latencies is not None:
                latencies.append(time.perf_counter() - started)
        except Exception as exc:  # every failure is classified and recorded
            result = classify(exc)
            if result is SendResult.RETRY and not isinstance(exc, RetriableError):
                log.exception("message %s: unexpected error while sending", row["id"])
            return SendOutcome(row, message, result, error=exc)
        return SendOutcome(row, message, SendResult.SENT, wamid=wamid)

    def _record(self, channels: dict[str, Channel], outcomes: list[SendOutcome]) -> None:
        retention = self.app.settings.privacy.retention_hours * 3600
        want_accepted = self.has_targets("message_status")
        with self.db.begin() as conn:
            sent = [o for o in outcomes if o.result is SendResult.SENT]
            # a message that may still fall back keeps what its fallback needs until a status settles it
            keep = {o.row["id"]: fallbacks.kept_for(o.row, max(retention, self.app.settings.fallback.keep_hours * 3600))
                    for o in sent if fallbacks.wanted(o.row)}
            outbox.mark_accepted_many(conn, [(o.row["id"], o.wamid) for o in sent if o.row["id"] not in keep],
                                      outbox.erase_values(retention))
            for seconds in set(keep.values()):  # one write for all but messages with a check due later
                outbox.mark_accepted_many(conn, [(o.row["id"], o.wamid) for o in sent
                                                 if keep.get(o.row["id"]) == seconds], outbox.erase_values(seconds))
            if want_accepted and sent:
                journal.append(self.db, conn, [self._accepted_event(o) for o in sent])
            for o in outcomes:
                if o.result in (SendResult.SENT, SendResult.LOST):
                    continue  # a lost message is another sender's now: nothing to record
                row, err = o.row, o.error
                error = error_record(err)
                if o.result is SendResult.PACED:
                    outbox.hold_back(conn, row["id"], now() + (_retry_after(err) or 1.0), attempts=row["attempts"])
                elif o.result is SendResult.RETRY:
                    if row["attempts"] + 1 > self.cfg.max_attempts:
                        outbox.fail(conn, row["id"], "max_attempts", error, outbox.erase_values(retention))
                    else:
                        delay = _retry_after(err) or backoff(row["attempts"] + 1, self.cfg.backoff_base_seconds,
                                                             self.cfg.backoff_max_seconds)
                        outbox.retry_later(conn, row["id"], now() + delay, error)
                elif o.result is SendResult.PAUSED:
                    outbox.retry_later(conn, row["id"], now() + PAUSED_RETRY_SECONDS, error)
                    flags.pause_sending(self.db, conn, f"{err}")
                elif o.result is SendResult.UNKNOWN:
                    outbox.mark_unknown(conn, row["id"], error)
                elif o.result is SendResult.UNDELIVERABLE:
                    self._undeliverable(conn, channels[o.message.medium], o, error, retention)
                else:
                    reason = err.code if isinstance(err, ConnectzapError) else "fatal"
                    # before its data is erased
                    self.bookkeeping.fall_back(conn, row["id"], None, error.code, reason=reason)
                    outbox.fail(conn, row["id"], reason, error, outbox.erase_values(retention))

    def _undeliverable(self, conn: Any, channel: Channel, o: SendOutcome, error: ErrorRecord,
                       retention: float) -> None:
        row, err = o.row, o.error
        code = err.code if isinstance(err, ConnectzapError) else "undeliverable"
        stored = outbox.content_of(row) or {}
        if code == DeliveryOutcome.WINDOW_CLOSED and stored.get("fallback") and not o.message.content.is_template:
            outbox.switch_to_fallback(conn, row["id"], stored["fallback"], stored.get("reply_to"), error)
            return
        outcome = next((known for known in DeliveryOutcome if known.value == code), None)
        if outcome is not None:
            vendor_code = err.vendor_code if isinstance(err, DeliveryError) else None
            # an email address is no number: the contact key names who opted out (see identities)
            phone, user_id = bsuids.split(o.message.recipient) if o.message.medium != EMAIL else (None, None)
            self.bookkeeping.apply_outcome(
                conn, outcome, phone=phone, user_id=user_id, contact_key=row["contact_key"],
                reported_by=f"{channel.name}:{vendor_code or code}",
                proof=f"{channel.name} refused a marketing message: {err}", origin=f"send:{row['id']}",
                medium=o.message.medium)
        self.bookkeeping.fall_back(conn, row["id"], code, error.code, reason=code)  # before its data is erased
        outbox.fail(conn, row["id"], code, error, outbox.erase_values(retention))

    def _accepted_event(self, o: SendOutcome) -> Event:
        """The ``accepted`` status hooks see: it carries what was sent, until the event is done."""
        message = o.message
        phone, user_id = bsuids.split(message.recipient) if message.medium != EMAIL else (None, None)
        status = MessageStatus(wamid=o.wamid or "", status=StatusValue.ACCEPTED.value, timestamp=datetime.now(UTC),
                               recipient=phone, recipient_user_id=user_id, contact_key=o.row["contact_key"],
                               outbox_id=o.row["id"],
                               business_phone_number_id=message.business_phone_number_id,
                               content=message.content.model_dump(mode="json", exclude_none=True),
                               category=message.category, source_event_id=o.row["source_event_id"],
                               medium=message.medium)
        return Event.of(EventKind.MESSAGE_STATUS, status, source="connectzap", dedupe_key=f"accepted:{o.row['id']}")

    # --- crash recovery --------------------------------------------------------------------

    async def recover_once(self) -> int:
        """Settle messages left in ``sending`` by a dead worker, and ``unknown`` ones past their grace."""
        channels = self.app.channels
        if not channels:
            return 0  # only a channel can say whether they went out
        stale = await asyncio.to_thread(self._stale, channels)
        for row in stale:
            # Never handed off: the request never left that process, so it simply goes again.
            channel = channels[row["medium"]]
            answer = await channel.reconcile(row["id"]) if row["handed_off_at"] is not None else None
            await asyncio.to_thread(self._reconciled, row, answer)
        settled = await asyncio.to_thread(self._settle_unknown)
        return len(stale) + settled

    def _stale(self, channels: dict[str, Channel]) -> list[dict[str, Any]]:
        with self.db.begin() as conn:
            rows = outbox.stale_sending(self.db, conn, media=channels)
            for row in rows:  # hold them while we ask the channel
                outbox.lease(conn, row["id"], self.id, now() + self.cfg.lease_seconds)
            return rows

    def _reconciled(self, row: dict[str, Any], answer: Any) -> None:
        retention = self.app.settings.privacy.retention_hours * 3600
        with self.db.begin() as conn:
            if answer is NOT_SUPPORTED:
                outbox.mark_unknown(conn, row["id"], reason="crashed_mid_send")
                _log_outcome(logging.WARNING, "message send unconfirmed after a crash", row,
                             reason="crashed_mid_send")
            elif answer:
                outbox.mark_accepted(conn, row["id"], answer, outbox.erase_values(retention))
            else:
                outbox.requeue_now(conn, row["id"])

    def _settle_unknown(self) -> int:
        """Apply ``workers.unknown_policy`` to ``unknown`` messages no status settled in the grace
        period -- counting only statuses already applied: one received in time that still waits in
        the journal (a backlog after a restart) settles its message first. A message that cannot be
        resent (its content is gone, or it used up its attempts) fails instead: the policy never
        leaves one unresolved."""
        with self.db.begin() as conn:
            waiting = journal.oldest_pending_received(conn, EventKind.MESSAGE_STATUS)
            rows = outbox.unknown_past_grace(self.db, conn, self.cfg.unknown_grace_seconds,
                                             now() if waiting is None else waiting)
            settle_unknown(self.app, conn, rows, notify=self.has_targets("message_status"))
        return len(rows)


def settle_unknown(app: Connectzap, conn: Any, rows: list[dict[str, Any]], *, notify: bool) -> dict[str, str]:
    """Apply ``workers.unknown_policy`` to ``unknown`` rows locked in this transaction: resend each
    (same id, so the same ``biz_opaque_callback_data``), or fail it as ``unconfirmed`` when the policy
    says so or it cannot be resent (content gone, attempts used up); ``notify`` journals the failed
    status for the hooks. Returns what was done to each message settled (one a status settled
    meanwhile is left out). The workers call it past the grace period; an operator, at once."""
    cfg = app.settings.workers
    retention = app.settings.privacy.retention_hours * 3600
    done: dict[str, str] = {}
    failed: list[dict[str, Any]] = []
    for row in rows:
        resend = outbox.settles_by(row, cfg.unknown_policy, cfg.max_attempts) == "resend"
        if resend and outbox.resend_unknown(conn, row["id"]):
            done[row["id"]] = "resend"
            _log_outcome(logging.WARNING, "unconfirmed message resent", row, reason="resent_unconfirmed")
        elif not resend and outbox.fail_unknown(conn, row["id"], outbox.erase_values(retention)):
            done[row["id"]] = "fail"
            failed.append(row)
            _log_outcome(logging.WARNING, "message failed", row, reason="unconfirmed")
    if failed and notify:
        journal.append(app.db, conn, [_unconfirmed_event(row) for row in failed])
    return done


def _unconfirmed_event(row: dict[str, Any]) -> Event:
    """The ``failed`` status hooks see for a message no status settled (CRM notes, timelines). Like a
    failure from outside it names the contact by ``contact_key``, not by number."""
    status = MessageStatus(wamid=row["wamid"] or "", status=StatusValue.FAILED.value, timestamp=datetime.now(UTC),
                           contact_key=row["contact_key"], outbox_id=row["id"],  # no number (docs/privacy.md)
                           business_phone_number_id=row["business_phone_number_id"],
                           category=row["category"], source_event_id=row["source_event_id"],
                           errors=[ApiErrorInfo(code="unconfirmed", title="no confirmation from the channel",
                                                details="its send may have been interrupted and no status "
                                                        "came; not resent (workers.unknown_policy)")])
    return Event.of(EventKind.MESSAGE_STATUS, status, source="connectzap", dedupe_key=f"unconfirmed:{row['id']}")


_LOGGED = {  # how each result is logged: level and message
    SendResult.SENT: (logging.INFO, "message sent"),
    SendResult.PACED: (logging.DEBUG, "message paced"),
    SendResult.RETRY: (logging.WARNING, "message send will be retried"),
    SendResult.UNDELIVERABLE: (logging.WARNING, "message failed"),
    SendResult.FAILED: (logging.WARNING, "message failed"),
    SendResult.PAUSED: (logging.ERROR, "sending paused"),
    SendResult.UNKNOWN: (logging.WARNING, "message send unconfirmed (never resent blindly)"),
    SendResult.LOST: (logging.WARNING, "message not sent: its lease ran out before the send (raise "
                                       "workers.lease_seconds?); queued again"),
}


async def _show_typing(channel: Channel, row: dict[str, Any], message: OutboundSend) -> None:
    """Mark the customer's message read and show the typing indicator before the automatic answer
    to it (Meta: only when an answer follows -- this one, admitted and about to go). Best effort:
    the answer matters more than the ticks."""
    if not isinstance(channel, ReadReceipts) or message.reply_to is None:
        return
    try:
        await channel.mark_read(message.reply_to, typing=True, phone_number_id=message.business_phone_number_id)
    except Exception as exc:  # noqa: BLE001 - logged; the answer goes all the same
        _log_outcome(logging.INFO, "read receipt not sent", row, error=type(exc).__name__,
                     code=getattr(exc, "code", None))


def _log_send(o: SendOutcome, max_attempts: int) -> None:
    """One line per send outcome: which message, what happened, why -- never the number or the text."""
    err = o.error
    level, message = _LOGGED[o.result]
    fields: dict[str, Any] = {"wamid": o.wamid}
    if err is not None:
        fields.update(reason=err.code if isinstance(err, ConnectzapError) else None,
                      error=f"{type(err).__name__}: {err}")
    if o.result is SendResult.RETRY and o.row["attempts"] + 1 > max_attempts:
        level, message, fields["reason"] = logging.WARNING, "message failed", "max_attempts"
    _log_outcome(level, message, o.row, **fields)


def _log_outcome(level: int, message: str, row: dict[str, Any], **fields: Any) -> None:
    logs.emit(log, level, message, message_id=row["id"],
              to=masked_recipient(row["recipient"], row.get("medium") or WHATSAPP) if row.get("recipient") else None,
              what=row.get("template_name") or row.get("content_type"), plugin=row.get("plugin"),
              event=row.get("source_event_id"), attempt=row.get("attempts", 0) + 1, **fields)


def _retry_after(err: Exception | None) -> float | None:
    return err.retry_after if isinstance(err, RetriableError) else None


def error_record(err: Exception | None) -> ErrorRecord:
    """What an attempt's exception leaves on the message (no error: nothing)."""
    if err is None:
        return outbox.NO_ERROR
    delivery = err if isinstance(err, DeliveryError) else None
    code = err.code if isinstance(err, ConnectzapError) else ""
    details = (delivery.details if delivery else None) or str(err)
    return ErrorRecord(code=str((delivery.vendor_code if delivery else None) or code) or None,
                       details=details[:2000] if details else None,
                       trace_id=delivery.trace_id if delivery else None)


def _at_campaign_rates(db: Database, conn: Connection, ready: list[tuple[dict[str, Any], OutboundSend]],
                       rules: dict[str, SendRules], t: float) -> list[tuple[dict[str, Any], OutboundSend]]:
    """``ready`` without the campaign messages that would break their campaign's rate: a message
    late for its send time gets a new one (:mod:`.campaigns.rate`) and waits for it, unless that
    is now."""
    late: dict[str, list[tuple[dict[str, Any], OutboundSend]]] = {}
    going = []
    for item in ready:
        campaign = campaign_of(item[0])
        own = rules.get(campaign) if campaign is not None else None  # None: no such campaign (any more)
        if campaign is None or own is None or not own.spacing or rate.on_time(item[0], t):
            going.append(item)
        else:
            late.setdefault(campaign, []).append(item)
    for campaign, items in late.items():
        spacing = rules[campaign].spacing
        items.sort(key=lambda item: rate.send_time(item[0]))
        times = rate.give_out(db, conn, campaign, len(items), spacing, t)
        for (row, message), at in zip(items, times or [t + 1.0] * len(items), strict=True):
            if times is not None and at <= t:
                going.append((row, message))
                continue
            outbox.wait(conn, row["id"], at, row["attempts"], rate.REASON, rate.why_waiting(60.0 / spacing, at), None,
                        new_send_time=times is not None)
            _log_outcome(logging.INFO, "message waits", row, reason=rate.REASON)
    return going
