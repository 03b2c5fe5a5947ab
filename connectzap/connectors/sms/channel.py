"""The SMS channel: a message's text (:mod:`.rendering`), counted in segments (:mod:`.segments`),
sent through Twilio (:mod:`.client`), with quiet hours for marketing.

Quiet hours are the SMS medium's rule (:class:`~connectzap.core.channel.MediumRules`, which the
sender asks right before each send): :meth:`TwilioSmsChannel.refusal` holds a marketing SMS while
it is night for the recipient -- the number's time zones come from phonenumbers' data
(:mod:`connectzap.core.campaigns.send_window`, the same reading campaigns use) -- and the message
waits in the queue, no attempt counted, until ``marketing_send_window`` opens in every zone the
number may be in.

``send`` refuses a text longer than ``max_segments`` before anything leaves, and logs the count
(encoding, segments) with the outbox id -- never the text or the number. The status callback URL
carries the outbox id (``?outbox=``), so a status settles a message whose send timed out.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from ...core.campaigns import send_window
from ...core.channel import NOT_SUPPORTED, SMS, BaseChannel, OutboundSend, Refusal, SentId
from ...core.errors import FatalDeliveryError, PhoneRequiredError
from ...core.wording import counted
from .client import TwilioClient
from .rendering import render
from .segments import SegmentCount, count_segments
from .settings import SmsSettings

log = logging.getLogger(__name__)

MARKETING = "marketing"


class TwilioSmsChannel(BaseChannel):
    name = "twilio-sms"
    medium = SMS

    def __init__(self, settings: SmsSettings, client: TwilioClient | None = None) -> None:
        self.settings = settings
        self.client = client or TwilioClient(settings)

    def __repr__(self) -> str:
        return f"TwilioSmsChannel(client={self.client!r})"

    def refusal(self, message: OutboundSend, at: float) -> Refusal | None:
        """Quiet hours: a marketing SMS waits for the recipient's morning (None: it may go now)."""
        wait = quiet_hours_wait(self.settings, message, at)
        if wait is None:
            return None
        return Refusal("quiet_hours", f"marketing SMS go out between {self.settings.marketing_send_window} of the "
                                      "recipient's local time; this one waits until then", retry_at=at + wait)

    def text_of(self, message: OutboundSend) -> tuple[str, SegmentCount]:
        """The body ``message`` goes with and what it costs; a text over ``max_segments`` is refused."""
        body = render(message.content, self.settings.templates)
        count = count_segments(body)
        if count.segments > self.settings.max_segments:
            raise FatalDeliveryError(
                f"the text needs {count.segments} SMS segments ({count.encoding}, {count.units} units); "
                f"at most {self.settings.max_segments} are allowed ([connectors.sms] max_segments)",
                code="too_many_segments", data={"segments": count.segments, "encoding": count.encoding})
        return body, count

    def form(self, message: OutboundSend, body: str) -> dict[str, str]:
        """The form fields of the create-Message request for ``message``."""
        if not message.recipient.startswith("+"):
            raise PhoneRequiredError("an SMS needs the recipient's phone number; this contact is known by a "
                                     "business-scoped user id only")
        form = {"To": message.recipient, "Body": body}
        if self.settings.messaging_service_sid:
            form["MessagingServiceSid"] = self.settings.messaging_service_sid
        else:
            assert self.settings.from_number is not None  # the settings require one of the two
            form["From"] = self.settings.from_number
        if self.settings.status_callback_url:
            form["StatusCallback"] = f"{self.settings.status_callback_url}?{urlencode({'outbox': message.outbox_id})}"
        return form

    async def send(self, message: OutboundSend) -> str:
        if message.medium != SMS:
            # an engine that sends every medium through one channel must not turn a WhatsApp
            # message into an SMS
            raise FatalDeliveryError(f"the SMS channel sends only SMS, not {message.medium} messages",
                                     code="wrong_medium")
        body, count = self.text_of(message)
        answer = await self.client.create_message(self.form(message, body))
        sid = str(answer["sid"])
        log.info("sms for outbox %s accepted by Twilio as %s: %s, %s", message.outbox_id, sid,
                 counted(count.segments, "segment"), count.encoding)
        return SentId(sid, segments=count.segments)  # kept on the message record (outbox.segments)

    async def reconcile(self, outbox_id: str) -> Any:
        # Twilio keeps no reference of ours on a message, so listing messages cannot tell which
        # one an outbox id was; the status callback (its URL carries the outbox id) settles it.
        return NOT_SUPPORTED

    async def aclose(self) -> None:
        await self.client.aclose()


def quiet_hours_wait(settings: SmsSettings, message: OutboundSend, now: float) -> float | None:
    """Seconds a marketing SMS must wait for the recipient's send window; None when it may go now."""
    window = settings.window
    if window is None or message.category != MARKETING:
        return None
    zones = send_window.zones_of(message.recipient)
    opens = send_window.next_open(zones, now, *window)
    return opens - now if opens > now else None
