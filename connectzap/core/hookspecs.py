"""Every connectzap hook, in one place.

Two families:

* **Event hooks** (``on_*``) are called by the dispatcher once per journaled event, one
  implementation at a time. Each implementation is isolated: its exception is recorded and
  retried on its own and never stops another plugin. They may be plain functions or
  ``async def``; plain functions run in a worker thread, so blocking SDK calls are fine.
  They *propose* messages with ``ctx.send(...)`` (or by returning :class:`Outgoing` objects)
  and never call WhatsApp themselves: every proposal goes through the send gate.
* **Registration hooks** (``register_*``) run once at start-up and fail fast.

Events with the same ordering key (:attr:`Event.ordering_key`: the order, the lead, the contact --
chosen by the connector or plugin that journals them) reach event hooks one at a time and in journal
order, across all workers; events about different records run in parallel. Per-record state in
``ctx.state`` is therefore read after the previous event of that record wrote it.

Implementations may accept any subset of the arguments (pluggy's opt-in arguments). Write
``from connectzap import hookimpl``; never import pluggy in a plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click
    from fastapi import APIRouter

    from .connector import Connector
    from .context import EventContext
    from .messages import Outgoing
    from .models import (CallActivity, CampaignFinished, ConsentChange, ContactChange, Handoff, InboundMessage, Lead,
                         MessageStatus, Order, PastMessage, TemplateUpdate)
    from .plugin_settings import PluginSettings

hookspec = pluggy.HookspecMarker("connectzap")
hookimpl = pluggy.HookimplMarker("connectzap")



@hookspec
def on_order_created(order: Order, ctx: EventContext) -> Outgoing | list[Outgoing] | None:
    """A shop reported a new order.

    Called once per journaled order-created event, after the consents the order carried
    (a checkout opt-in) were recorded.

    :param order: the order, phone already E.164; ``order.shop`` names the shop.
    :param ctx: the event context: ``ctx.send(...)`` proposes a message, ``ctx.state`` keeps
        per-plugin durable state, ``ctx.config`` is this plugin's config section.
    :returns: messages to propose (or ``None``). Proposals take effect only if the
        implementation returns without raising.
    """


@hookspec
def on_order_updated(order: Order, previous_status: str | None, ctx: EventContext) -> Outgoing | list[Outgoing] | None:
    """An existing order changed (status, tracking, refund...).

    Webhooks may arrive coalesced, repeated or out of order: compare with state you keep in
    ``ctx.state`` rather than trusting ``previous_status`` alone.

    :param order: the order as it is now.
    :param previous_status: the status before this change when the source reports it, else ``None``.
    :param ctx: the event context.
    :returns: messages to propose (or ``None``).
    """


@hookspec
def on_lead(lead: Lead, ctx: EventContext) -> Outgoing | list[Outgoing] | None:
    """A CRM produced a new lead (or a contact became one).

    :param lead: the lead with its contact and CRM properties.
    :param ctx: the event context.
    :returns: messages to propose (or ``None``), e.g. a consented welcome template.
    """


@hookspec
def on_inbound_message(message: InboundMessage, ctx: EventContext) -> Outgoing | list[Outgoing] | None:
    """A customer wrote to one of our WhatsApp numbers -- or, ``message.medium`` says so, on another
    medium: an SMS to our Twilio number (``"sms"``).

    For WhatsApp, called after connectzap opened or refreshed the 24-hour customer-service window,
    so a free-form reply proposed here is allowed. Called once per message id (``message.wamid``:
    an SMS's is Twilio's ``MessageSid``), even if the webhook comes again.

    An implementation is called for WhatsApp messages only unless it declares other media with
    ``@inbound_media("whatsapp", "sms")`` (or ``"*"``: every medium) under ``@hookimpl``. A message
    on another medium opens no WhatsApp window: answer an SMS with ``medium="sms"`` on the
    ``Outgoing`` (it needs the customer's consent on SMS). Automatic answers to it are arbitrated
    like a WhatsApp message's: at most one per message. Connectors' ``sync_inbound_message`` gets
    every medium.

    :param message: the inbound message; ``message.text`` is the readable text when there is any,
        ``message.medium`` where it came from (``whatsapp`` by default), ``message.media_types`` the
        content types of an MMS's attachments (recorded, never fetched).
    :param ctx: the event context.
    :returns: replies to propose (or ``None``).
    """


@hookspec
def on_message_status(status: MessageStatus, ctx: EventContext) -> Outgoing | list[Outgoing] | None:
    """A message we sent changed status: ``accepted`` (connectzap's own, with ``status.content``),
    then WhatsApp's ``sent``, ``delivered``, ``read`` or ``failed``.

    Statuses are applied monotonically to the stored message before this hook runs; the hook
    still sees every distinct status once. An ``accepted`` status with ``status.sent_from ==
    "business_app"`` is a message a person sent from the WhatsApp Business app on a coexistence
    number: a human is handling that conversation (automations may want to stay quiet). Such a
    message edited or deleted in the app later comes as status ``edited`` (``status.content`` holds
    the new text) or ``revoked``, with the same ``sent_from`` and the original ``status.wamid``.

    :param status: the status update; ``status.errors`` holds Meta's error details on failure.
    :param ctx: the event context.
    :returns: messages to propose (or ``None``).
    """


@hookspec
def on_consent_changed(change: ConsentChange, ctx: EventContext) -> Outgoing | list[Outgoing] | None:
    """Consent for one category was granted or revoked (API, CLI, opt-out keyword, WhatsApp's
    own "stop promotions", or a connector).

    Called after the change is in the consent ledger. Use it to mirror consent to a CRM.

    :param change: the change with its source, proof and medium. It names the customer by number,
        BSUID or email address -- or, for an opt-out derived from one of our messages (an email spam
        complaint), only by ``contact_key``.
    :param ctx: the event context.
    :returns: messages to propose (or ``None``), e.g. an opt-out confirmation.
    """


@hookspec
def on_template_update(update: TemplateUpdate, ctx: EventContext) -> Outgoing | list[Outgoing] | None:
    """WhatsApp reported a change to a message template: its status (``APPROVED``, ``PAUSED``,
    ``DISABLED``...), its category, or its quality score.

    Called after the template cache the send gate checks was updated. An announced
    re-categorisation (``update.correct_category`` with ``update.category_update_timestamp``,
    24 hours ahead) arrives here before it takes effect: the moment to warn whoever owns the
    template that, from then on, its sends need consent for the new category.

    :param update: the change; ``name`` and ``language`` name the template.
    :param ctx: the event context.
    :returns: messages to propose (or ``None``).
    """


@hookspec
def on_contact_changed(change: ContactChange, ctx: EventContext) -> Outgoing | list[Outgoing] | None:
    """A contact in the business's own address book was saved (added or edited) or removed: on a
    coexistence number, the contacts of the WhatsApp Business app (all of them once, when the
    provider first synchronises them, then each change).

    Nothing is stored by connectzap: the change reaches this hook and the connectors' ``sync_contact_changed``,
    which may create or rename the contact in a CRM. A saved contact has given no consent by being saved.

    :param change: ``phone`` (E.164) or ``user_id``, ``action`` (``saved`` or ``removed``), the
        names the business gave the contact (none on a removal), ``business_phone_number_id``, ``at``.
    :param ctx: the event context.
    :returns: messages to propose (or ``None``).
    """


@hookspec
def on_call(call: CallActivity, ctx: EventContext) -> Outgoing | list[Outgoing] | None:
    """A WhatsApp voice call with a customer moved on: it connected, rang or was answered or
    rejected (business-initiated calls), or ended (with its duration).

    Called once per call step WhatsApp reported (``call.event`` and ``call.status``). CRM
    connectors log ended calls as call activity (HubSpot: a Call on the contact's timeline).

    :param call: the call step; ``call.contact`` is the customer, ``call.call_id`` Meta's call id.
    :param ctx: the event context.
    :returns: messages to propose (or ``None``), e.g. a follow-up after a missed call.
    """


@hookspec
def on_past_message(message: PastMessage, ctx: EventContext) -> Outgoing | list[Outgoing] | None:
    """A message of the chat history a coexistence number shared at onboarding (the WhatsApp
    Business app's last 180 days), when ``coexistence_history`` is on in ``[connectors.whatsapp]``.

    History, not a conversation: it opened no 24-hour window, and replying to it would write to
    customers about old chats. It is for logging (a CRM timeline); connectzap keeps none of it once
    it is dispatched. Chunks may arrive out of order, so entries may too.

    :param message: ``wamid``, ``direction`` (``inbound``/``outbound``), ``contact``, ``timestamp``,
        ``type``, ``text``, the app's last ``status``.
    :param ctx: the event context.
    :returns: messages to propose (or ``None``); normally none.
    """


@hookspec
def on_handoff(handoff: Handoff, ctx: EventContext) -> Outgoing | list[Outgoing] | None:
    """A conversation changed hands: a person took it over (``handoff.to == "human"``: a keyword, a
    rule, ``connectzap conversations handoff``, the REST API) or gave it back to the bot
    (``"bot"``: released). While a person handles it the core sends no automatic answer.

    Called once per change, after it is stored. CRM connectors put it on the customer's timeline
    (HubSpot: a Communication; WooCommerce: a private note on the latest order).

    :param handoff: ``contact``, ``to``, ``at``, ``reason``, ``by`` (a plugin, ``cli``, ``api``...),
        ``until`` (None: until released).
    :param ctx: the event context.
    :returns: messages to propose (or ``None``), e.g. a note to the team's own number.
    """


@hookspec
def on_campaign_finished(campaign: CampaignFinished, ctx: EventContext) -> Outgoing | list[Outgoing] | None:
    """A campaign ended: every recipient has an outcome (``campaign.state == "finished"``), or it
    was cancelled. Called once per campaign, after the end is stored; CRM connectors get it as
    ``sync_campaign_finished`` to write the results back.

    :param campaign: ``id``, ``name``, ``state``, ``template``, ``language``, ``started_at``,
        ``ended_at``, ``recipients``, ``outcomes`` (recipients per outcome) and ``audience_source``
        (the connector source its audience was read from, None for a file).
    :param ctx: the event context; ``ctx.app.campaigns.all_results(campaign.id)`` gives each
        recipient's outcome (masked number, contact key).
    :returns: messages to propose (or ``None``), e.g. a summary to the marketer's own number.
    """


@hookspec
def register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register connector classes (webhook sources and CRM/shop sync).

    Called once at start-up. Call ``register(MyConnector)`` for each class; a second class
    with the same ``name`` is a start-up error naming both.

    :param register: the callback that records a connector class.
    """


@hookspec
def register_plugin_settings(register: Callable[[str, type[PluginSettings]], None]) -> None:
    """Declare the settings model of a ``[plugins.NAME]`` section.

    Called once at start-up. Call ``register("my_plugin", MySettings)`` with a
    :class:`~connectzap.PluginSettings` subclass; the engine validates the section before it
    starts (a typo'd key or Jinja that does not parse stops ``serve`` with one line naming the
    file and the key) and hooks read the result as ``ctx.plugin_settings``. A second model for
    the same name is a start-up error naming both plugins.

    :param register: the callback that records a section name and its model.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``connectzap`` command line.

    Called once when the CLI starts. Decorate functions with ``@cli.command()`` or add groups.

    :param cli: the root click group.
    """


@hookspec
def register_api_routes(router: APIRouter) -> None:
    """Add endpoints to the REST API, under ``/v1`` and behind the same API keys.

    Called once when the HTTP app is built. Declare routes on ``router`` with FastAPI's decorators
    (``@router.get("/optin/qr")`` serves ``/v1/optin/qr``); the API key, the unknown-query-parameter
    check and the error bodies apply to them as to the built-in routes. The engine is
    ``request.app.state.engine``. A path the API already has is a start-up error.

    :param router: a FastAPI ``APIRouter`` mounted at ``/v1``.
    """


EVENT_HOOKS: dict[str, tuple[str, ...]] = {
    "order_created": ("on_order_created", "order"),
    "order_updated": ("on_order_updated", "order"),
    "lead": ("on_lead", "lead"),
    "inbound_message": ("on_inbound_message", "message"),
    "message_status": ("on_message_status", "status"),
    "consent_changed": ("on_consent_changed", "change"),
    "template_update": ("on_template_update", "update"),
    "contact_changed": ("on_contact_changed", "change"),
    "call": ("on_call", "call"),
    "past_message": ("on_past_message", "message"),
    "handoff": ("on_handoff", "handoff"),
    "campaign_finished": ("on_campaign_finished", "campaign"),
}
"""Event kind -> (hook name, name of the payload argument)."""


