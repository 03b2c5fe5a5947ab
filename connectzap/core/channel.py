"""What the sender needs from a channel (the Cloud API client, the sandbox, a test fake).

``send`` returns the wamid or raises from the exception tree, which says what happens next:

* :class:`~connectzap.core.errors.RetriableDeliveryError` -- back to the queue, with backoff.
* :class:`~connectzap.core.errors.SkippableDeliveryError` -- this message fails; ``code`` may be
  ``window_closed`` (send the fallback template if there is one), ``opted_out`` (record a
  marketing opt-out) or ``unreachable`` (mark the contact).
* :class:`~connectzap.core.errors.SendingPausedError` -- requeue and pause all sending.
* :class:`~connectzap.core.errors.FatalDeliveryError` -- this message fails with the details.
* :class:`~connectzap.core.errors.AmbiguousDeliveryError` -- it may have been sent: mark it
  ``unknown`` and reconcile; never resend blindly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .messages import MessageContent


@dataclass(frozen=True)
class OutboundSend:
    """One message as the channel sees it. ``outbox_id`` travels as ``biz_opaque_callback_data``."""

    outbox_id: str
    recipient: str  # E.164
    content: MessageContent
    category: str
    reply_to: str | None = None
    business_phone_number_id: str | None = None


NOT_SUPPORTED: Any = object()


@runtime_checkable
class Channel(Protocol):
    name: str

    async def send(self, message: OutboundSend) -> str:
        """Send one message; return its wamid."""
        ...

    async def reconcile(self, outbox_id: str) -> Any:
        """After a crash mid-send: the wamid if the message was sent, None if it surely was not,
        or :data:`NOT_SUPPORTED` when the channel cannot tell (then status webhooks decide)."""
        ...

    async def aclose(self) -> None:
        ...
