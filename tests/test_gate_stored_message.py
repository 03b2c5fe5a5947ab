"""The stored message the gate writes to the outbox is the JSON of what it always held: the content
it let through, the original, the fallback, the quoted message and the fallback fields. The gate
now encodes contents with pydantic's JSON encoder and once when the content went through unchanged;
this checks that what readers get back (``json.loads``) is what ``json.dumps`` of those values gave."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from connectzap.core import gate
from connectzap.core.messages import MessageContent, Outgoing, TemplateContent

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
CONTENT: TypeAdapter[Any] = TypeAdapter(MessageContent)

templates = st.builds(
    lambda name, body, named, header: {"type": "template", "name": name, "language": "de",
                                       "body": {str(n): v for n, v in enumerate(body)} if named else body,
                                       **({"header": {"type": "text", "text": header}} if header else {})},
    TEXT, st.lists(TEXT, max_size=3), st.booleans(), st.one_of(st.none(), TEXT))
others = st.one_of(
    st.builds(lambda body, preview: {"type": "text", "body": body, "preview_url": preview}, TEXT, st.booleans()),
    st.builds(lambda lat, lon, name: {"type": "location", "latitude": lat, "longitude": lon, "name": name},
              st.floats(-90, 90), st.floats(-180, 180), st.one_of(st.none(), TEXT)),
    st.builds(lambda link, caption: {"type": "image", "media": {"link": link}, "caption": caption},
              st.just("https://example.com/a.png"), st.one_of(st.none(), TEXT)),
    st.builds(lambda name, extra: {"type": "contacts", "contacts": [{"name": {"formatted_name": name}, **extra}]},
              TEXT, st.dictionaries(st.sampled_from(["org", "note"]), st.one_of(TEXT, st.integers(), st.floats(0, 1)))),
)


def _expected(outgoing: Outgoing, shown: Any, not_before: float | None, t: float) -> dict[str, Any]:
    """The stored message as ``json.dumps`` of the ``mode="json"`` dumps wrote it before."""
    original = outgoing.content.model_dump(mode="json", exclude_none=True)
    return json.loads(json.dumps({
        "content": original if shown is outgoing.content else shown.model_dump(mode="json", exclude_none=True),
        "original": original,
        "fallback": outgoing.fallback.model_dump(mode="json", exclude_none=True) if outgoing.fallback else None,
        "reply_to": outgoing.reply_to,
        **gate._fallback_fields(outgoing, not_before, t),
    }))


@given(content=st.one_of(templates, others), fallback=st.one_of(st.none(), templates),
       reply_to=st.one_of(st.none(), st.just("wamid.HBg")), fallback_media=st.booleans(),
       minutes=st.one_of(st.none(), st.integers(1, 1440)), changed=st.one_of(st.none(), templates),
       not_before=st.one_of(st.none(), st.floats(1.7e9, 1.8e9)))
def test_stored_message_reads_back_as_the_values_it_holds(content: dict[str, Any], fallback: Any, reply_to: Any,
                                                          fallback_media: bool, minutes: int | None, changed: Any,
                                                          not_before: float | None) -> None:
    outgoing = Outgoing(to={"phone": "+4915112345678", "email": "ana@example.com"}, content=content,
                        fallback=fallback, reply_to=reply_to,
                        fallback_media=["sms", "email"] if fallback_media else [],
                        fallback_after_minutes=minutes if fallback_media else None)
    shown = outgoing.content if changed is None else TemplateContent.model_validate(changed)
    t = 1.75e9
    assert json.loads(gate.stored_json(outgoing, shown, not_before, t)) == _expected(outgoing, shown, not_before, t)
    assert CONTENT.validate_json(gate.stored_json(outgoing, shown, not_before, t).split('"original": ')[0]
                                 .removeprefix('{"content": ').rstrip(", ")) == shown
