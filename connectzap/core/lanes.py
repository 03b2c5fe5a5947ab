"""How many send lanes a worker runs and how many messages each claims, from Little's law.

A lane claims a batch, sends each message as the channel's pacer releases it, waits for the last
answer, records the batch and claims again. While it waits out the round trip and records, other
lanes must keep the pacer busy, so for a channel limited to ``rate`` msg/s::

    lanes = 1 + rate x (latency + claim and record time) / claimed per lane

With ``workers.sender_lanes`` unset the sender works this out itself: each lane claims a fifth of a
second of the rate (200 messages at 1,000 msg/s; never fewer than ``workers.batch_size``), every
claimed message may be in flight at once (the pacer spreads them), and the lane count follows the
send latency and the claim and record time the sender measures, with half again as margin. The
Graph client's pool holds a connection for every request in flight at up to
:data:`MAX_LATENCY_SECONDS`. A channel that knows no limit (the sandbox, a test fake) gets the
fixed shape of before: :data:`DEFAULT_LANES` lanes of ``batch_size`` and ``send_concurrency``;
so does a worker configured with ``sender_lanes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_LANES = 2
MAX_LANES = 16
LANE_SECONDS = 0.2
"""Each lane claims this many seconds of the channel's rate."""
MAX_CLAIM = 500
MAX_LATENCY_SECONDS = 1.0
"""Latency above this counts as this much when sizing (a Graph API timing out must not multiply lanes)."""
MARGIN = 1.5
SMOOTHING = 0.3
"""Weight of the newest round in the running latency and overhead."""


@dataclass
class LaneSizing:
    """The sender's shape: fixed when configured or when the channel knows no rate, else measured."""

    batch_size: int
    send_concurrency: int
    fixed_lanes: int | None = None
    rate: float | None = None
    latency: float = 0.0
    overhead: float = 0.05

    @property
    def automatic(self) -> bool:
        return self.fixed_lanes is None and bool(self.rate)

    def claim_size(self) -> int:
        """Messages one lane claims at a time."""
        if not self.automatic:
            return self.batch_size
        assert self.rate is not None
        return max(self.batch_size, min(math.ceil(self.rate * LANE_SECONDS), MAX_CLAIM))

    def concurrency(self) -> int:
        """Requests one lane may have in flight at once."""
        return self.claim_size() if self.automatic else self.send_concurrency

    def lanes(self) -> int:
        if self.fixed_lanes is not None:
            return self.fixed_lanes
        if not self.rate:
            return DEFAULT_LANES
        busy = min(self.latency, MAX_LATENCY_SECONDS) + min(self.overhead, MAX_LATENCY_SECONDS)
        wanted = 1 + math.ceil(self.rate * busy * MARGIN / self.claim_size())
        return max(DEFAULT_LANES, min(wanted, MAX_LANES))

    def observe(self, latency: float | None, overhead: float) -> None:
        """One lane round: the mean send latency (None: nothing was sent) and the seconds its claim
        and record took."""
        if latency is not None:
            self.latency += SMOOTHING * (latency - self.latency)
        self.overhead += SMOOTHING * (overhead - self.overhead)
