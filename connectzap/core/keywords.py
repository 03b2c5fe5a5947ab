"""How a customer's message is compared with a keyword (STOP, ALTA, AGENTE...): case, accents,
underscores (a button payload such as ``STOP_PROMOTIONS``), surrounding punctuation and repeated
spaces do not matter. Every plugin that reacts to words uses these, so "Baja!" means the same to
all of them."""

from __future__ import annotations

import unicodedata

_EDGES = " \t\r\n.!¡?¿,;:\"'()*-"


def normalise_keyword(text: str) -> str:
    """``text`` as keywords are compared: ``"  ¡Baja! "`` and ``"BAJA"`` both give ``"baja"``."""
    decomposed = unicodedata.normalize("NFKD", text.replace("_", " "))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    # spaces first (str.split also knows control separators such as \x1f), then the edges
    return " ".join(plain.split()).strip(_EDGES)


def leading_keyword(text: str, keywords: set[str]) -> str | None:
    """The keyword (already normalised) that ``text`` is, or starts with as whole words -- the
    message a ``wa.me`` link prefills begins with its keyword and goes on with its wording."""
    said = normalise_keyword(text)
    if said in keywords:
        return said
    words = said.split()
    for end in range(len(words) - 1, 0, -1):
        head = normalise_keyword(" ".join(words[:end]))
        if head in keywords:
            return head
    return None
