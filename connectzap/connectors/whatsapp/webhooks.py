"""Cloud API webhook bodies -> core events.

Meta batches freely: one delivery may hold several ``entry`` objects, each with several
``changes``, each with several messages and statuses. Every one of them becomes an event.
Every field inside a change is treated as optional (a status may name its recipient by
``wa_id`` only, a username user may have no ``wa_id`` at all); what we do not understand is
kept in ``raw`` rather than dropped. Only a body that is not a WhatsApp webhook at all (bad
JSON, not an object, another ``object``) is refused, with a :class:`PayloadError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, RootModel

from ...core import clock
from ...core.bsuids import is_bsuid
from ...core.errors import InvalidPhoneError, PayloadError
from ...core.models import (AdReferral, ApiErrorInfo, CallActivity, Category, ConsentChange, Contact, ContactAction,
                            ContactChange, Event, EventKind, InboundMessage, LocationInfo, MediaInfo, MessageContext,
                            MessageStatus, PastMessage, ReactionInfo, ReplyInfo, SENT_FROM_BUSINESS_APP, StatusValue,
                            TemplateUpdate)
from ...core.phones import to_e164
from .errors import EXPLANATIONS, failure_reason, outcome_of

log = logging.getLogger("connectzap.whatsapp.webhooks")

SOURCE = "whatsapp"
OBJECT = "whatsapp_business_account"
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
TEMPLATE_FIELDS = ("message_template_status_update", "template_category_update", "message_template_quality_update")


# --- tolerant readers: a wrong type is treated as absent, never as a crash -----------------

def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # ids such as message_template_id arrive as numbers
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _time(value: Any) -> datetime | None:
    """Unix seconds, as a string (messages, statuses) or a number (entry.time, preferences)."""
    seconds = _number(value)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _phone(wa_id: str | None) -> str | None:
    """E.164 for a wa_id, or None when it is absent or not a phone number (kept as wa_id anyway)."""
    if not wa_id:
        return None
    try:
        return to_e164(wa_id)
    except InvalidPhoneError:
        return None


def _digest(*parts: Any) -> str:
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _errors(value: Any) -> list[ApiErrorInfo]:
    out = []
    for error in _objects(value):
        code = error.get("code")
        extra = {"href": error["href"]} if _text(error.get("href")) else {}
        out.append(ApiErrorInfo(
            code=code if isinstance(code, (int, str)) and not isinstance(code, bool) else None,
            title=_text(error.get("title")), message=_text(error.get("message")),
            details=_text(_obj(error.get("error_data")).get("details")), **extra))
    return out


# --- the envelope ---------------------------------------------------------------------------

def load(body: bytes) -> dict[str, Any]:
    """The decoded envelope, or a PayloadError naming what is wrong with it."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise PayloadError("body is not valid JSON (truncated or malformed)", field="body") from None
    except RecursionError:
        raise PayloadError("body is nested too deeply", field="body") from None
    if not isinstance(document, dict):
        raise PayloadError("body must be a JSON object", field="body")
    if document.get("object") != OBJECT:
        raise PayloadError(f"object must be {OBJECT!r}", field="object")
    if not isinstance(document.get("entry"), list):
        raise PayloadError("entry must be a list", field="entry")
    return document


def parse_body(body: bytes, *, own_numbers: frozenset[str] = frozenset(),
               received_at: datetime | None = None, key_of: Callable[[str], str] | None = None,
               history: bool = False) -> list[Event]:
    """Every event in a webhook body, in the order Meta listed them.

    ``own_numbers``: when not empty, a change for any other ``phone_number_id`` is refused
    (it was meant for another installation). ``received_at`` stands in for missing timestamps.
    ``key_of``: the keyed hash of an E.164 number (the engine's ``contact_key``); dedupe keys,
    which are never erased, name a contact by it rather than by number. ``history``: turn the
    chat history a coexistence number shares (the ``history`` field) into events; off, it is
    acknowledged and dropped unread.
    """
    document = load(body)
    now = received_at or clock.utcnow()
    events: list[Event] = []
    for entry in _objects(document["entry"]):
        for change in _objects(entry.get("changes")):
            field = _text(change.get("field")) or ""
            handler = _HANDLERS.get(field) if history or field != "history" else None
            if handler is None:
                continue  # fields we do not act on (account_update, calls, ...) are acknowledged
            value = _obj(change.get("value"))
            events.extend(handler(_Change(entry, change, value, own_numbers, now, key_of or _digest)))
    return events


def coexistence_numbers(events: list[Event]) -> set[str]:
    """The phone number ids that parsed events show to be coexistence numbers: only a number also
    used in the WhatsApp Business app gets message echoes, app contacts or history."""
    found = set()
    for event in events:
        if event.kind in (EventKind.CONTACT_CHANGED, EventKind.PAST_MESSAGE) \
                or event.data.get("sent_from") == SENT_FROM_BUSINESS_APP:
            number = event.data.get("business_phone_number_id")
            if isinstance(number, str) and number:
                found.add(number)
    return found


class _Change:
    """One ``entry[].changes[]`` item with what every handler needs from around it."""

    def __init__(self, entry: dict[str, Any], change: dict[str, Any], value: dict[str, Any],
                 own_numbers: frozenset[str], now: datetime, key_of: Callable[[str], str]) -> None:
        self.entry_id = _text(entry.get("id"))
        self.entry_time = _time(entry.get("time"))
        self.field = _text(change.get("field")) or ""
        self.value = value
        self.now = now
        self.key_of = key_of
        self.phone_number_id = _text(_obj(value.get("metadata")).get("phone_number_id"))
        if own_numbers and self.phone_number_id and self.phone_number_id not in own_numbers:
            raise PayloadError(f"phone_number_id {self.phone_number_id} is not one of the configured numbers",
                               field="entry.changes.value.metadata.phone_number_id")
        self.contacts = list(_objects(value.get("contacts")))

    def contact_for(self, wa_id: str | None, user_id: str | None) -> dict[str, Any]:
        """The ``contacts[]`` item describing this sender/recipient (matched by wa_id or BSUID)."""
        for contact in self.contacts:
            if (wa_id and _text(contact.get("wa_id")) == wa_id) \
                    or (user_id and _text(contact.get("user_id")) == user_id):
                return contact
        return self.contacts[0] if len(self.contacts) == 1 else {}


# --- messages -------------------------------------------------------------------------------

def _shared_own_number(msg: dict[str, Any]) -> str | None:
    """The wa_id a customer shared by tapping a ``request_contact_info`` button: a ``contacts``
    message whose one card has ``origin: contact_request`` and one WhatsApp number. A card the
    customer forwarded (any other origin) is someone else's and names nobody here."""
    cards = list(_objects(msg.get("contacts")))
    if msg.get("type") != "contacts" or len(cards) != 1 or cards[0].get("origin") != "contact_request":
        return None
    numbers = {_text(phone.get("wa_id")) for phone in _objects(cards[0].get("phones"))} - {None}
    return numbers.pop() if len(numbers) == 1 else None


def _sender(msg: dict[str, Any], change: _Change) -> Contact:
    wa_id = _text(msg.get("from"))
    user_id = _text(msg.get("from_user_id"))
    found = change.contact_for(wa_id, user_id)
    wa_id = wa_id or _text(found.get("wa_id")) or _shared_own_number(msg)
    user_id = user_id or _text(found.get("user_id"))
    profile = _obj(found.get("profile"))
    attributes = {key: found[key] for key in ("parent_user_id", "identity_key_hash") if _text(found.get(key))}
    if _text(msg.get("from_parent_user_id")):
        attributes.setdefault("parent_user_id", msg["from_parent_user_id"])
    if _text(profile.get("username")):
        attributes["username"] = profile["username"]
    return Contact(phone=_phone(wa_id), wa_id=wa_id, user_id=user_id, name=_text(profile.get("name")),
                   attributes=attributes)


def _media(body: dict[str, Any]) -> MediaInfo:
    return MediaInfo(id=_text(body.get("id")), mime_type=_text(body.get("mime_type")),
                     sha256=_text(body.get("sha256")), caption=_text(body.get("caption")),
                     filename=_text(body.get("filename")), url=_text(body.get("url")),
                     voice=_flag(body.get("voice")), animated=_flag(body.get("animated")))


def _interactive_reply(interactive: dict[str, Any]) -> ReplyInfo | None:
    kind = _text(interactive.get("type"))
    if not kind:
        return None
    chosen = _obj(interactive.get(kind))
    reply = ReplyInfo(id=_text(chosen.get("id")), title=_text(chosen.get("title")),
                      description=_text(chosen.get("description")), type=kind)
    if kind == "nfm_reply":  # a completed WhatsApp Flow: its answers are a JSON string
        reply = reply.model_copy(update={"name": _text(chosen.get("name")), "body": _text(chosen.get("body"))})
        answers = _text(chosen.get("response_json"))
        try:
            parsed = json.loads(answers) if answers else None
        except (ValueError, RecursionError):
            parsed = None
        reply = reply.model_copy(update={"response_json": answers, "response": parsed})
    return reply


def _context(value: Any) -> MessageContext | None:
    context = _obj(value)
    if not context:
        return None
    extra = {key: context[key] for key in ("referred_product", "group_id") if key in context}
    return MessageContext(id=_text(context.get("id")), from_=_text(context.get("from")),
                          forwarded=_flag(context.get("forwarded")),
                          frequently_forwarded=_flag(context.get("frequently_forwarded")), **extra)


def _message_fields(kind: str, msg: dict[str, Any]) -> dict[str, Any]:
    """The typed fields for one message type; unknown types contribute nothing (``raw`` has them)."""
    body = _obj(msg.get(kind))
    if kind == "text":
        return {"text": _text(body.get("body"))}
    if kind in MEDIA_TYPES:
        media = _media(body)
        return {"media": media, "text": media.caption}
    if kind == "location":
        return {"location": LocationInfo(latitude=_number(body.get("latitude")),
                                         longitude=_number(body.get("longitude")), name=_text(body.get("name")),
                                         address=_text(body.get("address")), url=_text(body.get("url")))}
    if kind == "contacts":
        return {"contacts": list(_objects(msg.get("contacts")))}
    if kind == "reaction":  # an empty or missing emoji means the reaction was removed
        return {"reaction": ReactionInfo(message_id=_text(body.get("message_id")),
                                         emoji=_text(body.get("emoji")) or None)}
    if kind == "button":  # a tap on a template quick-reply button
        title = _text(body.get("text"))
        return {"reply": ReplyInfo(payload=_text(body.get("payload")), title=title, type="button"), "text": title}
    if kind == "interactive":  # may come without the interactive object (a tap on an old message)
        reply = _interactive_reply(body)
        return {"reply": reply, "text": reply.title if reply else None}
    if kind == "order":
        return {"order": body or None, "text": _text(body.get("text")) or None}
    if kind == "system":  # number or identity changed: not written by the user, so no text
        system = dict(body)
        new_phone = _phone(_text(body.get("wa_id")))
        if new_phone:
            system["new_phone"] = new_phone
        return {"system": system or None}
    return {}


def _referral(value: Any) -> AdReferral | None:
    """Meta's ``referral`` (a Click-to-WhatsApp ad or post): the named fields as text, the rest
    (media URLs, ``welcome_message``) kept as given."""
    given = _obj(value)
    if not given:
        return None
    named = {name: _text(given.get(name)) for name in AdReferral.model_fields}
    return AdReferral(**{**{k: v for k, v in given.items() if k not in named}, **named})


def _messages(change: _Change) -> Iterator[Event]:
    shared_errors = _errors(change.value.get("errors"))  # Meta may put a message's errors beside it
    for msg in _objects(change.value.get("messages")):
        kind = _text(msg.get("type")) or "unknown"
        wamid = _text(msg.get("id")) or "unidentified." + _digest(change.entry_id, msg)
        timestamp = _time(msg.get("timestamp")) or change.now
        referral = _referral(msg.get("referral"))
        message = InboundMessage(
            wamid=wamid, type=kind, timestamp=timestamp, contact=_sender(msg, change),
            business_phone_number_id=change.phone_number_id, context=_context(msg.get("context")),
            referral=referral, errors=_errors(msg.get("errors")) or shared_errors, raw=msg,
            **_message_fields(kind, msg))
        yield Event.of(EventKind.INBOUND_MESSAGE, message, source=SOURCE, dedupe_key=wamid, occurred_at=timestamp)
    if shared_errors and not change.value.get("messages"):
        log.warning("whatsapp webhook reported errors without a message: %s",
                    [(e.code, e.title) for e in shared_errors])


# --- statuses -------------------------------------------------------------------------------

def _statuses(change: _Change) -> Iterator[Event]:
    for item in _objects(change.value.get("statuses")):
        wamid, value = _text(item.get("id")), _text(item.get("status"))
        if not wamid or not value:
            log.warning("whatsapp status without id or status ignored")
            continue
        recipient_wa_id = _text(item.get("recipient_id"))
        is_group = item.get("recipient_type") == "group"
        recipient_user_id = _text(item.get("recipient_user_id"))
        found = change.contact_for(recipient_wa_id, recipient_user_id)
        timestamp = _time(item.get("timestamp")) or change.now
        extra = {key: item[key] for key in ("recipient_type", "group_id", "recipient_parent_user_id") if key in item}
        failures = [_explained(e) for e in _errors(item.get("errors"))]
        failed = value == StatusValue.FAILED and bool(failures)
        outcome = outcome_of(failures[0].code) if failed else None
        status = MessageStatus(
            wamid=wamid, status=value, timestamp=timestamp,
            recipient=None if is_group else _phone(recipient_wa_id),
            recipient_user_id=recipient_user_id or _text(found.get("user_id")),
            recipient_wa_id=recipient_wa_id, outbox_id=_text(item.get("biz_opaque_callback_data")),
            business_phone_number_id=change.phone_number_id, errors=failures, outcome=outcome,
            reason=failure_reason(failures[0].code) if failed else None,
            pricing=_obj(item.get("pricing")) or None, conversation=_obj(item.get("conversation")) or None,
            **extra)
        yield Event.of(EventKind.MESSAGE_STATUS, status, source=SOURCE, dedupe_key=f"{wamid}:{value}",
                       occurred_at=timestamp)


def _explained(error: ApiErrorInfo) -> ApiErrorInfo:
    """``error`` with a plain explanation for codes that need one (a paused template's dropped message)."""
    code = error.code if isinstance(error.code, int) else None
    if error.details or code not in EXPLANATIONS:
        return error
    return error.model_copy(update={"details": EXPLANATIONS[code]})


def _messages_field(change: _Change) -> Iterator[Event]:
    yield from _messages(change)
    yield from _statuses(change)


# --- coexistence: what the business wrote in the WhatsApp Business app ------------------------

ECHO_CHANGES = {"edit": "edited", "revoke": "revoked"}
"""Echo types that change an earlier message (``<type>.original_message_id``) rather than send a new one,
and the status (:data:`~connectzap.core.models.CHANGED_IN_APP`) each becomes."""


def _echo_content(kind: str, msg: dict[str, Any]) -> dict[str, Any]:
    """What was sent, in the shape of connectzap's own outbound content (``type`` plus its text), so a
    CRM connector describes an echo as it describes any message connectzap sent."""
    fields = _message_fields(kind, msg)
    text = fields.get("text")
    if kind == "text":
        return {"type": "text", "body": text or ""}
    return {"type": kind, "caption": text} if text else {"type": kind}


def _message_echoes(change: _Change) -> Iterator[Event]:
    """``smb_message_echoes``: messages the business sent from the WhatsApp Business app (or a linked
    device) on a coexistence number. Each becomes the ``accepted`` status of an outbound message marked
    ``sent_from="business_app"``: the core records it (it is never sent) and its later statuses apply.
    An ``edit`` or ``revoke`` of an earlier message becomes an ``edited`` / ``revoked`` status of that
    message (an edit carrying the new text, as an echo carries what was sent)."""
    for msg in _objects(change.value.get("message_echoes")):
        wamid, kind = _text(msg.get("id")), _text(msg.get("type")) or "unknown"
        if not wamid:
            log.warning("whatsapp message echo without an id ignored")
            continue
        to, user_id = _text(msg.get("to")), _text(msg.get("to_user_id"))
        user_id = user_id if is_bsuid(user_id) else None
        if _phone(to) is None and user_id is None:
            log.warning("whatsapp message echo %s without a usable recipient ignored", wamid)
            continue
        timestamp = _time(msg.get("timestamp")) or change.now
        status, about = StatusValue.ACCEPTED.value, wamid
        content: dict[str, Any] | None = _echo_content(kind, msg)
        if kind in ECHO_CHANGES:
            changed = _obj(msg.get(kind))
            about = _text(changed.get("original_message_id")) or ""
            if not about:
                log.warning("whatsapp message echo %s (%s) names no original message; ignored", wamid, kind)
                continue
            edited = _obj(changed.get("message"))
            status = ECHO_CHANGES[kind]
            content = _echo_content(_text(edited.get("type")) or "unknown", edited) if kind == "edit" else None
        record = MessageStatus(wamid=about, status=status, timestamp=timestamp, recipient=_phone(to),
                               recipient_user_id=user_id, business_phone_number_id=change.phone_number_id,
                               category="service", content=content, sent_from=SENT_FROM_BUSINESS_APP)
        yield Event.of(EventKind.MESSAGE_STATUS, record, source=SOURCE, dedupe_key=f"echo:{wamid}",
                       occurred_at=timestamp)


_STATE_SYNC_ACTIONS = {"add": ContactAction.SAVED, "remove": ContactAction.REMOVED}
"""Meta's ``smb_app_state_sync`` actions: ``add`` is a contact added or edited."""


def _app_state_sync(change: _Change) -> Iterator[Event]:
    """``smb_app_state_sync``: the WhatsApp Business app's contacts on a coexistence number (the whole
    list once, when synchronised, then every contact added, edited or removed) -> ``contact_changed``."""
    for item in _objects(change.value.get("state_sync")):
        if item.get("type") != "contact":
            log.info("whatsapp smb_app_state_sync item of type %r not acted on", item.get("type"))
            continue
        contact = _obj(item.get("contact"))
        action = _STATE_SYNC_ACTIONS.get(_text(item.get("action")) or "")
        phone = _phone(_text(contact.get("phone_number")))
        if action is None or phone is None:
            log.warning("whatsapp smb_app_state_sync contact without a known action or a usable number ignored")
            continue
        at = _time(_obj(item.get("metadata")).get("timestamp")) or change.now
        update = ContactChange(phone=phone, action=action, full_name=_text(contact.get("full_name")),
                               first_name=_text(contact.get("first_name")),
                               business_phone_number_id=change.phone_number_id,
                               source="whatsapp:business_app_contacts", at=at)
        # keyed hashes only: the dedupe key outlives the payload, and names and numbers must not
        who = change.key_of(phone)
        this = change.key_of(json.dumps([change.phone_number_id, item], sort_keys=True, default=str))
        yield Event.of(EventKind.CONTACT_CHANGED, update, source=SOURCE, ordering_key=f"contact:{who}",
                       dedupe_key=f"state_sync:{who}:{action.value}:{this}")


def _past_messages(change: _Change) -> Iterator[Event]:
    """``history``: the WhatsApp Business app's chat history, shared once at onboarding (threads of
    messages, in chunks that may arrive in any order). Each message becomes a ``past_message``; a
    business that declined to share sends ``errors`` instead, which are logged."""
    business = _phone(_text(_obj(change.value.get("metadata")).get("display_phone_number")))
    for chunk in _objects(change.value.get("history")):
        for error in _errors(chunk.get("errors")):
            log.info("whatsapp history not shared: %s %s", error.code, error.title or error.message or "")
        for thread in _objects(chunk.get("threads")):
            customer_wa_id = _text(thread.get("id"))
            customer = _phone(customer_wa_id)
            if customer is None:
                log.warning("whatsapp history thread without a usable customer number ignored")
                continue
            who = change.key_of(customer)
            for msg in _objects(thread.get("messages")):
                wamid = _text(msg.get("id"))
                if not wamid:
                    continue
                # Meta names the receiver ("to") only on what the business sent
                sender = _phone(_text(msg.get("from")))
                outbound = "to" in msg or (business is not None and sender == business)
                kind = _text(msg.get("type")) or "unknown"
                timestamp = _time(msg.get("timestamp")) or change.now
                past = PastMessage(wamid=wamid, direction="outbound" if outbound else "inbound",
                                   contact=Contact(phone=customer, wa_id=customer_wa_id), timestamp=timestamp,
                                   type=kind, text=_message_fields(kind, msg).get("text"),
                                   status=_text(_obj(msg.get("history_context")).get("status")),
                                   business_phone_number_id=change.phone_number_id)
                yield Event.of(EventKind.PAST_MESSAGE, past, source=SOURCE, dedupe_key=f"history:{wamid}",
                               ordering_key=f"contact:{who}", occurred_at=timestamp)


# --- marketing preferences ------------------------------------------------------------------

_PREFERENCE_GRANTS = {"stop": False, "resume": True}


def _user_preferences(change: _Change) -> Iterator[Event]:
    for pref in _objects(change.value.get("user_preferences")):
        choice = _text(pref.get("value"))
        wa_id = _text(pref.get("wa_id"))
        phone = _phone(wa_id)
        user_id = _text(pref.get("user_id"))
        user_id = user_id if is_bsuid(user_id) else None
        if choice not in _PREFERENCE_GRANTS or pref.get("category", "marketing_messages") != "marketing_messages":
            log.info("whatsapp user_preferences %r for %r not acted on", choice, pref.get("category"))
            continue
        if phone is None and user_id is None:
            log.warning("whatsapp user_preferences %s without a usable wa_id or user_id ignored", choice)
            continue
        at = _time(pref.get("timestamp")) or change.now
        detail = _text(pref.get("detail"))
        number = f" on number {change.phone_number_id}" if change.phone_number_id else ""
        proof = f"WhatsApp user_preferences webhook: {choice}{number}" + (f" ({detail})" if detail else "")
        consent = ConsentChange(phone=phone, user_id=user_id, category=Category.MARKETING,
                                granted=_PREFERENCE_GRANTS[choice], source="whatsapp:user_preferences", proof=proof,
                                at=at)
        who = change.key_of(phone) if phone else change.key_of("bsuid:" + str(user_id))
        yield Event.of(EventKind.CONSENT_CHANGED, consent, source=SOURCE,
                       dedupe_key=f"user_preferences:{who}:{choice}:{int(at.timestamp())}",
                       occurred_at=at)


# --- templates (routed by WABA id: these changes carry no phone_number_id) -----------------

def _template_update(change: _Change) -> Iterator[Event]:
    value = change.value
    name = _text(value.get("message_template_name"))
    if not name:
        log.warning("whatsapp %s without a template name ignored", change.field)
        return
    fields: dict[str, Any] = {"name": name, "language": _text(value.get("message_template_language")),
                              "id": _text(value.get("message_template_id")), "waba_id": change.entry_id,
                              "field": change.field}
    if change.field == "message_template_status_update":
        fields.update(status=_text(value.get("event")), reason=_text(value.get("reason")),
                      reported_category=_text(value.get("message_template_category")))
        for key in ("rejection_info", "disable_info", "other_info"):
            if _obj(value.get(key)):
                fields[key] = value[key]
    elif change.field == "template_category_update":
        # Impending changes name the category-to-be (correct_category) while new_category is still the
        # current one: the cache keeps it as pending, effective at category_update_timestamp; a completed
        # change (previous_category -> new_category) sets the category itself.
        impending = "correct_category" in value or "category_update_timestamp" in value
        fields.update(change="impending" if impending else "completed",
                      previous_category=_text(value.get("previous_category")),
                      correct_category=_text(value.get("correct_category")),
                      category_update_timestamp=_number(value.get("category_update_timestamp")))
        if not impending:
            fields["category"] = _text(value.get("new_category"))
        else:
            fields["current_category"] = _text(value.get("new_category"))
    else:
        fields.update(quality=_text(value.get("new_quality_score")),
                      previous_quality=_text(value.get("previous_quality_score")))
    update = TemplateUpdate(**{k: v for k, v in fields.items() if v is not None})
    at = change.entry_time or change.now
    digest = _digest(change.entry_id, change.entry_time, value)
    yield Event.of(EventKind.TEMPLATE_UPDATE, update, source=SOURCE, occurred_at=at,
                   dedupe_key=f"{change.field}:{fields['id'] or name}:{digest}")


# --- the messaging limit (per business portfolio since October 2025) ---------------------------

class LimitNotice(BaseModel):
    """Meta's messaging limit for a WhatsApp Business Account, as a ``resolve`` event the connector
    applies to its pacer (no event hook sees it)."""

    notice: Literal["messaging_limit"] = "messaging_limit"
    waba_id: str | None = None
    limit: int | None
    """Unique recipients of business-initiated messages per rolling 24 h; None = unlimited."""
    reported: str
    event: str | None = None


def messaging_limit(reported: str) -> tuple[bool, int | None]:
    """``(known, limit)`` for a limit as Meta writes it: ``TIER_250``, ``TIER_2K``, ``TIER_100K``,
    ``TIER_UNLIMITED``, or a plain number; ``TIER_NOT_SET`` and anything else are not known."""
    tier = reported.strip().upper().removeprefix("TIER_")
    if tier == "UNLIMITED":
        return True, None
    scale = 1000 if tier.endswith("K") else 1_000_000 if tier.endswith("M") else 1
    digits = tier[:-1] if scale > 1 else tier
    try:
        limit = int(float(digits) * scale)
    except ValueError:
        return False, None
    return limit > 0, limit if limit > 0 else None


LIMIT_FIELDS = ("max_daily_conversations_per_business", "current_limit", "max_daily_conversation_per_phone")
"""Where a ``phone_number_quality_update`` or ``business_capability_update`` names the portfolio's
messaging limit, the first present deciding: ``max_daily_conversations_per_business`` (``TIER_2K``...,
or a number) replaced ``current_limit`` and ``max_daily_conversation_per_phone`` (``2000``..., ``-1``
for unlimited), both removed in February 2026 (Meta's webhook references for both fields)."""


def _limit_update(change: _Change) -> Iterator[Event]:
    value = change.value
    reported = next((text for text in (_text(value.get(name)) for name in LIMIT_FIELDS) if text), None)
    if reported and reported.strip() == "-1":
        reported = "TIER_UNLIMITED"  # the per-phone field's spelling of unlimited
    if not reported:
        return  # a throughput or quality change without a limit
    known, limit = messaging_limit(reported)
    if not known:
        log.warning("whatsapp %s: messaging limit %r not understood, ignored", change.field, reported)
        return
    notice = LimitNotice(waba_id=change.entry_id, limit=limit, reported=reported, event=_text(value.get("event")))
    yield Event(kind=EventKind.RESOLVE, source=SOURCE, data=notice.model_dump(),
                occurred_at=change.entry_time or change.now,
                dedupe_key=f"{change.field}:{_digest(change.entry_id, change.entry_time, value)}")


# --- calls (field "calls": connect/terminate in calls[], business-initiated call statuses in statuses[])

def _call_party(item: dict[str, Any], change: _Change, customer_side: str) -> Contact:
    wa_id = _text(item.get(customer_side))
    user_id = _text(item.get(f"{customer_side}_user_id"))
    found = change.contact_for(wa_id, user_id)
    wa_id = wa_id or _text(found.get("wa_id"))
    user_id = user_id or _text(found.get("user_id"))
    return Contact(phone=_phone(wa_id), wa_id=wa_id, user_id=user_id,
                   name=_text(_obj(found.get("profile")).get("name")))


def _calls(change: _Change) -> Iterator[Event]:
    shared_errors = _errors(change.value.get("errors"))
    for item in _objects(change.value.get("calls")):
        call_id, event = _text(item.get("id")), _text(item.get("event"))
        if not call_id or event not in ("connect", "terminate"):
            log.warning("whatsapp call without an id or a known event ignored")
            continue
        direction = _text(item.get("direction"))
        # The customer is the caller of a user-initiated call and the callee of a business-initiated one.
        customer_side = "to" if direction == "BUSINESS_INITIATED" else "from"
        timestamp = _time(item.get("timestamp")) or change.now
        duration = _number(item.get("duration"))
        call = CallActivity(call_id=call_id, event=event, timestamp=timestamp,  # type: ignore[arg-type]
                            contact=_call_party(item, change, customer_side), status=_text(item.get("status")),
                            direction=direction, business_phone_number_id=change.phone_number_id,
                            start_time=_time(item.get("start_time")), end_time=_time(item.get("end_time")),
                            duration_seconds=duration, outbox_id=_text(item.get("biz_opaque_callback_data")),
                            errors=_errors(item.get("errors")) or shared_errors)
        yield Event.of(EventKind.CALL, call, source=SOURCE, occurred_at=timestamp,
                       dedupe_key=f"call:{call_id}:{event}:{call.status or ''}")
    for item in _objects(change.value.get("statuses")):
        call_id, status = _text(item.get("id")), _text(item.get("status"))
        if item.get("type") != "call" or not call_id or not status:
            continue
        recipient = _text(item.get("recipient_id"))
        timestamp = _time(item.get("timestamp")) or change.now
        call = CallActivity(call_id=call_id, event="status", timestamp=timestamp, status=status,
                            direction="BUSINESS_INITIATED",
                            contact=Contact(phone=_phone(recipient), wa_id=recipient,
                                            user_id=_text(item.get("recipient_user_id"))),
                            business_phone_number_id=change.phone_number_id,
                            outbox_id=_text(item.get("biz_opaque_callback_data")), errors=_errors(item.get("errors")))
        yield Event.of(EventKind.CALL, call, source=SOURCE, occurred_at=timestamp,
                       dedupe_key=f"call:{call_id}:status:{status}")


# --- volume-based pricing tiers (account_update, since October 2025) -------------------------

PRICING_TIER_UPDATE = "VOLUME_BASED_PRICING_TIER_UPDATE"


class PricingTierNotice(BaseModel):
    """A volume pricing tier change of a WhatsApp Business Account, as a ``resolve`` event: the
    connector reports it in the operator log, and ``connectzap events`` lists it with its line."""

    notice: Literal["pricing_tier"]
    waba_id: str | None = None
    pricing_category: str | None = None
    region: str | None = None
    tier: str | None = None
    effective_month: str | None = None

    def subject(self) -> str:
        said = [value or "?" for value in (self.pricing_category, self.region, self.tier, self.effective_month)]
        return (f"WhatsApp volume pricing tier update for account {self.waba_id or '?'}: {said[0]} "
                f"messages in {said[1]} are priced at tier {said[2]} from {said[3]}")


class AccountNotice(RootModel[LimitNotice | PricingTierNotice]):
    """What the WhatsApp connector journals as ``resolve`` events: account-level news only it acts on."""

    def subject(self) -> str | None:
        return self.root.subject() if isinstance(self.root, PricingTierNotice) else None


def pricing_tier_notice(value: dict[str, Any], waba_id: str | None) -> PricingTierNotice | None:
    """The volume pricing tier change an ``account_update`` reports, or None for other account updates."""
    if _text(value.get("event")) != PRICING_TIER_UPDATE:
        return None
    info = _obj(value.get("volume_tier_info"))
    return PricingTierNotice(notice="pricing_tier", waba_id=waba_id, **{
        key: _text(info.get(key)) for key in ("pricing_category", "region", "tier", "effective_month")})


def _account_update(change: _Change) -> Iterator[Event]:
    """A volume pricing tier change is journaled for the operator (``connectzap events``; the
    connector logs it once); other account updates are acknowledged, nothing to do."""
    notice = pricing_tier_notice(change.value, change.entry_id)
    if notice is None:
        return
    yield Event(kind=EventKind.RESOLVE, source=SOURCE, data=notice.model_dump(),
                occurred_at=change.entry_time or change.now,
                dedupe_key=f"{change.field}:{_digest(change.entry_id, change.entry_time, change.value)}")


_HANDLERS: dict[str, Callable[[_Change], Iterator[Event]]] = {
    "messages": _messages_field,
    "smb_message_echoes": _message_echoes,
    "smb_app_state_sync": _app_state_sync,
    "history": _past_messages,
    "user_preferences": _user_preferences,
    **{name: _template_update for name in TEMPLATE_FIELDS},
    "phone_number_quality_update": _limit_update,
    "business_capability_update": _limit_update,
    "account_update": _account_update,
    "calls": _calls,
}
