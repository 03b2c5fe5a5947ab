"""A person's reply to a customer, from wherever they work (a helpdesk through the REST API, an
order note, a CRM): free-form while the customer's 24-hour window is open, otherwise a template.

Callers need no window logic of their own. :func:`window_state` says whether the window is open
and when it closes; :func:`reply_message` builds the one message to admit: the text, with the
configured template (``[replies]``) as its fallback. The gate then decides, at admission and again
when the sender sends, which of the two goes -- so a window that closes in between still gets the
template, never a refusal from Meta. A reply also hands the conversation to people
(``[replies] handoff_minutes``), in the same transaction, so no automatic answer talks over the
agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select

from . import conversations, gate, identities
from .conversations import Handover
from .gate import Decision
from .messages import Outgoing, TemplateContent, TextContent
from .models import Contact
from .store import outbox
from .store.database import Database, now
from .store.schema import windows
from .views import utc
from .windows import WINDOW_SECONDS

if TYPE_CHECKING:
    from .settings import ReplySettings
    from .templates import BusinessAccounts

SentAs = Literal["text", "template"]


@dataclass(frozen=True)
class NumberWindow:
    """The window a customer opened with one business number (``""``: recorded before the number was known)."""

    business_phone_number_id: str
    last_inbound_at: datetime
    closes_at: datetime
    open: bool


@dataclass(frozen=True)
class WindowState:
    """The customer's 24-hour windows, newest first. ``open``/``closes_at`` are the newest one's."""

    numbers: list[NumberWindow]

    @property
    def newest(self) -> NumberWindow | None:
        return self.numbers[0] if self.numbers else None

    @property
    def open(self) -> bool:
        return any(n.open for n in self.numbers)

    @property
    def closes_at(self) -> datetime | None:
        return max((n.closes_at for n in self.numbers if n.open), default=None)


def window_state(conn: Connection, contact_key: str, at: float) -> WindowState:
    rows: list[tuple[str | None, float]] = [
        (r.business_phone_number_id, r.last_inbound_at) for r in conn.execute(
            select(windows.c.business_phone_number_id, windows.c.last_inbound_at)
            .where(windows.c.contact_key == contact_key))]
    numbers = [NumberWindow(number or "", utc(last), utc(last + WINDOW_SECONDS), at < last + WINDOW_SECONDS)
               for number, last in sorted(rows, key=lambda r: r[1], reverse=True)]
    return WindowState(numbers)


def reply_number(state: WindowState, asked: str | None) -> str | None:
    """The number to answer from: the one asked for, else the one the customer wrote to last
    (a free-form reply is only allowed from a number whose window is open)."""
    if asked:
        return asked
    newest = state.newest
    return newest.business_phone_number_id or None if newest else None


def reply_message(contact: Contact, text: str, fallback: TemplateContent | None, business_number: str | None,
                  *, origin: dict[str, str] | None = None) -> Outgoing:
    return Outgoing(to=contact, content=TextContent(body=text), fallback=fallback,
                    business_phone_number_id=business_number, origin=origin)


def configured_fallback(name: str | None, language: str, params: list[str]) -> TemplateContent | None:
    """The ``[replies]`` template with the caller's parameters; None when none is configured."""
    return TemplateContent.model_validate({"name": name, "language": language, "body": params}) if name else None


class ReplyRequest(BaseModel):
    """A person's reply, as a connector journals it (an event of kind ``reply``): an order note
    written to the customer, a reply typed in a CRM. The core admits it like
    :meth:`Connectzap.reply <connectzap.core.app.Connectzap.reply>` does, exactly once per event.

    :ivar origin: ids naming the record the reply came from (``{"source": "woocommerce", "shop":
        "main", "order": "1042", "note": "311"}``); kept with the message after its text is erased.
    :ivar by: who wrote it, as the conversation's handoff records it (a connector's name).
    """

    model_config = ConfigDict(extra="forbid")

    to: Contact
    text: str = Field(min_length=1, max_length=4096)
    fallback: TemplateContent | None = None
    fallback_params: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(default_factory=list,
                                                                                         max_length=20)
    business_phone_number_id: str | None = None
    origin: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=255)]] | None = \
        Field(default=None, max_length=8)
    idempotency_key: str | None = Field(default=None, max_length=255)
    by: str = Field(default="api", min_length=1, max_length=64)


def admit(db: Database, conn: Connection, secret: bytes, request: ReplyRequest, key: str, *,
          settings: ReplySettings, accounts: BusinessAccounts | None, handoff_listened: bool,
          strict_key: bool = False, source_event_id: int | None = None) -> AgentReply:
    """Put ``request`` through the gate under idempotency ``key`` inside ``conn``'s transaction: the
    text with the fallback template (the request's, else ``[replies]``'s), from the number the
    customer wrote to last; when admitted for the first time, hand the conversation to people."""
    at = now()
    contact_key = identities.resolve(conn, secret, request.to.phone, request.to.user_id)
    state = window_state(conn, contact_key, at) if contact_key else WindowState([])
    template = request.fallback or configured_fallback(settings.fallback_template, settings.fallback_language,
                                                       request.fallback_params)
    message = reply_message(request.to, request.text, template, reply_number(state, request.business_phone_number_id),
                            origin=request.origin)
    decision = gate.admit_many(db, conn, secret, [gate.Admission(message, key)], strict_key=strict_key,
                               source_event_id=source_event_id, plugin=request.by if source_event_id else None,
                               accounts=accounts)[0]
    handed = False
    if decision.accepted and not decision.duplicate and settings.handoff_minutes and contact_key:
        handed = conversations.hand_over(db, conn, contact_key, request.to, Handover(
            "human", "agent reply", settings.handoff_minutes, request.by), listened=handoff_listened)
    row = outbox.get(conn, decision.id) if decision.accepted else None
    sent_as: SentAs | None = row["content_type"] if row and row["content_type"] in ("text", "template") else None
    return AgentReply(decision, sent_as, state, handed)


@dataclass(frozen=True)
class AgentReply:
    """What became of a reply: the gate's ``decision``, how it goes (``sent_as``: ``text`` inside the
    window, ``template`` outside it; None when refused), the window, and whether this reply handed the
    conversation to people."""

    decision: Decision
    sent_as: SentAs | None
    window: WindowState
    handed_off: bool

    def as_dict(self) -> dict[str, object]:
        """What the event's ``core`` delivery records (``connectzap events show``)."""
        return {**self.decision.as_dict(), "sent_as": self.sent_as, "handed_off": self.handed_off,
                "window_open": self.window.open}
