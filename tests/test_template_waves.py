"""A wave's stored message is byte for byte what the gate stores for the same message
(:func:`connectzap.core.gate.stored_json`), for any text in the body -- quotes, backslashes, control
characters, emoji, text the gate's whitespace cleaning changes -- positional or named, with or
without a header; and a template the wave cannot take is left to the gate's one-by-one path."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connectzap.core import gate
from connectzap.core.messages import Outgoing, TemplateContent
from connectzap.core.template_waves import TemplateWave, _cleaned

TEXT = st.one_of(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
                 st.sampled_from(['say "hi"', "back\\slash", "a  b", " pad ", "tab\tx", "line\nbreak", "\x00\x1f",
                                  "Zoë 🎉", "\u2028"]))
BODIES = st.one_of(st.lists(TEXT, max_size=4),
                   st.dictionaries(st.sampled_from(["first_name", "offer", "code"]), TEXT, max_size=3))


def _base(header: str | None, named: bool) -> Outgoing:
    content = TemplateContent.model_validate({
        "name": "december_news", "language": "de", "body": {} if named else [],
        **({"header": {"type": "text", "text": header}} if header else {})})
    return Outgoing.model_construct(to=None, content=content, cancel_key="campaign:c1", origin={"campaign": "c1"},
                                    business_phone_number_id=None)


@given(body=BODIES, header=st.one_of(st.none(), st.sampled_from(["Sale", "Winter deals"])))
def test_a_members_stored_message_is_what_the_gate_stores(body: Any, header: str | None) -> None:
    base = _base(header, isinstance(body, dict))
    wave = TemplateWave.of(base)
    assert wave is not None
    message = base.model_copy(update={"content": TemplateContent.model_validate({**base.content.model_dump(),
                                                                                 "body": body})})
    shown = gate.clean_template(message.content)
    cleaned = _cleaned(body)
    assert (cleaned is body) == (shown is message.content)
    assert wave.stored(body, cleaned) == gate.stored_json(message, shown, None, 0.0)


def test_a_template_the_wave_cannot_take_is_left_to_the_gate() -> None:
    assert TemplateWave.of(_base("Two  spaces", False)) is None  # the gate would clean the header
    with_fallback = _base(None, False).model_copy(update={"fallback_media": ["sms"]})
    assert TemplateWave.of(with_fallback) is None
    assert TemplateWave.of(_base(None, False).model_copy(update={"reply_to": "wamid.1"})) is None
    assert TemplateWave.of(_base(None, False)) is not None
