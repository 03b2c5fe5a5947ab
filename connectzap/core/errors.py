"""One exception tree, organised by what the caller should do next.

* :class:`RetriableError` -- the same work may succeed later: back off and try again.
* :class:`SkippableError` -- this one item cannot be done; record why and move on.
* :class:`FatalError` -- stop: configuration or code must change before anything works.

Everything connectzap raises on purpose derives from :class:`ConnectzapError`, so the
CLI and the HTTP edge can turn it into one clear line instead of a traceback.
"""

from __future__ import annotations

from typing import Any


class ConnectzapError(Exception):
    """Base class. ``code`` is a short machine-readable reason, stable across versions."""

    code: str = "error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class RetriableError(ConnectzapError):
    """Temporary failure: retry with backoff. ``retry_after`` (seconds) is a hint when known."""

    code = "retry"

    def __init__(self, message: str = "", *, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class SkippableError(ConnectzapError):
    """This item cannot be processed; record the reason and continue with the next one."""

    code = "skipped"


class FatalError(ConnectzapError):
    """Nothing will work until a human changes configuration or code."""

    code = "fatal"


# --- configuration and startup -------------------------------------------------------------

class ConfigurationError(FatalError):
    """The configuration is invalid or incomplete."""

    code = "configuration"


class PluginLoadError(FatalError):
    """A plugin could not be imported or registered (raised only in strict mode)."""

    code = "plugin_load"


class StartupError(FatalError):
    """Two plugins registered the same name, or a registration was invalid."""

    code = "startup"


# --- ingress ---------------------------------------------------------------------------------

class SignatureError(SkippableError):
    """A webhook's signature is missing, stale or wrong. The text names the reason, never a secret."""

    code = "bad_signature"


class PayloadError(SkippableError):
    """A payload could not be parsed or mapped. ``field`` names what was missing or wrong."""

    code = "bad_payload"

    def __init__(self, message: str = "", *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class InvalidPhoneError(PayloadError):
    """A phone number cannot be turned into a valid E.164 number."""

    code = "invalid_phone"


class InvalidRecipientError(PayloadError):
    """A recipient is neither a valid phone number nor a business-scoped user id (BSUID)."""

    code = "invalid_recipient"


# --- the send gate ----------------------------------------------------------------------------

class RefusedError(SkippableError):
    """The send gate refused a message. ``code`` is the refusal reason (``no_consent``, ...)."""

    code = "refused"

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code.replace("_", " "), code=code)


class NotFoundError(SkippableError):
    """The thing asked for does not exist."""

    code = "not_found"


class ConflictError(SkippableError):
    """The request conflicts with what is stored (e.g. an idempotency key reused for other content)."""

    code = "conflict"


# --- delivery to WhatsApp and CRMs -----------------------------------------------------------

class DeliveryError(ConnectzapError):
    """A call to an external API failed. Subclasses say whether to retry."""

    code = "delivery"

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        vendor_code: int | str | None = None,
        details: str | None = None,
        trace_id: str | None = None,
        http_status: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.vendor_code = vendor_code
        self.details = details
        self.trace_id = trace_id
        self.http_status = http_status
        self.data = data or {}


class RetriableDeliveryError(DeliveryError, RetriableError):
    """The external API asked us to come back later (rate limit, 5xx, maintenance)."""

    code = "retry"

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs: Any) -> None:
        DeliveryError.__init__(self, message, **kwargs)
        self.retry_after = retry_after


class SkippableDeliveryError(DeliveryError, SkippableError):
    """This one message cannot be delivered (window closed, opted out, unreachable)."""

    code = "undeliverable"


class FatalDeliveryError(DeliveryError, FatalError):
    """Credentials, permissions or the account are broken: pause and alert."""

    code = "fatal"


class AmbiguousDeliveryError(DeliveryError):
    """We do not know whether the external API acted (a timeout): never blindly resend."""

    code = "unknown"


class SendingPausedError(FatalDeliveryError):
    """The channel's credentials stopped working (e.g. Meta error 190): pause all sending until fixed."""

    code = "paused"


class PacedError(RetriableError):
    """A rate limit held the message back before it was sent: it waits, and this is not a failed attempt."""

    code = "paced"


class PhoneRequiredError(FatalDeliveryError):
    """The message can only go to a phone number (an authentication template) and the contact is
    known by a business-scoped user id only: ask the customer for the number first (a
    ``request_contact_info`` message), then send again."""

    code = "phone_required"
