"""``connectzap conversations ...``: who handles a conversation -- the bot or a person."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..core.errors import RefusedError
from .base import Ctx, cli, pass_ctx
from .output import Column, emit, json_option

if TYPE_CHECKING:
    from ..core import replies


@cli.group()
def conversations() -> None:
    """Hand a conversation to people (no automatic answers meanwhile), release it, show who has it."""


def _masked(contact: str) -> str:
    from ..core.bsuids import is_bsuid
    from ..core.bsuids import mask as mask_bsuid
    from ..core.phones import mask
    return mask_bsuid(contact) if is_bsuid(contact) else mask(contact)


def _shown(obj: Ctx, contact: str, as_json: bool, changed: bool | None = None) -> None:
    now = obj.app().conversation(contact)
    row = {"contact": _masked(contact), "handled_by": now.handled_by,
           "reason": now.reason, "since": now.since, "until": now.until}
    if changed is not None:
        row["changed"] = changed
    emit(row, as_json, columns=[Column("contact"), Column("handled by", "handled_by"), Column("reason"),
                                Column("since"), Column("until")])


@conversations.command("show")
@click.argument("contact")
@json_option
@pass_ctx
def conversations_show(obj: Ctx, contact: str, as_json: bool) -> None:
    """Who handles the conversation with CONTACT (a phone number or a BSUID)."""
    _shown(obj, contact, as_json)


@conversations.command("handoff")
@click.argument("contact")
@click.option("--reason", required=True, help="Why a person takes over (shown in the CRM timeline).")
@click.option("--minutes", type=click.IntRange(1, 525_600), help="For how long; default: until released.")
@json_option
@pass_ctx
def conversations_handoff(obj: Ctx, contact: str, reason: str, minutes: int | None, as_json: bool) -> None:
    """Hand the conversation with CONTACT to people: no automatic answers until released (or MINUTES)."""
    changed = obj.app().hand_to_human(contact, reason, minutes, by="cli")
    _shown(obj, contact, as_json, changed)


@conversations.command("release")
@click.argument("contact")
@json_option
@pass_ctx
def conversations_release(obj: Ctx, contact: str, as_json: bool) -> None:
    """Give the conversation with CONTACT back to the bot: automatic answers resume."""
    changed = obj.app().release(contact, by="cli")
    _shown(obj, contact, as_json, changed)


def _window_row(contact: str, state: replies.WindowState) -> dict[str, object]:
    return {"contact": _masked(contact), "open": state.open, "closes_at": state.closes_at,
            "numbers": [{"business_phone_number_id": n.business_phone_number_id, "open": n.open,
                         "last_inbound_at": n.last_inbound_at, "closes_at": n.closes_at} for n in state.numbers]}


@conversations.command("window")
@click.argument("contact")
@json_option
@pass_ctx
def conversations_window(obj: Ctx, contact: str, as_json: bool) -> None:
    """Whether CONTACT's 24-hour window is open (free-form replies allowed) and when it closes."""
    emit(_window_row(contact, obj.app().window(contact)), as_json,
         columns=[Column("contact"), Column("open"), Column("closes at", "closes_at")])


@conversations.command("reply")
@click.argument("contact")
@click.argument("text")
@click.option("--param", "params", multiple=True, help="A body parameter of the [replies] template (repeat).")
@click.option("--from", "business_number", help="The business number to answer from; default: the one "
                                                "the customer wrote to last.")
@click.option("--key", "idempotency_key", help="Idempotency key: the same key never sends twice.")
@json_option
@pass_ctx
def conversations_reply(obj: Ctx, contact: str, text: str, params: tuple[str, ...], business_number: str | None,
                        idempotency_key: str | None, as_json: bool) -> None:
    """Reply to CONTACT as a person: TEXT inside the 24-hour window, the [replies] template outside it.
    Hands the conversation to people for [replies] handoff_minutes."""
    done = obj.app().reply(contact, text, fallback_params=list(params), business_number=business_number,
                           idempotency_key=idempotency_key, by="cli")
    d = done.decision
    if not d.accepted:
        raise RefusedError(d.reason or "refused", d.detail or d.reason or "refused")
    row = {"id": d.id, "status": d.status, "sent_as": done.sent_as, "duplicate": d.duplicate,
           "handed_off": done.handed_off, "window": _window_row(contact, done.window)}
    emit(row, as_json, columns=[Column("id"), Column("status"), Column("sent as", "sent_as"),
                                Column("handed off", "handed_off")])
