"""The event loop the edge and the workers run on: uvloop's when it is installed (uvicorn[standard]
brings it on Linux and macOS), else asyncio's own. At a thousand sends a second the worker's HTTP
client and its many small tasks cost markedly less CPU on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """For :class:`asyncio.Runner`: uvloop's loop, or None (asyncio's own) without uvloop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it on Linux and macOS
        return None
    return uvloop.new_event_loop
