"""SMS segment counting: GSM-7 (extension characters count double) and UCS-2, 160/153 and 70/67."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from connectzap.connectors.sms.segments import GSM7_BASIC, GSM7_EXTENSION, count_segments, is_gsm7

BASIC = "".join(sorted(GSM7_BASIC))
EXTENSION = "".join(sorted(GSM7_EXTENSION))
GSM7_ALL = BASIC + EXTENSION
non_gsm = st.characters(blacklist_characters=GSM7_ALL, blacklist_categories=("Cs",))


def reference(units: int, single: int, part: int) -> int:
    """The textbook formula: one segment up to ``single`` units, else ``part`` units each."""
    return 1 if units <= single else math.ceil(units / part)


@given(st.text(alphabet=BASIC, max_size=2000))
def test_basic_gsm7_text_matches_the_formula(text: str) -> None:
    count = count_segments(text)
    assert (count.encoding, count.units) == ("GSM-7", len(text))
    assert count.segments == reference(len(text), 160, 153)


@given(st.text(alphabet=GSM7_ALL, max_size=2000))
def test_extension_characters_count_double_and_never_split(text: str) -> None:
    septets = len(text) + sum(c in GSM7_EXTENSION for c in text)
    count = count_segments(text)
    assert (count.encoding, count.units) == ("GSM-7", septets)
    # an escape sequence is never cut in two, so a segment may carry 152 septets instead of 153
    assert reference(septets, 160, 153) <= count.segments <= reference(septets, 160, 152)


@given(st.text(alphabet=GSM7_ALL, max_size=500), non_gsm, st.text(alphabet=GSM7_ALL, max_size=500))
def test_one_character_outside_gsm7_makes_the_whole_text_ucs2(before: str, odd: str, after: str) -> None:
    text = before + odd + after
    assert not is_gsm7(text)
    count = count_segments(text)
    units = len(text.encode("utf-16-le")) // 2
    assert (count.encoding, count.units) == ("UCS-2", units)
    assert reference(units, 70, 67) <= count.segments <= reference(units, 70, 66)


@given(st.text(alphabet=st.characters(max_codepoint=0xFFFF, blacklist_categories=("Cs",)), max_size=800))
def test_bmp_only_ucs2_matches_the_formula(text: str) -> None:
    count = count_segments(text)
    if count.encoding == "UCS-2":
        assert count.segments == reference(len(text), 70, 67)


def test_limits_at_the_edges() -> None:
    assert count_segments("a" * 160).segments == 1
    assert count_segments("a" * 161).segments == 2
    assert count_segments("a" * 306).segments == 2
    assert count_segments("a" * 307).segments == 3
    assert count_segments("€" * 80).segments == 1  # 160 septets
    assert count_segments("€" * 81).segments == 2
    assert count_segments("ü" * 160).encoding == "GSM-7"  # ü is in the default alphabet
    assert count_segments("ú" * 70).segments == 1  # ú is not: UCS-2
    assert count_segments("ú" * 71).segments == 2
    assert count_segments("😀" * 35).units == 70  # one emoji is two UTF-16 units
    assert count_segments("😀" * 36).segments == 2
    # 152 septets then an escape sequence: it does not fit in the first part and opens the second
    # 306 septets fit two parts of 153 by arithmetic, but the escape sequence after 152 septets does
    # not fit in the first part, so it opens the second and the last septet needs a third
    assert count_segments("a" * 152 + "€" + "a" * 152).units == 306
    assert count_segments("a" * 152 + "€" + "a" * 152).segments == 3
    assert count_segments("").segments == 1
