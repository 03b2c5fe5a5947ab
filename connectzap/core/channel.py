"""What the sender needs from a channel (the Cloud API client, the sandbox, a test fake).

A connector offers one through :meth:`~connectzap.core.connector.Connector.make_channel`. Each
channel names the **medium** it sends on (``medium``: :data:`WHATSAPP`, :data:`EMAIL`, :data:`SMS`,
or any other lower-case name a plugin brings); the engine holds one channel per medium, the first
offered for it (or the one it was given), and sends each message through the channel of the
message's medium (:attr:`OutboundSend.medium`). For each claimed message the sender calls
:meth:`Channel.pace` and then :meth:`Channel.send`.

``pace`` waits until the message may go out under the channel's rate limits, or raises
:class:`~connectzap.core.errors.PacedError` with ``retry_after`` when it must wait longer: the
message goes back to the queue and the attempt is not counted.

``send`` returns the message id the channel gave (the wamid) or raises from the exception tree,
which says what happens next:

* :class:`~connectzap.core.errors.RetriableDeliveryError` -- back to the queue, with backoff.
* :class:`~connectzap.core.errors.SkippableDeliveryError` -- this message fails; its ``code`` is
  a :class:`~connectzap.core.models.DeliveryOutcome` when the failure says something about the
  recipient: ``window_closed`` (send the fallback template if there is one), ``opted_out``
  (record a marketing opt-out) or ``unreachable`` (mark the contact). A channel maps its
  vendor's error codes to these; the core knows no vendor's codes.
* :class:`~connectzap.core.errors.SendingPausedError` -- requeue and pause all sending.
* :class:`~connectzap.core.errors.FatalDeliveryError` -- this message fails with the details.
* :class:`~connectzap.core.errors.AmbiguousDeliveryError` -- it may have been sent: mark it
  ``unknown`` and reconcile; never resend blindly.

Subclass :class:`BaseChannel` to get the optional parts (no pacing, no reconcile, no read
receipts) for free.

Optional: :class:`MediumRules` -- ``refusal(message, at)``: the medium's own rules beyond
consent (quiet hours for SMS, an unsubscribe link in marketing email), asked right before each
send; a :class:`Refusal` with ``retry_at`` makes the message wait, one without refuses it.

Optional: :class:`ReadReceipts` -- ``mark_read`` tells the customer their message was read and,
with ``typing=True``, shows a typing indicator until the answer arrives. The sender calls it right
before an automatic answer to an inbound message (``[automation] typing_indicator``); a channel
that cannot answers False and the answer goes all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .errors import RetriableDeliveryError
from .media import EMAIL, SMS, WHATSAPP
from .messages import MessageContent

__all__ = ["EMAIL", "NOT_SUPPORTED", "SMS", "WHATSAPP", "BaseChannel", "Channel", "LegacyChannel", "MediumRules",
           "NoChannel", "OutboundSend", "PreMediumChannel", "ReadReceipts", "Refusal", "SentId", "Throughput"]


@dataclass(frozen=True)
class OutboundSend:
    """One message as the channel sees it. ``outbox_id`` travels as ``biz_opaque_callback_data``;
    ``contact_key`` is the recipient's keyed hash (what pacing keys per-recipient limits on).

    ``medium`` is the medium the message goes out on (the sender hands it only to that medium's
    channel); ``recipient`` is an address on that medium: E.164 (or, on WhatsApp, a business-scoped
    user id) for :data:`WHATSAPP` and :data:`SMS`, an email address for :data:`EMAIL`."""

    outbox_id: str
    recipient: str  # E.164, a business-scoped user id (BSUID), or an email address: see ``medium``
    content: MessageContent
    category: str
    reply_to: str | None = None
    business_phone_number_id: str | None = None
    contact_key: str = ""
    medium: str = WHATSAPP
    prefer_marketing_api: bool | None = None
    """For a marketing template: True sends it through Meta's Marketing Messages API, False through
    the Cloud API; None leaves it to the number's account (a campaign's ``marketing_api``)."""


class SentId(str):
    """A message id a channel's :meth:`Channel.send` may return instead of a plain string, to say
    the channel accepted the message but holds its delivery: ``held`` names why (WhatsApp answers
    ``held_for_quality_assessment`` while it paces a template). The message is pending, not failed:
    its status webhooks settle it, and ``held`` shows as its ``reason`` meanwhile. ``segments`` is
    what the message cost where the medium bills in parts (an SMS's GSM-7/UCS-2 segments): kept on
    the message record."""

    held: str | None
    segments: int | None

    def __new__(cls, value: str, held: str | None = None, *, segments: int | None = None) -> SentId:
        made = super().__new__(cls, value)
        made.held = held
        made.segments = segments
        return made


NOT_SUPPORTED: Any = object()
"""What :meth:`Channel.reconcile` answers when the channel cannot tell whether a message went out."""


@runtime_checkable
class Channel(Protocol):
    name: str
    """This channel's name, for logs and error records (``fake-whatsapp``, ``cloud-api``)."""
    medium: str
    """The medium this channel sends on (:data:`WHATSAPP`, :data:`EMAIL`, :data:`SMS`, ...): the
    engine gives it only messages whose :attr:`OutboundSend.medium` is this one."""

    async def pace(self, message: OutboundSend) -> None:
        """Wait until ``message`` may be sent under this channel's rate limits; raise
        :class:`~connectzap.core.errors.PacedError` (with ``retry_after``) to hold it back."""
        ...

    async def send(self, message: OutboundSend) -> str:
        """Send one message; return its id at the channel (the wamid), as a :class:`SentId` when
        the channel holds its delivery."""
        ...

    async def reconcile(self, outbox_id: str) -> Any:
        """After a crash mid-send: the wamid if the message was sent, None if it surely was not,
        or :data:`NOT_SUPPORTED` when the channel cannot tell (then status webhooks decide)."""
        ...

    async def aclose(self) -> None:
        ...


@runtime_checkable
class PreMediumChannel(Protocol):
    """The shape of a channel written before :attr:`Channel.medium` existed (adapted as a
    :class:`LegacyChannel` on :data:`WHATSAPP`)."""

    name: str

    async def pace(self, message: OutboundSend) -> None: ...

    async def send(self, message: OutboundSend) -> str: ...


@dataclass(frozen=True)
class Refusal:
    """Why a channel will not send a message (:meth:`MediumRules.refusal`). ``reason`` is a short
    machine-readable name (``quiet_hours``, ``unsubscribe_missing``); ``detail`` says it for people.
    With ``retry_at`` (unix seconds) the message waits in the queue until then and is checked again;
    without, it is refused."""

    reason: str
    detail: str
    retry_at: float | None = None


@runtime_checkable
class MediumRules(Protocol):
    """A medium's own rules beyond consent, checked by the sender right before each send (after
    the gate's re-check): quiet hours for SMS, an unsubscribe link in marketing email.
    :class:`BaseChannel` declares it and answers None (no rules)."""

    def refusal(self, message: OutboundSend, at: float) -> Refusal | None:
        """None when ``message`` may go at ``at`` (unix seconds); else why not, as a :class:`Refusal`."""
        ...


@runtime_checkable
class ReadReceipts(Protocol):
    """What a channel that can mark inbound messages read offers (:class:`BaseChannel` declares it)."""

    async def mark_read(self, wamid: str, *, typing: bool = False, phone_number_id: str | None = None) -> bool:
        """Mark the inbound message ``wamid`` read (its sender sees blue ticks); with ``typing``,
        also show a typing indicator (WhatsApp drops it when the answer arrives, or after 25 s).
        ``phone_number_id`` is the business number the message was written to. Returns whether
        the channel did it; raises from the exception tree like :meth:`Channel.send`."""
        ...


@runtime_checkable
class Throughput(Protocol):
    """What a channel with rate limits of its own offers (:class:`BaseChannel` declares it)."""

    def messages_per_second(self) -> float | None:
        """Messages per second this channel may send in all, across the numbers it sends from;
        None when it knows no limit."""
        ...


class BaseChannel:
    """A channel with the optional parts filled in: no rate limits, no reconcile, no read receipts,
    nothing to close, medium :data:`WHATSAPP`. Subclasses set ``name`` (and ``medium`` when they
    send on another medium) and implement :meth:`send`."""

    name: str = ""
    medium: str = WHATSAPP

    async def pace(self, message: OutboundSend) -> None:
        return None

    async def send(self, message: OutboundSend) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement send")

    async def reconcile(self, outbox_id: str) -> Any:
        return NOT_SUPPORTED

    async def mark_read(self, wamid: str, *, typing: bool = False, phone_number_id: str | None = None) -> bool:
        return False  # nothing to mark: the channel has no read receipts

    def messages_per_second(self) -> float | None:
        return None  # no rate limit of its own

    def refusal(self, message: OutboundSend, at: float) -> Refusal | None:
        return None  # no rules of its own beyond the gate's

    async def aclose(self) -> None:
        return None


class NoChannel(BaseChannel):
    """Where sends would go when no connector offers a channel: nowhere. The engine reports
    ``reason`` (health, ``doctor``) and the sender leaves the outbox alone, so messages wait in the
    queue until a channel is configured -- none is failed or lost."""

    name = "none"

    def __init__(self, reason: str, medium: str = WHATSAPP) -> None:
        self.reason = reason
        self.medium = medium

    async def send(self, message: OutboundSend) -> str:
        # The sender never calls this; anyone else learns why, and the message may be tried again.
        raise RetriableDeliveryError(self.reason, code="no_channel", retry_after=30.0)

    def __repr__(self) -> str:
        return f"NoChannel({self.reason!r})"


class WrappedChannel(BaseChannel):
    """A channel around another one: every part of the protocol, optional ones included, passes
    through to ``inner`` unless a subclass changes it. Wrappers build on this so none drops a part
    (a wrapper that answered :class:`BaseChannel`'s defaults would silently turn off read receipts,
    pacing or a medium's rules for the channel inside). Other attributes are the wrapped one's."""

    def __init__(self, inner: Any, medium: str | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.medium = inner.medium if medium is None else medium

    async def pace(self, message: OutboundSend) -> None:
        await self.inner.pace(message)

    async def send(self, message: OutboundSend) -> str:
        return await self.inner.send(message)  # type: ignore[no-any-return]  # the inner channel's id

    async def reconcile(self, outbox_id: str) -> Any:
        return await self.inner.reconcile(outbox_id)

    async def mark_read(self, wamid: str, *, typing: bool = False, phone_number_id: str | None = None) -> bool:
        if not isinstance(self.inner, ReadReceipts):
            return False
        return await self.inner.mark_read(wamid, typing=typing, phone_number_id=phone_number_id)

    def messages_per_second(self) -> float | None:
        return self.inner.messages_per_second() if isinstance(self.inner, Throughput) else None

    def refusal(self, message: OutboundSend, at: float) -> Refusal | None:
        return self.inner.refusal(message, at) if isinstance(self.inner, MediumRules) else None

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # what tests read from their own channel (``sent()``, ...)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


class LegacyChannel(WrappedChannel):
    """Adapts a channel written before :meth:`Channel.pace` or :attr:`Channel.medium` existed: it
    paces with its own ``pace`` if it has one, and sends on :data:`WHATSAPP` (the only medium there
    was). Deprecated; subclass :class:`BaseChannel` instead."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner, medium=WHATSAPP)

    async def pace(self, message: OutboundSend) -> None:
        if isinstance(self.inner, PreMediumChannel):
            await self.inner.pace(message)

    async def send(self, message: OutboundSend) -> str:
        return str(await self.inner.send(message))
