"""The REST API under ``/v1``: send messages through the gate, read them, manage consent and who handles a
conversation, list templates.

Endpoints are plain functions (FastAPI runs them in its thread pool, since the engine's store
calls block), except single-message sends, which wait on the admission writer's group commit.
Errors are raised from the engine's exception tree and mapped in :mod:`.errors`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.routing import APIRoute
from pydantic import BeforeValidator

from .. import gate, hooks
from ..app import Connectzap
from ..errors import ConflictError, ConnectzapError, InvalidRecipientError, StartupError
from ..messages import Outgoing
from ..models import Category, ConsentChange
from ..bsuids import identify
from ..bsuids import mask as mask_bsuid
from ..email_addresses import mask as mask_address
from ..email_addresses import normalized
from .. import media
from ..media import EMAIL
from ..phones import mask, to_e164
from .admission_writer import AdmissionWriter
from .auth import bearer_scheme
from .errors import ErrorBody, error_response
from .guards import ApiRoute
from .schemas import (BATCH_LIMIT, MEDIUM_PATTERN, BatchResult, ConsentGrant, ConsentState, ConsentView,
                      ConversationView,
                      EventDetail, EventPage, HandoffRequest, MessageBatch, MessagePage, MessageView, Queued,
                      ReplyRequest, ReplyResult, TemplateList, WindowView)

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in (
        (400, "Malformed request (e.g. invalid JSON)"), (401, "Missing or invalid API key"),
        (413, "Body too large"), (422, "Invalid input"), (503, "Database unavailable"))
}


def _errors(*extra: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    return {**ERRORS, **{status: {"model": ErrorBody, "description": text} for status, text in extra}}


router = APIRouter(prefix="/v1", route_class=ApiRoute, dependencies=[Depends(bearer_scheme)])


def plugin_router() -> APIRouter:
    """The ``/v1`` routes plugins add (``register_api_routes``), guarded like the built-in ones and
    documented with their error answers; a method and path the API already serves is refused at
    start-up."""
    added = APIRouter(prefix="/v1", route_class=ApiRoute, dependencies=[Depends(bearer_scheme)],
                      responses=_errors((415, "A body that is not JSON")))
    hooks.register_api_routes(added)
    taken = {(route.path, method) for route in router.routes if isinstance(route, APIRoute)
             for method in route.methods or ()}
    for route in added.routes:
        methods = sorted(route.methods or ()) if isinstance(route, APIRoute) else []
        if isinstance(route, APIRoute) and any((route.path, method) in taken for method in methods):
            raise StartupError(f"a plugin adds {', '.join(methods)} {route.path}, which the REST API already serves")
    return added

PhonePath = Annotated[str, Path(min_length=1, max_length=140,
                                description="The contact's number (E.164 preferred), or their business-scoped "
                                            "user id (BSUID, e.g. `US.13491208655302741918`) when they have "
                                            "no number on record.")]
Country = Annotated[str | None, Query(min_length=2, max_length=2, description="ISO country for a national number.")]
ConsentPath = Annotated[str, Path(min_length=1, max_length=254,
                                  description="The contact's number (E.164 preferred), their business-scoped user id "
                                              "(BSUID) when they have no number on record, or -- for consent on "
                                              "medium `email` -- the email address of a customer known only by it.")]


_ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_only(value: Any) -> Any:
    # pydantic would also read "1700000000" or "3e-27" as a Unix time; the documented format is
    # an ISO 8601 date-time only, so anything that does not start like one is refused here.
    if isinstance(value, str) and not _ISO_DATE_TIME.match(value.strip()):
        raise ValueError("use an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]


async def engine(request: Request) -> Connectzap:  # async: no thread hand-over just to read app state
    running: Connectzap = request.app.state.engine  # set by create_app; starlette's State is untyped
    return running


Engine = Annotated[Connectzap, Depends(engine)]


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


class BadCursorError(ConnectzapError):
    """A ``cursor`` that no listing handed out: answered 400, never an empty page."""

    code = "bad_cursor"

    def __init__(self) -> None:
        super().__init__("cursor is not a `next_cursor` from this listing; omit it to start at the newest")


MESSAGE_ID = re.compile(r"m[0-9a-f]{12,40}")
EVENT_CURSOR = re.compile(r"[1-9][0-9]{0,17}")


def _cursor(value: str | None, pattern: re.Pattern[str]) -> str | None:
    if value is not None and not pattern.fullmatch(value):
        raise BadCursorError()
    return value


def _cursor_docs(what: str) -> str:
    return f"`next_cursor` of the previous page ({what}); anything else is answered 400 `bad_cursor`."


# --- messages ---------------------------------------------------------------------------------

@router.post("/messages", status_code=202, response_model=Queued, tags=["messages"],
             summary="Send a message through the send gate",
             responses=_errors((409, "Idempotency-Key reused for a different message"),
                               (415, "Body is not application/json"),
                               (422, "Invalid input, or refused by the gate: `error` is the reason")))
async def post_message(request: Request, app: Engine, outgoing: Outgoing,
                       idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                                                     max_length=200)] = None) -> Any:
    """Queue a message. With ``Idempotency-Key``, repeating the request returns the same message;
    the same key with a different body is refused with 409. A refusal by the gate (no consent,
    closed window, unknown template, ...) answers 422 with the reason as ``error``."""
    # Concurrent requests share a transaction (group commit); each still gets its own decision.
    writer: AdmissionWriter = request.app.state.admission_writer
    decision = await writer.admit(app.admission(outgoing, idempotency_key=idempotency_key, source="api"))
    if decision.status == gate.CONFLICT:
        raise ConflictError("Idempotency-Key was already used for a different message")
    if not decision.accepted:  # a repeated request carries the status and detail recorded for its key
        return error_response(422, decision.reason, decision.detail or decision.reason, id=decision.id)
    return Queued(id=decision.id, status=decision.status, duplicate=decision.duplicate)


@router.post("/messages/batch", response_model=BatchResult, tags=["messages"],
             summary=f"Send up to {BATCH_LIMIT} messages through the send gate in one transaction",
             responses=_errors((415, "Body is not application/json"),
                               (422, f"Invalid input: `errors` names each invalid item by its index (`messages`, "
                                     f"n, ...), or more than {BATCH_LIMIT} messages; nothing is stored")))
def post_batch(app: Engine, batch: MessageBatch) -> BatchResult:
    """Queue many messages at once (a campaign). Always 200 with one result per item, in order:
    a refusal (`refused`, with the gate's `reason`) or a key already used for a different message
    (`conflict`, reason `idempotency_conflict`) is reported on its item and never fails the others.
    Items' `idempotency_key`s are the same keys as POST /v1/messages' `Idempotency-Key`: repeating
    a batch answers with the same ids, `duplicate: true`, and stores nothing new."""
    return BatchResult.of(app.send_many(batch.messages, source="api", strict_key=True))


@router.get("/messages/{message_id}", response_model=MessageView, tags=["messages"], summary="One message",
            responses=_errors((404, "No such message")))
def get_message(app: Engine, message_id: Annotated[str, Path(min_length=1, max_length=64)]) -> MessageView:
    return MessageView.of(app.message(message_id))


@router.get("/messages", response_model=MessagePage, tags=["messages"], summary="Messages, newest first",
            responses=_errors())
def list_messages(
        app: Engine,
        phone: Annotated[str | None, Query(min_length=1, max_length=140,
                                           description="Recipient number, or business-scoped user id.")] = None,
        country: Country = None,
        status: Annotated[str | None, Query(min_length=1, max_length=16)] = None,
        channel: Annotated[str | None, Query(pattern=media.NAME.pattern, description=(
            "Only messages going out on this medium: whatsapp, email, sms, ..."))] = None,
        fallback_of: Annotated[str | None, Query(pattern=f"^{MESSAGE_ID.pattern}$", description=(
            "Only the fallbacks (admitted or refused) of this message."))] = None,
        since: Annotated[IsoTime | None, Query(description="Created at or after (ISO 8601).")] = None,
        until: Annotated[IsoTime | None, Query(description="Created before (ISO 8601).")] = None,
        cursor: Annotated[str | None, Query(min_length=1, max_length=64,
                                            description=_cursor_docs("a message id"))] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50) -> MessagePage:
    before = _cursor(cursor, MESSAGE_ID)
    number = next(iter(_contact(phone, country).values())) if phone else None
    rows = app.messages(phone=number, status=status, since=_epoch(since), until=_epoch(until), before_id=before,
                        medium=channel, fallback_of=fallback_of, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return MessagePage(messages=[MessageView.of(r) for r in rows], next_cursor=rows[-1]["id"] if more else None)


# --- events -----------------------------------------------------------------------------------

@router.get("/events", response_model=EventPage, tags=["events"], summary="Events, newest first, with their outcome",
            responses=_errors())
def list_events(
        app: Engine,
        source: Annotated[str | None, Query(min_length=1, max_length=64,
                                            description="Connector or origin, e.g. `woocommerce`.")] = None,
        kind: Annotated[str | None, Query(min_length=1, max_length=32,
                                          description="e.g. `order_updated`, `lead`, `inbound_message`.")] = None,
        status: Annotated[Literal["pending", "done", "dead"] | None, Query()] = None,
        since: Annotated[IsoTime | None, Query(description="Received at or after (ISO 8601).")] = None,
        until: Annotated[IsoTime | None, Query(description="Received before (ISO 8601).")] = None,
        cursor: Annotated[str | None, Query(min_length=1, max_length=64,
                                            description=_cursor_docs("an event id"))] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50) -> EventPage:
    """Each event with what it became in one line (`outcome`): the messages it led to and the gate's
    verdicts, a plugin's reason for skipping it, a retry in progress or a dead letter."""
    before = _cursor(cursor, EVENT_CURSOR)
    rows = app.events(source=source, kind=kind, status=status, since=_epoch(since), until=_epoch(until),
                      before_id=int(before) if before else None, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return EventPage(events=rows, next_cursor=str(rows[-1].id) if more else None)


@router.get("/events/{event_id}", response_model=EventDetail, tags=["events"],
            summary="One event and each of its deliveries", responses=_errors((404, "No such event")))
def get_event(app: Engine, event_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> EventDetail:
    """Every delivery of the event -- the core's bookkeeping, each plugin hook, each connector --
    with its status, attempts, last error and result: the messages it proposed and the gate's
    verdict on each, or why it skipped the event."""
    return app.event(event_id)


# --- consent ----------------------------------------------------------------------------------

def _contact(text: str, country: str | None) -> dict[str, str]:
    """The path's contact: ``{"phone": E.164}`` or ``{"user_id": BSUID}`` (a customer without a number)."""
    who = identify(text, country)
    return {"user_id": str(who["user_id"])} if who.get("user_id") else {"phone": to_e164(text, country)}


def _consent_contact(text: str, country: str | None, medium: str | None) -> dict[str, str]:
    """The consent routes' contact: as :func:`_contact`, or ``{"email": address}`` for a customer
    known only by email, whose consent is on medium ``email`` (``medium`` None: any, to read it)."""
    if "@" not in text:
        return _contact(text, country)
    if medium not in (None, EMAIL):
        raise InvalidRecipientError(f"an email address names a customer on medium email only; consent on {medium} "
                                    "needs their number or business-scoped user id", field="phone")
    try:
        return {"email": normalized(text)}
    except ValueError as exc:
        raise InvalidRecipientError(str(exc), field="phone") from None


def _named(who: dict[str, str]) -> str:
    return who.get("phone") or who.get("user_id") or who["email"]


def _masked(who: dict[str, str]) -> str:
    if "email" in who:
        return mask_address(who["email"])
    return mask_bsuid(who["user_id"]) if "user_id" in who else mask(who["phone"])


def _consent_state(app: Connectzap, phone: str, country: str | None) -> ConsentState:
    who = _consent_contact(phone, country, None)
    phone = _named(who)
    current = app.consent(phone, country)
    media = app.consent_by_medium(phone, country)
    return ConsentState(phone=_masked(who),
                        categories={c.value: ConsentView.of(r) for c, r in current.items()},
                        media={medium: {c.value: ConsentView.of(r) for c, r in deciding.items()}
                               for medium, deciding in media.items()},
                        history=[ConsentView.of(r) for r in app.consent_history(phone, country)])


@router.get("/contacts/{phone}/consent", response_model=ConsentState, tags=["consent"],
            summary="Consent per category, with history", responses=_errors())
def get_consent(app: Engine, phone: ConsentPath, country: Country = None) -> ConsentState:
    return _consent_state(app, phone, country)


@router.put("/contacts/{phone}/consent", response_model=ConsentState, tags=["consent"],
            summary="Record an opt-in with its proof",
            responses=_errors((415, "Body is not application/json")))
def put_consent(app: Engine, phone: ConsentPath, grant: ConsentGrant) -> ConsentState:
    who = _consent_contact(phone, grant.country, grant.medium)
    at = grant.at if grant.at is None or grant.at.tzinfo else grant.at.replace(tzinfo=UTC)
    for category in dict.fromkeys(grant.categories):
        change = {**who, "category": category, "granted": True, "source": grant.source, "proof": grant.proof,
                  "medium": grant.medium}
        app.set_consent(ConsentChange.model_validate({**change, "at": at} if at else change))
    return _consent_state(app, _named(who), None)


@router.delete("/contacts/{phone}/consent", response_model=ConsentState, tags=["consent"],
               summary="Revoke consent (one category, several, or all)", responses=_errors())
def delete_consent(
        app: Engine, phone: ConsentPath, country: Country = None,
        category: Annotated[list[Category] | None, Query(description="Repeat for several; omit for all.")] = None,
        source: Annotated[str, Query(min_length=1, max_length=128)] = "api",
        proof: Annotated[str | None, Query(max_length=4000)] = None,
        medium: Annotated[str, Query(pattern=MEDIUM_PATTERN, max_length=16,
                                     description="The medium to revoke on (default whatsapp).")] = "whatsapp",
) -> ConsentState:
    who = _consent_contact(phone, country, medium)
    for cat in dict.fromkeys(category or list(Category)):
        app.set_consent(ConsentChange.model_validate({**who, "category": cat, "granted": False, "source": source,
                                                      "proof": proof, "medium": medium}))
    return _consent_state(app, _named(who), None)


# --- conversations ----------------------------------------------------------------------------

def _conversation(app: Connectzap, contact: str, country: str | None, changed: bool = False) -> ConversationView:
    who = _contact(contact, country)
    now = app.conversation(who.get("phone") or who["user_id"])
    return ConversationView(contact=_masked(who),
                            handled_by=now.handled_by, reason=now.reason, since=now.since, until=now.until,
                            changed=changed)


@router.get("/conversations/{contact}", response_model=ConversationView, tags=["conversations"],
            summary="Who handles the conversation: the bot or a person", responses=_errors())
def get_conversation(app: Engine, contact: PhonePath, country: Country = None) -> ConversationView:
    return _conversation(app, contact, country)


@router.post("/conversations/{contact}/handoff", response_model=ConversationView, tags=["conversations"],
             summary="Hand the conversation to people (no automatic answers meanwhile)",
             responses=_errors((415, "Body is not application/json")))
def hand_off_conversation(app: Engine, contact: PhonePath, handoff: HandoffRequest) -> ConversationView:
    who = _contact(contact, handoff.country)
    changed = app.hand_to_human(who.get("phone") or who["user_id"], handoff.reason, handoff.minutes, by="api")
    return _conversation(app, contact, handoff.country, changed)


@router.post("/conversations/{contact}/release", response_model=ConversationView, tags=["conversations"],
             summary="Give the conversation back to the bot (automatic answers resume)", responses=_errors())
def release_conversation(app: Engine, contact: PhonePath, country: Country = None) -> ConversationView:
    who = _contact(contact, country)
    changed = app.release(who.get("phone") or who["user_id"], by="api")
    return _conversation(app, contact, country, changed)


@router.post("/conversations/{contact}/reply", response_model=ReplyResult, tags=["conversations"],
             summary="A person's reply: free-form inside the 24-hour window, the fallback template outside",
             responses=_errors((409, "Idempotency-Key reused for a different reply"),
                               (415, "Body is not application/json"),
                               (422, "Invalid input, or refused by the gate: `error` is the reason "
                                     "(`window_closed` when the window is closed and no template is set)")))
def reply_to_conversation(app: Engine, contact: PhonePath, reply: ReplyRequest,
                          idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                                                        max_length=200)] = None) -> Any:
    """Answer a customer without knowing their window: the text goes while the window they opened
    is open, otherwise the `fallback` template (by default the `[replies]` template with
    `fallback_params`). The reply hands the conversation to people for `[replies] handoff_minutes`
    (no automatic answers meanwhile). With `Idempotency-Key`, repeating the request returns the same
    message and changes nothing."""
    who = _contact(contact, reply.country)
    done = app.reply(who.get("phone") or who["user_id"], reply.text, fallback=reply.fallback,
                     fallback_params=reply.fallback_params, business_number=reply.business_phone_number_id,
                     idempotency_key=idempotency_key, by="api")
    decision = done.decision  # a key reused for a different reply raised ConflictError (409)
    if not decision.accepted or done.sent_as is None:
        return error_response(422, decision.reason or "refused", decision.detail or decision.reason or "refused",
                              id=decision.id)
    return ReplyResult(id=decision.id, status=decision.status, sent_as=done.sent_as, duplicate=decision.duplicate,
                       handed_off=done.handed_off, window=WindowView.of(_masked(who), done.window))


@router.get("/contacts/{phone}/window", response_model=WindowView, tags=["conversations"],
            summary="The customer's 24-hour windows and when they close", responses=_errors())
def get_window(app: Engine, phone: PhonePath, country: Country = None) -> WindowView:
    who = _contact(phone, country)
    return WindowView.of(_masked(who), app.window(who.get("phone") or who["user_id"]))


# --- templates --------------------------------------------------------------------------------

@router.get("/templates", response_model=TemplateList, tags=["templates"], summary="The cached templates",
            responses=_errors())
def list_templates(app: Engine) -> TemplateList:
    return TemplateList(templates=app.templates())

