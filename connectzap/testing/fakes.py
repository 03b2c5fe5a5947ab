"""Fake channels for tests: WhatsApp, recording every request body it is asked to send, and
:class:`FakeChannel`, any other medium (email, sms), recording every message.

The WhatsApp fake builds the exact Cloud API body with the WhatsApp connector's own payload builder
and validates it, so a test sees what WhatsApp would have received. Both can be told to fail the
next sends with a given classification, to test what the sender does with each kind of failure.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..connectors.whatsapp.payloads import checked_body, read_receipt_body
from ..core.channel import BaseChannel, OutboundSend, Refusal
from ..core.errors import (AmbiguousDeliveryError, DeliveryError, FatalDeliveryError,
                           RetriableDeliveryError, SendingPausedError, SkippableDeliveryError)
from ..core.models import Event, EventKind, MessageStatus

# classification -> (exception class, code, Meta error code it stands for)
FAILURES: dict[str, tuple[type[DeliveryError], str | None, int | None]] = {
    "retry": (RetriableDeliveryError, None, 130429),
    "window_closed": (SkippableDeliveryError, "window_closed", 131047),
    "opted_out": (SkippableDeliveryError, "opted_out", 131050),
    "unreachable": (SkippableDeliveryError, "unreachable", 131026),
    "marketing_limited": (SkippableDeliveryError, "marketing_limited", 131049),  # the per-user marketing limit
    "fatal": (FatalDeliveryError, None, 100),
    "paused": (SendingPausedError, None, 190),
    "ambiguous": (AmbiguousDeliveryError, None, None),
}
"""The classifications :meth:`FakeWhatsApp.fail_next` understands, as the sender sees them."""


@dataclass(frozen=True)
class Recorded:
    """One send attempt: the request body, and the wamid (or the error) it got."""

    body: dict[str, Any]
    outbox_id: str
    wamid: str | None
    error: DeliveryError | None


def delivery_error(classification: str, message: str | None = None) -> DeliveryError:
    """The exception a real channel raises for ``classification`` (a key of :data:`FAILURES`)."""
    try:
        cls, code, vendor_code = FAILURES[classification]
    except KeyError:
        raise ValueError(f"unknown failure {classification!r}; use one of {', '.join(FAILURES)}") from None
    text = message or f"fake WhatsApp failure: {classification}"
    return cls(text, code=code, vendor_code=vendor_code, details=text)


class FakeWhatsApp(BaseChannel):
    """A :class:`~connectzap.core.channel.Channel` for tests.

    * ``attempts`` -- every send attempt, failed ones included (:class:`Recorded`).
    * :meth:`sent` -- the request bodies that were accepted, oldest first.
    * :meth:`fail_next` -- make the next sends raise the error for a classification.
    """

    name = "fake-whatsapp"

    def __init__(self) -> None:
        self.attempts: list[Recorded] = []
        self.reads: list[dict[str, Any]] = []
        """Read receipt request bodies (``status: read``, with ``typing_indicator`` when asked), oldest first."""
        self.order: list[str] = []
        """What reached the channel, in order: ``read:<wamid>`` and ``send:<outbox id>``."""
        self._failures: deque[DeliveryError] = deque()
        self.closed = False

    def fail_next(self, classification: str | DeliveryError, times: int = 1) -> None:
        """Fail the next ``times`` sends: ``"retry"``, ``"window_closed"``, ``"opted_out"``,
        ``"unreachable"``, ``"fatal"``, ``"paused"``, ``"ambiguous"``, or an exception instance."""
        error = classification if isinstance(classification, DeliveryError) else delivery_error(classification)
        self._failures.extend([error] * times)

    async def send(self, message: OutboundSend) -> str:
        body = checked_body(message)
        if self._failures:
            error = self._failures.popleft()
            self.attempts.append(Recorded(body, message.outbox_id, None, error))
            raise error
        wamid = "wamid.fake." + secrets.token_hex(10)
        self.attempts.append(Recorded(body, message.outbox_id, wamid, None))
        self.order.append(f"send:{message.outbox_id}")
        return wamid

    async def mark_read(self, wamid: str, *, typing: bool = False, phone_number_id: str | None = None) -> bool:
        self.reads.append(read_receipt_body(wamid, typing))
        self.order.append(f"read:{wamid}")
        return True

    async def reconcile(self, outbox_id: str) -> Any:
        for attempt in self.attempts:
            if attempt.outbox_id == outbox_id and attempt.wamid:
                return attempt.wamid
        return None

    async def aclose(self) -> None:
        self.closed = True

    # --- reading what happened --------------------------------------------------------

    def sent(self) -> list[dict[str, Any]]:
        """Bodies of accepted sends, oldest first (the same shape as the sandbox's ``sent()``)."""
        return [a.body for a in self.attempts if a.wamid]

    def sent_to(self, phone: str) -> list[dict[str, Any]]:
        digits = phone.lstrip("+")
        return [b for b in self.sent() if b["to"] == digits]

    def templates_sent(self) -> list[str]:
        return [b["template"]["name"] for b in self.sent() if b["type"] == "template"]

    def status_events(self, *statuses: str) -> list[Event]:
        """Status webhook events (default ``sent`` and ``delivered``) for every accepted send,
        ready for ``app.ingest``: what WhatsApp would report next."""
        out = []
        for attempt in self.attempts:
            if not attempt.wamid:
                continue
            for status in statuses or ("sent", "delivered"):
                update = MessageStatus(wamid=attempt.wamid, status=status, timestamp=datetime.now(UTC),
                                       recipient="+" + attempt.body["to"], outbox_id=attempt.outbox_id)
                out.append(Event.of(EventKind.MESSAGE_STATUS, update, source="whatsapp",
                                    dedupe_key=f"{attempt.wamid}:{status}"))
        return out

    def reset(self) -> None:
        self.attempts.clear()
        self.reads.clear()
        self.order.clear()
        self._failures.clear()


class FakeChannel(BaseChannel):
    """A channel on any ``medium`` (``"email"``, ``"sms"``, ...) for tests: it records each
    :class:`~connectzap.core.channel.OutboundSend` it accepts (:attr:`messages`), can fail the next
    sends like :class:`FakeWhatsApp` (:meth:`fail_next`) and can apply a rule of its medium
    (:attr:`rule`: a function from message and time to a :class:`~connectzap.core.channel.Refusal`
    or None)."""

    def __init__(self, medium: str, name: str | None = None) -> None:
        self.medium = medium
        self.name = name or f"fake-{medium}"
        self.messages: list[OutboundSend] = []
        self.ids: dict[str, str] = {}  # outbox id -> the id it was given
        self.rule: Any = None
        self._failures: deque[DeliveryError] = deque()
        self.closed = False

    def fail_next(self, classification: str | DeliveryError, times: int = 1) -> None:
        """Fail the next ``times`` sends (the classifications of :data:`FAILURES`, or an exception)."""
        error = classification if isinstance(classification, DeliveryError) else delivery_error(classification)
        self._failures.extend([error] * times)

    async def send(self, message: OutboundSend) -> str:
        if self._failures:
            raise self._failures.popleft()
        self.messages.append(message)
        self.ids[message.outbox_id] = sent = f"{self.medium}.fake.{secrets.token_hex(8)}"
        return sent

    def refusal(self, message: OutboundSend, at: float) -> Refusal | None:
        return self.rule(message, at) if self.rule is not None else None

    async def reconcile(self, outbox_id: str) -> Any:
        return self.ids.get(outbox_id)

    async def aclose(self) -> None:
        self.closed = True

    def sent_to(self, address: str) -> list[OutboundSend]:
        return [m for m in self.messages if m.recipient == address]
