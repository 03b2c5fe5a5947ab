"""Who handles a contact's conversation: the bot (automatic answers) or a person.

A person takes a conversation over for some minutes or until it is released; meanwhile the
core sends no automatic answer to that contact (:mod:`.automatic`). The store keeps one row per
contact a person handles -- keyed by the contact's keyed hash, so a customer known only by a
business-scoped user id works like one with a number -- and none for the others: releasing
deletes the row, and an expired one is erased by the housekeeping.

Hooks see it as ``ctx.conversation`` (changes are buffered and committed with the hook's
proposals); the CLI, the REST API and connectors use the engine's methods
(:meth:`~connectzap.core.app.Connectzap.hand_to_human`, :meth:`~connectzap.core.app.Connectzap.release`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from sqlalchemy import Connection, select

from .arbitration import human_handles
from .models import Contact, Event, EventKind, Handoff
from .store import journal
from .store.database import Database, now
from .store.schema import conversations
from .views import utc

if TYPE_CHECKING:
    from .app import Connectzap

HandledBy = Literal["bot", "human"]


@dataclass(frozen=True)
class Handover:
    """A change of hands, to be written: to ``human`` (with ``reason`` and ``minutes``, None for
    until released) or back to the ``bot``."""

    to: HandledBy
    reason: str = ""
    minutes: int | None = None
    by: str = ""
    """Who asked: a plugin's name, ``cli``, ``api``, a connector."""


@dataclass(frozen=True)
class ConversationState:
    """A conversation now: ``handled_by``, and while a person handles it, why, since and until when."""

    handled_by: HandledBy
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def state(conn: Connection, contact_key: str, at: float | None = None) -> ConversationState:
    t = now() if at is None else at
    if not human_handles(conn, contact_key, t):
        return ConversationState("bot")
    row = conn.execute(select(conversations).where(conversations.c.contact_key == contact_key)).one()
    return ConversationState("human", row.reason, utc(row.since), utc(row.until) if row.until else None)


def apply(db: Database, conn: Connection, contact_key: str, change: Handover, event_id: int | None = None,
          at: float | None = None) -> bool:
    """Write ``change``; returns whether the conversation changed hands (a second handoff while a
    person already handles it only moves its end)."""
    t = now() if at is None else at
    was_human = human_handles(conn, contact_key, t)
    if change.to == "bot":
        conn.execute(conversations.delete().where(conversations.c.contact_key == contact_key))
        return was_human
    until = t + change.minutes * 60 if change.minutes is not None else None
    values = {"reason": change.reason[:255], "until": until, "updated_at": t}
    if was_human:
        conn.execute(conversations.update().where(conversations.c.contact_key == contact_key).values(**values))
    else:
        db.upsert(conn, conversations, {"contact_key": contact_key, "handled_by": "human", "since": t,
                                        "event_id": event_id, **values}, ["contact_key"])
    return not was_human


def hand_over(db: Database, conn: Connection, contact_key: str, contact: Contact, change: Handover, *,
              listened: bool, event_id: int | None = None) -> bool:
    """:func:`apply` ``change``; when the conversation changed hands and something listens to
    ``handoff`` events (a CRM connector, a plugin), journal one for them. Returns whether it changed."""
    t = now()
    if not apply(db, conn, contact_key, change, event_id=event_id, at=t):
        return False
    if listened:
        until = t + change.minutes * 60 if change.to == "human" and change.minutes is not None else None
        handoff = Handoff(contact=contact, to=change.to, at=utc(t), reason=change.reason, by=change.by,
                          until=utc(until) if until is not None else None)
        journal.append(db, conn, [Event.of(EventKind.HANDOFF, handoff, source=change.by or "core",
                                           dedupe_key=f"{contact_key}:{change.to}:{t:.6f}")])
    return True


@dataclass(frozen=True)
class HandledConversation:
    """A conversation a person handles now, known by its contact's keyed hash only (no number is kept)."""

    contact_key: str
    reason: str
    since: datetime
    until: datetime | None
    event_id: int | None


def handled_by_people(conn: Connection, limit: int, at: float | None = None) -> list[HandledConversation]:
    """The conversations people handle at ``at`` (expired handoffs left out), most recent first."""
    t = now() if at is None else at
    rows = conn.execute(select(conversations).where(
        (conversations.c.until.is_(None)) | (conversations.c.until > t)).order_by(
        conversations.c.since.desc(), conversations.c.contact_key).limit(limit)).all()
    return [HandledConversation(r.contact_key, r.reason, utc(r.since), utc(r.until) if r.until else None, r.event_id)
            for r in rows]


def erase_expired(conn: Connection, at: float | None = None) -> int:
    """Forget the handoffs whose time is over (they are the bot's again)."""
    t = now() if at is None else at
    return conn.execute(conversations.delete().where(conversations.c.until.is_not(None),
                                                     conversations.c.until <= t)).rowcount


class Conversation:
    """``ctx.conversation``: the conversation with the event's contact.

    Changes are buffered: they take effect with the hook's proposals, only if the hook succeeds;
    :attr:`handled_by` already answers with them.
    """

    def __init__(self, app: Connectzap, contact: Contact, plugin: str) -> None:
        self._app = app
        self._contact = contact
        self._plugin = plugin
        self.pending: list[Handover] = []

    @property
    def contact(self) -> Contact:
        return self._contact

    @property
    def handled_by(self) -> HandledBy:
        if self.pending:
            return self.pending[-1].to
        key = self._app.contact_key_of(self._contact)
        if key is None:
            return "bot"
        with self._app.db.read() as conn:
            return state(conn, key).handled_by

    def hand_to_human(self, reason: str, minutes: int | None = None) -> None:
        """Hand the conversation to people for ``minutes`` (None: until released): no automatic
        answers meanwhile, though an answer to the message that asked for it may still go."""
        if minutes is not None and minutes <= 0:
            raise ValueError("minutes must be positive (or None: until released)")
        self.pending.append(Handover("human", reason, minutes, self._plugin))

    def release(self) -> None:
        """Give the conversation back to the bot."""
        self.pending.append(Handover("bot", by=self._plugin))

    def __repr__(self) -> str:
        return f"<Conversation plugin={self._plugin} pending={len(self.pending)}>"
