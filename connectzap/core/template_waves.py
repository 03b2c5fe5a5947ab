"""A wave: template messages that differ only in recipient, body text and send time -- a campaign's
round -- admitted through the send gate with what depends on the template alone checked once.

Per message a wave does what :func:`.gate.admit_many` does for a template on WhatsApp, in the
gate's order: the recipient, the template (:func:`.gate.sendable_template`, once), the body's
parameters (:func:`.templates.check_body`) after their whitespace is cleaned, consent, the window
and reachability (:func:`.gate.consented`), and it writes the row :func:`.gate.message_row` would
(``tests/test_campaign_bulk_admission.py`` compares the two paths row by row). What it saves is
the per-message work that gives the same answer for every message: the template's lookup and its
header and buttons, the pydantic models, and their JSON -- each message's stored content is its
body's JSON put into the template's once-encoded frame.

A wave takes only plain text bodies over a template whose header and buttons need no cleaning
(:meth:`TemplateWave.of` answers None otherwise); anything else goes through ``admit_many``.
"""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

import pydantic_core
from sqlalchemy import Connection

from . import gate, templates
from .gate import REASONS, Admission, BatchFacts, Decision, Verdict, clean_param
from .media import WHATSAPP
from .messages import Outgoing, TemplateContent, TextParam
from .models import StatusValue
from .store import outbox
from .store.database import Database, now

Body = list[str] | dict[str, str]
"""A message's body parameters as text: positional (a list) or named (a mapping)."""

_MARK = "\x00body\x00"
_MARK_JSON = pydantic_core.to_json([{"type": "text", "text": _MARK}]).decode()
_SHARED = Verdict(None, "", "shared")
_INVALID = Verdict(None, "service", "invalid_phone", REASONS["invalid_phone"])


class WaveMember(NamedTuple):
    """One message of a wave: to ``phone`` (contact ``contact_key``; both None when the recipient
    is not valid), with ``body``, due at ``not_before`` (None: now), under a fresh idempotency key.
    (A named tuple: a round makes thousands, and a frozen dataclass's construction cost more.)"""

    contact_key: str | None
    phone: str | None
    idempotency_key: str
    body: Body
    not_before: float | None = None


class TemplateWave:
    """The message every member of a wave shares (``base``: everything but recipient, body and
    send time), with its stored JSON cut around the body."""

    def __init__(self, base: Outgoing, frame: tuple[str, str, str]) -> None:
        self.base = base
        self._frame = frame

    @classmethod
    def of(cls, base: Outgoing) -> TemplateWave | None:
        """A wave of ``base``, or None when its messages must be admitted one by one: not a
        template on WhatsApp, or anything a wave leaves to ``admit_many`` (a fallback, a reply,
        an automatic answer, a header or button text the gate would clean)."""
        content = base.content
        if not isinstance(content, TemplateContent) or base.medium != WHATSAPP or base.fallback is not None \
                or base.fallback_media or base.fallback_after_minutes is not None or base.reply_to \
                or base.automatic is not None:
            return None
        marked = content.model_copy(update={"body": [TextParam(text=_MARK)]})
        if gate.clean_template(marked) is not marked:
            return None
        parts = gate.stored_json(base.model_copy(update={"content": marked}), marked, None, 0.0).split(_MARK_JSON)
        if len(parts) != 3:
            return None
        return cls(base, (parts[0], parts[1], parts[2]))

    def stored(self, body: Body, cleaned: Body) -> str:
        """What :func:`.gate.stored_json` writes for a member sent ``cleaned`` (``body`` as given)."""
        given = _json(body)
        sent = given if cleaned is body else _json(cleaned)
        head, middle, tail = self._frame
        return f"{head}{sent}{middle}{given}{tail}"

    def text_body(self) -> Body | None:
        """The base's own body as text, or None when it holds another kind of parameter."""
        content = self.base.content
        assert isinstance(content, TemplateContent)
        if isinstance(content.body, dict):
            named = {k: p.text for k, p in content.body.items() if isinstance(p, TextParam)}
            return named if len(named) == len(content.body) else None
        texts = [p.text for p in content.body if isinstance(p, TextParam)]
        return texts if len(texts) == len(content.body) else None


def _json(body: Body) -> str:
    if isinstance(body, dict):
        return pydantic_core.to_json({k: {"type": "text", "text": v} for k, v in body.items()}).decode()
    return pydantic_core.to_json([{"type": "text", "text": v} for v in body]).decode()


def _cleaned(body: Body) -> Body:
    """``body`` with :func:`.gate.clean_param` applied; the same object when nothing changes."""
    if isinstance(body, dict):
        cleaned_items = {k: clean_param(v) for k, v in body.items()}
        return body if cleaned_items == body else cleaned_items
    cleaned = [clean_param(v) for v in body]
    return body if cleaned == body else cleaned


def _message_ids(n: int) -> list[str]:
    """``n`` ids as :func:`.store.outbox.new_message_id` makes them, from one read of the random
    source, in increasing order: the members share one due time, and the sender takes messages due
    at the same time by id -- so in the wave's order."""
    stamp = f"m{int(time.time() * 1000):011x}"
    noise = os.urandom(6 * n)
    return [stamp + part.hex() for part in sorted(noise[6 * i:6 * i + 6] for i in range(n))]


class Judged(NamedTuple):
    """A wave's outbox rows and the decision for each member, before the rows are written."""

    rows: list[dict[str, Any]]
    decisions: list[Decision]


def admit_wave(db: Database, conn: Connection, facts: BatchFacts, wave: TemplateWave, members: list[WaveMember], *,
               plugin: str | None = None) -> list[Decision]:
    """Admit each member of ``wave`` through the gate's checks, in ``conn``'s transaction, with
    ``facts`` loaded for their contacts and the template. One decision per member, in order."""
    judged = judge_wave(facts, wave, members, plugin=plugin)
    return stored(conn, judged, outbox.add_many(db, conn, judged.rows), plugin)


def judge_wave(facts: BatchFacts, wave: TemplateWave, members: list[WaveMember], *,
               plugin: str | None = None) -> Judged:
    """:func:`admit_wave` up to the writing: each member's row and decision (nothing is read or
    written: ``facts`` hold what the gate needs). :func:`stored` says what became of them once the
    rows are inserted."""
    if not members:
        return Judged([], [])
    base = wave.base
    content = base.content
    assert isinstance(content, TemplateContent)
    number = base.business_phone_number_id
    t = now()
    found = gate.sendable_template(facts, content, number)
    if isinstance(found, Verdict):  # the template is refused: so is every member (a bad number says so first)
        verdicts = [_INVALID if m.contact_key is None else found for m in members]
        bodies = [m.body for m in members]
    else:
        verdicts, bodies = _judged(facts, content, found, members, number)
    # The columns every member shares, as the gate writes them (refused, so that no content is
    # encoded: each member's own columns are set below).
    _, shared = gate.message_row(Admission(base, ""), "-", _SHARED, "", None, plugin, "", t)
    decisions: list[Decision] = []
    rows = []
    for m, verdict, cleaned, message_id in zip(members, verdicts, bodies, _message_ids(len(members)), strict=True):
        refused = verdict.reason is not None
        reason = verdict.reason or verdict.hold
        # The status as its plain string (the same text stored): a dict of atomic values only is not
        # tracked by the garbage collector, and a round's rows otherwise outlived collections into
        # the oldest generation, making full collections about a tenth of admission's CPU
        # (docs/campaigns.md, "The garbage collector").
        status = (StatusValue.REFUSED if refused else StatusValue.QUEUED).value
        rows.append({**shared, "id": message_id, "idempotency_key": m.idempotency_key,
                     "contact_key": m.contact_key or "-", "recipient": None if refused else m.phone,
                     "category": verdict.category, "content": None if refused else wave.stored(m.body, cleaned),
                     "status": status, "reason": reason, "error_details": verdict.detail,
                     "not_before": m.not_before, "next_attempt_at": m.not_before or t})
        decisions.append(Decision(message_id, status, reason, verdict.detail, idempotency_key=m.idempotency_key))
    return Judged(rows, decisions)


def stored(conn: Connection, judged: Judged, inserted: list[str], plugin: str | None) -> list[Decision]:
    """The decisions of a :func:`judge_wave` whose rows were inserted but for those whose key was
    taken already (``inserted``: the keys that went in): those answer for the message stored first."""
    decisions = judged.decisions
    lost = {row["idempotency_key"] for row in judged.rows} - set(inserted)
    if lost:  # only a retried transaction whose first commit went through: the stored message is this one
        decisions = list(decisions)
        winners = gate.existing(conn, sorted(lost))
        for n, row in enumerate(judged.rows):
            first = winners.get(row["idempotency_key"])
            if first is not None:
                decisions[n] = gate.repeated(row["idempotency_key"], first)
    gate.log_refused(judged.rows, lost, plugin, None)
    return decisions


def _judged(facts: BatchFacts, content: TemplateContent, found: gate.Sendable, members: list[WaveMember],
            number: str | None) -> tuple[list[Verdict], list[Body]]:
    """Each member's verdict under the template ``found`` sendable, and its body as the gate cleans it.
    (Two lists rather than a pair per member: a pair holding a verdict stays tracked by the garbage
    collector, and the objects a round keeps alive are what its full collections are made of.)"""
    expectation = facts.expectation(found.info)
    rest = templates.check_rest(found.info, content, expectation)  # header and buttons: the same for all
    fits = gate.paused(content, found.category) if found.info.status == templates.PAUSED else \
        Verdict(content, found.category)
    verdicts: list[Verdict] = []
    bodies: list[Body] = []
    for m in members:
        if m.contact_key is None:
            verdicts.append(_INVALID)
            bodies.append(m.body)
            continue
        cleaned = _cleaned(m.body)
        problem = templates.check_body(found.info, cleaned, expectation) or rest
        verdicts.append(Verdict(None, found.category, "param_mismatch", problem) if problem else
                        gate.consented(facts, m.contact_key, fits, number, m.not_before))
        bodies.append(cleaned)
    return verdicts, bodies
