"""The dispatcher and the sender.

Dispatcher: claims due events from the journal, applies the core's own bookkeeping (the
"core" delivery: consent, windows, statuses, templates, direct sends) and then calls every
target -- each hook implementation and each connector's sync method -- as its own delivery,
with exponential backoff and jitter, until it succeeds or is dead-lettered.

Sender: claims due outbox messages, re-checks the gate (consent may have been revoked while a
reminder waited), paces them, hands them to the channel and records what the channel said.
A message whose sender died mid-send is reconciled, never blindly resent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from . import consent as ledger
from . import gate, templates
from .channel import NOT_SUPPORTED, OutboundSend
from .context import EventContext
from .dispatch import HookTarget, event_targets
from .errors import (AmbiguousDeliveryError, FatalError, PacedError, RetriableError, SendingPausedError,
                     SkippableDeliveryError, SkippableError)
from .hookspecs import EVENT_HOOKS
from .messages import MessageContent, Outgoing
from .models import (CancelRequest, Category, ConsentChange, Event, EventKind, InboundMessage, MessageStatus,
                     TemplateUpdate)
from .phones import contact_key
from .store import journal, outbox
from .store.database import now
from .store.schema import flags, plugin_state, workers

if TYPE_CHECKING:
    from .app import Connectzap

log = logging.getLogger("connectzap.workers")
CONTENT = TypeAdapter(MessageContent)


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter in [0.5, 1.5) of the nominal delay."""
    nominal = min(cap, base * (2 ** max(attempts - 1, 0)))
    return nominal * (0.5 + random.random())


@dataclass
class _Target:
    name: str
    hook: HookTarget | None = None
    connector_method: Any = None


@dataclass
class _Plan:
    """One claimed event in a dispatch batch: its targets and the deliveries due now."""

    event_id: int
    event: Event
    targets: dict[str, _Target]
    payload: Any = None
    due: list[tuple[_Target, int]] = field(default_factory=list)


@dataclass
class _Delivery:
    """What one target's call produced, to be committed (or failed) with the batch."""

    event_id: int
    target: str
    attempt: int
    proposals: list[Outgoing] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    consent_changes: list[ConsentChange] = field(default_factory=list)
    result: Any = None
    error: Exception | None = None


@dataclass
class _SendOutcome:
    row: dict[str, Any]
    kind: str  # ok | retry | skip | fatal | paused | unknown | refused
    wamid: str | None = None
    error: Exception | None = None
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Worker:
    """One worker: a dispatcher loop and a sender loop sharing an engine."""

    def __init__(self, app: Connectzap, *, worker_id: str | None = None) -> None:
        self.app = app
        self.db = app.db
        self.cfg = app.settings.workers
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.pacer: Any = getattr(app, "pacer", None)

    # ====================================================================================
    # dispatcher
    # ====================================================================================

    def targets(self, kind: str) -> list[_Target]:
        out = [_Target(name=h.name, hook=h) for h in event_targets(kind)] if kind in EVENT_HOOKS else []
        for connector in self.app.connectors.values():
            for target_name, method in connector.delivery_targets(kind).items():
                out.append(_Target(name=target_name, connector_method=method))
        return out

    async def dispatch_once(self) -> int:
        """Handle one claimed batch of events. The claim, the deliveries and the core's bookkeeping
        take one transaction each for the whole batch; each event with hooks to run commits their
        outcomes in one more. Hooks run outside any transaction."""
        claimed = await asyncio.to_thread(self._claim_events)
        if not claimed:
            return 0
        plans = await asyncio.to_thread(self._prepare, claimed)
        quiet = []
        for plan in plans:
            if not plan.due:
                quiet.append(plan)
                continue
            outcomes = [await self._deliver(plan, target, attempt) for target, attempt in plan.due]
            # Committed before the next event runs: its hooks must see this one's state and sends.
            await asyncio.to_thread(self._conclude, [plan], outcomes)
        if quiet:
            await asyncio.to_thread(self._conclude, quiet, [])
        return len(claimed)

    def _claim_events(self) -> list[dict[str, Any]]:
        with self.db.begin() as conn:
            return journal.claim(self.db, conn, self.id, self.cfg.batch_size, self.cfg.lease_seconds)

    def _prepare(self, claimed: list[dict[str, Any]]) -> list[_Plan]:
        """Create the deliveries, run the core's own bookkeeping, and list the targets due now."""
        t = now()
        by_kind: dict[str, dict[str, _Target]] = {}
        plans = []
        for row in claimed:
            kind = row["event"].kind.value
            if kind not in by_kind:
                by_kind[kind] = {tg.name: tg for tg in self.targets(kind)}
            plans.append(_Plan(row["id"], row["event"], by_kind[kind]))
        with self.db.begin() as conn:
            journal.ensure_many(self.db, conn, {p.event_id: ["core", *p.targets] for p in plans})
            all_deliveries = journal.deliveries_of_many(conn, [p.event_id for p in plans])
            failed = self._apply_cores(conn, plans, all_deliveries)
            for plan in plans:
                event_id, event = plan.event_id, plan.event
                deliveries = all_deliveries[event_id]
                if event_id in failed:
                    continue
                try:
                    plan.payload = event.payload() if event.kind.value in EVENT_HOOKS else None
                except Exception as exc:  # noqa: BLE001 - a payload that cannot be read never will be
                    for name in plan.targets:
                        self._fail(conn, event_id, name, exc, self.cfg.max_attempts)
                    continue
                for delivery in deliveries:
                    if delivery["status"] != "pending" or delivery["next_attempt_at"] > t \
                            or delivery["target"] == "core":
                        continue
                    target = plan.targets.get(delivery["target"])
                    if target is None:  # its plugin is gone; keep it visible rather than silently done
                        self._fail(conn, event_id, delivery["target"], RuntimeError("plugin is no longer installed"),
                                   self.cfg.max_attempts)
                        continue
                    plan.due.append((target, delivery["attempts"] + 1))
        return plans

    def _apply_cores(self, conn: Any, plans: list[_Plan], all_deliveries: dict[int, list[dict[str, Any]]]) -> set[int]:
        """The core's bookkeeping for every event whose "core" delivery is pending; returns the
        events where it failed (recorded for retry; their plugins wait). The batch runs under one
        savepoint; only when something in it fails is it redone one savepoint per event, so that
        one bad event never rolls back the others."""
        todo = []
        for plan in plans:
            core = next(d for d in all_deliveries[plan.event_id] if d["target"] == "core")
            if core["status"] == "pending":
                todo.append((plan, core["attempts"] + 1))
        try:
            with conn.begin_nested():
                for plan, _ in todo:
                    self._apply_core(conn, plan.event_id, plan.event)
            return set()
        except Exception:  # noqa: BLE001 - find the culprit below
            pass
        failed = set()
        for plan, attempt in todo:
            try:
                with conn.begin_nested():
                    self._apply_core(conn, plan.event_id, plan.event)
            except Exception as exc:  # noqa: BLE001 - recorded and retried; plugins wait for it
                log.exception("event %s: core bookkeeping failed", plan.event_id)
                self._fail(conn, plan.event_id, "core", exc, attempt)
                failed.add(plan.event_id)
        return failed

    async def _deliver(self, plan: _Plan, target: _Target, attempt: int) -> _Delivery:
        event = plan.event
        ctx = EventContext(self.app, event_id=plan.event_id, source=event.source, dedupe_key=event.dedupe_key,
                           received_at=event.occurred_at, plugin=target.name)
        outcome = _Delivery(plan.event_id, target.name, attempt)
        try:
            if target.hook is not None:
                arg = EVENT_HOOKS[event.kind.value][1]
                returned = await target.hook.call(**{arg: plan.payload, "ctx": ctx,
                                                     "previous_status": event.previous_status})
            else:
                from .dispatch import as_proposals
                returned = as_proposals(await target.connector_method(plan.payload, ctx))
        except SkippableError as exc:
            outcome.result = {"skipped": exc.code, "detail": exc.message}
            return outcome
        except Exception as exc:  # noqa: BLE001 - isolation: record and retry this target alone
            log.warning("event %s: %s failed: %s: %s", plan.event_id, target.name, type(exc).__name__, exc)
            outcome.error = exc
            return outcome
        outcome.proposals = [*ctx.proposals, *returned]
        outcome.state = ctx.state.pending
        outcome.consent_changes = ctx.consent_changes
        return outcome

    def _conclude(self, plans: list[_Plan], outcomes: list[_Delivery]) -> None:
        retention = self.app.settings.privacy.retention_hours * 3600
        with self.db.begin() as conn:
            for o in outcomes:
                if o.error is None:
                    try:
                        with conn.begin_nested():  # one target's bad proposal rolls back only its own work
                            self._commit(conn, o)
                        continue
                    except Exception as exc:  # noqa: BLE001
                        log.warning("event %s: %s: committing its outcome failed: %s", o.event_id, o.target, exc)
                        o.error = exc
                self._fail(conn, o.event_id, o.target, o.error, o.attempt)
            journal.settle_many(conn, [plan.event_id for plan in plans], retention)

    def _commit(self, conn: Any, o: _Delivery) -> None:
        from .context import _DELETED
        for n, change in enumerate(o.consent_changes):
            self._record_consent(conn, change, origin=f"event:{o.event_id}:{o.target}:{n}")
        admissions = [gate.Admission(proposal, f"{o.target}:{proposal.idempotency_key}" if proposal.idempotency_key
                                     else f"event:{o.event_id}:{o.target}:{index}")
                      for index, proposal in enumerate(o.proposals)]
        decisions = [d.as_dict() for d in gate.admit_many(self.db, conn, self.app.secret, admissions,
                                                          source_event_id=o.event_id, plugin=o.target)]
        for key, value in o.state.items():
            if value is _DELETED:
                conn.execute(plugin_state.delete().where(plugin_state.c.plugin == o.target,
                                                         plugin_state.c.key == key))
            else:
                self.db.upsert(conn, plugin_state, {"plugin": o.target, "key": key, "value": json.dumps(value),
                                                    "updated_at": now()}, ["plugin", "key"])
        journal.finish_delivery(conn, o.event_id, o.target, o.result if o.result is not None else decisions)

    def _fail(self, conn: Any, event_id: int, target: str, exc: Exception, attempt: int) -> None:
        retry_at: float | None
        if isinstance(exc, FatalError) or attempt >= self.cfg.max_attempts:
            retry_at = None
        else:
            delay = getattr(exc, "retry_after", None) or backoff(attempt, self.cfg.backoff_base_seconds,
                                                                 self.cfg.backoff_max_seconds)
            retry_at = now() + delay
        journal.fail_delivery(conn, event_id, target, f"{type(exc).__name__}: {exc}", retry_at)

    # --- the core's own bookkeeping ------------------------------------------------------

    def _apply_core(self, conn: Any, event_id: int, event: Event) -> None:
        result: dict[str, Any] = {}
        for change in event.consents:
            self._record_consent(conn, change, origin=f"{event.source}:{event.dedupe_key}")
        kind = event.kind
        if kind == EventKind.INBOUND_MESSAGE:
            message = InboundMessage.model_validate(event.data)
            # A system notice (number changed) is not written by the user: it opens no window.
            if message.contact.phone and message.type != "system":
                key = contact_key(message.contact.phone, self.app.secret)
                ledger.open_window(self.db, conn, key, message.timestamp.timestamp(),
                                   message.business_phone_number_id)
        elif kind == EventKind.MESSAGE_STATUS:
            status = MessageStatus.model_validate(event.data)
            if status.status != "accepted":
                self._apply_status(conn, status)
        elif kind == EventKind.CONSENT_CHANGED and not event.already_recorded:
            change = ConsentChange.model_validate(event.data)
            ledger.record(self.db, conn, contact_key(change.phone, self.app.secret), change)
        elif kind == EventKind.TEMPLATE_UPDATE:
            result["updated"] = templates.apply_update(self.db, conn, TemplateUpdate.model_validate(event.data))
        elif kind == EventKind.SEND:
            outgoing = Outgoing.model_validate(event.data)
            key = f"{event.source}:{outgoing.idempotency_key or event.dedupe_key}"
            result = gate.admit(self.db, conn, self.app.secret, outgoing, idempotency_key=key,
                                source_event_id=event_id, plugin=event.source).as_dict()
        elif kind == EventKind.CANCEL:
            result["cancelled"] = outbox.cancel(conn, CancelRequest.model_validate(event.data).cancel_key)
        journal.finish_delivery(conn, event_id, "core", result)

    def _record_consent(self, conn: Any, change: ConsentChange, origin: str) -> None:
        key = contact_key(change.phone, self.app.secret)
        if ledger.record(self.db, conn, key, change) and self.targets("consent_changed"):
            dedupe = f"{origin}:consent:{change.category.value}:{int(change.granted)}"
            journal.append(self.db, conn, [Event.of(EventKind.CONSENT_CHANGED, change, source=change.source,
                                                    already_recorded=True,
                                                    dedupe_key=dedupe)])

    def _apply_status(self, conn: Any, status: MessageStatus) -> None:
        error = status.errors[0] if status.errors else None
        before = outbox.apply_status(conn, status.wamid, status.status,
                                     str(error.code) if error and error.code is not None else None,
                                     (error.details or error.message or error.title) if error else None,
                                     status.outbox_id)
        if before is None or status.status != "failed" or error is None:
            return
        code = str(error.code)
        if code == "131050" and status.recipient:
            self._record_consent(conn, ConsentChange(phone=status.recipient, category=Category.MARKETING,
                                                     granted=False, source="whatsapp:131050",
                                                     proof="WhatsApp reported the user stopped marketing messages"),
                                 origin=f"status:{status.wamid}")
        elif code == "131026":
            ledger.mark_unreachable(self.db, conn, before["contact_key"])

    # ====================================================================================
    # sender
    # ====================================================================================

    async def send_once(self) -> int:
        if await asyncio.to_thread(self.app.paused):
            return 0
        claimed = await asyncio.to_thread(self._claim_outbox)
        if not claimed:
            return 0
        semaphore = asyncio.Semaphore(self.cfg.send_concurrency)

        async def one(item: tuple[dict[str, Any], OutboundSend]) -> _SendOutcome:
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

    async def _send_one(self, row: dict[str, Any], message: OutboundSend) -> _SendOutcome:
        try:
            if self.pacer is not None:
                await self.pacer.acquire(message, row)
            wamid = await self.app.channel.send(message)
            return _SendOutcome(row, "ok", wamid=wamid, extra={"message": message})
        except SendingPausedError as exc:
            return _SendOutcome(row, "paused", error=exc)
        except AmbiguousDeliveryError as exc:
            return _SendOutcome(row, "unknown", error=exc)
        except RetriableError as exc:
            return _SendOutcome(row, "retry", error=exc, retry_after=exc.retry_after)
        except SkippableDeliveryError as exc:
            return _SendOutcome(row, "skip", error=exc, extra={"message": message})
        except (FatalError, SkippableError) as exc:
            return _SendOutcome(row, "fatal", error=exc)
        except Exception as exc:  # noqa: BLE001 - an unexpected bug is retried, then failed
            log.exception("message %s: unexpected error while sending", row["id"])
            return _SendOutcome(row, "retry", error=exc)

    def _record(self, outcomes: list[_SendOutcome]) -> None:
        retention = self.app.settings.privacy.retention_hours * 3600
        want_accepted = bool(self.targets("message_status"))
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

    def _skipped(self, conn: Any, row: dict[str, Any], o: _SendOutcome, details: dict[str, Any],
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
            self._record_consent(conn, ConsentChange(phone=message.recipient, category=Category.MARKETING,
                                                     granted=False, source="whatsapp:131050",
                                                     proof="WhatsApp refused a marketing message: the user "
                                                           "stopped marketing messages"),
                                 origin=f"send:{row['id']}")
        elif code == "unreachable":
            ledger.mark_unreachable(self.db, conn, row["contact_key"])
        outbox.update(conn, row["id"], status="failed", reason=code, **details, **release,
                      **outbox.erase_values(retention))

    def _accepted_event(self, o: _SendOutcome) -> Event:
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

    # --- housekeeping and loops ------------------------------------------------------------

    def housekeeping(self) -> None:
        with self.db.begin() as conn:
            journal.erase_expired(conn)
            outbox.erase_expired(conn)
            t = now()
            beat = conn.execute(workers.update().where(workers.c.id == self.id).values(heartbeat_at=t))
            if not beat.rowcount:
                conn.execute(workers.insert().values(id=self.id, kind="worker", pid=os.getpid(), started_at=t,
                                                     heartbeat_at=t))

    def _goodbye(self) -> None:
        with self.db.begin() as conn:
            conn.execute(workers.delete().where(workers.c.id == self.id))

    async def run_until_idle(self, max_rounds: int = 1000) -> None:
        """Work until nothing is due (tests, ``simulate``). Retries scheduled later are left alone."""
        for _ in range(max_rounds):
            done = await self.dispatch_once()
            done += await self.send_once()
            done += await self.recover_once()
            if done == 0:
                return
        raise RuntimeError("run_until_idle: still busy after max_rounds")

    async def run(self, stop: asyncio.Event, *, dispatch: bool = True, send: bool = True) -> None:
        """Run until ``stop`` is set; then finish what is in hand (graceful drain) and leave."""
        await asyncio.to_thread(self.housekeeping)

        async def loop(step: Any) -> None:
            while not stop.is_set():
                try:
                    busy = await step()
                except Exception:  # noqa: BLE001 - a database hiccup must not kill the worker
                    log.exception("worker step failed; retrying")
                    busy = 0
                if busy < self.cfg.batch_size:
                    # Caught up: let work gather until the next poll instead of taking the write
                    # lock again for one or two rows (on SQLite each claim is a write transaction).
                    try:
                        await asyncio.wait_for(stop.wait(), self.cfg.poll_interval_seconds)
                    except TimeoutError:
                        pass

        async def chores() -> int:
            await asyncio.to_thread(self.housekeeping)
            await self.recover_once()
            await asyncio.sleep(5)
            return 1

        tasks = []
        if dispatch:
            tasks.append(asyncio.create_task(loop(self.dispatch_once)))
        if send:
            tasks += [asyncio.create_task(loop(self.send_once)) for _ in range(self.cfg.sender_lanes)]
        if dispatch:
            tasks += [asyncio.create_task(c.background(stop)) for c in self.app.connectors.values()]
        tasks.append(asyncio.create_task(loop(chores)))
        await stop.wait()
        tasks[-1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self._goodbye)


def _error_fields(err: Exception | None) -> dict[str, Any]:
    if err is None:
        return {}
    details = getattr(err, "details", None) or str(err)
    return {"error_code": str(getattr(err, "vendor_code", None) or getattr(err, "code", "")) or None,
            "error_details": details[:2000] if details else None,
            "fbtrace_id": getattr(err, "trace_id", None)}
