"""Appointment-booking webhooks (Calendly-style ``invitee.created`` / ``invitee.canceled``),
signed with Standard Webhooks, turned into consented WhatsApp messages.

* A booking whose form answered "yes" to the reminder question records a *utility* opt-in
  (with the question and answer as proof), sends a confirmation template now and schedules a
  reminder template before the appointment.
* A cancellation cancels the scheduled reminder.
* A booking without that "yes" still proposes the messages, and the send gate refuses them:
  no consent, no message.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr

from connectzap import (CancelRequest, Category, ConsentChange, Connector, ConnectorSettings, Contact, Event,
                        EventKind, InvalidPhoneError, Outgoing, PayloadError, TemplateContent, WebhookRequest,
                        signatures)

YES = {"yes", "y", "ja", "sí", "si", "oui", "true", "1"}


class BookingSettings(ConnectorSettings):
    """``[connectors.calendly_like]``."""

    signing_secrets: list[SecretStr] = Field(min_length=1)
    """Standard Webhooks secrets (``whsec_...``); list the new one first while rotating."""
    tolerance_seconds: int = Field(default=300, gt=0)
    confirmation_template: str | None = "appointment_confirmed"
    """Sent when the booking arrives; ``None`` sends none."""
    reminder_template: str = "appointment_reminder"
    language: str = "en"
    remind_before_hours: float = Field(default=24, gt=0)
    consent_question: str = "Send me appointment reminders on WhatsApp?"
    """The booking-form question whose "yes" is the customer's opt-in."""


def _field(data: Any, path: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``, or a PayloadError naming the missing field."""
    value = data
    for part in path.split("."):
        if not isinstance(value, dict) or value.get(part) in (None, ""):
            raise PayloadError(f"{path} is missing", field=path)
        value = value[part]
    return value


def _time(data: Any, path: str) -> datetime:
    raw = _field(data, path)
    try:
        parsed = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{path} is not an ISO 8601 time", field=path) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _local(when: datetime, timezone: str | None) -> str:
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return when.astimezone(zone).strftime("%a %d %b %Y, %H:%M") + f" ({zone.key})"


class BookingConnector(Connector):
    name = "calendly_like"
    title = "Appointment bookings (Calendly-style)"
    settings_model = BookingSettings
    routes = ("/webhooks/calendly_like",)

    settings: BookingSettings

    def verify_request(self, request: WebhookRequest) -> None:
        signatures.verify_standard(
            request.header("webhook-id"), request.header("webhook-timestamp"), request.header("webhook-signature"),
            request.body, [s.get_secret_value() for s in self.settings.signing_secrets],
            tolerance=self.settings.tolerance_seconds)

    def parse(self, request: WebhookRequest) -> list[Event]:
        try:
            data = json.loads(request.body)
        except ValueError:
            raise PayloadError("the body is not JSON") from None
        kind = _field(data, "event")
        if kind == "invitee.created":
            return self._booked(data)
        if kind == "invitee.canceled":
            uri = _field(data, "payload.uri")
            return [Event.of(EventKind.CANCEL, CancelRequest(cancel_key=uri), source=self.name,
                             dedupe_key=f"{uri}:canceled")]
        return []  # other subscriptions (routing forms, ...) are acknowledged and ignored

    def _booked(self, data: dict[str, Any]) -> list[Event]:
        uri = _field(data, "payload.uri")
        invitee = data["payload"]
        number = invitee.get("text_reminder_number")
        if not number:
            return []  # nobody to message
        try:
            contact = Contact(phone=number, name=invitee.get("name"), email=invitee.get("email"), external_id=uri)
        except (InvalidPhoneError, ValueError):
            raise PayloadError("not a valid phone number", field="payload.text_reminder_number") from None
        assert contact.phone is not None
        start = _time(data, "payload.scheduled_event.start_time")
        what = _field(data, "payload.scheduled_event.name")
        name = contact.display_name or "there"
        params = [name.split()[0], what, _local(start, invitee.get("timezone"))]
        cfg = self.settings
        sends: list[tuple[Outgoing, str]] = []
        if cfg.confirmation_template:
            confirm = TemplateContent(name=cfg.confirmation_template, language=cfg.language, body=params)
            sends.append((Outgoing(to=contact, content=confirm), f"{uri}:confirmation"))
        remind_at = start - timedelta(hours=cfg.remind_before_hours)
        if remind_at > datetime.now(UTC):
            reminder = TemplateContent(name=cfg.reminder_template, language=cfg.language, body=params)
            sends.append((Outgoing(to=contact, content=reminder, not_before=remind_at, cancel_key=uri),
                          f"{uri}:reminder:{start.isoformat()}"))
        # The opt-in travels with the first event: the core records it before that event's send.
        consents = self._consents(invitee, contact.phone, uri)
        return [Event.of(EventKind.SEND, outgoing, source=self.name, dedupe_key=key,
                         consents=consents if n == 0 else [])
                for n, (outgoing, key) in enumerate(sends)]

    def _consents(self, invitee: dict[str, Any], phone: str, uri: str) -> list[ConsentChange]:
        for qa in invitee.get("questions_and_answers") or []:
            if not isinstance(qa, dict) or qa.get("question") != self.settings.consent_question:
                continue
            answer = str(qa.get("answer", "")).strip()
            if answer.casefold() in YES:
                return [ConsentChange(phone=phone, category=Category.UTILITY, granted=True,
                                      source=f"{self.name}:booking-form",
                                      proof=f"answered {answer!r} to {qa['question']!r} when booking {uri}")]
        return []
