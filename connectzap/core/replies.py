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
from typing import Literal

from sqlalchemy import Connection, select

from .gate import Decision
from .messages import Outgoing, TemplateContent, TextContent
from .models import Contact
from .store.schema import windows
from .views import utc
from .windows import WINDOW_SECONDS

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
                  *, idempotency_key: str | None = None) -> Outgoing:
    return Outgoing(to=contact, content=TextContent(body=text), fallback=fallback,
                    business_phone_number_id=business_number, idempotency_key=idempotency_key)


def configured_fallback(name: str | None, language: str, params: list[str]) -> TemplateContent | None:
    """The ``[replies]`` template with the caller's parameters; None when none is configured."""
    return TemplateContent.model_validate({"name": name, "language": language, "body": params}) if name else None


@dataclass(frozen=True)
class AgentReply:
    """What became of a reply: the gate's ``decision``, how it goes (``sent_as``: ``text`` inside the
    window, ``template`` outside it; None when refused), the window, and whether this reply handed the
    conversation to people."""

    decision: Decision
    sent_as: SentAs | None
    window: WindowState
    handed_off: bool
