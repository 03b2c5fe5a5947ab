"""The campaign engine: admits due recipients through the send gate, follows their messages.

One :func:`tick` per worker every few seconds, for each running campaign, in one transaction:

1. **Follow**: each admitted recipient's outcome follows its message's status (queued, sent,
   delivered, read, failed with the channel's code, refused by the send-time re-check), and a
   customer message after the send makes it ``replied``. A message the recipient's per-user
   marketing limit turned away (``marketing_limited``: WhatsApp's 131049) is *deferred*: admitted
   again after a growing delay (1 day, then 2), never at once.
2. **Admit** the next recipients in audience order, each through :func:`..gate.admit_many`
   exactly like any send (consent, template, idempotency), with the idempotency key
   ``campaign:<id>:<line>:<contact>:<attempt>`` -- the admission and the recipient's new outcome commit
   together, so a crash at any point neither loses a recipient nor admits one twice, and the
   sender sends each admitted message once. Admission stops while the campaign already has
   :data:`IN_FLIGHT` messages waiting in the outbox: the channel's own limits (the messaging-limit
   budget, the per-number throughput and per-recipient pacing) hold those back, and the campaign
   continues when they go out -- in the next 24-hour window when today's limit is used up.
   A recipient outside the send window in their own time zone waits until it opens; the
   campaign's rate spaces the messages' send times (``not_before``). The sender keeps both again
   as each message leaves (:mod:`.quiet_hours`, :mod:`.rate`).
3. **Finish** when no recipient is left to admit or waiting in the outbox.

The number and parameters of a recipient are erased once its message is settled.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel
from sqlalchemy import Connection, Select, and_, bindparam, func, literal_column, null, select, text, tuple_, update

from .. import gate
from ..idempotency import scoped_key
from ..messages import Outgoing, TemplateContent, TextParam
from ..models import CampaignFinished, Contact, Event, EventKind, StatusValue
from ..store import bulk, journal, outbox, pipeline
from ..store.database import Database, now
from ..store.schema import campaign_recipients as recipients
from ..store.schema import campaigns, windows
from ..store.schema import outbox as outbox_table
from . import rate, send_window
from .send_rules import SENDER_PREFIX
from .quiet_hours import REASON as QUIET_HOURS
from ..templates import BusinessAccounts
from ..store.pipeline import Sent
from ..template_waves import Body, Judged, TemplateWave, WaveMember, judge_wave, stored
from .states import Action, State, after
from ..wording import counted

IN_FLIGHT = 1000
"""At most this many of a campaign's messages wait in the outbox at once (what a pause takes back)."""
BATCH = 500
PART = 250
"""A round's recipients are admitted this many at a time: on PostgreSQL the server writes one part's
messages and outcomes while this process builds the next (:mod:`..store.pipeline`)."""
LOOKAHEAD = 10.0
"""The campaign rate's send times are given out this far ahead at most."""
PER_USER_LIMIT = "marketing_limited"
"""The reason a channel gives a marketing message the recipient's per-user limit turned away."""
BACKOFFS = (86400.0, 2 * 86400.0)
"""The delays before a deferred recipient is admitted again; after the last one it has failed."""
SETTLE_SECONDS = 86400.0
"""A ``sent`` message whose delivery nobody reported in this long is settled (its number erased)."""
MARGIN = 60.0
"""Seconds of changes :func:`follow` reads again: longer than any write transaction takes to commit."""
CHUNK = 1000
"""Recipients looked up by message id this many at a time."""
FOLLOW_DAYS = 7.0
"""A finished campaign's outcomes follow statuses and replies this long after it ended."""

IN_OUTBOX = "queued"
WAITING = ("pending", "deferred")
FOLLOWED = (IN_OUTBOX, "sent", "delivered", "read")
SETTLED = ("refused", "failed", "cancelled", "delivered", "read", "replied")
OUTCOMES = ("pending", "deferred", "queued", "refused", "sent", "delivered", "read", "replied", "failed",
            "cancelled")

S = StatusValue
_OUTCOME_OF = {S.QUEUED: IN_OUTBOX, S.SENDING: IN_OUTBOX, S.UNKNOWN: IN_OUTBOX, S.ACCEPTED: "sent", S.SENT: "sent",
               S.DELIVERED: "delivered", S.READ: "read", S.PLAYED: "read", S.FAILED: "failed",
               S.REFUSED: "refused", S.CANCELLED: "cancelled"}
_ERASED = {"recipient": None, "params": None}
_NOT_HANDED_OVER = sorted(set(OUTCOMES) - {"sent", "delivered", "read"})
"""Outcomes of recipients a reply cannot be to (:func:`follow`)."""


def cancel_key(campaign_id: str) -> str:
    return f"campaign:{campaign_id}"


def staging_id(campaign_id: str) -> str:
    """Where a replacement audience is written until it is complete: an id no campaign has (``~`` is
    not in the ids campaigns get), so admission never sees its rows."""
    return f"~{campaign_id}"


def idempotency_key(campaign_id: str, line: int, contact: str, attempt: int) -> str:
    """A recipient's key for its ``attempt``. The audience line comes first so that a round's keys
    follow one another in the outbox's key index (contact keys are random: each message's key
    landed on a page of its own, and SQLite's commits and PostgreSQL's backends grew with the outbox)."""
    return scoped_key("campaign", f"{campaign_id}:{line:010d}:{contact}:{attempt}")


def merged_body(default: Any, params: Any) -> Any:
    """The body a recipient gets from the template's ``default`` body and the recipient's body
    ``params``: a non-empty list replaces the default; a non-empty mapping (named parameters) is
    merged over the default's named ones (over none when the default is a list); anything else,
    empty or None, leaves the default. The one place this rule is written: :func:`content_for`,
    :func:`_content` and :func:`_text_body` all take their body from here."""
    if isinstance(params, list) and params:
        return params
    if isinstance(params, dict) and params:
        return {**default, **params} if isinstance(default, dict) else params
    return default


def content_for(template: dict[str, Any], params: Any) -> TemplateContent:
    """The template a recipient gets: the campaign's, its body :func:`merged_body` with the
    recipient's parameters."""
    return TemplateContent.model_validate({**template, "body": merged_body(template.get("body") or [], params)})


M = TypeVar("M", bound=BaseModel)


def _copied(model: M, **changes: Any) -> M:
    """``model.model_copy(update=changes)`` for admission's hot loop: the same fields and fields-set,
    without the copy protocol's generic path (``changes`` are already valid values; the models
    copied here have no extra fields and no private attributes)."""
    new = model.__class__.__new__(model.__class__)
    fields = model.__dict__.copy()
    fields.update(changes)
    object.__setattr__(new, "__dict__", fields)
    object.__setattr__(new, "__pydantic_fields_set__", model.__pydantic_fields_set__ | changes.keys())
    object.__setattr__(new, "__pydantic_extra__", None)
    object.__setattr__(new, "__pydantic_private__", None)
    return new


_TEXT = TextParam(type="text", text="-")


_is_text = str.__instancecheck__  # json.loads makes no subclass of str; mapped in C, unlike a generator


def _all_text(given: Any) -> bool:
    """Whether JSON-loaded ``given`` is a list or a mapping of text only."""
    if isinstance(given, list):
        return all(map(_is_text, given))
    return isinstance(given, dict) and all(map(_is_text, given.values()))


def _text_body(base: TemplateContent, default: Body | None, params: str | None) -> Body | None:
    """:func:`content_for`'s body of the stored ``params`` as text for a wave (``default``: the
    base's own body as text, None when it is not all text), or None when that body holds anything
    but text."""
    given = json.loads(params) if params else None
    if given and not _all_text(given):
        return None  # a parameter of another kind, or not parameters at all: the gate's path
    # Where the base's body is not text, the body is text only if the recipient's replaces it.
    body = merged_body(base.body if default is None else default, given)
    return body if default is not None or body is given else None


def _content(base: TemplateContent, template: dict[str, Any], params: str | None) -> TemplateContent:
    """:func:`content_for` of the stored ``params`` (JSON), without validating ``base`` again when
    they are plain text -- what every audience loader stores; anything else is validated in full."""
    given = json.loads(params) if params else None
    if given and not _all_text(given):
        return content_for(template, given)
    if isinstance(given, dict):
        given = {k: _copied(_TEXT, text=v) for k, v in given.items()}
    elif given:
        given = [_copied(_TEXT, text=v) for v in given]
    body = merged_body(base.body, given)
    return base if body is base.body else _copied(base, body=body)


# --- follow ------------------------------------------------------------------------------------

def follow(db: Database, conn: Connection, campaign: Any, limit: int = 5000) -> int:
    """Bring recipients' outcomes up to date with their messages and the customers' replies.

    Only what changed since the last look is read -- the campaign's messages updated since then
    (index on the outbox's cancel key and update time) and the customers who wrote since then --
    so a round costs what changed, not the size of the campaign. :data:`MARGIN` seconds are read
    again each time: a change stamped just before the last look may have committed after it. The
    messages admission inserted are not among them until something changes them (admission
    records their status on the recipient itself), so a round does not re-read the last minute's
    admissions; the recipients that changed are written in one statement per kind of change."""
    t = now()
    since = (campaign.followed_until or 0.0) - MARGIN
    changed_since = {m.id: m for m in conn.execute(changed_messages(campaign.id, since))}
    # Their recipients by message id, a chunk at a time: a join would let PostgreSQL start from the
    # recipients (the whole campaign) while its statistics do not know the campaign yet.
    rows = []
    ids = list(changed_since)
    for at in range(0, len(ids), CHUNK):
        for r in conn.execute(select(recipients.c.contact_key, recipients.c.outcome, recipients.c.backoffs,
                                     recipients.c.message_id, recipients.c.message_status).where(
                recipients.c.campaign_id == campaign.id, recipients.c.message_id.in_(ids[at:at + CHUNK]),
                recipients.c.outcome.in_(FOLLOWED))):
            message = changed_since[r.message_id]
            if r.message_status != message.status:
                rows.append((r, message))
        if len(rows) >= limit:
            break
    readmit = campaign.state in (State.RUNNING, State.PAUSED)  # a recipient given back is admitted again
    by_change: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    back_in_outbox = False
    for r, message in rows:
        values = {"campaign_id": campaign.id, "contact_key": r.contact_key, "message_status": message.status,
                  "updated_at": t, **_followed(r.backoffs, message, t, readmit)}
        by_change.setdefault(tuple(values), []).append(values)
        back_in_outbox |= values["outcome"] == IN_OUTBOX and r.outcome != IN_OUTBOX
    if back_in_outbox:  # a message reported handed over, then not (unknown): counted from the start again
        conn.execute(campaigns.update().where(campaigns.c.id == campaign.id)
                     .values(queued_from_due_at=-1, queued_from_line=-1))
    for same_columns in by_change.values():
        bulk.update_by(db, conn, recipients, ("campaign_id", "contact_key"), same_columns)
    waiting_again = [v["due_at"] for same_columns in by_change.values() for v in same_columns
                     if v["outcome"] in WAITING]
    if waiting_again:
        reopen(conn, campaign.id, min(waiting_again))
    changed = len(rows)
    # Who wrote since the last look, then those of them among the campaign's recipients: starting
    # from the recipients, the database read every one the campaign had sent to, each round. (The
    # outcome is asked as NOT IN the others: with IN, SQLite's planner preferred the outcome index
    # to the recipients' key once there were a few hundred writers.)
    writers = sorted({r[0] for r in conn.execute(select(windows.c.contact_key)
                                                 .where(windows.c.last_inbound_at >= since))})
    wrote = select(windows.c.contact_key).where(windows.c.last_inbound_at >= since,
                                                windows.c.contact_key == recipients.c.contact_key,
                                                windows.c.last_inbound_at > recipients.c.admitted_at)
    for at in range(0, len(writers), CHUNK):
        changed += conn.execute(recipients.update().where(
            recipients.c.campaign_id == campaign.id, recipients.c.contact_key.in_(writers[at:at + CHUNK]),
            recipients.c.outcome.not_in(_NOT_HANDED_OVER), wrote.exists())
            .values(outcome="replied", replied_at=_reply_time, updated_at=t, **_ERASED)).rowcount
    if int(since // 3600) != int(t // 3600):  # hourly: a sent message nobody reported on for a day is settled
        changed += conn.execute(recipients.update().where(
            recipients.c.campaign_id == campaign.id, recipients.c.outcome == "sent",
            recipients.c.recipient.is_not(None), recipients.c.admitted_at < t - SETTLE_SECONDS)
            .values(**_ERASED)).rowcount
    if len(rows) < limit:
        conn.execute(campaigns.update().where(campaigns.c.id == campaign.id).values(followed_until=t))
    return changed


def changed_messages(campaign_id: str, since: float) -> Select[Any]:
    """The campaign's messages changed after admission, stamped ``since`` or later (the partial index
    ``ix_outbox_cancel_changed``). :func:`follow` reads these first, then their recipients: a plan
    starting from the recipients would read the whole campaign."""
    return (select(outbox_table.c.id, outbox_table.c.status, outbox_table.c.reason, outbox_table.c.error_code,
                   outbox_table.c.error_details, outbox_table.c.next_attempt_at)
            .where(outbox_table.c.cancel_key == cancel_key(campaign_id), outbox_table.c.updated_at >= since,
                   _CHANGED_SINCE_ADMITTED))


_CHANGED_SINCE_ADMITTED = text("(outbox.status <> 'queued' OR outbox.updated_at > outbox.created_at)")
"""The predicate of ``ix_outbox_cancel_changed`` (:data:`..store.schema.CHANGED_SINCE_ADMITTED`) as
literal SQL: with 'queued' a bound parameter the planner could not use the partial index."""

_reply_time = (select(func.max(windows.c.last_inbound_at)).where(windows.c.contact_key == recipients.c.contact_key)
               .scalar_subquery())
"""When the customer last wrote: looked at every few seconds, it is (close to) their first reply."""


def _followed(backoffs: int, row: Any, t: float, readmit: bool) -> dict[str, Any]:
    """A recipient's new values for its message ``row`` (status, reason, error) after ``backoffs``
    deferrals; ``readmit``: the campaign still admits (running or paused)."""
    outcome = _OUTCOME_OF.get(row.status, IN_OUTBOX)
    values: dict[str, Any] = {"outcome": outcome}
    if outcome == "cancelled" and row.reason == QUIET_HOURS and readmit:
        # the sender gave it back: the recipient's window closed while it waited; admitted again when it opens
        return {"outcome": "pending", "due_at": row.next_attempt_at, "message_id": None}
    if outcome == "failed" and row.reason == PER_USER_LIMIT and backoffs < len(BACKOFFS) and readmit:
        # never resent at once: the recipient waits, and then goes through the gate again
        return {"outcome": "deferred", "due_at": t + BACKOFFS[backoffs], "backoffs": backoffs + 1,
                "reason": PER_USER_LIMIT, "error_code": row.error_code, "error_title": row.error_details,
                "message_id": None}
    if outcome in ("failed", "refused"):
        values.update(reason=row.reason, error_code=row.error_code, error_title=row.error_details)
    if outcome in SETTLED:
        values.update(_ERASED)
    return values


# --- admit -------------------------------------------------------------------------------------

def admit(db: Database, conn: Connection, secret: bytes, campaign: Any,
          accounts: BusinessAccounts | None = None) -> tuple[int, str | None]:
    """Admit the campaign's next due recipients. Returns how many, and why it waits (or None)."""
    t = now()
    marks = _marks(conn, campaign.id)
    waiting_in_outbox, marks = _count_in_outbox(conn, campaign.id, marks)
    room = min(BATCH, IN_FLIGHT - waiting_in_outbox)
    if room <= 0:
        return 0, _held_in_outbox(conn, campaign.id, t, waiting_in_outbox, marks, full=True)
    slot = max(t, campaign.next_slot_at or t)
    spacing = 60.0 / campaign.rate_per_minute if campaign.rate_per_minute else 0.0
    if spacing:
        if slot > t + LOOKAHEAD:  # the campaign rate: the next send times are already given out
            return 0, _held_in_outbox(conn, campaign.id, t, waiting_in_outbox, marks, full=False)
        room = min(room, math.floor((t + LOOKAHEAD - slot) / spacing) + 1)
    due = _due(conn, campaign.id, t, room, marks.cursor)
    if not due:  # the last ones may all be admitted, and held by the channel: say so as when the cap is reached
        return 0, _next_due(conn, campaign.id, t) or _held_in_outbox(conn, campaign.id, t, waiting_in_outbox,
                                                                      marks, full=False)
    # Every recipient read is admitted now or (``later``) due again when its window opens, after ``t``:
    # whoever still waits sorts after the last one read; whoever goes into the outbox, after the first.
    moved: dict[str, Any] = {"cursor_due_at": due[-1].due_at, "cursor_line": due[-1].line}
    moved["queued_from_due_at"], moved["queued_from_line"] = min(marks.in_outbox, (due[0].due_at, due[0].line))
    ready, later = _in_window(due, campaign, t)
    if later:
        conn.execute(recipients.update().where(recipients.c.campaign_id == campaign.id,
                                               recipients.c.contact_key == bindparam("b_contact"))
                     .values(due_at=bindparam("b_due"), updated_at=t),
                     [{"b_contact": contact, "b_due": opens} for contact, opens in later])
    if not ready:
        conn.execute(campaigns.update().where(campaigns.c.id == campaign.id).values(**moved))
        return 0, None
    template = json.loads(campaign.template)
    base = TemplateContent.model_validate(template)  # checked once; each recipient adds only parameters
    # Each recipient's message is a copy of one built without validating again what is already
    # checked: the number is the E.164 the audience was loaded with (read by phonenumbers then), the
    # template is ``base``.
    everyone = Outgoing.model_construct(to=Contact.model_construct(), content=base, cancel_key=cancel_key(campaign.id),
                                        origin={"campaign": campaign.id},
                                        business_phone_number_id=campaign.business_phone_number_id)
    wave = TemplateWave.of(everyone)
    known: dict[tuple[str | None, str | None], str] = {(row.recipient, None): row.contact_key
                                                       for row in ready if row.recipient}
    # The contact keys were made when the audience was loaded (the HMAC of the same E.164 number);
    # only one-by-one admission looks them up by number (``known``).
    keys = {row.contact_key for row in ready if row.recipient}
    templates_known = gate.BatchFacts(conn, set(), {base.name}, None, accounts)
    plugin = SENDER_PREFIX + campaign.id
    parts: list[_Part] = []
    with pipeline.writes(conn) as writes:
        # The contacts' facts are asked for first: the server reads them while the round is split.
        # (Read before any write is sent: reading an answer waits for everything sent before it.)
        asked = [writes.query(q) for q in gate.BatchFacts.contact_queries(conn, keys)] if keys else []
        pieces = [ready[at:at + PART] for at in range(0, len(ready), PART)]
        splits = [_split_round(campaign.id, rows, everyone, template, wave, t, slot + n * PART * spacing, spacing)
                  for n, rows in enumerate(pieces)]
        ledger, unreachable = [answer.rows() for answer in asked] or [[], []]
        facts = templates_known.for_contacts(keys, ledger, unreachable, known)
        for rows, split in zip(pieces, splits, strict=True):
            parts.append(_admit_part(db, conn, writes, secret, campaign.id, t, rows, split, facts, wave, plugin))
        writes.settle()
        for part in parts:  # what the outbox took, now that the writes are done
            if part.judged is not None and part.sent is not None:
                inserted = outbox.inserted_keys(conn, part.judged.rows, part.sent.rowcount)
                kept = stored(conn, part.judged, inserted, plugin)
                if kept != part.judged.decisions:
                    part.decided.update(zip(part.split.member_places, kept, strict=True))
                    _record_admitted(db, conn, writes, campaign.id, t, part.rows, part.decided)
    split = parts[-1].split
    if spacing:
        moved["next_slot_at"] = split.send_times[-1] + spacing
    conn.execute(campaigns.update().where(campaigns.c.id == campaign.id).values(**moved))
    return len(ready), None


class _Split(NamedTuple):
    """A round's recipients split by :func:`_split_round`: the wave's members and the gate's
    admissions, each with their places in the round. (Places in lists of their own, not a pair per
    recipient: a pair holding a member stays tracked by the garbage collector, and the objects a
    round keeps alive are what its full collections are made of.)"""

    member_places: list[int]
    members: list[WaveMember]
    admission_places: list[int]
    admissions: list[gate.Admission]
    send_times: list[float]


class _Part(NamedTuple):
    """A part of a round, admitted (:func:`_admit_part`): its recipients, their split, and each one's
    decision by place; a wave's rows and their insert, whose count is known once the writes settle."""

    rows: list[_Due]
    split: _Split
    decided: dict[int, gate.Decision]
    judged: Judged | None
    sent: Sent | None


def _admit_part(db: Database, conn: Connection, writes: pipeline.Writes, secret: bytes, campaign_id: str, t: float,
                rows: list[_Due], split: _Split, facts: gate.BatchFacts, wave: TemplateWave | None,
                plugin: str) -> _Part:
    """Admit the recipients ``rows`` of a round (``split`` between the wave and the gate) and record
    their outcomes: the wave's messages and the outcomes are sent through ``writes`` (PostgreSQL
    writes them while the next part is built)."""
    decided: dict[int, gate.Decision] = {}
    judged = sent = None
    if split.members:
        assert wave is not None
        judged = judge_wave(facts, wave, split.members, plugin=plugin)
        sent = outbox.send_many(writes, conn, judged.rows)
        decided.update(zip(split.member_places, judged.decisions, strict=True))
    if split.admissions:
        decided.update(zip(split.admission_places, gate.admit_many(
            db, conn, secret, split.admissions, plugin=plugin, facts=facts), strict=True))
    _record_admitted(db, conn, writes, campaign_id, t, rows, decided)
    return _Part(rows, split, decided, judged, sent)


def _split_round(campaign_id: str, ready: list[Any], everyone: Outgoing, template: dict[str, Any],
                 wave: TemplateWave | None, t: float, slot: float, spacing: float) -> _Split:
    """The round's recipients (by their place in ``ready``) as members of ``wave``, or, where the wave
    cannot take them, as messages for ``gate.admit_many``; and each one's send time."""
    base = everyone.content
    assert isinstance(base, TemplateContent)
    default = wave.text_body() if wave else None
    split = _Split([], [], [], [], [])
    send_times = split.send_times
    for n, row in enumerate(ready):
        at = slot + n * spacing
        send_times.append(at)
        not_before = _utc(at) if at > t else None
        # fresh key: no earlier message can hold this key -- the key is admitted in the transaction that
        # moves the recipient past this attempt, under the campaign's row lock -- so the gate skips
        # looking it up; the outbox's unique key still stops a second message, whatever happens.
        key = idempotency_key(campaign_id, row.line, row.contact_key, row.attempt)
        body = _text_body(base, default, row.params) if wave else None
        if body is not None:
            split.member_places.append(n)
            split.members.append(WaveMember(row.contact_key if row.recipient else None, row.recipient, key, body,
                                            not_before.timestamp() if not_before else None))
            continue
        outgoing = _copied(everyone, to=_copied(everyone.to, phone=row.recipient),
                           content=_content(base, template, row.params), not_before=not_before)
        split.admission_places.append(n)
        split.admissions.append(gate.Admission(outgoing, key, fresh_key=True))
    return split


class _Due(NamedTuple):
    """What admission reads of a due recipient. A plain tuple, not the database's row: a round reads
    each field several times, and a row's attribute lookup costs several times a tuple's."""

    contact_key: str
    line: int
    recipient: str | None
    params: str | None
    zones: str | None
    attempt: int
    due_at: float
    place: int | None
    """SQLite's rowid of the recipient, by which its row is updated (None on PostgreSQL)."""


_DUE_COLUMNS = tuple(recipients.c[name] for name in _Due._fields[:-1])


def _due(conn: Connection, campaign_id: str, t: float, room: int, after: tuple[float, int]) -> list[_Due]:
    """The first ``room`` recipients due at ``t``, by due time and audience order, from ``after``
    (the campaign's cursor: :func:`reopen`). One query per waiting outcome, each read in the order
    of ``ix_campaign_recipients_due``: with both outcomes in one query the database sorted every
    waiting recipient of the campaign to return the first few, each round -- a campaign's admission
    grew with the square of its size. Starting after the cursor, a round does not step over the
    index entries every earlier round left behind (PostgreSQL keeps them until it vacuums)."""
    place = literal_column(bulk.ROWID) if conn.dialect.name == "sqlite" else null()
    start = tuple_(recipients.c.due_at, recipients.c.line) > tuple_(*after)
    rows = [list(map(_Due._make, conn.execute(select(*_DUE_COLUMNS, place).where(
        recipients.c.campaign_id == campaign_id, recipients.c.outcome == outcome, start, recipients.c.due_at <= t)
        .order_by(recipients.c.due_at, recipients.c.line).limit(room)))) for outcome in WAITING]
    return list(itertools.islice(heapq.merge(*rows, key=lambda r: (r.due_at, r.line)), room))


class _Marks(NamedTuple):
    """Where a campaign's searches of ``ix_campaign_recipients_due`` start, in (due time, line) order."""

    cursor: tuple[float, int]
    """Every recipient waiting to be admitted sorts after it."""
    in_outbox: tuple[float, int]
    """Every recipient waiting in the outbox sorts at or after it."""


def _marks(conn: Connection, campaign_id: str) -> _Marks:
    """The campaign's marks, read afresh: :func:`follow` may have moved them back in this transaction."""
    row = conn.execute(select(campaigns.c.cursor_due_at, campaigns.c.cursor_line, campaigns.c.queued_from_due_at,
                              campaigns.c.queued_from_line).where(campaigns.c.id == campaign_id)).one()
    return _Marks((float(row[0]), int(row[1])), (float(row[2]), int(row[3])))


def _count_in_outbox(conn: Connection, campaign_id: str, marks: _Marks) -> tuple[int, _Marks]:
    """How many of the campaign's recipients wait in the outbox, counted from the first of them, which
    becomes the mark the next count starts from: a count from the campaign's start stepped over an
    index entry for every recipient that had ever left the outbox (until the database cleans them).
    With none there, the mark moves to the cursor: admission moves it back to what it admits."""
    first = conn.execute(select(recipients.c.due_at, recipients.c.line).where(_queued(campaign_id, marks))
                         .order_by(recipients.c.due_at, recipients.c.line).limit(1)).first()
    start = (float(first.due_at), int(first.line)) if first is not None else marks.cursor
    if start != marks.in_outbox:
        conn.execute(campaigns.update().where(campaigns.c.id == campaign_id)
                     .values(queued_from_due_at=start[0], queued_from_line=start[1]))
    marks = marks._replace(in_outbox=start)
    if first is None:
        return 0, marks
    counted = conn.execute(select(func.count()).select_from(recipients).where(_queued(campaign_id, marks)))
    return counted.scalar_one(), marks


def _queued(campaign_id: str, marks: _Marks) -> Any:
    """The campaign's recipients waiting in the outbox, searched from the mark."""
    return and_(recipients.c.campaign_id == campaign_id, recipients.c.outcome == IN_OUTBOX,
                tuple_(recipients.c.due_at, recipients.c.line) >= tuple_(*marks.in_outbox))


def reopen(conn: Connection, campaign_id: str, due_at: float) -> None:
    """Recipients of the campaign wait again from ``due_at`` on (given back, deferred): the cursor
    moves before them if it is not already, so that admission finds them. Every statement that makes
    a recipient wait calls this in its transaction; recipients only ever sort after the cursor."""
    conn.execute(campaigns.update().where(campaigns.c.id == campaign_id, campaigns.c.cursor_due_at >= due_at)
                 .values(cursor_due_at=due_at, cursor_line=-1))


_BY_KEY = ("campaign_id", "contact_key")


def _record_admitted(db: Database, conn: Connection, writes: pipeline.Writes, campaign_id: str, t: float,
                     rows: list[_Due], decided: dict[int, gate.Decision]) -> None:
    """Each admitted recipient's outcome (``decided``: the decision for each of ``rows`` by place),
    one statement for the batch (:func:`..store.bulk.update_by`), sent through ``writes`` on
    PostgreSQL. On SQLite each row is found by its rowid (``place``), with its key as a guard: found
    by the key, each recipient cost a random page of the key's index (its contact's hash), read from
    disk -- a tenth of admission's time at a million recipients. Where a guard does not hold (no
    statement here moves a row, but rowids are SQLite's to give), the batch is written again by key:
    the same values, so a row written twice is unchanged. A refused recipient is settled: its number
    and parameters are erased."""
    values = []
    for n, row in enumerate(rows):
        decision = decided[n]
        kept = decision.accepted
        values.append(dict(campaign_id=campaign_id, contact_key=row.contact_key,
                           outcome=IN_OUTBOX if kept else "refused", message_id=decision.id,
                           message_status=decision.status, reason=decision.reason,
                           error_title=None if kept else decision.detail, error_code=None, attempt=row.attempt + 1,
                           admitted_at=t, updated_at=t, recipient=row.recipient if kept else None,
                           params=row.params if kept else None))
    if db.is_sqlite:
        by_place = [{bulk.ROWID: row.place, **value} for row, value in zip(rows, values, strict=True)]
        if bulk.update_by(db, conn, recipients, (bulk.ROWID, *_BY_KEY), by_place) == len(values):
            return
    bulk.send_update_by(writes, conn, recipients, _BY_KEY, values)


def _utc(at: float) -> Any:
    from datetime import UTC, datetime
    return datetime.fromtimestamp(at, UTC)


def _in_window(due: Sequence[Any], campaign: Any, t: float) -> tuple[list[Any], list[tuple[str, float]]]:
    """``due`` split into those inside the send window now and those waiting for it (with when it opens)."""
    if campaign.window_start is None or campaign.window_end is None:
        return list(due), []
    ready, later = [], []
    for row in due:
        zones = tuple((row.zones or "").split())
        opens = send_window.next_open(zones, t, campaign.window_start, campaign.window_end)
        if opens <= t:
            ready.append(row)
        else:
            later.append((row.contact_key, opens))
    return ready, later


def _next_due(conn: Connection, campaign_id: str, t: float) -> str | None:
    first: float | None = conn.execute(select(func.min(recipients.c.due_at)).where(
        recipients.c.campaign_id == campaign_id, recipients.c.outcome.in_(WAITING))).scalar_one()
    if first is None or first <= t:
        return None
    return f"the next recipients are due at {_utc(first):%Y-%m-%d %H:%M} UTC (their send window or a backoff)"


def _held_in_outbox(conn: Connection, campaign_id: str, t: float, waiting: int, marks: _Marks,
                    full: bool) -> str | None:
    """Why nothing is admitted while ``waiting`` of the campaign's messages wait in the outbox: the
    channel's limits or the campaign's own rate hold them beyond the next minute, or (``full``:
    :data:`IN_FLIGHT` reached) more are admitted as they go out; None when neither (``full`` false
    and nothing holding them, or nothing waiting)."""
    if not waiting:
        return None
    # from the recipients in the outbox (IN_FLIGHT at most): the campaign's key names all its messages ever sent
    in_outbox = select(recipients.c.message_id).where(_queued(campaign_id, marks))
    first = conn.execute(select(outbox_table.c.next_attempt_at, outbox_table.c.reason).where(
        outbox_table.c.id.in_(in_outbox), outbox_table.c.status == S.QUEUED)
        .order_by(outbox_table.c.next_attempt_at).limit(1)).first()
    if first is not None and first.next_attempt_at > t + 60:
        held_by = ("the campaign's rate spaces the send times; the next is due at" if first.reason == rate.REASON
                   else "the channel's limits (the messaging limit, throughput) hold the next until")
        return (f"{_in_outbox(waiting)}; {held_by} {_utc(first.next_attempt_at):%Y-%m-%d %H:%M} UTC, "
                "and the campaign continues then")
    return f"{_in_outbox(waiting)}; more are admitted as they go out" if full else None


def _in_outbox(waiting: int) -> str:
    return f"{counted(waiting, 'message waits', 'messages wait')} in the outbox"


# --- the whole tick ----------------------------------------------------------------------------

def due_to_start(conn: Connection, t: float) -> list[str]:
    return [r[0] for r in conn.execute(select(campaigns.c.id).where(campaigns.c.state == State.SCHEDULED,
                                                                    campaigns.c.starts_at <= t))]


def tick(db: Database, secret: bytes, notify: bool = True, accounts: BusinessAccounts | None = None,
         unsendable: Callable[[Any], str | None] | None = None) -> int:
    """One round over every campaign with work: start the scheduled ones that are due, follow,
    admit, finish. Returns how much changed (0 when there was nothing to do). ``unsendable`` says
    why a campaign (its row) cannot start now: a due scheduled campaign then stays scheduled and
    shows why (``waiting``) until it can."""
    t = now()
    with db.read() as conn:
        ids = [r[0] for r in conn.execute(select(campaigns.c.id).where(
            # a cancelled or finished campaign's outcomes still follow what was already on its way
            campaigns.c.state.in_((State.SCHEDULED, State.RUNNING, State.PAUSED, State.FINISHED, State.CANCELLED)),
            (campaigns.c.ended_at.is_(None)) | (campaigns.c.ended_at > t - FOLLOW_DAYS * 86400)))]
    done = 0
    for campaign_id in ids:
        with db.begin() as conn:
            done += _tick_one(db, conn, secret, campaign_id, notify, accounts, unsendable)
    return done


def _tick_one(db: Database, conn: Connection, secret: bytes, campaign_id: str, notify: bool,
              accounts: BusinessAccounts | None, unsendable: Callable[[Any], str | None] | None = None) -> int:
    campaign = conn.execute(db.for_update(select(campaigns).where(campaigns.c.id == campaign_id))).first()
    if campaign is None:
        return 0  # another worker holds it (PostgreSQL), or it is gone
    t = now()
    done = 0
    if campaign.state == State.SCHEDULED:
        if campaign.starts_at is None or campaign.starts_at > t:
            return 0
        why = unsendable(campaign) if unsendable is not None else None
        if why is not None:
            if why != campaign.waiting:
                conn.execute(campaigns.update().where(campaigns.c.id == campaign_id).values(waiting=why, updated_at=t))
            return 0
        set_state(conn, campaign, Action.START)
        campaign = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).one()
        done += 1
    done += follow(db, conn, campaign)
    if campaign.state != State.RUNNING:
        return done
    admitted, waiting = admit(db, conn, secret, campaign, accounts)
    done += admitted
    if not _anything_left(conn, campaign_id):
        set_state(conn, campaign, Action.FINISH)
        if notify:
            announce_end(db, conn, campaign_id)
        return done + 1
    if waiting != campaign.waiting:
        conn.execute(campaigns.update().where(campaigns.c.id == campaign_id).values(waiting=waiting, updated_at=t))
    return done


def _anything_left(conn: Connection, campaign_id: str) -> bool:
    """Whether a recipient of the campaign still waits to be admitted or waits in the outbox. The
    waiting are looked for after the cursor, those in the outbox from their mark."""
    marks = _marks(conn, campaign_id)
    if _due(conn, campaign_id, math.inf, 1, marks.cursor):
        return True
    return conn.execute(select(recipients.c.line).where(_queued(campaign_id, marks)).limit(1)).first() is not None


def announce_end(db: Database, conn: Connection, campaign_id: str) -> None:
    """Journal the campaign's end for ``on_campaign_finished`` (in the transaction that ends it)."""
    row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).one()
    counts = {r[0]: int(r[1]) for r in conn.execute(
        select(recipients.c.outcome, func.count()).where(recipients.c.campaign_id == campaign_id)
        .group_by(recipients.c.outcome))}
    template = json.loads(row.template)
    ended = CampaignFinished(id=row.id, name=row.name, state=row.state, template=template["name"],
                             language=template["language"], started_at=_utc(row.started_at) if row.started_at else None,
                             ended_at=_utc(row.ended_at or now()), recipients=sum(counts.values()),
                             outcomes={k: counts[k] for k in OUTCOMES if counts.get(k)},
                             audience_source=row.audience_source)
    journal.append(db, conn, [Event.of(EventKind.CAMPAIGN_FINISHED, ended, source="campaigns",
                                       dedupe_key=f"campaign:{campaign_id}:{row.state}")])


def set_state(conn: Connection, campaign: Any, action: Action) -> State:
    """Move ``campaign`` (a row) by ``action``: the state machine decides; pausing and cancelling take
    back what waits in the outbox, so nothing of the campaign stays queued."""
    target = after(campaign.state, action)
    t = now()
    values: dict[str, Any] = {"state": target.value, "updated_at": t}
    if target is State.RUNNING and campaign.started_at is None:
        values["started_at"] = t
    if target in (State.FINISHED, State.CANCELLED):
        values.update(ended_at=t, waiting=None)
    if target not in (State.DRAFT, State.SCHEDULED):
        # A replacement audience can no longer take the audience's place: rows a load left behind
        # (its process killed mid-file) hold numbers and parameters that no one would ever erase.
        conn.execute(recipients.delete().where(recipients.c.campaign_id == staging_id(campaign.id)))
    if action in (Action.PAUSE, Action.CANCEL):
        taken = outbox.take_back(conn, cancel_key(campaign.id), f"campaign_{target.value}")
        mine = and_(recipients.c.campaign_id == campaign.id, recipients.c.message_id.in_(taken))
        if action is Action.PAUSE:
            # admitted again on resume, under a new key (the attempt it was taken back in is over)
            conn.execute(update(recipients).where(mine).values(outcome="pending", message_id=None,
                                                               message_status=None, due_at=t, updated_at=t))
            reopen(conn, campaign.id, t)
        else:
            conn.execute(update(recipients).where(mine).values(outcome="cancelled", updated_at=t, **_ERASED))
            conn.execute(update(recipients).where(recipients.c.campaign_id == campaign.id,
                                                  recipients.c.outcome.in_(WAITING))
                         .values(outcome="cancelled", updated_at=t, **_ERASED))
    conn.execute(campaigns.update().where(campaigns.c.id == campaign.id).values(**values))
    return target
