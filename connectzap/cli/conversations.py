"""``connectzap conversations ...``: who handles a conversation -- the bot or a person."""

from __future__ import annotations

import click

from .base import Ctx, cli, pass_ctx
from .output import Column, emit, json_option


@cli.group()
def conversations() -> None:
    """Hand a conversation to people (no automatic answers meanwhile), release it, show who has it."""


def _shown(obj: Ctx, contact: str, as_json: bool, changed: bool | None = None) -> None:
    from ..core.bsuids import is_bsuid
    from ..core.bsuids import mask as mask_bsuid
    from ..core.phones import mask
    now = obj.app().conversation(contact)
    row = {"contact": mask_bsuid(contact) if is_bsuid(contact) else mask(contact), "handled_by": now.handled_by,
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
