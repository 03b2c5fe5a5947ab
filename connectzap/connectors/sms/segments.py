"""How many SMS segments a text costs: GSM-7 or UCS-2, and the per-segment limits of each.

A text made only of the GSM 03.38 default alphabet goes as GSM-7: 160 septets in one segment,
153 per segment once it is split (the rest of each segment carries the concatenation header).
Characters of the extension table (``^ { } \\ [ ~ ] | €`` and form feed) take two septets: an
escape and the character. Any other character makes the whole text UCS-2: 70 UTF-16 code units
in one segment, 67 per segment when split; a character outside the Basic Multilingual Plane (most
emoji) takes two code units.

An escape sequence and a surrogate pair are never split across two segments (phones could not
put them back together), so a segment may hold one unit less than its limit; this counts that too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
"""The GSM 03.38 default alphabet (the escape code 0x1B itself is not a character of a text)."""
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
"""The extension table: each of these is sent as escape + character, two septets."""

SINGLE = {"GSM-7": 160, "UCS-2": 70}
"""Units one unsplit segment holds."""
PART = {"GSM-7": 153, "UCS-2": 67}
"""Units each segment of a split text holds."""

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class SegmentCount:
    """What sending a text costs: its encoding, its length in units (septets or UTF-16 code
    units) and the segments it goes in. Carries no text, so it may be logged."""

    encoding: Encoding
    units: int
    segments: int


def is_gsm7(text: str) -> bool:
    """Whether every character of ``text`` is in the GSM-7 alphabet or its extension table."""
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _units(text: str, encoding: Encoding) -> list[int]:
    """The width of each character of ``text`` in units of ``encoding``."""
    if encoding == "GSM-7":
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def count_segments(text: str) -> SegmentCount:
    """The encoding, units and segments of ``text`` (an empty text still costs one segment)."""
    encoding: Encoding = "GSM-7" if is_gsm7(text) else "UCS-2"
    widths = _units(text, encoding)
    total = sum(widths)
    if total <= SINGLE[encoding]:
        return SegmentCount(encoding, total, 1)
    limit, segments, used = PART[encoding], 1, 0
    for width in widths:
        if used + width > limit:  # this character does not fit whole: it opens the next segment
            segments, used = segments + 1, 0
        used += width
    return SegmentCount(encoding, total, segments)
