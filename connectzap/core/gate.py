"""The send gate: the only way a message reaches the outbox, and the last check before it leaves.

Order of checks: recipient -> idempotency -> template (known, APPROVED, language, exact
parameters) -> consent for the category -> 24-hour window -> durable outbox. Each refusal
has a machine-readable reason the caller sees (:data:`REASONS`), and is itself recorded, so
"why didn't the customer get a message?" always has an answer.

The consent rule: a template of category C needs the contact's opt-in for C. Inside the
24-hour window the customer opened, a reply needs none -- free-form messages, and utility or
authentication templates -- but a marketing template still needs a marketing opt-in (a
customer writing to us is not an opt-in to promotions). An opt-out always wins, at once.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from . import consent, templates
from .errors import ConflictError
from .messages import Outgoing, TemplateContent
from .models import Category, ConsentRecord, TemplateInfo
from .phones import contact_key
from .store.database import Database, now
from .store.schema import consents, contacts, outbox, windows

REASONS = {
    "invalid_phone": "the recipient is not a valid phone number",
    "no_consent": "the contact has not opted in to this category",
    "opted_out": "the contact opted out of this category",
    "window_closed": "free-form messages need a customer message in the last 24 hours; send a template",
    "template_unknown": "no template with this name is known; run `connectzap templates sync`",
    "language_missing": "the template has no approved translation in this language",
    "template_not_approved": "the template is not APPROVED",
    "param_mismatch": "the parameters do not match the template",
    "unreachable": "WhatsApp reported this contact unreachable; waiting for them to write first",
    "invalid_message": "the message is not valid",
    "cancelled": "cancelled before it was due",
}

_SPACES = re.compile(r"\s+")


def clean_param(text: str) -> str:
    """Meta rejects template parameters with newlines, tabs or more than 4 spaces in a row."""
    return _SPACES.sub(" ", text).strip()


def new_message_id() -> str:
    return f"m{int(time.time() * 1000):011x}{secrets.token_hex(6)}"


@dataclass(frozen=True)
class Decision:
    """What the gate did with a message: queued it (``status="queued"``) or refused it (``reason``)."""

    id: str
    status: str
    reason: str | None = None
    detail: str | None = None
    duplicate: bool = False
    idempotency_key: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status != "refused"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "reason": self.reason, "detail": self.detail,
                "duplicate": self.duplicate}


@dataclass(frozen=True)
class Verdict:
    """The result of the consent/window/template checks for one message at one moment."""

    content: TemplateContent | Any | None
    category: str
    reason: str | None = None
    detail: str | None = None


class Facts:
    """What the gate needs to know about a contact and a template, read from the database."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def window_open(self, key: str, at: float | None, business_number: str | None) -> bool:
        return consent.window_open(self.conn, key, at, business_number)

    def latest(self, key: str, category: str) -> ConsentRecord | None:
        return consent.latest(self.conn, key, category)

    def unreachable(self, key: str) -> bool:
        return consent.unreachable(self.conn, key)

    def template(self, name: str, language: str) -> TemplateInfo | None:
        return templates.get(self.conn, name, language)

    def languages(self, name: str) -> list[str]:
        return templates.languages(self.conn, name)


def facts_for(conn: Connection, secret: bytes, messages: list[Outgoing]) -> BatchFacts:
    """Everything the gate will ask about ``messages``, loaded up front."""
    keys = {contact_key(m.to.phone, secret) for m in messages if m.to.phone}
    names = {c.name for m in messages for c in (m.content, m.fallback) if isinstance(c, TemplateContent)}
    return BatchFacts(conn, keys, names)


class BatchFacts(Facts):
    """The same answers for a batch of messages, loaded with one query per table (the sender's
    re-check before every send would otherwise cost several queries per message)."""

    def __init__(self, conn: Connection, keys: set[str], template_names: set[str]) -> None:
        super().__init__(conn)
        self._consent: dict[tuple[str, str], ConsentRecord] = {}
        self._windows: dict[str, list[tuple[str, float]]] = {key: [] for key in keys}
        self._templates: dict[tuple[str, str], TemplateInfo] = {}
        if keys:
            for row in conn.execute(select(consents).where(consents.c.contact_key.in_(keys))
                                    .order_by(consents.c.at, consents.c.id)):
                self._consent[(row.contact_key, row.category)] = consent.to_record(row)  # newest wins
            for row in conn.execute(select(windows).where(windows.c.contact_key.in_(keys))):
                self._windows[row.contact_key].append((row.business_phone_number_id, row.last_inbound_at))
            self._unreachable = {r[0] for r in conn.execute(
                select(contacts.c.contact_key).where(contacts.c.contact_key.in_(keys),
                                                     contacts.c.unreachable_since.is_not(None)))}
        else:
            self._unreachable = set()
        if template_names:
            for info in templates.named(conn, template_names):
                self._templates[(info.name, info.language)] = info

    def window_open(self, key: str, at: float | None, business_number: str | None) -> bool:
        return consent.is_open(consent.latest_inbound(self._windows.get(key, []), business_number), at)

    def latest(self, key: str, category: str) -> ConsentRecord | None:
        return self._consent.get((key, str(category)))

    def unreachable(self, key: str) -> bool:
        return key in self._unreachable

    def template(self, name: str, language: str) -> TemplateInfo | None:
        return self._templates.get((name, language))

    def languages(self, name: str) -> list[str]:
        return [lang for (n, lang) in self._templates if n == name]


def clean_template(content: TemplateContent) -> TemplateContent:
    data = content.model_dump()
    body = data.get("body")
    items = body.values() if isinstance(body, dict) else (body or [])
    for param in items:
        if param.get("type") == "text":
            param["text"] = clean_param(param["text"])
    if data.get("header") and data["header"].get("text") is not None:
        data["header"]["text"] = clean_param(data["header"]["text"])
    for button in data.get("buttons", []):
        for field in ("payload", "text", "coupon_code"):
            if button.get(field) is not None:
                button[field] = clean_param(button[field])
    return TemplateContent.model_validate(data)


def check_template(facts: Facts, content: TemplateContent) -> Verdict:
    info = facts.template(content.name, content.language)
    if info is None:
        if facts.languages(content.name):
            return Verdict(None, "utility", "language_missing",
                           f"{content.name} has no {content.language} translation")
        return Verdict(None, "utility", "template_unknown", f"{content.name} is not in the template cache")
    category = info.category.lower()
    if info.status != "APPROVED":
        return Verdict(None, category, "template_not_approved", f"{content.name} is {info.status}")
    cleaned = clean_template(content)
    problem = templates.check_params(info, cleaned)
    if problem:
        return Verdict(None, category, "param_mismatch", problem)
    return Verdict(cleaned, category)


def evaluate(facts: Facts, key: str, content: Any, fallback: TemplateContent | None,
             business_number: str | None = None, at: float | None = None) -> Verdict:
    """Decide whether ``content`` may go to contact ``key`` now; may swap in the fallback template."""
    window = facts.window_open(key, at, business_number)
    if not content.is_template:
        if window:
            return Verdict(content, "service")
        if fallback is None:
            return Verdict(None, "service", "window_closed", "the last customer message is over 24 hours old")
        content = fallback
    verdict = check_template(facts, content)
    if verdict.reason:
        return verdict
    record = facts.latest(key, verdict.category) if verdict.category in Category._value2member_map_ else None
    if record is not None and not record.granted:
        return Verdict(None, verdict.category, "opted_out", f"opted out of {verdict.category} via {record.source}")
    if record is None or not record.granted:
        reply_in_window = window and verdict.category != Category.MARKETING.value
        if not reply_in_window:
            return Verdict(None, verdict.category, "no_consent", f"no {verdict.category} opt-in on record")
    if facts.unreachable(key) and not window:
        return Verdict(None, verdict.category, "unreachable", REASONS["unreachable"])
    return verdict


def request_hash(outgoing: Outgoing) -> str:
    data = outgoing.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _existing(conn: Connection, idempotency_key: str) -> Any:
    return conn.execute(select(outbox.c.id, outbox.c.status, outbox.c.reason, outbox.c.request_hash,
                               outbox.c.error_details).where(outbox.c.idempotency_key == idempotency_key)).first()


def admit(db: Database, conn: Connection, secret: bytes, outgoing: Outgoing, *, idempotency_key: str,
          source_event_id: int | None = None, plugin: str | None = None, strict_key: bool = False,
          facts: Facts | None = None) -> Decision:
    """Run every check and write the outcome to the outbox inside ``conn``'s transaction.

    With ``strict_key`` (the REST API), reusing a key for a different message is a
    :class:`ConflictError`; otherwise the first message for a key simply wins. ``facts`` may be a
    :class:`BatchFacts` loaded for several messages admitted in the same transaction.
    """
    digest = request_hash(outgoing)
    found = _existing(conn, idempotency_key)
    if found is not None:
        if strict_key and found.request_hash != digest:
            raise ConflictError("Idempotency-Key was already used for a different message")
        return Decision(found.id, found.status, found.reason, None, duplicate=True, idempotency_key=idempotency_key)
    message_id = new_message_id()
    phone = outgoing.to.phone
    if phone is None:
        return _write(db, conn, message_id, idempotency_key, digest, "-", outgoing, None, "service",
                      "invalid_phone", REASONS["invalid_phone"], source_event_id, plugin)
    key = contact_key(phone, secret)
    verdict = evaluate(facts or Facts(conn), key, outgoing.content, outgoing.fallback, outgoing.business_phone_number_id,
                       at=outgoing.not_before.timestamp() if outgoing.not_before else None)
    if verdict.reason:
        return _write(db, conn, message_id, idempotency_key, digest, key, outgoing, None, verdict.category,
                      verdict.reason, verdict.detail, source_event_id, plugin)
    return _write(db, conn, message_id, idempotency_key, digest, key, outgoing, verdict.content, verdict.category,
                  None, None, source_event_id, plugin)


def _write(db: Database, conn: Connection, message_id: str, idempotency_key: str, digest: str, key: str,
           outgoing: Outgoing, content: Any, category: str, reason: str | None, detail: str | None,
           source_event_id: int | None, plugin: str | None) -> Decision:
    t = now()
    shown = content or outgoing.content
    refused = reason is not None
    stored = None
    if not refused:
        stored = json.dumps({
            "content": content.model_dump(mode="json", exclude_none=True),
            "original": outgoing.content.model_dump(mode="json", exclude_none=True),
            "fallback": outgoing.fallback.model_dump(mode="json", exclude_none=True) if outgoing.fallback else None,
            "reply_to": outgoing.reply_to,
        })
    not_before = outgoing.not_before.timestamp() if outgoing.not_before else None
    conn.execute(outbox.insert().values(
        id=message_id, idempotency_key=idempotency_key, request_hash=digest, contact_key=key,
        recipient=None if refused else outgoing.to.phone, category=category, content_type=shown.type,
        template_name=getattr(shown, "name", None), language=getattr(shown, "language", None),
        content=stored, status="refused" if refused else "queued", reason=reason,
        error_details=detail, not_before=not_before, next_attempt_at=not_before or t, attempts=0,
        cancel_key=outgoing.cancel_key, business_phone_number_id=outgoing.business_phone_number_id,
        source_event_id=source_event_id, plugin=plugin, created_at=t, updated_at=t,
    ))
    return Decision(message_id, "refused" if refused else "queued", reason, detail, idempotency_key=idempotency_key)
