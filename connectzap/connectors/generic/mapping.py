"""A source's payload -> connectzap events, by the JMESPath expressions in its mappings.

Pure: no database, no clock other than the ``now`` passed in, so ``connectzap webhook test``
shows exactly what the HTTP edge would journal. A required field that is missing raises
:class:`PayloadError` naming the expression; the edge turns that into a 422.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from pydantic import BaseModel, ValidationError

from ...core.errors import InvalidPhoneError, PayloadError
from ...core.media import EMAIL
from ...core.messages import Outgoing, TemplateContent
from ...core.models import CancelRequest, ConsentChange, Contact, Event, EventKind, Lead, Order
from .settings import FieldSpec, MappingSpec, SourceSpec

_TRUE = {"true", "yes", "y", "on", "1", "granted"}
_FALSE = {"false", "no", "n", "off", "0", "", "revoked"}
_KEY_LIMIT = 200  # dedupe and cancel keys live in 255-character columns, with a prefix


@lru_cache(maxsize=2048)
def compiled(expr: str) -> ParsedResult:
    return jmespath.compile(expr)


def search(expr: str, payload: Any) -> Any:
    try:
        return compiled(expr).search(payload)
    except JMESPathError as exc:
        raise PayloadError(f"cannot evaluate {expr}: {exc}", code="missing_field", field=expr) from None


def decode_body(body: bytes, content_type: str | None = None) -> Any:
    """JSON, or an HTML form post (``application/x-www-form-urlencoded``) as a flat object."""
    if (content_type or "").lower().startswith("application/x-www-form-urlencoded"):
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise PayloadError("the form body is not UTF-8", code="bad_body") from None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise PayloadError("the body is not valid JSON", code="bad_body") from None


def bounded(text: str) -> str:
    return text if len(text) <= _KEY_LIMIT else "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _missing(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def read(payload: Any, spec: FieldSpec, target: str) -> Any:
    """The value ``spec`` selects; its default or None when absent and optional; else a PayloadError."""
    value = search(spec.expr, payload)
    if not _missing(value):
        return value
    if spec.default is not None:
        return spec.default
    if spec.required:
        raise PayloadError(f"the payload has no {spec.expr} (needed for {target})", code="missing_field",
                           field=spec.expr)
    return None


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _put(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[leaf] = value


def as_bool(value: Any, expr: str) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise PayloadError(f"{expr} must be true or false", code="bad_field", field=expr)


def as_datetime(value: Any, expr: str, zone: str) -> datetime:
    """An ISO 8601 string or epoch seconds (milliseconds when it is that large); naive -> ``zone``."""
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, (int, float)):
            seconds = value / 1000 if value > 1e11 else value
            return datetime.fromtimestamp(seconds, UTC)
        parsed = datetime.fromisoformat(str(value).strip())
    except (ValueError, OverflowError, OSError):
        raise PayloadError(f"{expr} is not a date and time (ISO 8601 or epoch seconds)", code="bad_field",
                           field=expr) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(zone))


class MappedSource:
    """One configured source: picks the mapping for a payload and builds the events."""

    def __init__(self, name: str, spec: SourceSpec) -> None:
        self.name = name
        self.spec = spec
        self.source = f"generic:{name}"

    def mapping_for(self, payload: Any) -> MappingSpec | None:
        for mapping in self.spec.mappings:
            if mapping.when is None:
                return mapping
            try:
                if compiled(mapping.when).search(payload):
                    return mapping
            except JMESPathError:
                continue
        return None

    def events(self, payload: Any, *, body: bytes, webhook_id: str | None = None,
               now: datetime | None = None) -> list[Event]:
        mapping = self.mapping_for(payload)
        if mapping is None:
            if self.spec.unmatched == "ignore":
                return []
            raise PayloadError(f"no mapping of source {self.name} matches this payload", code="no_mapping",
                               field="when")
        dedupe = self._dedupe_key(mapping, payload, body, webhook_id)
        return _Builder(self, mapping, payload, dedupe, now or datetime.now(UTC)).build()

    def _dedupe_key(self, mapping: MappingSpec, payload: Any, body: bytes, webhook_id: str | None) -> str:
        if mapping.dedupe_key:
            return bounded(_text(read(payload, FieldSpec(expr=mapping.dedupe_key), "dedupe_key")))
        if webhook_id and self.spec.auth.scheme == "standard" and self.spec.auth.dedupe_on_webhook_id:
            return bounded(webhook_id)
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def cancel_key(self, value: Any) -> str:
        """Cancel keys are namespaced by source: one system cannot cancel another's reminders."""
        return bounded(f"{self.source}:{_text(value)}")


class _Builder:
    def __init__(self, source: MappedSource, mapping: MappingSpec, payload: Any, dedupe: str, now: datetime) -> None:
        self.source = source
        self.mapping = mapping
        self.payload = payload
        self.dedupe = dedupe
        self.now = now

    def build(self) -> list[Event]:
        kind = self.mapping.kind
        if kind == "cancel":
            return [self._event(EventKind.CANCEL, CancelRequest(cancel_key=self._cancel_key()), self.dedupe)]
        if kind == "send":
            return self._send()
        data = self._fields()
        contact = "contact" if kind == "lead" else "customer"
        phone, country = self._phone()
        if phone is not None:
            _put(data, f"{contact}.phone", _text(phone))
        if country is not None:
            _put(data, f"{contact}.country", _text(country))
        model = self._validate(Lead if kind == "lead" else Order, data, prefix=contact)
        extra: dict[str, Any] = {}
        if self.mapping.previous_status:
            previous = read(self.payload, FieldSpec(expr=self.mapping.previous_status, required=False),
                            "previous_status")
            extra["previous_status"] = _text(previous) if previous is not None else None
        record_id = getattr(model, "id", None)
        if record_id:  # events about one order (lead) apply in journal order, one at a time
            extra["ordering_key"] = f"{self.source.source}:{'lead' if kind == 'lead' else 'order'}:{record_id}"
        return [self._event(EventKind(kind), model, self.dedupe, **extra)]

    # --- pieces -------------------------------------------------------------------------

    def _event(self, kind: EventKind, model: BaseModel, dedupe: str, *, consents: bool = True,
               **extra: Any) -> Event:
        return Event.of(kind, model, source=self.source.source, dedupe_key=dedupe,
                        consents=self._consents() if consents else [], occurred_at=self.now, **extra)

    def _fields(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for target, spec in self.mapping.fields.items():
            value = read(self.payload, spec, target)
            if value is not None:
                _put(data, target, value)
        return data

    def _phone(self) -> tuple[Any, Any]:
        phone = read(self.payload, self.mapping.phone, "phone") if self.mapping.phone else None
        country = read(self.payload, self.mapping.country, "country") if self.mapping.country else None
        return phone, country

    def _expr_for(self, loc: tuple[Any, ...], prefix: str) -> str:
        """The configured expression behind a validation error's location, to name it in the 422."""
        dotted = ".".join(str(p) for p in loc)
        if dotted in (f"{prefix}.phone", "phone") and self.mapping.phone:
            return self.mapping.phone.expr
        if dotted in (f"{prefix}.country", "country") and self.mapping.country:
            return self.mapping.country.expr
        for target, spec in self.mapping.fields.items():
            if dotted == target or dotted.startswith(target + "."):
                return spec.expr
        return dotted

    def _validate(self, model: type[BaseModel], data: dict[str, Any], prefix: str) -> Any:
        try:
            return model.model_validate(data)
        except InvalidPhoneError as exc:
            field = self.mapping.phone.expr if self.mapping.phone else "phone"
            raise PayloadError(f"{field}: {exc.message}", code=exc.code, field=field) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            field = self._expr_for(tuple(first.get("loc", ())), prefix)
            raise PayloadError(f"{field}: {first.get('msg', 'invalid')}", code="bad_field", field=field) from None
        except (TypeError, AttributeError, ArithmeticError):  # a validator met a value of an odd type
            raise PayloadError(f"a payload value has a type the {model.__name__.lower()} cannot take",
                               code="bad_field") from None

    def _consents(self) -> list[ConsentChange]:
        if not self.mapping.consents:
            return []
        phone, country = self._phone()
        if phone is None:
            return []
        out = []
        for spec in self.mapping.consents:
            granted = True
            if spec.granted is not None:
                value = as_bool(search(spec.granted, self.payload), spec.granted)
                if value is None:
                    continue
                granted = value
            proof = search(spec.proof, self.payload) if spec.proof else None
            data = {"phone": _text(phone), "country": _text(country) if country is not None else None,
                    "category": spec.category, "granted": granted, "source": spec.source, "medium": spec.medium,
                    "proof": _text(proof) if proof is not None else None, "at": self.now}
            out.append(self._validate(ConsentChange, data, prefix="consent"))
        return out

    def _cancel_key(self) -> str:
        assert self.mapping.cancel_key is not None
        return self.source.cancel_key(read(self.payload, FieldSpec(expr=self.mapping.cancel_key), "cancel_key"))

    def _send(self) -> list[Event]:
        m = self.mapping
        events: list[Event] = []
        cancel_key = self._cancel_key() if m.cancel_key else None
        if m.replace and cancel_key:
            events.append(self._event(EventKind.CANCEL, CancelRequest(cancel_key=cancel_key), f"{self.dedupe}:cancel",
                                      consents=False))
        not_before = self._send_time()
        if not_before is False:
            return events
        phone, country = self._phone()
        contact = self._validate(Contact, {**self._fields(), "phone": _text(phone),
                                           "country": _text(country) if country is not None else None},
                                 prefix="to")
        if isinstance(m.parameters, dict):
            body: Any = {k: _text(read(self.payload, spec, f"parameters.{k}")) for k, spec in m.parameters.items()}
        else:
            body = [_text(read(self.payload, spec, f"parameters[{n}]")) for n, spec in enumerate(m.parameters)]
        language = m.language
        if m.language_field is not None:
            found = read(self.payload, m.language_field.model_copy(update={"required": False}), "language")
            language = _text(found) if found is not None else m.language
        key = None
        if m.idempotency_key:
            key = bounded(_text(read(self.payload, FieldSpec(expr=m.idempotency_key), "idempotency_key")))
        # email is a fallback only for a payload that gave an address: a booking without one still reminds
        fallback = [medium for medium in m.fallback if medium != EMAIL or contact.email]
        try:
            content = TemplateContent(name=m.template or "", language=language, body=body)
            outgoing = Outgoing(to=contact, content=content, not_before=not_before or None, cancel_key=cancel_key,
                                idempotency_key=key, fallback_media=fallback,
                                fallback_after_minutes=m.fallback_after_minutes if fallback else None)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise PayloadError(f"{'.'.join(map(str, first.get('loc', ())))}: {first.get('msg')}",
                               code="bad_field", field="parameters") from None
        events.append(self._event(EventKind.SEND, outgoing, self.dedupe))
        return events

    def _send_time(self) -> datetime | Literal[False] | None:
        """When to send (None = now), or False when the time has passed and ``if_past = "skip"``."""
        spec = self.mapping.send_at
        if spec is None:
            return None
        anchor = as_datetime(read(self.payload, FieldSpec(expr=spec.field), "send_at.field"), spec.field,
                             spec.timezone)
        at = (anchor + spec.delta).astimezone(UTC)
        if at <= self.now and spec.if_past == "skip":
            return False
        return at
