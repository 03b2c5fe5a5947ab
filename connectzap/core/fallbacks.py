"""Fallback: one message on another medium when a WhatsApp message cannot be delivered.

A WhatsApp send may name media to fall back on (:attr:`.messages.Outgoing.fallback_media`, in
order). When it ends in a trigger -- the number has no WhatsApp account (``unreachable``), it
failed with an error code listed in ``[fallback] codes`` (:func:`triggered`), or the gate refused it
as ``unreachable`` or ``window_closed`` with no template to go as (:data:`REFUSALS`) -- the core admits
**one** fallback message: on each listed medium in turn, the same content goes through the gate as
any send does (consent for the message's category on that medium; an opted-out customer is refused
there), until one is admitted.

Exactly once: each medium's attempt is admitted under a key derived from the original message's id
(:func:`fallback_key`), so a replayed failure status, or one processed again after a crash, finds
the decisions already taken -- refusals included, recorded like any refused send -- and adds none.
The fallback is linked to its original (``outbox.fallback_of``).

Which media: those the message names (``fallback_channels``), else those configured for it
(:func:`configured`): its connector's rule for the record it is about (a shop's ``fallback``,
:meth:`.connector.Connector.fallback_media`), else ``[fallback] media``.

Where it goes: SMS to the original's number (a customer known only by a business-scoped user id
has none); email to the ``to.email`` the original named, kept with its content until it is settled
and erased with it. Content and address must still be there: a failure reported after the
message's data was erased (``privacy.retention_hours``) triggers no fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError
from sqlalchemy import Connection

from . import logs
from .bsuids import is_bsuid
from .media import EMAIL, WHATSAPP
from .messages import Outgoing
from .models import Category, Contact, DeliveryOutcome
from .store import outbox
from .store.database import now

if TYPE_CHECKING:
    from .gate import Decision

log = logging.getLogger("connectzap.fallbacks")


def triggered(outcome: str | None, error_code: str | None, codes: Collection[str],
              reason: str | None = None) -> str | None:
    """The trigger a failure is, or None: ``unreachable`` (its neutral outcome), ``template_paused``
    (the channel's reason: WhatsApp dropped the message because its template was paused), or
    ``failed`` when its error code is one of ``codes`` (``[fallback] codes``)."""
    if outcome == DeliveryOutcome.UNREACHABLE.value:
        return "unreachable"
    if reason == TEMPLATE_PAUSED:
        return TEMPLATE_PAUSED
    if error_code is not None and str(error_code) in codes:
        return "failed"
    return None


Rule = Callable[[Outgoing], "list[str] | None"]
"""Who may name the media a message falls back on: a list (``[]``: none) decides, None leaves it to the next."""


def configured(outgoing: Outgoing, plugin: Rule, connector: Rule, default: Sequence[str]) -> Outgoing:
    """``outgoing`` with the media configured for it to fall back on, as it is admitted. A WhatsApp
    message that names none itself gets, the first that answers: the rule of the plugin that
    proposed it (:meth:`.plugin_settings.PluginSettings.fallback_media`, e.g. an order notification
    rule's ``fallback``); for a message about a record (one with an ``origin``) the rule of the
    connector the origin names (:meth:`.connector.Connector.fallback_media`, e.g. a shop's
    ``fallback``), else ``default`` (``[fallback] media``). Email is dropped from them when the
    message's address is none (an invalid billing address must not refuse the WhatsApp message)."""
    if outgoing.fallback_media or outgoing.medium != WHATSAPP:
        return outgoing
    media = plugin(outgoing)
    if media is None and outgoing.origin:
        media = connector(outgoing)
        if media is None:
            media = list(default)
    return with_media(outgoing, media or [])


def with_media(outgoing: Outgoing, media: Sequence[str]) -> Outgoing:
    """``outgoing`` falling back on ``media`` (validated as if it had named them, so an email
    address is normalised); without email when its address is not one."""
    if not media:
        return outgoing
    fields = {name: getattr(outgoing, name) for name in type(outgoing).model_fields}
    try:
        return Outgoing.model_validate({**fields, "fallback_media": list(media)})
    except ValidationError:
        if EMAIL not in media:
            raise
        rest = [m for m in media if m != EMAIL]
        return with_media(outgoing.model_copy(update={"to": outgoing.to.model_copy(update={"email": None})}), rest)


def wanted(row: dict[str, Any]) -> bool:
    """Whether outbox ``row`` names media to fall back on (so its data is kept until it is settled)."""
    content = row.get("content")
    return bool(content and '"fallback_media"' in content and (outbox.content_of(row) or {}).get("fallback_media"))


def kept_for(row: dict[str, Any], seconds: float) -> float:
    """How long a sent message that :func:`wanted` a fallback keeps its data: ``seconds``
    (``[fallback] keep_hours``, or ``privacy.retention_hours`` when longer), and at least until its
    ``fallback_after_minutes`` check is due -- else that check would find nothing to send."""
    due = (outbox.content_of(row) or {}).get("fallback_due")
    return max(seconds, float(due) - now() + 60) if due is not None else seconds


SETTLED = frozenset({"delivered", "read", "played", "failed"})
"""The statuses after which a message falls back no more: its kept data may go."""


def fallback_key(message_id: str, medium: str) -> str:
    """The idempotency key of the fallback on ``medium`` of message ``message_id``: derived from the
    original, so every later trigger finds the first one's decision."""
    return f"fallback:{message_id}:{medium}"


TEMPLATE_PAUSED = "template_paused"
"""The trigger (and the refusal reason) of a message whose template WhatsApp paused: the gate would
hold it until the pause ends, so a message naming fallback media is withdrawn for its fallback
instead (:func:`instead`), and one WhatsApp dropped for the pause (its failure's reason) falls back."""

NOT_DELIVERED = "not_delivered_in_time"
"""The trigger of a time-critical message (``fallback_after_minutes``) that was neither delivered
nor read, nor failed, when its time was up; also the reason a message still queued then is
withdrawn with (:data:`LATE`)."""

LATE = frozenset({"queued", "sending", "accepted", "sent", "unknown"})
"""The statuses in which a message is late when its ``fallback_after_minutes`` are up: it falls
back. Delivered or read, it arrived; failed, its failure's own triggers decided; refused or
cancelled, it never goes."""

REFUSALS = {"unreachable": "unreachable", "window_closed": "window_closed_no_template"}
"""The gate's refusals that trigger a fallback, and the trigger each is: the contact is marked
unreachable on WhatsApp; a free-form message outside the 24-hour window with no template to go as."""


class AdmitFallback(Protocol):
    """How a fallback message is admitted: :func:`.gate.admit_fallback` with the database, the
    transaction and the accounts bound. Passed in rather than imported, because the gate itself asks
    for the fallback of a message it refuses (:func:`fall_back_refused`)."""

    def __call__(self, outgoing: Outgoing, idempotency_key: str, fallback_of: str, *,
                 source_event_id: int | None, plugin: str | None) -> Decision: ...


def fall_back(conn: Connection, message_id: str, trigger: str, *, admit: AdmitFallback) -> Decision | None:
    """Admit the fallback of message ``message_id`` (which ended in ``trigger``) inside ``conn``'s
    transaction: the first listed medium the gate admits it on. Returns that decision (``duplicate``
    when an earlier trigger admitted it), or None when none was admitted or none is wanted."""
    row = outbox.get(conn, message_id)
    stored = outbox.content_of(row) if row is not None else None
    if row is None or stored is None or row["medium"] != WHATSAPP or row["fallback_of"] is not None:
        return None
    wanted = Wanted(message_id, row["recipient"], stored.get("email"), stored["original"], row["category"],
                    row["business_phone_number_id"], outbox.origin_of(row) or None)
    return _admit_first(wanted, stored.get("fallback_media") or [], trigger, admit,
                        source_event_id=row["source_event_id"], plugin=row["plugin"])


def instead(conn: Connection, message_id: str, trigger: str, reason: str, detail: str, *,
            admit: AdmitFallback) -> str | None:
    """Withdraw message ``message_id`` -- still queued, or claimed by the sender asking about it, and
    locked by the caller -- for its fallback: when :func:`fall_back` admits one (or an earlier
    trigger did), the original is refused with ``reason`` in the same transaction, so the two never
    both go. When none is admitted (no consent on any listed medium), the original stays as it is.
    Returns the refusal's detail, or None when it was not withdrawn."""
    decision = fall_back(conn, message_id, trigger, admit=admit)
    if decision is None:
        return None
    said = f"{detail}; withdrawn for its fallback {decision.id}"
    outbox.refuse(conn, message_id, reason, said)
    return said


def fall_back_refused(message_id: str, refused: Outgoing, category: str, trigger: str, *,
                      source_event_id: int | None, plugin: str | None, admit: AdmitFallback) -> Decision | None:
    """:func:`fall_back` for a message the gate refused as it was admitted (its row keeps no content
    or address): the fallback is made from ``refused`` itself."""
    to = refused.to
    wanted = Wanted(message_id, to.phone or to.user_id, to.email, refused.content.model_dump(mode="json",
                                                                                              exclude_none=True),
                    category, refused.business_phone_number_id, refused.origin)
    return _admit_first(wanted, refused.fallback_media, trigger, admit, source_event_id=source_event_id,
                        plugin=plugin)


@dataclass(frozen=True)
class Wanted:
    """What a fallback is made from: the original message's id, its recipient (number or BSUID) and
    email address, its content, category, business number and origin."""

    message_id: str
    recipient: str | None
    email: str | None
    content: dict[str, Any]
    category: str
    business_phone_number_id: str | None
    origin: dict[str, str] | None


def _admit_first(wanted: Wanted, media: list[str], trigger: str, admit: AdmitFallback, *,
                 source_event_id: int | None, plugin: str | None) -> Decision | None:
    for medium in media:
        outgoing = _outgoing(wanted, medium)
        if outgoing is None:
            continue  # no address on that medium
        decision = admit(outgoing, fallback_key(wanted.message_id, medium), wanted.message_id,
                         source_event_id=source_event_id, plugin=plugin)
        if decision.accepted:
            if not decision.duplicate:
                logs.emit(log, logging.INFO, "fallback admitted", message_id=decision.id,
                          fallback_of=wanted.message_id, medium=medium, trigger=trigger)
            return decision
    return None


def _outgoing(wanted: Wanted, medium: str) -> Outgoing | None:
    """The fallback on ``medium``: the original's content, category and origin, to its address there."""
    recipient = wanted.recipient
    if not recipient:
        return None  # erased: the message was settled long ago
    # the customer the original went to, so the gate reads their consent on the other medium
    to = Contact(user_id=recipient) if is_bsuid(recipient) else Contact(phone=recipient)
    if medium == EMAIL:
        if not wanted.email:
            return None
        to = to.model_copy(update={"email": wanted.email})
    elif to.phone is None:
        return None  # a customer known by a business-scoped user id only has no number to text
    # a free-form service message has no category of its own: off WhatsApp it needs utility consent
    category = wanted.category if wanted.category in Category.__members__.values() else Category.UTILITY
    return Outgoing.model_validate({
        "to": to, "content": wanted.content, "channel": medium, "category": category,
        "business_phone_number_id": wanted.business_phone_number_id, "origin": wanted.origin})
