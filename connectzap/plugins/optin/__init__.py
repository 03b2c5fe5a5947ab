"""Opt-in by link and QR code: ``connectzap optin link`` (or ``GET /v1/optin/qr``) makes a ``wa.me``
link whose prefilled message starts with a keyword; a customer who sends it is signed up for the
link's category, with the wording they sent as the proof (source ``whatsapp:keyword``), and gets a
confirmation. With ``double_opt_in`` the answer asks first, with a Yes button, and consent is
recorded only on the tap. Sending the keyword again records and confirms nothing new.

The ``opt_out_keywords`` plugin leaves a message to this one when it is a link's keyword (``ALTA``
is also one of its START words): one consent record, one confirmation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from connectzap import (AutomaticAnswer, ButtonsContent, ConsentChange, EventContext, InboundMessage, PluginSettings,
                        ReplyButton, TextContent, hookimpl, is_bsuid, leading_keyword, normalise_keyword)

from . import links
from .section import OptinSection
from .settings import OptinSettings

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

NAME = "optin"
YES_PREFIX = "optin:yes:"
"""The Yes button's id: this prefix, the index of the wording the customer sent, ``:`` and the
link's normalised keyword (``optin:yes:0:alta``)."""


@hookimpl
def register_plugin_settings(register: Callable[[str, type[PluginSettings]], None]) -> None:
    register(NAME, OptinSection)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .commands import optin_group
    cli.add_command(optin_group)


@hookimpl
def register_api_routes(router: APIRouter) -> None:
    from .routes import add_routes
    add_routes(router)


def settings_of(ctx: EventContext) -> OptinSettings:
    return ctx.settings_as(OptinSettings)


def claims(app: Any, text: str | None) -> bool:
    """Whether ``text`` is an opt-in link's keyword message this plugin answers (False when the
    plugin is not loaded). For ``opt_out_keywords``, which then leaves the message alone."""
    settings = app.plugin_settings.get(NAME)
    if not isinstance(settings, OptinSettings) or not text:
        return False
    known = links.book(settings, app.plugin_state(NAME).get(links.STATE_KEY))
    return leading_keyword(text, set(known)) is not None


def _tapped(message: InboundMessage) -> tuple[str, int] | None:
    """(keyword, wording index) of a tap on a Yes button this plugin sent."""
    reply = message.reply
    chosen = (reply.id or reply.payload) if reply is not None else None
    if not chosen or not chosen.startswith(YES_PREFIX):
        return None
    index, _, keyword = chosen.removeprefix(YES_PREFIX).partition(":")
    return (keyword, int(index)) if index.isdigit() and keyword else None


@hookimpl
def on_inbound_message(message: InboundMessage, ctx: EventContext) -> None:
    phone, user_id = message.contact.phone, message.contact.user_id
    who = phone or (user_id if is_bsuid(user_id) else None)
    if who is None:
        return
    settings = settings_of(ctx)
    known = links.book(settings, ctx.state.get(links.STATE_KEY))
    tapped = _tapped(message)
    if tapped is not None:
        keyword: str | None = tapped[0]
    else:
        keyword = leading_keyword(message.text or "", set(known)) if message.type == "text" else None
    link = known.get(keyword) if keyword is not None else None
    if link is None:
        if tapped is not None:
            ctx.note("unknown_link", "a Yes button of a link this configuration no longer has")
        return
    if ctx.has_consent(who, link.category):
        ctx.note("already_granted", f"{link.category.value} consent already recorded: nothing recorded or sent again")
        return
    # a keyword's answer: it outranks the other automatic answers to this message (an FAQ, a bot...)
    reply = {"reply_to": message.wamid, "business_phone_number_id": message.business_phone_number_id,
             "automatic": AutomaticAnswer.keyword}
    index = tapped[1] if tapped is not None else link.wording_index(message.text)
    wording = link.wordings[min(index, len(link.wordings) - 1)]
    if settings.double_opt_in and tapped is None:
        ask = settings.render(link.language, "ask", keyword=link.keyword, category=link.category)
        button = ReplyButton(id=f"{YES_PREFIX}{index}:{normalise_keyword(link.keyword)}",
                             title=settings.wording(link.language, "button"))
        ctx.send(who, ButtonsContent(body=ask, buttons=[button]), key=f"{message.wamid}:optin-ask", **reply)
        ctx.note("asked", f"double opt-in: {link.category.value} consent waits for the Yes button")
        return
    how = "tapped the Yes button under" if tapped is not None else "sent"
    ctx.set_consent(ConsentChange(phone=phone, user_id=None if phone else who, category=link.category, granted=True,
                                  source="whatsapp:keyword", at=message.timestamp,
                                  proof=f"customer {how} the opt-in link's message {wording!r} "
                                        f"(message {message.wamid})"))
    confirmed = settings.render(link.language, "confirmed", keyword=link.keyword, category=link.category)
    ctx.send(who, TextContent(body=confirmed), key=f"{message.wamid}:optin-confirm", **reply)
