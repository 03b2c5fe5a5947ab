"""A long-running process's start-up objects, kept out of the garbage collector's way.

``serve`` and ``worker`` call :func:`settle` once they are running. Everything alive then -- the
engine, its plugins and settings, the libraries' modules, models and compiled statements -- lives
as long as the process. Python's collector nevertheless walks all of it at each of its full
passes, and a busy process makes many: a campaign round's few thousand recipients each leave
objects the collector tracks, and the passes they set off walked the whole start-up heap. That was
about a tenth of a campaign admission's CPU (docs/campaigns.md, "The garbage collector").
"""

from __future__ import annotations

import gc
import logging
import os

from . import logs

log = logging.getLogger(__name__)


def settle() -> int:
    """Collect what start-up left behind, then move every object still alive to the collector's
    permanent generation (``gc.freeze``): later full passes walk only what the process made since.
    Frozen objects are still freed when nothing refers to them; only a reference cycle among them
    would stay (so call this once, when start-up is over). Returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logs.emit(log, logging.DEBUG, "start-up objects frozen", objects=frozen, pid=os.getpid())
    return frozen
