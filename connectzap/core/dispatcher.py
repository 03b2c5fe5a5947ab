"""The dispatcher: journal -> the core's bookkeeping -> every hook and connector, each isolated.

It claims due events from the journal, applies the core's own bookkeeping (the ``core``
delivery) and then calls every target -- each hook implementation and each connector's sync
method -- as its own delivery, with exponential backoff and jitter, until it succeeds or is
dead-lettered.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import arbitration, conversations, gate, identities, logs
from .bookkeeping import Bookkeeping, batched_status
from .context import EventContext
from .errors import FatalError, RetriableError, SkippableError
from .hookspecs import EVENT_HOOKS
from .hooks import DeliveryTarget, as_proposals, delivery_targets
from .idempotency import proposal_key, scoped_key
from .media import WHATSAPP
from .messages import Outgoing
from .conversations import Handover
from .models import ConsentChange, Contact, Event, EventKind, InboundMessage, MessageStatus
from .retries import backoff
from .store import journal, plugin_state
from .store.database import now

if TYPE_CHECKING:
    from .app import Connectzap

log = logging.getLogger("connectzap.dispatcher")


@dataclass
class _Plan:
    """One claimed event in a dispatch batch: its targets and the deliveries due now."""

    event_id: int
    event: Event
    targets: dict[str, DeliveryTarget]
    payload: Any = None
    due: list[tuple[DeliveryTarget, int]] = field(default_factory=list)


@dataclass
class _Delivery:
    """What one target's call produced, to be committed (or failed) with the batch."""

    event_id: int
    target: str
    attempt: int
    proposals: list[Outgoing] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    consent_changes: list[ConsentChange] = field(default_factory=list)
    notes: list[dict[str, str]] = field(default_factory=list)
    handovers: list[Handover] = field(default_factory=list)
    contact: Contact | None = None
    result: Any = None
    error: Exception | None = None

    def failed(self, exc: Exception) -> _Delivery:
        if isinstance(exc, SkippableError):
            self.result = {"skipped": exc.code, "detail": exc.message}
        else:
            self.error = exc  # logged once its retry (or dead letter) is recorded
        return self

    def succeeded(self, ctx: EventContext, returned: list[Outgoing]) -> _Delivery:
        self.proposals = [*ctx.proposals, *returned]
        self.state = ctx.state.pending
        self.consent_changes = ctx.consent_changes
        self.notes = ctx.notes
        self.handovers = ctx.handovers
        return self

    def leaves_nothing_to_see(self) -> bool:
        """Succeeded without proposing a send, writing plugin state, changing consent or handing the
        conversation over: nothing another event's hooks could read (its notes only explain it, in
        its own delivery's result)."""
        return self.error is None and not (self.proposals or self.state or self.consent_changes or self.handovers)


@dataclass
class _Quiet:
    """The events of a wave whose outcomes wait to be committed together at its end."""

    plans: list[_Plan] = field(default_factory=list)
    outcomes: list[_Delivery] = field(default_factory=list)

    def take(self, plan: _Plan, outcomes: list[_Delivery]) -> bool:
        """Keep ``plan`` for the wave's last commit when its hooks left nothing the next event's hooks
        could see (no send, state, consent or conversation change: the commonest case, an inbound
        message no plugin acts on); False when it must be committed before the next event runs.
        Connector methods (writes to a CRM) still commit one event at a time, so a crash repeats at
        most one."""
        if all(o.leaves_nothing_to_see() for o in outcomes) and all(t.hook for t, _ in plan.due):
            self.plans.append(plan)
            self.outcomes += outcomes
            return True
        return False


def _contact_of(payload: Any) -> Contact | None:
    """The customer an event's payload names (an inbound message's sender, a lead, the recipient of
    a message a person sent from the WhatsApp Business app...), if any."""
    for name in ("contact", "customer"):
        found = getattr(payload, name, None)
        if isinstance(found, Contact) and (found.phone or found.user_id):
            return found
    if isinstance(payload, MessageStatus) and (payload.recipient or payload.recipient_user_id):
        return Contact(phone=payload.recipient, user_id=payload.recipient_user_id)  # a status's number is
    return None  # kept only where it is needed (docs/privacy.md): such a message's echo, an opt-out


def _waves(claimed: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Claimed rows in waves: the n-th wave holds the n-th event (in journal order) of every
    ordering key; events without a key all go in the first wave. Claim order is kept otherwise."""
    ids_by_key: dict[str, list[int]] = {}
    for row in claimed:
        if row["key"] is not None:
            ids_by_key.setdefault(row["key"], []).append(row["id"])
    rank = {event_id: n for ids in ids_by_key.values() for n, event_id in enumerate(sorted(ids))}
    waves: list[list[dict[str, Any]]] = [[] for _ in range(max(map(len, ids_by_key.values()), default=1))]
    for row in claimed:
        waves[rank.get(row["id"], 0)].append(row)
    return waves


CLAIM_GROWTH = 4
"""On PostgreSQL, how many times ``workers.batch_size`` one claim may take while claims come back full."""


@dataclass
class ClaimSize:
    """How many events the next claim asks for. While claims come back full (a backlog) each asks for
    twice the last, up to ``most``; a claim that came back short goes back to ``base``. On PostgreSQL
    every batch costs the same dozen or so round trips and two commits whatever its size, and with the
    edge and the database on the same cores a worker that waits on them one small batch at a time
    falls behind the edge; a larger batch pays them once for more events. An idle journal is claimed
    ``base`` at a time, so nothing waits longer for a small claim. (SQLite: ``most`` = ``base``, since a
    batch holds the write lock while its first wave is prepared.)"""

    base: int
    most: int
    next: int = 0

    def __post_init__(self) -> None:
        self.next = self.base

    def after(self, asked: int, got: int) -> None:
        """Size the next claim from one that asked for ``asked`` events and got ``got``."""
        self.next = min(self.most, asked * 2) if got >= asked else self.base


class Dispatcher:
    """Claims due events and delivers each to the core's bookkeeping, then to every target."""

    def __init__(self, app: Connectzap, worker_id: str, bookkeeping: Bookkeeping) -> None:
        self.app = app
        self.db = app.db
        self.cfg = app.settings.workers
        self.id = worker_id
        self.bookkeeping = bookkeeping
        self._idle_by_kind: dict[str, set[str]] = {}
        base = self.cfg.batch_size
        self.claim_size = ClaimSize(base, base if self.db.is_sqlite else base * CLAIM_GROWTH)

    def targets(self, kind: str, medium: str | None = None) -> list[DeliveryTarget]:
        """Who receives events of ``kind``: every hook implementation and connector but the hooks whose
        plugin's configuration gives them nothing to do (:meth:`PluginSettings.wants`) and, for an
        inbound message on ``medium``, the hooks that do not act on that medium (:func:`inbound_media`)."""
        found = [target for target in delivery_targets(kind, self.app.connectors.values(), medium)
                 if target.name not in self._idle(kind)]
        if self.app.simulation is not None:  # connectors are rehearsed, never called
            found = [self.app.simulation.stand_in(target, kind) for target in found]
        return found

    def _idle(self, kind: str) -> set[str]:
        """The plugins whose hook for ``kind`` their configuration leaves idle (fixed at start: cached)."""
        if kind not in self._idle_by_kind:
            self._idle_by_kind[kind] = {name for name, settings in self.app.plugin_settings.items()
                                        if not settings.wants(kind)}
        return self._idle_by_kind[kind]

    async def dispatch_once(self) -> int:
        """Handle one claimed batch of events. The claim and the first wave's deliveries and core
        bookkeeping take one transaction for the whole batch (each later wave one more), and the
        events with nothing else to run (no hook, no connector: most status events) are settled in
        it too; each event with hooks to run commits their outcomes in one more. Hooks run outside
        any transaction.

        Events that share an ordering key come as a run, oldest first; they are handled in waves
        (the first event of every key, then the second...), each event settled before the next
        of its key starts -- the core's bookkeeping included. An event left pending (a delivery
        to retry) holds back the rest of its run, which is given back to the journal."""
        claimed, first = await asyncio.to_thread(self._claim_and_prepare)
        if not claimed:
            return 0
        held = {row["id"] for row in claimed}
        renewing = asyncio.create_task(self._keep_leases(held))
        try:
            stuck: set[str] = set()
            for n, wave in enumerate(_waves(claimed)):
                wave = [row for row in wave if row["key"] is None or row["key"] not in stuck]
                if not wave:
                    continue
                outcome = await self._dispatch_wave(wave, first if n == 0 else None)
                for row in wave:
                    held.discard(row["id"])
                    if row["key"] is not None and outcome.get(row["id"]) == "pending":
                        stuck.add(row["key"])
        finally:
            renewing.cancel()
        if held:
            await asyncio.to_thread(self._release, sorted(held))
        return len(claimed)

    async def _dispatch_wave(self, rows: list[dict[str, Any]],
                             prepared: tuple[list[_Plan], dict[int, str]] | None = None) -> dict[int, str]:
        """Run one wave: ``prepared`` (plans and the outcome of those already settled) when the
        claim's transaction prepared it, else prepared here."""
        if prepared is None:
            prepared = await asyncio.to_thread(self._prepare, rows)
        plans, outcome = prepared
        quiet = _Quiet()
        reads = plugin_state.Reads(self.db)  # hooks' state reads, shared by this wave's events
        due = [plan for plan in plans if plan.due]
        at = 0
        while at < len(due):
            # Plans whose every target is a plain-function hook run in one trip to a thread, their
            # commits too: a trip per hook call (asyncio.to_thread) cost more than most hooks do.
            run = list(itertools.takewhile(self._blocking, due[at:]))
            if run:
                at += len(run)
                outcome |= await asyncio.to_thread(self._run_blocking, run, quiet, reads,
                                                   asyncio.get_running_loop(), at == len(due))
                continue
            plan = due[at]
            at += 1
            outcomes = [await self._deliver(plan, target, attempt, reads) for target, attempt in plan.due]
            if not quiet.take(plan, outcomes):
                outcome |= await asyncio.to_thread(self._conclude, [plan], outcomes)
        if quiet.plans:
            outcome |= await asyncio.to_thread(self._conclude, quiet.plans, quiet.outcomes)
        return outcome

    @staticmethod
    def _blocking(plan: _Plan) -> bool:
        return all(target.hook is not None and target.hook.blocking for target, _ in plan.due)

    def _run_blocking(self, plans: list[_Plan], quiet: _Quiet, reads: plugin_state.Reads,
                      loop: asyncio.AbstractEventLoop, last: bool) -> dict[int, str]:
        """Run ``plans`` (plain-function hooks only) in this thread, in order, each event that left
        something to see committed before the next runs; ``last``: the wave ends with them, so
        its quiet outcomes are committed here too."""
        outcome: dict[int, str] = {}
        for plan in plans:
            outcomes = [self._deliver_blocking(plan, target, attempt, reads, loop) for target, attempt in plan.due]
            if not quiet.take(plan, outcomes):
                outcome |= self._conclude([plan], outcomes)
        if last and quiet.plans:
            outcome |= self._conclude(quiet.plans, quiet.outcomes)
            quiet.plans, quiet.outcomes = [], []
        return outcome

    async def _keep_leases(self, held: set[int]) -> None:
        """Renew the lease on the events of this batch not yet settled, so that a long batch keeps
        its keys; a worker that dies stops renewing and its keys are free once the lease runs out."""
        lease = self.cfg.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            ids = sorted(held)
            if ids:
                try:
                    await asyncio.to_thread(self._renew, ids, now() + lease)
                except Exception:  # noqa: BLE001 - the next renewal may succeed; the lease still runs
                    log.warning("renewing the lease of %d events failed", len(ids), exc_info=True)

    def _renew(self, ids: list[int], until: float) -> None:
        with self.db.begin() as conn:
            journal.renew(conn, ids, self.id, until)

    def _release(self, ids: list[int]) -> None:
        with self.db.begin() as conn:
            journal.release(conn, ids, self.id)

    def _claim_and_prepare(self) -> tuple[list[dict[str, Any]], tuple[list[_Plan], dict[int, str]] | None]:
        """Claim a batch and prepare its first wave in the same transaction (one commit fewer per
        batch; on PostgreSQL the claim's row and key locks are held until the wave is prepared)."""
        with self.db.begin() as conn:
            asked = self.claim_size.next
            claimed = journal.claim(self.db, conn, self.id, asked, self.cfg.lease_seconds,
                                    statuses_up_to=self._status_batch())
            self.claim_size.after(asked, len(claimed))
            if not claimed:
                return [], None
            return claimed, self._prepare_in(conn, _waves(claimed)[0])

    def _status_batch(self) -> int:
        """How many status events one claim may take: ``status_batch_size`` while nothing listens to
        them (they are applied in the claim's transaction), else ``batch_size`` as for any event."""
        return 0 if self.targets(EventKind.MESSAGE_STATUS.value) else self.cfg.status_batch_size

    def _prepare(self, claimed: list[dict[str, Any]]) -> tuple[list[_Plan], dict[int, str]]:
        with self.db.begin() as conn:
            return self._prepare_in(conn, claimed)

    def _prepare_in(self, conn: Any, claimed: list[dict[str, Any]]) -> tuple[list[_Plan], dict[int, str]]:
        """Create the deliveries, run the core's own bookkeeping, and list the targets due now.
        Events with no target due now are settled here; returns the plans and their outcome."""
        by_kind: dict[tuple[str, str | None], dict[str, DeliveryTarget]] = {}
        plans = []
        for row in claimed:
            kind = row["event"].kind.value
            # an inbound message goes to the hooks that act on its medium (WhatsApp when unnamed)
            medium = str(row["event"].data.get("medium") or WHATSAPP) if kind == EventKind.INBOUND_MESSAGE.value \
                else None
            if (kind, medium) not in by_kind:
                by_kind[kind, medium] = {tg.name: tg for tg in self.targets(kind, medium)}
            plans.append(_Plan(row["id"], row["event"], by_kind[kind, medium]))
        bare = self._apply_bare_statuses(conn, [p for p in plans if not p.targets and batched_status(p.event)])
        plans = [p for p in plans if p.event_id not in bare]
        if not plans:
            return [], bare
        all_deliveries = journal.ensure_and_read(self.db, conn, {p.event_id: ["core", *p.targets] for p in plans})
        t = now()  # after ensure_and_read: the deliveries it just created are due in this round
        troubled = self._apply_cores(conn, plans, all_deliveries, t)
        for plan in plans:
            event_id, event = plan.event_id, plan.event
            deliveries = all_deliveries[event_id]
            if event_id in troubled:
                continue
            try:
                # Only a target reads it. Hooks' kinds always (an unreadable payload fails at once);
                # other kinds -- a reply, a connector's own resolve notice -- when a model reads them.
                plan.payload = event.payload() if plan.targets and (
                    event.kind.value in EVENT_HOOKS or event.has_typed_payload()) else None
            except Exception as exc:  # noqa: BLE001 - a payload that cannot be read never will be
                for name in plan.targets:
                    self._fail(conn, event_id, name, exc, self.cfg.max_attempts)
                troubled.add(event_id)
                continue
            for delivery in deliveries:
                if delivery["status"] != "pending" or delivery["next_attempt_at"] > t \
                        or delivery["target"] == "core":
                    continue
                target = plan.targets.get(delivery["target"])
                if target is None and delivery["target"] in self._idle(event.kind.value):
                    # created before its plugin's configuration left it idle: nothing to do now
                    journal.finish_delivery(conn, event_id, delivery["target"],
                                            {"skipped": "not_configured", "detail": "its configuration leaves "
                                             "this hook nothing to do"})
                    delivery["status"] = "done"
                    continue
                if target is None:  # its plugin is gone; keep it visible rather than silently done
                    self._fail(conn, event_id, delivery["target"], RuntimeError("plugin is no longer installed"),
                               self.cfg.max_attempts)
                    troubled.add(event_id)
                    continue
                plan.due.append((target, delivery["attempts"] + 1))
        return plans, bare | self._settle_quiet(conn, [p for p in plans if not p.due], all_deliveries, troubled)

    def _apply_bare_statuses(self, conn: Any, plans: list[_Plan]) -> dict[int, str]:
        """Status events nobody listens to, dispatched for the first time: applied and settled here
        without delivery rows -- the event's ``done``, committed with what it changed, is the whole
        record, and writing a ``core`` delivery only to finish it was most of a status's cost. Any
        that already has deliveries (a retry, a listener since removed), and the whole lot when
        applying them fails, take the usual way below, where a failure is recorded per event.
        Returns the outcome of those settled here."""
        if not plans:
            return {}
        seen = journal.deliveries_of_many(conn, [p.event_id for p in plans])
        fresh = [p for p in plans if p.event_id not in seen]
        if not fresh:
            return {}
        try:
            with conn.begin_nested():
                self.bookkeeping.apply_statuses(conn, [(p.event_id, p.event) for p in fresh], record=False)
        except Exception:  # noqa: BLE001 - redone one event at a time by the usual path, which records it
            log.warning("applying %d status events in bulk failed; applying them one by one", len(fresh),
                        exc_info=True)
            return {}
        retention = self.app.settings.privacy.retention_hours * 3600
        return journal.settle_many(conn, [p.event_id for p in fresh], retention,
                                   known={p.event_id: [] for p in fresh})

    def _settle_quiet(self, conn: Any, quiet: list[_Plan], all_deliveries: dict[int, list[dict[str, Any]]],
                      troubled: set[int]) -> dict[int, str]:
        """Settle the events with nothing to run now. Their deliveries as read when prepared are
        still true, but for the core's, done now -- unless something failed on the way (then they
        are read again)."""
        retention = self.app.settings.privacy.retention_hours * 3600
        known = {p.event_id: [dict(d, status="done") if d["target"] == "core" and d["status"] == "pending" else d
                              for d in all_deliveries[p.event_id]] for p in quiet if p.event_id not in troubled}
        outcome = journal.settle_many(conn, list(known), retention, known=known)
        return outcome | journal.settle_many(conn, [p.event_id for p in quiet if p.event_id in troubled], retention)

    def _apply_cores(self, conn: Any, plans: list[_Plan], all_deliveries: dict[int, list[dict[str, Any]]],
                     t: float) -> set[int]:
        """The core's bookkeeping for every event whose "core" delivery is pending and due at ``t``;
        returns the events whose plugins must wait: it failed (recorded for retry), or its retry is
        not due yet (the event came back because another of its deliveries was: the core keeps its
        backoff). The batch runs under one savepoint; only when something in it fails is it redone
        one savepoint per event, so that one bad event never rolls back the others."""
        todo = []
        waiting = set()
        for plan in plans:
            core = next(d for d in all_deliveries[plan.event_id] if d["target"] == "core")
            if core["status"] == "pending":
                if core["next_attempt_at"] > t:
                    waiting.add(plan.event_id)
                    continue
                todo.append((plan, core["attempts"] + 1))
        try:
            with conn.begin_nested():
                self.bookkeeping.apply_many(conn, [(plan.event_id, plan.event) for plan, _ in todo])
            return waiting
        except Exception:  # noqa: BLE001 - find the culprit below
            pass
        failed = set()
        for plan, attempt in todo:
            try:
                with conn.begin_nested():
                    self.bookkeeping.apply(conn, plan.event_id, plan.event)
            except Exception as exc:
                log.exception("event %s: core bookkeeping failed", plan.event_id)
                self._fail(conn, plan.event_id, "core", exc, attempt)
                failed.add(plan.event_id)
        return failed | waiting

    def _start(self, plan: _Plan, target: DeliveryTarget, attempt: int,
               reads: plugin_state.Reads) -> tuple[EventContext, _Delivery]:
        event = plan.event
        contact = _contact_of(plan.payload)
        # a connector method never shares the wave's reads: it mixes them with marks committed at once
        ctx = EventContext(self.app, event_id=plan.event_id, source=event.source, dedupe_key=event.dedupe_key,
                           received_at=event.occurred_at, plugin=target.name, contact=contact,
                           state_reads=reads if target.hook is not None else None)
        return ctx, _Delivery(plan.event_id, target.name, attempt, contact=contact)

    @staticmethod
    def _hook_args(plan: _Plan, ctx: EventContext) -> dict[str, Any]:
        return {EVENT_HOOKS[plan.event.kind.value][1]: plan.payload, "ctx": ctx,
                "previous_status": plan.event.previous_status}

    async def _deliver(self, plan: _Plan, target: DeliveryTarget, attempt: int,
                       reads: plugin_state.Reads) -> _Delivery:
        ctx, outcome = self._start(plan, target, attempt, reads)
        try:
            if target.hook is not None:
                returned = await target.hook.call(**self._hook_args(plan, ctx))
            else:
                assert target.connector_method is not None
                returned = as_proposals(await target.connector_method(plan.payload, ctx))
        except Exception as exc:  # noqa: BLE001 - isolation: record and retry this target alone
            return outcome.failed(exc)
        return outcome.succeeded(ctx, returned)

    def _deliver_blocking(self, plan: _Plan, target: DeliveryTarget, attempt: int, reads: plugin_state.Reads,
                          loop: asyncio.AbstractEventLoop) -> _Delivery:
        """:meth:`_deliver` of a plain-function hook, from a worker thread."""
        assert target.hook is not None
        ctx, outcome = self._start(plan, target, attempt, reads)
        try:
            returned = target.hook.call_blocking(loop, **self._hook_args(plan, ctx))
        except Exception as exc:  # noqa: BLE001 - isolation: record and retry this target alone
            return outcome.failed(exc)
        return outcome.succeeded(ctx, returned)

    def _conclude(self, plans: list[_Plan], outcomes: list[_Delivery]) -> dict[int, str]:
        retention = self.app.settings.privacy.retention_hours * 3600
        with self.db.begin() as conn:
            finished: list[tuple[int, str, Any]] = []
            for o in outcomes:
                if o.leaves_nothing_to_see():  # nothing to admit or write: finished with the others below
                    finished.append((o.event_id, o.target, self._result(o, [])))
                    continue
                if o.error is None:
                    try:
                        with conn.begin_nested():  # one target's bad proposal rolls back only its own work
                            self._commit(conn, o)
                        continue
                    except Exception as exc:  # noqa: BLE001 - recorded as this target's failure below
                        log.warning("event %s: %s: committing its outcome failed: %s", o.event_id, o.target, exc)
                        o.error = exc
                self._fail(conn, o.event_id, o.target, o.error, o.attempt)
            journal.finish_each(conn, finished)
            for plan in self._to_arbitrate(plans, outcomes):
                self._arbitrate(conn, plan)
            settled = journal.settle_many(conn, [plan.event_id for plan in plans], retention)
        if len(finished) < len(outcomes):  # committed something a hook could read: the wave's reads are stale
            plugin_state.changed()
        return settled

    @staticmethod
    def _to_arbitrate(plans: list[_Plan], outcomes: list[_Delivery]) -> list[_Plan]:
        """The events whose automatic answers may now be decided between: those where this round
        proposed one, or finished a delivery tried before (which may complete a set held earlier)."""
        asked = {o.event_id for o in outcomes if o.attempt > 1 or any(p.automatic for p in o.proposals)}
        return [plan for plan in plans if plan.event_id in asked]

    def _arbitrate(self, conn: Any, plan: _Plan) -> None:
        """Pick the automatic answer of ``plan``'s event once no hook delivery of it is left to run
        (:mod:`.automatic`); a connector still retrying a CRM write does not hold the answer back."""
        waiting = [d for d in journal.deliveries_of(conn, plan.event_id) if d["status"] == "pending"
                   and (d["target"] == "core" or getattr(plan.targets.get(d["target"]), "hook", None) is not None)]
        if waiting:
            return
        message = plan.payload if isinstance(plan.payload, InboundMessage) else None
        slot = arbitration.inbound_slot(message.wamid) if message else f"event:{plan.event_id}"
        inbound = arbitration.Inbound(plan.event_id, slot, message.timestamp.timestamp() if message else None)
        arbitration.arbitrate(self.db, conn, inbound, self.app.settings.automation.stale_after_minutes * 60)

    def _commit(self, conn: Any, o: _Delivery) -> None:
        for n, change in enumerate(o.consent_changes):
            self.bookkeeping.record_consent(conn, change, origin=f"event:{o.event_id}:{o.target}:{n}")
        self._hand_over(conn, o)
        admissions = [gate.Admission(self.app.configured(proposal, o.target),
                                     scoped_key(o.target, proposal.idempotency_key)
                                     if proposal.idempotency_key else proposal_key(o.event_id, o.target, index),
                                     held=proposal.automatic is not None)
                      for index, proposal in enumerate(o.proposals)]
        decisions = [d.as_dict() for d in gate.admit_many(self.db, conn, self.app.secret, admissions,
                                                          source_event_id=o.event_id, plugin=o.target,
                                                          accounts=self.app.business_accounts)]
        plugin_state.write(self.db, conn, o.target, o.state)
        journal.finish_delivery(conn, o.event_id, o.target, self._result(o, decisions))

    @staticmethod
    def _result(o: _Delivery, decisions: list[dict[str, Any]]) -> Any:
        """What a finished delivery keeps: the gate's decisions on its proposals, with its notes."""
        return o.result if o.result is not None else {"messages": decisions, "notes": o.notes} if o.notes \
            else decisions

    def _hand_over(self, conn: Any, o: _Delivery) -> None:
        if not o.handovers or o.contact is None:
            return
        contact = o.contact
        key = identities.resolve(conn, self.app.secret, contact.phone, contact.user_id)
        if key is None:
            return
        listened = self.bookkeeping.has_targets(EventKind.HANDOFF.value)
        for change in o.handovers:
            conversations.hand_over(self.db, conn, key, contact, change, listened=listened, event_id=o.event_id)

    def _fail(self, conn: Any, event_id: int, target: str, exc: Exception, attempt: int) -> None:
        retry_at: float | None
        if isinstance(exc, FatalError) or attempt >= self.cfg.max_attempts:
            retry_at = None
        else:
            hinted = exc.retry_after if isinstance(exc, RetriableError) else None
            delay = hinted or backoff(attempt, self.cfg.backoff_base_seconds, self.cfg.backoff_max_seconds)
            retry_at = now() + delay
        journal.fail_delivery(conn, event_id, target, f"{type(exc).__name__}: {exc}", retry_at)
        error = f"{type(exc).__name__}: {exc}"
        if retry_at is None:
            logs.emit(log, logging.ERROR, "dead letter", event=event_id, target=target, attempts=attempt, error=error,
                      retry=f"connectzap events retry {event_id}")
        else:
            logs.emit(log, logging.WARNING, "delivery failed, will retry", event=event_id, target=target,
                      attempt=attempt, retry_in=round(retry_at - now(), 1), error=error)

