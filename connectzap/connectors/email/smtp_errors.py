"""What an SMTP failure means for the message, as the core's exception tree.

The order of the checks, first match wins:

1. The login was refused (535 and friends), or the relay lacks what the settings ask for (no
   STARTTLS, no AUTH), or its certificate does not verify: :class:`SendingPausedError`. Every
   other email would fail the same way and only the operator can fix it; pausing loses nothing
   (the messages wait in the queue), where failing them one by one would burn the queue.
2. The connection dropped or timed out while the message itself was being handed over (the DATA
   stage): :class:`AmbiguousDeliveryError` -- the relay may have taken it, so it is never resent blindly.
3. Any other connection problem (refused, reset, timed out before DATA): retriable.
4. A 4xx reply at any stage: retriable (the relay says "later": greylisting, a full queue).
5. A 5xx reply to the recipient (RCPT): 550, 551, 553 or an enhanced status 5.1.x say the mailbox
   does not exist -- skippable with outcome ``unreachable``; other 5xx (policy, 552) skippable.
6. A 5xx reply to the sender (MAIL FROM): the relay refuses our from address -- paused, like (1).
7. A 5xx reply to the content (DATA): this message is refused (spam filter, size) -- skippable.

Messages carry the relay's reply, never the password (the relay never echoes it).
"""

from __future__ import annotations

import re
import ssl
from typing import Literal

import aiosmtplib

from ...core.errors import (AmbiguousDeliveryError, DeliveryError, RetriableDeliveryError, SendingPausedError,
                            SkippableDeliveryError)
from ...core.models import DeliveryOutcome

Stage = Literal["connect", "envelope", "data"]

_NO_MAILBOX_CODES = {550, 551, 553}
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return " ".join(f"{exc.code} {exc.message}".split())[:300]


def no_such_mailbox(code: int, text: str) -> bool:
    """Whether a 5xx reply to RCPT says the address does not exist (the basic code, or an enhanced
    status of class 5.1.x -- "bad destination mailbox address" and kin, RFC 3463)."""
    enhanced = _ENHANCED.search(text)
    if enhanced is not None and enhanced.group(1) == "5":
        return enhanced.group(2) == "1"
    return code in _NO_MAILBOX_CODES


def delivery_error(exc: BaseException, stage: Stage) -> DeliveryError:
    """The exception the sender acts on for ``exc``, raised at ``stage`` of one send."""
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return SendingPausedError(f"the SMTP relay refused the login: {_reply(exc)}", code="smtp_auth",
                                  vendor_code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or type(exc) is aiosmtplib.SMTPException:
        # the relay answered but lacks what the settings ask for (STARTTLS, AUTH, a login mechanism)
        return SendingPausedError(f"the SMTP relay does not offer what the settings ask for: {exc}",
                                  code="smtp_not_supported")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SendingPausedError(f"the SMTP relay's certificate does not verify: {exc.verify_message}",
                                  code="smtp_tls")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _from_reply(exc, stage)
    if isinstance(exc, (aiosmtplib.SMTPException, OSError, TimeoutError)):  # no reply: the connection failed
        what = type(exc).__name__
        if stage == "data":
            return AmbiguousDeliveryError(f"the connection to the SMTP relay was lost while handing over the "
                                          f"message ({what}): it may have been sent", code="smtp_unknown")
        return RetriableDeliveryError(f"cannot reach the SMTP relay ({what}: {exc})", code="smtp_connection",
                                      retry_after=30.0)
    raise exc


def _from_reply(exc: aiosmtplib.SMTPResponseException, stage: Stage) -> DeliveryError:
    code, said = exc.code, _reply(exc)
    if 400 <= code < 500:
        return RetriableDeliveryError(f"the SMTP relay said try later: {said}", code="smtp_later",
                                      vendor_code=code, retry_after=60.0)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        if no_such_mailbox(code, exc.message):
            return SkippableDeliveryError(f"the recipient's mail server says the address does not exist: {said}",
                                          code=DeliveryOutcome.UNREACHABLE.value, vendor_code=code)
        return SkippableDeliveryError(f"the SMTP relay refused the recipient: {said}", code="smtp_rejected",
                                      vendor_code=code)
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return SendingPausedError(f"the SMTP relay refused the from address: {said}", code="smtp_sender_refused",
                                  vendor_code=code)
    if stage == "data" or isinstance(exc, aiosmtplib.SMTPDataError):
        return SkippableDeliveryError(f"the SMTP relay refused the message: {said}", code="smtp_rejected",
                                      vendor_code=code)
    # a 5xx greeting or EHLO: the relay will not talk to us at all until someone looks
    return SendingPausedError(f"the SMTP relay refused the connection: {said}", code="smtp_refused",
                              vendor_code=code)
