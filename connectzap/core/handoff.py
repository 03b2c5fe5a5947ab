"""The "handing off" mark: written durably right before a message's request goes to the channel.

After a crash, a message left ``sending`` without the mark never left the process and is simply
queued again; only one with the mark may have reached the channel and becomes ``unknown``. The
marks are group-committed: while one transaction is being written, the marks of every other
message reaching its send wait together and go in the next one, so a full batch costs a few
transactions, not one per message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class HandOffMarks:
    """Group commit of hand-off marks. ``write(ids)`` stores the marks of ``ids`` in one
    transaction (it runs in a thread) and returns the ids it marked; :meth:`mark` returns once its
    message's mark is durable."""

    def __init__(self, write: Callable[[list[str]], set[str]]) -> None:
        self._write = write
        self._waiting: list[tuple[str, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def mark(self, message_id: str) -> bool:
        """Return once ``message_id`` is marked handed off: True, or False when it could not be
        marked (this sender no longer holds it: it must not be sent). Raise what the write raised."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((message_id, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await done

    async def _flush(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                marked = await asyncio.to_thread(self._write, [message_id for message_id, _ in group])
            except Exception as exc:  # noqa: BLE001 - every waiter learns it: none of them may send
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
            except BaseException:  # cancelled (shutting down): nobody waits for ever
                for _, done in group + self._waiting:
                    done.cancel()
                raise
            else:
                for message_id, done in group:
                    if not done.done():
                        done.set_result(message_id in marked)
