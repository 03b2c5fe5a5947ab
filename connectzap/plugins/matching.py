"""Words in a customer's message, compared the way customers write: case, accents and
punctuation do not matter, and a keyword counts only as whole words ("hora" is not in "ahora").
Shared by the plugins that react to words anywhere in a message (auto_replies, handoff)."""

from __future__ import annotations

import re

from connectzap import normalise_keyword

_WORD = re.compile(r"\w+")


def words_of(text: str) -> tuple[str, ...]:
    """``"¿Qué HORARIO tenéis?"`` -> ``("que", "horario", "teneis")``."""
    return tuple(_WORD.findall(normalise_keyword(text)))


def contains(said: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    """Whether the words ``phrase`` appear together, in order, among the words ``said``."""
    n = len(phrase)
    return n > 0 and any(said[i:i + n] == phrase for i in range(len(said) - n + 1))
