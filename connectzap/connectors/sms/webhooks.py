"""What Twilio posts to ``POST /webhooks/sms``: message status callbacks and inbound texts.

Both are ``application/x-www-form-urlencoded``. A status callback carries ``MessageSid`` and
``MessageStatus`` (and ``ErrorCode`` when a message failed); its URL carries the outbox id
(``?outbox=``, put there by the channel). An inbound text carries ``Body`` with ``SmsStatus`` (or
``MessageStatus``) ``received``.

Twilio's statuses map to the core's message statuses: ``queued``, ``accepted``, ``scheduled``
and ``sending`` are ``accepted`` (Twilio has the message), ``sent`` and ``delivered`` are
themselves, ``undelivered`` and ``failed`` are ``failed`` with Twilio's ``ErrorCode`` as the
error, its reason and, when it says something about the recipient, its outcome
(:mod:`.errors`). ``read`` is ``read``; ``canceled`` is ``cancelled``.

An inbound text that is one of the opt-out keywords (STOP, UNSUBSCRIBE, ...) revokes the
customer's consent on the ``sms`` medium in every category (Twilio itself now blocks every message to them from
this sender); one of the opt-in keywords (START, UNSTOP, YES) grants it again. Any other inbound
text is an ``inbound_message`` on the ``sms`` medium, keyed by its ``MessageSid`` (a replay adds
nothing); an MMS's attachments are recorded by content type and count, never fetched.

Nothing here keeps a number: a status names its contact by keyed hash (``contact_key``) and by
number only on an opt-out failure (the core records the opt-out for that number, then forgets it).
An inbound message carries the sender's number and text to its hooks, as a WhatsApp one does; the
journal erases both with the payload once the work is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from ...core.errors import InvalidPhoneError, PayloadError
from ...core.keywords import normalise_keyword
from ...core.media import SMS
from ...core.models import (ApiErrorInfo, Category, ConsentChange, Contact, DeliveryOutcome, Event, EventKind,
                            InboundMessage, MediaInfo, MessageStatus, StatusValue)
from ...core.phones import to_e164
from .errors import describe, failure_reason, outcome_of
from .signatures import form_params

SOURCE = "sms"
OUTBOX_PARAM = "outbox"

STATUSES: dict[str, StatusValue] = {
    "queued": StatusValue.ACCEPTED, "accepted": StatusValue.ACCEPTED, "scheduled": StatusValue.ACCEPTED,
    "sending": StatusValue.ACCEPTED, "sent": StatusValue.SENT, "delivered": StatusValue.DELIVERED,
    "read": StatusValue.READ, "undelivered": StatusValue.FAILED, "failed": StatusValue.FAILED,
    "canceled": StatusValue.CANCELLED,
}
"""Twilio's ``MessageStatus`` -> the core's status."""
INBOUND = ("received", "receiving")
MAX_MEDIA = 10
"""Twilio delivers at most 10 attachments with one MMS."""
KEYWORD_CATEGORIES = tuple(Category)
"""What an SMS opt-out keyword revokes (and an opt-in keyword grants again): every category, as
Twilio blocks every message to a recipient who texted STOP, whatever it is about."""


def form(body: bytes) -> dict[str, str]:
    """The form of a webhook body (a name given twice keeps its first value); a body with no
    parameters at all is not a Twilio webhook."""
    params: dict[str, str] = {}
    for name, value in form_params(body):
        params.setdefault(name, value)
    if not params:
        raise PayloadError("not a Twilio webhook: the body has no form parameters", field="body")
    return params


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if not value:
        raise PayloadError(f"{name} is missing", field=name)
    return value


def _phone(params: Mapping[str, str], name: str) -> str:
    try:
        return to_e164(_required(params, name))
    except InvalidPhoneError:
        raise PayloadError(f"{name} is not a phone number", field=name) from None


def parse(body: bytes, query: Mapping[str, str], *, account_sid: str, now: datetime,
          key_of: Callable[[str], str], opt_out: Iterable[str], opt_in: Iterable[str]) -> list[Event]:
    """The events of one webhook; ``key_of`` is the engine's keyed hash of an E.164 number."""
    params = form(body)
    if _required(params, "AccountSid") != account_sid:
        raise PayloadError("AccountSid is not this connector's account", field="AccountSid")
    state = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    if state in INBOUND:
        return inbound_events(params, now=now, opt_out=opt_out, opt_in=opt_in)
    return [status_event(params, state, query.get(OUTBOX_PARAM), now=now, key_of=key_of)]


def status_event(params: Mapping[str, str], state: str, outbox_id: str | None, *, now: datetime,
                 key_of: Callable[[str], str]) -> Event:
    """A status callback as a ``message_status`` event of message ``MessageSid``."""
    sid = _required(params, "MessageSid")
    if state not in STATUSES:
        raise PayloadError(f"MessageStatus {state or '(missing)'!r} is not a Twilio message status",
                           field="MessageStatus")
    value = STATUSES[state]
    recipient = _phone(params, "To")
    code = params.get("ErrorCode", "").strip() or None
    failed = value == StatusValue.FAILED
    outcome = outcome_of(code) if failed else None
    number = int(code) if code and code.isdigit() else None
    errors = [ApiErrorInfo(code=number if number is not None else code, title=describe(number))] \
        if failed and code else []
    status = MessageStatus(
        wamid=sid, status=value.value, timestamp=now, contact_key=key_of(recipient), outbox_id=outbox_id or None,
        recipient=recipient if outcome == DeliveryOutcome.OPTED_OUT else None, errors=errors, outcome=outcome,
        reason=(failure_reason(code) if code else state) if failed else None)
    return Event.of(EventKind.MESSAGE_STATUS, status, source=SOURCE, dedupe_key=f"{sid}:{state}", occurred_at=now)


def keyword_change(text: str, opt_out: Iterable[str], opt_in: Iterable[str]) -> bool | None:
    """False for an opt-out keyword, True for an opt-in keyword, None for any other text. A keyword
    counts when it is the whole message, in any case, with or without surrounding punctuation."""
    said = normalise_keyword(text)
    if said in {normalise_keyword(k) for k in opt_out}:
        return False
    if said in {normalise_keyword(k) for k in opt_in}:
        return True
    return None


def media_types(params: Mapping[str, str]) -> list[str]:
    """The content types of an MMS's attachments (``NumMedia``, ``MediaContentType0``...), in order;
    their URLs (``MediaUrl0``...) are not read: connectzap fetches no SMS media."""
    count = params.get("NumMedia", "").strip() or "0"
    if not count.isdigit() or int(count) > MAX_MEDIA:
        raise PayloadError("NumMedia is not a number of attachments", field="NumMedia")
    return [params.get(f"MediaContentType{n}", "").strip().lower() or "application/octet-stream"
            for n in range(int(count))]


def kind_of(content_type: str) -> str:
    """The message type an attachment's content type makes, named as WhatsApp names its own."""
    major = content_type.partition("/")[0]
    return major if major in ("image", "video", "audio") else "document"


def inbound_message(params: Mapping[str, str], sid: str, sender: str, *, now: datetime) -> Event:
    """A text that is no keyword as an ``inbound_message`` on the ``sms`` medium, once per ``MessageSid``.
    Twilio sends no time with it: it is received now. An MMS's attachments are recorded by type
    and count only (:func:`media_types`)."""
    types = media_types(params)
    text = params.get("Body", "") or None
    message = InboundMessage(wamid=sid, type=kind_of(types[0]) if types else "text", timestamp=now,
                             contact=Contact(phone=sender), medium=SMS, text=text, media_types=types,
                             media=MediaInfo(mime_type=types[0]) if types else None)
    return Event.of(EventKind.INBOUND_MESSAGE, message, source=SOURCE, dedupe_key=sid, occurred_at=now)


def inbound_events(params: Mapping[str, str], *, now: datetime, opt_out: Iterable[str],
                   opt_in: Iterable[str]) -> list[Event]:
    """The consent changes an inbound text asks for, or -- a text that is no keyword -- the
    inbound message itself."""
    sid = _required(params, "MessageSid")
    # Twilio's Advanced Opt-Out names the keyword's kind itself; otherwise the text is read.
    kind = params.get("OptOutType", "").strip().upper()
    granted = {"STOP": False, "START": True}.get(kind)
    if granted is None:
        granted = keyword_change(params.get("Body", ""), opt_out, opt_in)
    sender = _phone(params, "From")
    if granted is None:
        return [inbound_message(params, sid, sender, now=now)]
    word = "an opt-in" if granted else "an opt-out"
    proof = f"texted {word} keyword to {params.get('To', 'the SMS sender')} (Twilio message {sid})"
    changes = [ConsentChange(phone=sender, category=category, granted=granted, source=SOURCE, proof=proof, at=now,
                             medium=SMS) for category in KEYWORD_CATEGORIES]
    return [Event.of(EventKind.CONSENT_CHANGED, change, source=SOURCE, dedupe_key=f"{sid}:{change.category.value}",
                     occurred_at=now) for change in changes]

