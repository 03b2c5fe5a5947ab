"""The core's own bookkeeping for each event, before any plugin sees it.

Consents an event carries, the 24-hour window an inbound WhatsApp message opens (a message on
another medium, an SMS, opens none), message statuses,
the template cache, direct sends and cancellations. It runs as the ``core`` delivery of an
event, inside the dispatcher's transaction, and is retried like any delivery when it fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from functools import partial
from typing import Any

from . import consent as ledger
from .media import WHATSAPP
from . import fallbacks, gate, identities, logs, reachability, replies, templates, windows
from .bsuids import bsuid_key
from .idempotency import scoped_key
from .messages import Outgoing
from .models import (CHANGED_IN_APP, SENT_FROM_BUSINESS_APP, CallActivity, CancelRequest, Category, ConsentChange,
                     DeliveryOutcome, Event, EventKind, FallbackDue, InboundMessage, MessageStatus, StatusValue,
                     TemplateUpdate)
from .phones import contact_key
from .store import journal, outbox
from .store.database import Database
from .settings import ReplySettings
from .templates import BusinessAccounts
from .wording import counted

log = logging.getLogger("connectzap.bookkeeping")


class Bookkeeping:
    """The ``core`` delivery. ``has_targets(kind)`` says whether anyone listens to events of
    ``kind`` (a consent change is journaled for the hooks only when someone does)."""

    def __init__(self, db: Database, secret: bytes, has_targets: Callable[[str], bool],
                 accounts: Callable[[], BusinessAccounts | None] = lambda: None,
                 reply_settings: ReplySettings | None = None, fallback_codes: Collection[str] = (),
                 retention_seconds: float = 0, configured: Callable[..., Outgoing] = lambda o, plugin=None: o) -> None:
        self.db = db
        self.secret = secret
        self.has_targets = has_targets
        self.accounts = accounts
        """Which business account's templates each number sends (the engine's, once started)."""
        self.reply_settings = reply_settings or ReplySettings()
        self.fallback_codes = frozenset(fallback_codes)
        """Error codes of a failed message that trigger its fallback (``[fallback] codes``)."""
        self.retention_seconds = retention_seconds
        """``privacy.retention_hours`` in seconds: a message kept for its fallback is erased by it once settled."""
        self.configured = configured
        """A message journaled to be sent, with its configured fallback media
        (the engine's :meth:`.app.Connectzap.configured`)."""

    def apply_many(self, conn: Any, batch: list[tuple[int, Event]]) -> None:
        """:meth:`apply` for several events, in their order; the outcome is what applying them one by
        one gives. Two kinds of runs are applied together, each with their ``core`` deliveries
        finished in one statement:

        * consecutive status events -- most of the traffic during a campaign --
          (:func:`outbox.apply_statuses`: one locking read and one write per message instead of both
          per status);
        * consecutive inbound messages (:class:`_Openings`: the identities they name read once, their
          windows opened with one statement)."""
        statuses: list[tuple[int, MessageStatus, str]] = []
        openings = _Openings(self, conn, batch)
        for event_id, event in batch:
            if batched_status(event):
                openings.flush()
                statuses.append((event_id, MessageStatus.model_validate(event.data), event.source))
                continue
            self._apply_statuses(conn, statuses)
            statuses = []
            if event.kind == EventKind.INBOUND_MESSAGE and not event.consents:
                message = InboundMessage.model_validate(event.data)
                if message.type != "system" and message.medium == WHATSAPP:
                    openings.add(event_id, message)
                    continue
            openings.flush()
            self.apply(conn, event_id, event)
            openings.forget_links()  # a renumbering or a consent's link may have moved them
        self._apply_statuses(conn, statuses)
        openings.flush()

    def apply_statuses(self, conn: Any, batch: list[tuple[int, Event]], *, record: bool = True) -> None:
        """:meth:`apply_many` for status events only (each :func:`batched_status`); ``record=False``:
        they have no ``core`` delivery to finish (the dispatcher settles them without one)."""
        assert all(batched_status(event) for _, event in batch)
        self._apply_statuses(conn, [(event_id, MessageStatus.model_validate(event.data), event.source)
                                    for event_id, event in batch], record=record)

    def _apply_statuses(self, conn: Any, batch: list[tuple[int, MessageStatus, str]], *, record: bool = True) -> None:
        applied = [(status, source) for _, status, source in batch if status.status != StatusValue.ACCEPTED]
        befores = outbox.apply_statuses(conn, [_report(status) for status, _ in applied])
        for (status, source), before in zip(applied, befores, strict=True):
            self._after_status(conn, status, before, source)
        if record:
            journal.finish_many(conn, "core", {event_id: {} for event_id, _, _ in batch})

    def apply(self, conn: Any, event_id: int, event: Event) -> None:
        """Apply what the engine itself keeps for ``event`` and finish its ``core`` delivery."""
        result: dict[str, Any] = {}
        for change in event.consents:
            self.record_consent(conn, change, origin=f"{event.source}:{event.dedupe_key}")
        kind = event.kind
        if kind == EventKind.INBOUND_MESSAGE:
            message = InboundMessage.model_validate(event.data)
            if message.medium != WHATSAPP:
                pass  # an SMS (or email) opens no WhatsApp window; the core keeps nothing of it
            elif message.type == "system":  # not written by the user: it opens no window
                self.apply_system(conn, message)
            else:
                key = identities.observe(self.db, conn, self.secret, message.contact.phone, message.contact.user_id)
                if key is not None:
                    windows.open_window(self.db, conn, key, message.timestamp.timestamp(),
                                        message.business_phone_number_id)
        elif kind == EventKind.CALL:
            call = CallActivity.model_validate(event.data)
            # A customer calling us opens or refreshes the 24-hour window, as a message does (Meta's
            # customer service window: "when a WhatsApp user messages you or calls you").
            if call.event == "connect" and call.direction == "USER_INITIATED":
                key = identities.observe(self.db, conn, self.secret, call.contact.phone, call.contact.user_id)
                if key is not None:
                    windows.open_window(self.db, conn, key, call.timestamp.timestamp(), call.business_phone_number_id)
        elif kind == EventKind.MESSAGE_STATUS:
            status = MessageStatus.model_validate(event.data)
            if status.sent_from == SENT_FROM_BUSINESS_APP and status.status in CHANGED_IN_APP:
                result["changed"] = outbox.mark_changed_elsewhere(conn, status.wamid, status.status)
            elif status.sent_from == SENT_FROM_BUSINESS_APP:
                result["recorded"] = self.record_sent_elsewhere(conn, event_id, status)
            elif status.status != StatusValue.ACCEPTED:
                self.apply_status(conn, status, reported_by=event.source)
        elif kind == EventKind.CONSENT_CHANGED and not event.already_recorded:
            change = ConsentChange.model_validate(event.data)
            ledger.record(self.db, conn, self.key_of(conn, change), change)
        elif kind == EventKind.TEMPLATE_UPDATE:
            update = TemplateUpdate.model_validate(event.data)
            result["updated"] = templates.apply_update(self.db, conn, update)
            notice = templates.announcement(update)
            if notice:  # before it takes effect: the operator hears of it now (and on_template_update)
                logs.emit(log, logging.WARNING, "template category change announced", what=update.name,
                          detail=notice)
                result["announced"] = notice
            if update.status:  # a pause ended (APPROVED) or became final (DISABLED): the gate looks again now
                result["released"] = outbox.release_waiting(conn, update.name, update.language,
                                                                outbox.WAITING_FOR_TEMPLATE)
            if update.status == templates.PAUSED:
                result["withdrawn"] = self.withdraw_paused(conn, update.name, update.language)
        elif kind == EventKind.SEND:
            outgoing = self.configured(Outgoing.model_validate(event.data), event.source)
            key = scoped_key(event.source, outgoing.idempotency_key or event.dedupe_key)
            result = gate.admit(self.db, conn, self.secret, outgoing, idempotency_key=key,
                                source_event_id=event_id, plugin=event.source, accounts=self.accounts()).as_dict()
        elif kind == EventKind.REPLY:
            request = replies.ReplyRequest.model_validate(event.data)
            key = scoped_key(f"reply:{event.source}", request.idempotency_key or event.dedupe_key)
            result = replies.admit(self.db, conn, self.secret, request, key, settings=self.reply_settings,
                                   accounts=self.accounts(), source_event_id=event_id,
                                   handoff_listened=self.has_targets(EventKind.HANDOFF.value)).as_dict()
        elif kind == EventKind.FALLBACK_DUE:
            result = self.fall_back_late(conn, FallbackDue.model_validate(event.data))
        elif kind == EventKind.CANCEL:
            result["cancelled"] = outbox.cancel(conn, CancelRequest.model_validate(event.data).cancel_key)
        journal.finish_delivery(conn, event_id, "core", result)

    def key_of(self, conn: Any, change: ConsentChange) -> str:
        return ledger.contact_of(conn, self.secret, change)

    def apply_system(self, conn: Any, message: InboundMessage) -> None:
        """A customer's number or BSUID changed (``user_changed_number``, ``user_changed_user_id``):
        what we keep about them moves to the new identity (:func:`identities.renumber`)."""
        system = message.system or {}
        previous = system.get("previous_user_id")
        new_user_id = system.get("user_id") or (message.contact.user_id if message.contact.user_id != previous
                                                else None)
        new_phone = system.get("new_phone")
        old_phone = message.contact.phone if message.contact.phone != new_phone else None
        if not (previous or old_phone) or not (new_user_id or new_phone):
            return  # nothing to move from, or nowhere to move it
        identities.renumber(self.db, conn, self.secret, old_phone=old_phone,
                            old_user_id=previous if isinstance(previous, str) else None,
                            new_phone=new_phone, new_user_id=new_user_id if isinstance(new_user_id, str) else None)

    def record_sent_elsewhere(self, conn: Any, event_id: int, status: MessageStatus) -> bool:
        """A message the business sent itself (the WhatsApp Business app on a coexistence number):
        recorded as an ``accepted`` outbound message, with nothing of its body or number kept, so the
        statuses Meta reports for it apply. It is never queued, so no sender ever sends it. Returns
        False when it was already recorded (a redelivered echo)."""
        key = identities.observe(self.db, conn, self.secret, status.recipient, status.recipient_user_id)
        if key is None:
            return False
        content_type = str((status.content or {}).get("type") or "unknown")
        return outbox.record_sent_elsewhere(self.db, conn, wamid=status.wamid, contact_key=key,
                                            content_type=content_type, sent_from=status.sent_from or "",
                                            business_phone_number_id=status.business_phone_number_id,
                                            source_event_id=event_id, at=status.timestamp.timestamp())

    def record_consent(self, conn: Any, change: ConsentChange, origin: str) -> None:
        key = self.key_of(conn, change)
        if ledger.record(self.db, conn, key, change) and self.has_targets("consent_changed"):
            dedupe = f"{origin}:consent:{ledger.subject(change)}:{int(change.granted)}"
            journal.append(self.db, conn, [Event.of(EventKind.CONSENT_CHANGED, change, source=change.source,
                                                    already_recorded=True,
                                                    dedupe_key=dedupe)])

    def apply_status(self, conn: Any, status: MessageStatus, reported_by: str = "channel") -> None:
        """Move the message's status on; a failure's neutral ``outcome`` may change what we know
        about the recipient (``reported_by``: the event's source, e.g. ``whatsapp``)."""
        self._after_status(conn, status, outbox.apply_statuses(conn, [_report(status)])[0], reported_by)

    def _after_status(self, conn: Any, status: MessageStatus, before: dict[str, Any] | None,
                      reported_by: str) -> None:
        """What a status says about its recipient, once the status is applied (``before``: the
        message as it was, None when it is not ours): a failure's outcome, or -- off WhatsApp -- that
        a delivery reached them; a settled message's fallback."""
        if before is None:
            return
        error = status.errors[0] if status.errors else None
        if status.status in fallbacks.SETTLED and fallbacks.wanted(before):
            if status.status == StatusValue.FAILED:
                self.fall_back(conn, before["id"], status.outcome.value if status.outcome else None,
                               str(error.code) if error is not None and error.code is not None else None,
                               reason=status.reason)
            outbox.erase(conn, before["id"], outbox.erase_values(self.retention_seconds))  # settled: no more kept
        medium = before.get("medium") or WHATSAPP
        if medium != WHATSAPP and status.status == StatusValue.DELIVERED:
            reachability.reached(self.db, conn, before["contact_key"], medium, status.timestamp.timestamp())
        if status.status != StatusValue.FAILED or status.outcome is None:
            return
        code = error.code if error is not None and error.code is not None else status.outcome.value
        said = (error.title or error.message or "") if error is not None else ""
        self.apply_outcome(conn, status.outcome, phone=status.recipient, user_id=status.recipient_user_id,
                           contact_key=before["contact_key"],
                           reported_by=f"{reported_by}:{code}",
                           proof=f"{reported_by} reported a failed message: {code} {said}".rstrip(),
                           origin=f"status:{status.wamid}", medium=medium, at=status.timestamp.timestamp())

    def fall_back(self, conn: Any, message_id: str, outcome: str | None, error_code: str | None, *,
                  reason: str | None = None) -> None:
        """Admit message ``message_id``'s fallback when its failure (neutral ``outcome``, the vendor's
        ``error_code``, the channel's ``reason``) triggers one (:mod:`.fallbacks`); any later trigger
        finds it and adds none."""
        trigger = fallbacks.triggered(outcome, error_code, self.fallback_codes, reason)
        if trigger is not None:
            self.fall_back_on(conn, message_id, trigger)

    def fall_back_on(self, conn: Any, message_id: str, trigger: str) -> None:
        """Admit message ``message_id``'s fallback, if it names one, for ``trigger``."""
        fallbacks.fall_back(conn, message_id, trigger, admit=self._admit_fallback(conn))

    def instead(self, conn: Any, message_id: str, trigger: str, detail: str) -> str | None:
        """Withdraw message ``message_id`` (locked, not handed to the channel) for its fallback
        (:func:`.fallbacks.instead`): the refusal's detail when it was withdrawn, else None."""
        return fallbacks.instead(conn, message_id, trigger, trigger, detail, admit=self._admit_fallback(conn))

    def _admit_fallback(self, conn: Any) -> fallbacks.AdmitFallback:
        return partial(gate.admit_fallback, self.db, conn, self.secret, accounts=self.accounts())

    def fall_back_late(self, conn: Any, due: FallbackDue) -> dict[str, Any]:
        """A time-critical message's ``fallback_after_minutes`` are up: unless it was delivered or
        read (or it failed, or never went), its one fallback goes now. Still queued, it is withdrawn
        in the same transaction (:meth:`instead`) so the two never both go; handed to WhatsApp, it
        may still arrive later. Its kept data is then erased: nothing more can fall back."""
        row = outbox.get_locked(conn, due.message_id)
        if row is None or row["medium"] != WHATSAPP or row["status"] not in fallbacks.LATE:
            return {"late": False, "status": row["status"] if row else None}
        if row["status"] == StatusValue.QUEUED:
            said = self.instead(conn, row["id"], fallbacks.NOT_DELIVERED,
                                f"not sent within {counted(due.minutes, 'minute')}")
            return {"late": True, "withdrawn": said is not None}
        self.fall_back_on(conn, row["id"], fallbacks.NOT_DELIVERED)
        if row["status"] in (StatusValue.ACCEPTED, StatusValue.SENT):
            outbox.erase(conn, row["id"], outbox.erase_values(self.retention_seconds))
        return {"late": True}

    def withdraw_paused(self, conn: Any, name: str, language: str | None) -> int:
        """WhatsApp paused template ``name``: each message for it that is queued and due, names
        fallback media and has not been handed to WhatsApp is withdrawn for its fallback now
        (:data:`.fallbacks.TEMPLATE_PAUSED`), instead of waiting for the pause to end. Returns how many."""
        rows = outbox.queued_with_template(conn, name, language)
        if not rows:
            return 0
        facts = gate.BatchFacts(conn, set(), {name}, accounts=self.accounts())
        withdrawn = 0
        for row in rows:  # the pause is of the template the message's own number sends
            info = facts.template(name, row["language"], facts.account_of(row["business_phone_number_id"]))
            if info is not None and info.status == templates.PAUSED and fallbacks.wanted(row) and \
                    self.instead(conn, row["id"], fallbacks.TEMPLATE_PAUSED, f"{name} is paused by WhatsApp"):
                withdrawn += 1
        return withdrawn

    def apply_outcome(self, conn: Any, outcome: DeliveryOutcome, *, phone: str | None, contact_key: str,
                      reported_by: str, proof: str, origin: str, user_id: str | None = None,
                      medium: str = WHATSAPP, at: float | None = None) -> None:
        """What a failed delivery on ``medium`` said about its recipient: an opt-out of marketing is
        recorded in the ledger for that medium (with ``reported_by`` as its source and ``proof``) --
        for the number or BSUID the status names, else for the message's contact (an email spam
        complaint names only the message); a number unreachable on WhatsApp holds
        business-initiated WhatsApp messages until the contact writes; unreachable on another medium
        (a hard-bounced address), every message on that medium until a later delivery or opt-in
        there (:mod:`.reachability`; ``at``: when the failure happened). Other outcomes change
        nothing here."""
        if outcome is DeliveryOutcome.OPTED_OUT:
            named = bool(phone or user_id)
            self.record_consent(conn, ConsentChange(phone=phone, user_id=user_id, category=Category.MARKETING,
                                                    granted=False, source=reported_by, proof=proof, medium=medium,
                                                    contact_key=None if named else contact_key),
                                origin=origin)
        elif outcome is DeliveryOutcome.UNREACHABLE:
            reachability.mark_unreachable(self.db, conn, contact_key, medium, at)


class _Openings:
    """Inbound messages applied as one run: each contact's key as :meth:`Bookkeeping.apply` finds it
    (a BSUID seen with a number is linked to it), the windows they open written together.

    The links of every BSUID in the batch are read with one query. The usual message names a link
    already known and changes nothing. A BSUID seen with a number for the first time is linked to
    it; when that link has nothing else to do (:func:`identities.plain_first_links`: one query for
    the run's new BSUIDs) the links are recorded together with one statement. Any other (a number
    taken over from an earlier customer, something kept under the BSUID alone, a BSUID or number
    named otherwise elsewhere in the batch) goes through :func:`identities.observe`, which moves what
    is kept under the old key -- so the links and windows collected so far are written first, and
    the links read are updated as that function changes them."""

    def __init__(self, bookkeeping: Bookkeeping, conn: Any, batch: list[tuple[int, Event]]) -> None:
        self.bookkeeping = bookkeeping
        self.conn = conn
        secret = bookkeeping.secret
        self._wanted = {bsuid_key(user_id, secret) for _, event in batch
                        if event.kind == EventKind.INBOUND_MESSAGE
                        and isinstance(user_id := (event.data.get("contact") or {}).get("user_id"), str) and user_id}
        self._links: dict[str, str] | None = None
        self._firsts = _single_pairings(batch, secret)
        self._plain: set[str] | None = None  # of _firsts, those linked with nothing else to do
        self.linking: dict[str, str] = {}
        self.opened: list[tuple[str, str | None, float]] = []
        self.finished: list[int] = []

    def forget_links(self) -> None:
        self._links = None
        self._plain = None

    def links(self) -> dict[str, str]:
        if self._links is None:
            self._links = identities.linked(self.conn, self._wanted)
        return self._links

    def add(self, event_id: int, message: InboundMessage) -> None:
        key = self.contact_key(message.contact.phone, message.contact.user_id)
        if key is not None:
            self.opened.append((key, message.business_phone_number_id, message.timestamp.timestamp()))
        self.finished.append(event_id)

    def contact_key(self, phone: str | None, user_id: str | None) -> str | None:
        """What :func:`identities.observe` returns, without a query when the link is known."""
        secret = self.bookkeeping.secret
        if not user_id:
            return contact_key(phone, secret) if phone else None
        own = bsuid_key(user_id, secret)
        if own not in self._wanted:  # not read with the others (the payload had it elsewhere)
            self._wanted.add(own)
            self.forget_links()
        links = self.links()
        if not phone:
            return links.get(own, own)
        key = contact_key(phone, secret)
        if links.get(own) == key:
            return key  # the usual case: nothing changed since the last message
        if own not in links and own in self.plain_first_links() and self._firsts[own] == key:
            self.linking[own] = key  # recorded with the run's other first links
            links[own] = key
            return key
        self._write_windows()  # observe moves what is kept under these keys, windows included
        observed = identities.observe(self.bookkeeping.db, self.conn, secret, phone, user_id)
        # what observe did to the links: the number's other BSUIDs unlinked, this one linked to it
        self._links = {k: v for k, v in links.items() if v != key}
        if observed is not None:
            self._links[own] = observed
        return observed

    def plain_first_links(self) -> set[str]:
        """The batch's BSUIDs, not linked when read, whose first link has nothing else to do; read
        once per run of inbound messages (statuses and other events in between may change it)."""
        if self._plain is None:
            links = self.links()
            self._plain = identities.plain_first_links(
                self.conn, self.bookkeeping.secret, {own: key for own, key in self._firsts.items() if own not in links})
        return self._plain

    def _write_windows(self) -> None:
        identities.link(self.bookkeeping.db, self.conn, self.linking)
        self.linking = {}
        windows.open_windows(self.bookkeeping.db, self.conn, self.opened)
        self.opened = []

    def flush(self) -> None:
        self._plain = None
        if not (self.opened or self.finished or self.linking):
            return  # between two statuses of a batch: nothing to write
        self._write_windows()
        journal.finish_many(self.conn, "core", {event_id: {} for event_id in self.finished})
        self.finished = []


def _single_pairings(batch: list[tuple[int, Event]], secret: bytes) -> dict[str, str]:
    """The BSUID keys of ``batch`` named with one number only (never alone, never with another
    number), that number named with no other BSUID, each with its number's contact key: their first
    link cannot depend on another event of the batch. Read from every event that names a contact."""
    numbers_of: dict[str, set[str | None]] = {}
    bsuids_of: dict[str, set[str]] = {}
    for _, event in batch:
        contact = event.data.get("contact")
        if not isinstance(contact, dict):
            continue
        phone, user_id = contact.get("phone"), contact.get("user_id")
        if isinstance(user_id, str) and user_id:
            own = bsuid_key(user_id, secret)
            key = contact_key(phone, secret) if isinstance(phone, str) and phone else None
            numbers_of.setdefault(own, set()).add(key)
            if key is not None:
                bsuids_of.setdefault(key, set()).add(own)
    singles: dict[str, str] = {}
    for own, keys in numbers_of.items():
        if len(keys) == 1 and (key := next(iter(keys))) is not None and bsuids_of[key] == {own}:
            singles[own] = key
    return singles


def batched_status(event: Event) -> bool:
    """A status event applied with the others of its batch (:func:`outbox.apply_statuses`), its core
    result empty: not an echo of a message sent from the Business app (a message to record) and
    carrying no consent."""
    return event.kind == EventKind.MESSAGE_STATUS and not event.consents \
        and event.data.get("sent_from") != SENT_FROM_BUSINESS_APP


def _report(status: MessageStatus) -> outbox.StatusReport:
    error = status.errors[0] if status.errors else None
    return outbox.StatusReport(status.wamid, status.status,
                               str(error.code) if error and error.code is not None else None,
                               (error.details or error.message or error.title) if error else None,
                               status.outbox_id, status.reason, status.pricing, status.timestamp.timestamp())
