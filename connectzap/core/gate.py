"""The send gate: the only way a message reaches the outbox, and the last check before it leaves.

Order of checks on WhatsApp: recipient -> idempotency -> template (known, APPROVED, language,
exact parameters) -> consent for the category on WhatsApp -> 24-hour window -> durable outbox.
On any other medium (email, sms, ...): recipient -> idempotency -> consent for the message's
category on that medium -> durable outbox; at send time the sender then asks the medium's
channel for its own rules (:class:`~.channel.MediumRules`: quiet hours, an unsubscribe link).
Each refusal has a machine-readable reason the caller sees (:data:`REASONS`), and is itself
recorded, so "why didn't the customer get a message?" always has an answer.

The consent rule: a template of category C needs the contact's opt-in for C on WhatsApp. Inside
the 24-hour window the customer opened, a reply needs none -- free-form messages, and utility or
authentication templates -- but a marketing template still needs a marketing opt-in (a
customer writing to us is not an opt-in to promotions). Other media have no window: every
message needs the opt-in for its category on its medium, and consent on one medium says nothing
about another. An opt-out always wins, at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from functools import partial
from datetime import UTC, datetime
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import Connection, Select, select

from . import automatic, fallbacks, identities, logs, reachability, templates
from .arbitration import handed_over
from .bsuids import is_bsuid
from .windows import is_open, latest_inbound
from .errors import ConflictError
from .email_addresses import email_key
from .media import EMAIL, WHATSAPP
from .messages import MessageContent, Outgoing, TemplateContent, TextParam
from .models import Category, Event, EventKind, FallbackDue, StatusValue, TemplateInfo
from .store import journal, outbox
from .store.among import among_keys
from .store.database import Database, now
from .store.outbox import new_message_id
from .store.schema import consents, contacts, conversations, windows
from .store.schema import outbox as outbox_table

log = logging.getLogger("connectzap.gate")

REASONS = {
    "invalid_phone": "the recipient is neither a valid phone number nor a business-scoped user id (BSUID)",
    "phone_required": ("authentication templates go to phone numbers only, and this customer is known by a "
                       "business-scoped user id (BSUID); ask for the number with a request_contact_info message"),
    "no_consent": "the contact has not opted in to this category (on this medium)",
    "opted_out": "the contact opted out of this category (on this medium)",
    "window_closed": "free-form messages need a customer message in the last 24 hours; send a template",
    "template_unknown": "no template with this name is known; run `connectzap templates sync`",
    "template_not_in_account": ("the template belongs to another business account than the number the message "
                                "leaves from; send it from a number of that account, or create it in this one"),
    "language_missing": "the template has no approved translation in this language",
    "template_not_approved": "the template is not APPROVED",
    "template_paused": "WhatsApp paused the template for low quality: the message waits (no request is made) until "
                       "the pause ends, and is refused if the template is disabled; a message naming fallback "
                       "media is refused instead, and its fallback goes",
    "param_mismatch": "the parameters do not match the template",
    "unreachable": "WhatsApp reported this contact unreachable; waiting for them to write first",
    "invalid_message": "the message is not valid",
    "cancelled": "cancelled before it was due",
    "idempotency_conflict": "this idempotency key was already used for a different message",
    **automatic.REASONS,
}

_SPACES = re.compile(r"\s+")


def clean_param(text: str) -> str:
    """Meta rejects template parameters with newlines, tabs or more than 4 spaces in a row."""
    return _SPACES.sub(" ", text).strip()


CONFLICT = "conflict"  # a decision only, never an outbox status: nothing is written for it


@dataclass(frozen=True)
class Decision:
    """What the gate did with a message: queued it (``status="queued"``) or refused it (``reason``).

    ``status="conflict"`` (only with ``report_conflicts``): the key belongs to a different message,
    ``id``; nothing was written for this one."""

    id: str
    status: str
    reason: str | None = None
    detail: str | None = None
    duplicate: bool = False
    idempotency_key: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status not in (StatusValue.REFUSED, CONFLICT)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "reason": self.reason, "detail": self.detail,
                "duplicate": self.duplicate}


@dataclass(frozen=True)
class Verdict:
    """The result of the consent/window/template checks for one message at one moment."""

    content: MessageContent | None  # what to send; None exactly when ``reason`` says why not
    category: str
    reason: str | None = None
    detail: str | None = None
    hold: str | None = None
    """Set (``template_paused``) when the message may go later but not now: ``content`` is what will
    go; it waits in the queue, with no request to the channel, until the hold ends."""


def facts_for(conn: Connection, secret: bytes, messages: list[Outgoing],
              accounts: templates.BusinessAccounts | None = None) -> BatchFacts:
    """Everything the gate will ask about ``messages``, loaded up front; ``accounts`` tells which
    business account's templates each number sends (None: any cached template, as with one account)."""
    who = [(m.to.phone, m.to.user_id if is_bsuid(m.to.user_id) else None) for m in messages]
    recipients = {pair: key for pair, key in zip(who, identities.resolve_many(conn, secret, who), strict=True)
                  if key is not None}
    names = {c.name for m in messages for c in (m.content, m.fallback) if isinstance(c, TemplateContent)}
    # an email to a customer known by number or BSUID is theirs; else the address's own key
    emails = {m.to.email: email_key(m.to.email, secret) for m, pair in zip(messages, who, strict=True)
              if m.medium == EMAIL and m.to.email and pair not in recipients}
    facts = BatchFacts(conn, set(recipients.values()) | set(emails.values()), names, recipients, accounts)
    facts.emails = emails
    return facts


class BatchFacts:
    """What the gate needs to know about the contacts and templates of a batch of messages, loaded
    with one query per table (admission and the sender's re-check both work a batch at a time)."""

    def __init__(self, conn: Connection, keys: set[str], template_names: set[str],
                 recipients: dict[tuple[str | None, str | None], str] | None = None,
                 accounts: templates.BusinessAccounts | None = None) -> None:
        self.recipients = recipients or {}
        """The contact key of each (phone, BSUID) pair the batch sends to (see :mod:`.identities`)."""
        self.emails: dict[str, str] = {}
        """The contact key of each email address the batch sends to whose customer it knows by no
        number or BSUID (:func:`.email_addresses.email_key`)."""
        self._consents: dict[tuple[str, str, str], tuple[bool, str]] = {}  # the newest ledger row's (granted, source)
        self._expectations: dict[tuple[str | None, str, str], templates.Expectation] = {}
        self._picked: dict[tuple[str, str, str | None], TemplateInfo | None] = {}
        self._conn, self._keys = conn, keys
        self._windows: dict[str, list[tuple[str, float]]] | None = None  # loaded when a verdict needs them
        self._conversations: dict[str, tuple[float | None, int | None]] | None = None  # likewise
        self._unreachable_elsewhere: set[tuple[str, str]] | None = None  # likewise (messages off WhatsApp)
        self.accounts = accounts
        self._templates: dict[tuple[str, str], list[TemplateInfo]] = {}  # every account's version
        self._unreachable: set[str] = set()
        if keys:
            ledger, unreachable = self.contact_queries(conn, keys)
            self._absorb(conn.execute(ledger), conn.execute(unreachable))
        if template_names:
            for info in templates.named(conn, template_names):
                self._templates.setdefault((info.name, info.language), []).append(info)

    @staticmethod
    def contact_queries(conn: Connection, keys: set[str]) -> tuple[Select[Any], Select[Any]]:
        """What these facts read of the contacts ``keys``: their consent ledger, oldest first, and
        those of them unreachable on WhatsApp."""
        return (select(consents.c.contact_key, consents.c.category, consents.c.medium, consents.c.granted,
                       consents.c.source)
                .where(among_keys(conn, consents.c.contact_key, keys)).order_by(consents.c.at, consents.c.id),
                select(contacts.c.contact_key).where(among_keys(conn, contacts.c.contact_key, keys),
                                                     contacts.c.unreachable_since.is_not(None)))

    def _absorb(self, ledger: Iterable[Any], unreachable: Iterable[Any]) -> None:
        """The answers to :meth:`contact_queries`."""
        for key, category, medium, granted, source in ledger:
            # newest wins; kept as a plain tuple, not the Row: a tuple of atomic values leaves the
            # garbage collector's lists, and a campaign round's rows were a full collection's worth.
            # (Unpacked, not read by name: a row's attribute lookup cost a few % of admission.)
            self._consents[(key, category, medium)] = (bool(granted), source)
        self._unreachable.update(r[0] for r in unreachable)

    def for_contacts(self, keys: set[str], ledger: Iterable[Any], unreachable: Iterable[Any],
                     recipients: dict[tuple[str | None, str | None], str] | None = None) -> BatchFacts:
        """Facts of the contacts ``keys`` from the answers to their :meth:`contact_queries`, read
        elsewhere (ahead of time: a campaign round's parts), with these facts' templates."""
        facts = BatchFacts(self._conn, set(), set(), recipients, self.accounts)
        facts._keys = keys
        facts._templates, facts._picked, facts._expectations = self._templates, self._picked, self._expectations
        facts._absorb(ledger, unreachable)
        return facts

    def window_open(self, key: str, at: float | None, business_number: str | None) -> bool:
        return is_open(self.last_inbound(key, business_number), at)

    def last_inbound(self, key: str, business_number: str | None) -> float | None:
        if self._windows is None:
            # Only a free-form message, a reply without opt-in or an unreachable contact asks: a
            # consented template campaign never does, so it does not pay for the query.
            self._windows = {key: [] for key in self._keys}
            if self._keys:
                for row in self._conn.execute(select(windows).where(windows.c.contact_key.in_(self._keys))):
                    self._windows[row.contact_key].append((row.business_phone_number_id, row.last_inbound_at))
        return latest_inbound(self._windows.get(key, []), business_number)

    def human_handles(self, key: str, answering: int | None) -> bool:
        """Whether a person handles ``key``'s conversation (see :func:`.arbitration.human_handles`);
        asked only about automatic answers, so other batches do not pay for the query."""
        if self._conversations is None:
            self._conversations = {}
            if self._keys:
                for row in self._conn.execute(select(conversations).where(conversations.c.contact_key.in_(self._keys))):
                    self._conversations[row.contact_key] = (row.until, row.event_id)
        found = self._conversations.get(key)
        return found is not None and handed_over(*found, now(), answering)

    def consent_given(self, key: str, category: str, medium: str = WHATSAPP) -> tuple[bool, str] | None:
        """Whether ``key``'s newest consent record for ``category`` on ``medium`` grants it, and its
        source; None when there is none."""
        return self._consents.get((key, category, medium))

    def unreachable(self, key: str, medium: str = WHATSAPP) -> bool:
        if medium == WHATSAPP:
            return key in self._unreachable
        if self._unreachable_elsewhere is None:  # only a batch with messages off WhatsApp asks
            self._unreachable_elsewhere = reachability.unreachable_on(self._conn, self._keys)
        return (key, medium) in self._unreachable_elsewhere

    def account_of(self, business_number: str | None) -> str | None:
        """The business account (WABA) whose templates a message from ``business_number`` sends."""
        return self.accounts.of(business_number) if self.accounts else None

    def template(self, name: str, language: str, account: str | None = None) -> TemplateInfo | None:
        """The template ``account``'s numbers send (see :func:`.templates.get`)."""
        wanted = (name, language, account)
        if wanted not in self._picked:  # a batch asks about the same template for every message
            self._picked[wanted] = templates.pick(self._templates.get((name, language), []))(account)
        return self._picked[wanted]

    def expectation(self, info: TemplateInfo) -> templates.Expectation:
        """What a send of ``info`` must supply (:func:`.templates.expectation`), worked out once a batch."""
        wanted = (info.waba_id, info.name, info.language)
        found = self._expectations.get(wanted)
        if found is None:
            found = self._expectations[wanted] = templates.expectation(info)
        return found

    def owners(self, name: str, language: str) -> list[str]:
        """The business accounts that have the template in ``language``."""
        return sorted({info.waba_id or templates.ANY_ACCOUNT for info in self._templates.get((name, language), [])})

    def languages(self, name: str, account: str | None = None) -> list[str]:
        return [lang for (n, lang) in self._templates if n == name and self.template(n, lang, account)]


def _texts(content: TemplateContent) -> list[str | None]:
    """Every free-text value Meta checks for whitespace, in a fixed order."""
    body = content.body.values() if isinstance(content.body, dict) else content.body
    texts: list[str | None] = [param.text if isinstance(param, TextParam) else None for param in body]
    texts.append(content.header.text if content.header else None)
    texts += [value for b in content.buttons for value in (b.payload, b.text, b.coupon_code)]
    return texts


def clean_template(content: TemplateContent) -> TemplateContent:
    """``content`` with its parameters' whitespace cleaned; the same object when nothing changes."""
    if all(text is None or clean_param(text) == text for text in _texts(content)):
        return content  # the common case: no copy, no re-validation
    data = content.model_dump()
    body = data.get("body")
    items = body.values() if isinstance(body, dict) else (body or [])
    for param in items:
        if param.get("type") == "text":
            param["text"] = clean_param(param["text"])
    if data.get("header") and data["header"].get("text") is not None:
        data["header"]["text"] = clean_param(data["header"]["text"])
    for button in data.get("buttons", []):
        for field in ("payload", "text", "coupon_code"):
            if button.get(field) is not None:
                button[field] = clean_param(button[field])
    return TemplateContent.model_validate(data)


class Sendable(NamedTuple):
    """A template :func:`sendable_template` lets through: its cached version ``info`` and the
    ``category`` whose consent rule applies."""

    info: TemplateInfo
    category: str


def sendable_template(facts: BatchFacts, content: TemplateContent,
                      business_number: str | None = None) -> Sendable | Verdict:
    """The first checks of :func:`check_template`, those that depend on the template alone: the
    template ``business_number`` may send, or the refusal."""
    account = facts.account_of(business_number)
    info = facts.template(content.name, content.language, account)
    if info is None:
        owners = facts.owners(content.name, content.language)
        if owners:  # only other accounts have it: Meta would refuse the send as fatal
            number = f"number {business_number}" if business_number else "the default number"
            return Verdict(None, "utility", "template_not_in_account",
                           f"{content.name} ({content.language}) is a template of business account "
                           f"{', '.join(owners)}, not of business account {account}, which {number} belongs to")
        if facts.languages(content.name, account):
            return Verdict(None, "utility", "language_missing",
                           f"{content.name} has no {content.language} translation")
        return Verdict(None, "utility", "template_unknown", f"{content.name} is not in the template cache")
    # From the time a re-categorisation Meta announced takes effect, the new category's consent rule applies.
    category = info.category_at(now()).lower()
    if info.status not in ("APPROVED", templates.PAUSED):
        return Verdict(None, category, "template_not_approved", f"{content.name} is {info.status}")
    return Sendable(info, category)


def paused(content: MessageContent, category: str) -> Verdict:
    """The verdict on a fitting message whose template WhatsApp paused: it waits."""
    assert isinstance(content, TemplateContent)
    return Verdict(content, category, hold="template_paused",
                   detail=f"{content.name} is paused by WhatsApp; the message waits until the pause ends")


def check_template(facts: BatchFacts, content: TemplateContent, business_number: str | None = None) -> Verdict:
    found = sendable_template(facts, content, business_number)
    if isinstance(found, Verdict):
        return found
    info, category = found
    cleaned = clean_template(content)
    problem = templates.check_params(info, cleaned, facts.expectation(info))
    if problem:
        return Verdict(None, category, "param_mismatch", problem)
    if info.status == templates.PAUSED:
        return paused(cleaned, category)
    return Verdict(cleaned, category)


def evaluate(facts: BatchFacts, key: str, content: MessageContent, fallback: TemplateContent | None,
             business_number: str | None = None, at: float | None = None, *, medium: str = WHATSAPP,
             category: str | None = None) -> Verdict:
    """Decide whether ``content`` may go to contact ``key`` on ``medium`` now; on WhatsApp it may
    swap in the fallback template. ``category`` is the message's own (required off WhatsApp, where
    no template cache says it)."""
    if medium != WHATSAPP:
        return _evaluate_elsewhere(facts, key, content, medium, category or Category.MARKETING.value)
    if not isinstance(content, TemplateContent):
        if facts.window_open(key, at, business_number):
            return Verdict(content, "service")
        if fallback is None:
            last = facts.last_inbound(key, business_number)
            said = ("the customer has not written to you yet" if last is None else
                    f"the customer last wrote at {datetime.fromtimestamp(last, UTC):%Y-%m-%d %H:%M} UTC, "
                    "over 24 hours ago")
            return Verdict(None, "service", "window_closed",
                           f"{said}; a free-form message can only answer a customer's message of the last 24 "
                           "hours, so send an approved template instead")
        content = fallback
    verdict = check_template(facts, content, business_number)
    if verdict.reason:
        return verdict
    return consented(facts, key, verdict, business_number, at)


def consented(facts: BatchFacts, key: str, verdict: Verdict, business_number: str | None,
              at: float | None) -> Verdict:
    """The checks after the template's on WhatsApp: ``verdict`` (a template that fits) when the
    contact's consent for its category, or the window they opened, lets it go to ``key`` now."""
    given = facts.consent_given(key, verdict.category) if verdict.category in Category._value2member_map_ else None
    if given is not None and not given[0]:
        return Verdict(None, verdict.category, "opted_out", f"opted out of {verdict.category} via {given[1]}")
    if given is None:
        reply_in_window = (verdict.category != Category.MARKETING.value
                           and facts.window_open(key, at, business_number))
        if not reply_in_window:
            return Verdict(None, verdict.category, "no_consent", f"no {verdict.category} opt-in on record")
    if facts.unreachable(key) and not facts.window_open(key, at, business_number):
        return Verdict(None, verdict.category, "unreachable", REASONS["unreachable"])
    return verdict


def _evaluate_elsewhere(facts: BatchFacts, key: str, content: MessageContent, medium: str,
                        category: str) -> Verdict:
    """A medium without WhatsApp's rules: no window, no template cache (the channel renders its own
    templates), so the opt-in for the message's category on this very medium decides."""
    given = facts.consent_given(key, category, medium)
    if given is not None and not given[0]:
        return Verdict(None, category, "opted_out", f"opted out of {category} on {medium} via {given[1]}")
    if given is None:
        return Verdict(None, category, "no_consent", f"no {category} opt-in on {medium} on record")
    if facts.unreachable(key, medium):
        return Verdict(None, category, "unreachable",
                       f"{medium} reported this contact unreachable (e.g. a hard bounce); held back until a later "
                       f"message on {medium} is delivered or a new opt-in on {medium} is recorded")
    return Verdict(content, category)


def request_hash(outgoing: Outgoing) -> str:
    # ``origin`` counts only when given, so messages without one hash as they did before it existed.
    left_out = {"idempotency_key"} if outgoing.origin is not None else {"idempotency_key", "origin"}
    if outgoing.automatic is None:  # likewise: hashes stay what they were before it existed
        left_out.add("automatic")
    if outgoing.medium == WHATSAPP:  # likewise
        left_out.add("medium")
    if outgoing.fallback_after_minutes is None:  # likewise
        left_out.add("fallback_after_minutes")
    data = outgoing.model_dump(mode="json", exclude=left_out)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Admission:
    """One message for :func:`admit_many` and the idempotency key it is admitted under."""

    outgoing: Outgoing
    idempotency_key: str
    fresh_key: bool = False
    """The key was generated for this very call, so no earlier message can hold it: it is not
    looked up and no request hash is kept for it."""
    held: bool = False
    """Queue it held (:data:`.automatic.PENDING`, never due) until :func:`.automatic.arbitrate`
    decides between the automatic answers to the same inbound message."""
    fallback_of: str | None = None
    """The message this one stands in for (:mod:`.fallbacks`)."""


_EXISTING_COLUMNS = (outbox_table.c.idempotency_key, outbox_table.c.id, outbox_table.c.status,
                     outbox_table.c.reason, outbox_table.c.error_details, outbox_table.c.request_hash)


def existing(conn: Connection, keys: list[str]) -> dict[str, Any]:
    """The outbox's messages under ``keys`` (the columns :func:`repeated` answers from)."""
    return outbox.by_keys(conn, keys, _EXISTING_COLUMNS)


def admit(db: Database, conn: Connection, secret: bytes, outgoing: Outgoing, *, idempotency_key: str,
          source_event_id: int | None = None, plugin: str | None = None, strict_key: bool = False,
          facts: BatchFacts | None = None, fresh_key: bool = False,
          accounts: templates.BusinessAccounts | None = None) -> Decision:
    """:func:`admit_many` for one message."""
    return admit_many(db, conn, secret, [Admission(outgoing, idempotency_key, fresh_key)],
                      source_event_id=source_event_id, plugin=plugin, strict_key=strict_key, facts=facts,
                      accounts=accounts)[0]


def admit_many(db: Database, conn: Connection, secret: bytes, admissions: list[Admission], *,
               source_event_id: int | None = None, plugin: str | None = None, strict_key: bool = False,
               report_conflicts: bool = False, facts: BatchFacts | None = None,
               accounts: templates.BusinessAccounts | None = None) -> list[Decision]:
    """Run every check on each message, in order, and write the outcomes to the outbox inside
    ``conn``'s transaction: one query per table for the facts, one for the keys, one insert.

    A key already in the outbox (or earlier in the same batch) returns the first message for it,
    marked ``duplicate``. With ``strict_key`` (the REST API), reusing a key for a different message
    is a :class:`ConflictError` -- or, with ``report_conflicts`` (a batch whose other messages must
    still go through), that message's decision has ``status="conflict"``. ``facts`` may be a
    :class:`BatchFacts` loaded by the caller; else they are loaded with ``accounts`` (which
    business account's templates each number sends: the engine's :attr:`~.app.Connectzap.business_accounts`).
    """
    if not admissions:
        return []
    facts = facts or facts_for(conn, secret, [a.outgoing for a in admissions], accounts)
    earlier = existing(conn, [a.idempotency_key for a in admissions if not a.fresh_key])
    decisions: list[Decision] = []
    rows: list[dict[str, Any]] = []
    for a in admissions:
        digest = "" if a.fresh_key else request_hash(a.outgoing)
        first = earlier.get(a.idempotency_key)
        if first is not None:
            decisions.append(repeated(a.idempotency_key, first, digest, strict_key, report_conflicts))
            continue
        decision, row = _decide(secret, facts, a, digest, source_event_id, plugin)
        earlier[a.idempotency_key] = _Earlier(a.idempotency_key, decision.id, decision.status, decision.reason,
                                              decision.detail, digest)
        decisions.append(decision)
        rows.append(row)
    lost = {row["idempotency_key"] for row in rows} - set(outbox.add_many(db, conn, rows))
    if lost:  # another transaction committed the same key first (PostgreSQL): its message stands
        winners = existing(conn, sorted(lost))
        for n, a in enumerate(admissions):
            first = winners.get(a.idempotency_key)
            if first is not None:
                # A fresh key lost only to its own earlier commit (a transaction retried after its
                # commit's answer was lost): the stored message is this one, not a conflict.
                digest = "" if a.fresh_key else request_hash(a.outgoing)
                decisions[n] = repeated(a.idempotency_key, first, digest, strict_key, report_conflicts)
    _fall_back_refused(db, conn, secret, admissions, decisions, rows, lost, source_event_id=source_event_id,
                       plugin=plugin, accounts=accounts)
    _withdraw_held(db, conn, secret, admissions, decisions, rows, lost, accounts=accounts)
    _schedule_fallback_checks(db, conn, admissions, decisions, rows, lost)
    log_refused(rows, lost, plugin, source_event_id)
    return decisions


def log_refused(rows: list[dict[str, Any]], lost: set[str], plugin: str | None, source_event_id: int | None) -> None:
    """One INFO line per refused message written (outbox ``rows`` but those whose key was ``lost``)."""
    if log.isEnabledFor(logging.INFO):
        for row in rows:
            if row["status"] == "refused" and row["idempotency_key"] not in lost:
                logs.emit(log, logging.INFO, "message refused", message_id=row["id"], reason=row["reason"],
                          what=row["template_name"] or row["content_type"], plugin=plugin, event=source_event_id)


def _fall_back_refused(db: Database, conn: Connection, secret: bytes, admissions: list[Admission],
                       decisions: list[Decision], rows: list[dict[str, Any]], lost: set[str], *,
                       source_event_id: int | None, plugin: str | None,
                       accounts: templates.BusinessAccounts | None) -> None:
    """The fallback of each message refused here for a reason that triggers one (:data:`.fallbacks.REFUSALS`)."""
    categories = {row["id"]: row["category"] for row in rows if row["status"] == "refused"}
    for a, decision in zip(admissions, decisions, strict=True):
        trigger = fallbacks.REFUSALS.get(decision.reason or "") if a.outgoing.fallback_media else None
        if trigger and decision.id in categories and a.idempotency_key not in lost:
            fallbacks.fall_back_refused(decision.id, a.outgoing, categories[decision.id], trigger,
                                        source_event_id=source_event_id, plugin=plugin,
                                        admit=partial(admit_fallback, db, conn, secret, accounts=accounts))


def _withdraw_held(db: Database, conn: Connection, secret: bytes, admissions: list[Admission],
                   decisions: list[Decision], rows: list[dict[str, Any]], lost: set[str], *,
                   accounts: templates.BusinessAccounts | None) -> None:
    """A message held here because its template is paused (``template_paused``) that names fallback
    media and is due now is withdrawn for its fallback (:func:`.fallbacks.instead`): refused, in
    this transaction, once its fallback is admitted. One scheduled for later waits as any held
    message: the sender's check when it is due decides."""
    held = {row["id"]: row for row in rows if row["reason"] == fallbacks.TEMPLATE_PAUSED
            and row["status"] == StatusValue.QUEUED and (row["not_before"] or 0) <= row["created_at"]}
    for n, (a, decision) in enumerate(zip(admissions, decisions, strict=True)):
        row = held.get(decision.id)
        if row is None or not a.outgoing.fallback_media or decision.duplicate or a.idempotency_key in lost:
            continue
        said = fallbacks.instead(conn, decision.id, fallbacks.TEMPLATE_PAUSED, fallbacks.TEMPLATE_PAUSED,
                                 f"{row['template_name']} is paused by WhatsApp",
                                 admit=partial(admit_fallback, db, conn, secret, accounts=accounts))
        if said is not None:
            decisions[n] = Decision(decision.id, StatusValue.REFUSED.value, fallbacks.TEMPLATE_PAUSED, said,
                                    idempotency_key=decision.idempotency_key)


def _schedule_fallback_checks(db: Database, conn: Connection, admissions: list[Admission],
                              decisions: list[Decision], rows: list[dict[str, Any]], lost: set[str]) -> None:
    """For each message queued here with ``fallback_after_minutes``: the check of its delivery,
    journaled in this transaction and due at its time (:data:`.models.EventKind.FALLBACK_DUE`)."""
    queued = {row["id"]: row for row in rows if row["status"] == StatusValue.QUEUED}
    for a, decision in zip(admissions, decisions, strict=True):
        minutes = a.outgoing.fallback_after_minutes
        row = queued.get(decision.id)
        if minutes is None or row is None or not decision.accepted or decision.duplicate or \
                a.idempotency_key in lost:
            continue
        check = Event.of(EventKind.FALLBACK_DUE, FallbackDue(message_id=decision.id, minutes=minutes),
                         source="connectzap", dedupe_key=f"fallback_after:{decision.id}")
        # no ordering key: an event due later would hold back every later event of its key
        journal.append(db, conn, [check], due_at=fallback_due(row["not_before"], row["created_at"], minutes))


def fallback_due(not_before: float | None, created_at: float, minutes: int) -> float:
    """When a message's ``fallback_after_minutes`` are up: counted from when it was due."""
    return (not_before or created_at) + minutes * 60


def admit_fallback(db: Database, conn: Connection, secret: bytes, outgoing: Outgoing, idempotency_key: str,
                   fallback_of: str, *, source_event_id: int | None, plugin: str | None,
                   accounts: templates.BusinessAccounts | None) -> Decision:
    """Admit ``outgoing`` as the fallback of message ``fallback_of`` (:mod:`.fallbacks`), through
    every check like any send."""
    return admit_many(db, conn, secret, [Admission(outgoing, idempotency_key, fallback_of=fallback_of)],
                      source_event_id=source_event_id, plugin=plugin, accounts=accounts)[0]


def repeated(key: str, first: Any, digest: str = "", strict_key: bool = False,
             report_conflicts: bool = False) -> Decision:
    """The decision for a message under idempotency ``key`` that ``first`` (an outbox row or
    :class:`_Earlier`) already holds."""
    if strict_key and first.request_hash != digest:
        if not report_conflicts:
            raise ConflictError("Idempotency-Key was already used for a different message")
        return Decision(first.id, CONFLICT, "idempotency_conflict", REASONS["idempotency_conflict"],
                        idempotency_key=key)
    return Decision(first.id, first.status, first.reason, first.error_details, duplicate=True, idempotency_key=key)


@dataclass(frozen=True)
class _Earlier:
    """The fields of :data:`_EXISTING_COLUMNS` for a message admitted earlier in the same batch."""

    idempotency_key: str
    id: str
    status: str
    reason: str | None
    error_details: str | None
    request_hash: str


def _fallback_fields(outgoing: Outgoing, not_before: float | None, t: float) -> dict[str, Any]:
    """What a fallback needs kept with the message's content until it is settled (:mod:`.fallbacks`):
    the media to fall back on, for email the address (erased with the content), and when a
    ``fallback_after_minutes`` check is due (the data is kept at least until then)."""
    if not outgoing.fallback_media:
        return {}
    email = outgoing.to.email if EMAIL in outgoing.fallback_media else None
    minutes = outgoing.fallback_after_minutes
    due = {"fallback_due": fallback_due(not_before, t, minutes)} if minutes is not None else {}
    return {"fallback_media": outgoing.fallback_media, "email": email, **due}


def _address(outgoing: Outgoing, phone_or_user_id: str | None) -> str | None:
    """Where the channel sends: the email address on email, the number (or BSUID) elsewhere."""
    return outgoing.to.email if outgoing.medium == EMAIL else phone_or_user_id


def stored_json(outgoing: Outgoing, shown: MessageContent, not_before: float | None, t: float) -> str:
    """The stored message (what the sender sends and a fallback needs) as JSON: ``content`` (what
    the gate let through), ``original``, ``fallback``, ``reply_to`` and :func:`_fallback_fields`.
    The contents are encoded by pydantic straight to JSON (the same values as their ``mode="json"``
    dump), and once when the gate sent the content unchanged -- the common case, a recipient's
    cost in a campaign."""
    original = outgoing.content.model_dump_json(exclude_none=True)
    sent = original if shown is outgoing.content else shown.model_dump_json(exclude_none=True)
    rest = json.dumps({
        "fallback": outgoing.fallback.model_dump(mode="json", exclude_none=True) if outgoing.fallback else None,
        "reply_to": outgoing.reply_to,
        **_fallback_fields(outgoing, not_before, t),
    })
    return f'{{"content": {sent}, "original": {original}, {rest[1:]}'


def _decide(secret: bytes, facts: BatchFacts, a: Admission, digest: str, source_event_id: int | None,
            plugin: str | None) -> tuple[Decision, dict[str, Any]]:
    outgoing = a.outgoing
    phone = outgoing.to.phone
    found = facts.recipients.get((phone, outgoing.to.user_id if is_bsuid(outgoing.to.user_id) else None))
    if found is None and outgoing.medium == EMAIL and outgoing.to.email:
        found = facts.emails.get(outgoing.to.email)
    if found is None:
        verdict = Verdict(None, "service", "invalid_phone", REASONS["invalid_phone"])
        key = "-"
    else:
        key = found
        verdict = evaluate(facts, key, outgoing.content, outgoing.fallback, outgoing.business_phone_number_id,
                           at=outgoing.not_before.timestamp() if outgoing.not_before else None,
                           medium=outgoing.medium, category=outgoing.category.value if outgoing.category else None)
        if verdict.reason is None and phone is None and verdict.category == Category.AUTHENTICATION.value:
            verdict = Verdict(None, verdict.category, "phone_required", REASONS["phone_required"])
        if verdict.reason is None and outgoing.automatic and not a.held and facts.human_handles(key, source_event_id):
            # held answers are decided by arbitration; any other (a bot answering later via REST) here
            verdict = Verdict(None, verdict.category, "human_handling", REASONS["human_handling"])
    return message_row(a, key, verdict, digest, source_event_id, plugin, new_message_id(), now())


def message_row(a: Admission, key: str, verdict: Verdict, digest: str, source_event_id: int | None,
                plugin: str | None, message_id: str, t: float) -> tuple[Decision, dict[str, Any]]:
    """The decision on ``a`` and the outbox row that records it: ``verdict`` for contact ``key``."""
    outgoing = a.outgoing
    phone = outgoing.to.phone
    user_id = outgoing.to.user_id if phone is None and is_bsuid(outgoing.to.user_id) else None
    not_before = outgoing.not_before.timestamp() if outgoing.not_before else None
    refused = verdict.reason is not None
    shown = outgoing.content if refused else verdict.content
    assert shown is not None  # a verdict without a reason always carries the content to send
    stored = stored_json(outgoing, shown, not_before, t) if not refused else None
    status = StatusValue.REFUSED if refused else StatusValue.QUEUED
    template = shown if isinstance(shown, TemplateContent) else None
    held = a.held and not refused
    next_attempt_at = automatic.NEVER if held else not_before or t
    reason = automatic.PENDING if held else verdict.reason or verdict.hold
    # Every value atomic (the status as its plain text, what is stored): a dict holding nothing else
    # is not tracked by the garbage collector (see :func:`.template_waves.admit_wave`).
    row = dict(
        id=message_id, idempotency_key=a.idempotency_key, request_hash=digest, contact_key=key,
        recipient=None if refused else _address(outgoing, phone or user_id), category=verdict.category,
        content_type=shown.type,
        template_name=template.name if template else None, language=template.language if template else None,
        content=stored, status=status.value, reason=reason,
        error_details=verdict.detail, not_before=not_before, next_attempt_at=next_attempt_at, attempts=0,
        cancel_key=outgoing.cancel_key, business_phone_number_id=outgoing.business_phone_number_id,
        source_event_id=source_event_id, plugin=plugin, created_at=t, updated_at=t,
        origin=json.dumps(outgoing.origin, sort_keys=True) if outgoing.origin else None,
        automatic=outgoing.automatic.value if outgoing.automatic else None, medium=outgoing.medium,
        fallback_of=a.fallback_of,
    )
    return Decision(message_id, status.value, reason, verdict.detail,
                    idempotency_key=a.idempotency_key), row
