"""Counts as people read them: "1 recipient", "2 recipients" -- never "1 recipients"."""

from __future__ import annotations


def plural(n: float, one: str, many: str | None = None) -> str:
    """``one`` when ``n`` is 1, else ``many`` (by default ``one`` with an s)."""
    return one if n == 1 else many if many is not None else one + "s"


def counted(n: float, one: str, many: str | None = None) -> str:
    """``n`` and the words that agree with it: ``counted(1, "message waits", "messages wait")``."""
    number = f"{n:g}" if isinstance(n, float) else str(n)
    return f"{number} {plural(float(number), one, many)}"  # as printed: 0.9999999 shows as 1
