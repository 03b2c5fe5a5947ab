"""The relay's sending limit (``messages_per_second``), kept per worker process: each message gets
the next free slot, spaced ``1 / rate`` apart. A slot further away than ``max_wait`` seconds is not
taken: the message goes back to the queue (:class:`~connectzap.core.errors.PacedError`) instead of
holding a sender lane while it waits."""

from __future__ import annotations

from ...core.errors import PacedError


class SendRate:
    def __init__(self, messages_per_second: float, max_wait: float = 2.0) -> None:
        self.interval = 1.0 / messages_per_second
        self.max_wait = max_wait
        self._next = float("-inf")

    def reserve(self, now: float) -> float:
        """Seconds to wait before sending, the slot taken; raises :class:`PacedError` (nothing taken)
        when the next slot is more than ``max_wait`` away."""
        slot = max(now, self._next)
        wait = slot - now
        if wait > self.max_wait:
            raise PacedError("the SMTP relay's sending limit ([connectors.email] messages_per_second)",
                             code="email_rate", retry_after=wait)
        self._next = slot + self.interval
        return wait
