"""Models: outbound content enforces Meta's limits before anything is queued; inbound keeps what it gets."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from connectzap import (ButtonsContent, Contact, Event, InboundMessage, ListContent, Order, Outgoing,
                        TemplateContent)
from connectzap.core.errors import InvalidPhoneError
from connectzap.core.messages import MessageContent

CONTENT: TypeAdapter[Any] = TypeAdapter(MessageContent)
MEDIA = {"id": "media-1"}
ROW = {"id": "r", "title": "Row"}


def accepts(data: dict[str, Any]) -> None:
    CONTENT.validate_python(data)


def refuses(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CONTENT.validate_python(data)


# (valid at the limit, one past the limit) for every outbound type
LIMITS = [
    ({"type": "text", "body": "x" * 4096}, {"type": "text", "body": "x" * 4097}),
    ({"type": "text", "body": "x"}, {"type": "text", "body": ""}),
    ({"type": "image", "media": MEDIA, "caption": "c" * 1024},
     {"type": "image", "media": MEDIA, "caption": "c" * 1025}),
    ({"type": "audio", "media": MEDIA}, {"type": "audio", "media": MEDIA, "caption": "no captions on audio"}),
    ({"type": "sticker", "media": MEDIA}, {"type": "sticker", "media": MEDIA, "caption": "nor on stickers"}),
    ({"type": "document", "media": {"link": "https://x/y.pdf"}}, {"type": "document", "media": {}}),
    ({"type": "video", "media": {"file": "a.mp4"}}, {"type": "video", "media": {"id": "1", "link": "https://x"}}),
    ({"type": "buttons", "body": "b", "buttons": [{"id": str(i), "title": "t" * 20} for i in range(3)]},
     {"type": "buttons", "body": "b", "buttons": [{"id": str(i), "title": "t"} for i in range(4)]}),
    ({"type": "buttons", "body": "b", "buttons": [{"id": "1", "title": "t" * 20}]},
     {"type": "buttons", "body": "b", "buttons": [{"id": "1", "title": "t" * 21}]}),
    ({"type": "buttons", "body": "b" * 1024, "buttons": [{"id": "1", "title": "t"}]},
     {"type": "buttons", "body": "b", "buttons": []}),
    ({"type": "list", "body": "b", "button": "B" * 20, "sections": [{"rows": [ROW] * 10}]},
     {"type": "list", "body": "b", "button": "B", "sections": [{"rows": [ROW] * 6}, {"rows": [ROW] * 5}]}),
    ({"type": "list", "body": "b", "button": "B", "sections": [{"rows": [{"id": "r", "title": "t" * 24,
                                                                           "description": "d" * 72}]}]},
     {"type": "list", "body": "b", "button": "B", "sections": [{"rows": [{"id": "r", "title": "t" * 25}]}]}),
    ({"type": "list", "body": "b", "button": "B", "sections": [{"rows": [ROW]}]},
     {"type": "list", "body": "b", "button": "B" * 21, "sections": [{"rows": [ROW]}]}),
    ({"type": "cta_url", "body": "b", "display_text": "d" * 20, "url": "https://x"},
     {"type": "cta_url", "body": "b", "display_text": "d" * 21, "url": "https://x"}),
    ({"type": "product", "catalog_id": "c", "product_retailer_id": "p"},
     {"type": "product", "catalog_id": "c", "product_retailer_id": "p", "footer": "f" * 61}),
    ({"type": "product_list", "catalog_id": "c", "header": "h", "body": "b",
      "sections": [{"title": "s", "product_retailer_ids": ["p"]}]},
     {"type": "product_list", "catalog_id": "c", "header": "h", "body": "b", "sections": []}),
    ({"type": "location", "latitude": 90, "longitude": -180}, {"type": "location", "latitude": 90.1, "longitude": 0}),
    ({"type": "contacts", "contacts": [{"name": {"formatted_name": "Ana"}}]},
     {"type": "contacts", "contacts": [{"name": {"first_name": "Ana"}}]}),
    ({"type": "reaction", "message_id": "wamid.1", "emoji": ""}, {"type": "reaction", "emoji": "x"}),
    ({"type": "template", "name": "t", "language": "en", "buttons": [{"sub_type": "url", "index": 9, "text": "x"}]},
     {"type": "template", "name": "t", "language": "en", "buttons": [{"sub_type": "url", "index": 10, "text": "x"}]}),
    ({"type": "template", "name": "t", "language": "en", "buttons": [{"sub_type": "quick_reply", "index": 0,
                                                                       "payload": "p"}]},
     {"type": "template", "name": "t", "language": "en", "buttons": [{"sub_type": "copy_code", "index": 0}]}),
    ({"type": "template", "name": "t", "language": "en", "header": {"type": "image", "media": MEDIA}},
     {"type": "template", "name": "t", "language": "en", "header": {"type": "image"}}),
    ({"type": "template", "name": "t", "language": "en", "header": {"type": "location", "latitude": 1, "longitude": 2}},
     {"type": "template", "name": "t", "language": "en", "header": {"type": "text"}}),
]


@pytest.mark.parametrize(("good", "bad"), LIMITS)
def test_outbound_content_limits(good: dict[str, Any], bad: dict[str, Any]) -> None:
    accepts(good)
    refuses(bad)


def test_unknown_fields_and_types_are_refused() -> None:
    refuses({"type": "text", "body": "x", "bold": True})
    refuses({"type": "carrier_pigeon", "body": "x"})
    with pytest.raises(ValidationError):
        Outgoing.model_validate({"to": "+4915112345678", "content": {"type": "text", "body": "x"}, "priority": 1})


def test_template_parameters_positional_named_and_typed() -> None:
    positional = TemplateContent(name="t", language="en", body=["Ana", 42, {"type": "currency", "code": "EUR",
                                                                            "fallback_value": "9.99 EUR",
                                                                            "amount_1000": 9990}])
    assert [p.type for p in positional.body] == ["text", "text", "currency"]
    assert positional.body[1].text == "42"
    named = TemplateContent(name="t", language="en", body={"first_name": "Ana", "order": 7})
    assert isinstance(named.body, dict) and named.body["order"].text == "7"


def test_outgoing_normalises_its_recipient() -> None:
    out = Outgoing(to="+49 151 12345678", content={"type": "text", "body": "x"})
    assert out.to.phone == "+4915112345678"
    with_country = Outgoing(to=Contact(phone="0151 12345678", country="DE"), content={"type": "text", "body": "x"})
    assert with_country.to.phone == "+4915112345678"
    from_context = Contact.model_validate({"phone": "0151 12345678"}, context={"country": "DE"})
    assert from_context.phone == "+4915112345678"
    with pytest.raises(InvalidPhoneError) as caught:  # a clear error naming the field, not a generic one
        Contact(phone="12")
    assert caught.value.field == "phone"
    assert Contact(phone="").phone is None


def test_inbound_keeps_unknown_types_and_extra_fields() -> None:
    message = InboundMessage.model_validate({
        "wamid": "wamid.1", "type": "hologram", "timestamp": "2025-01-01T00:00:00Z",
        "contact": {"phone": "4915112345678", "wa_id": "4915112345678"}, "raw": {"hologram": {"id": 1}},
        "brand_new_field": {"x": 1}})
    assert message.contact.phone == "+4915112345678" and message.raw == {"hologram": {"id": 1}}
    assert message.model_extra == {"brand_new_field": {"x": 1}}


def test_order_and_event_shapes() -> None:
    order = Order.model_validate({"id": 123, "status": "processing", "number": 77, "total": "9.99"})
    assert (order.id, order.number, str(order.total)) == ("123", "77", "9.99")
    event = Event.of("order_created", order, source="shop", dedupe_key="o-123")
    assert event.payload() == order
    with pytest.raises(ValidationError):
        Event.model_validate({"kind": "order_created", "source": "s", "dedupe_key": "d", "data": {}, "extra": 1})
    with pytest.raises(ValidationError):
        Event.model_validate({"kind": "teleport", "source": "s", "dedupe_key": "d", "data": {}})


def test_typed_helpers_build_valid_content() -> None:
    buttons = ButtonsContent(body="Pick one", buttons=[{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}])
    menu = ListContent(body="Menu", button="Open", sections=[{"title": "S", "rows": [ROW]}])
    assert [(b.id, b.title) for b in buttons.buttons] == [("yes", "Yes"), ("no", "No")]
    assert (menu.sections[0].title, menu.sections[0].rows[0].id, menu.sections[0].rows[0].title) == ("S", "r", "Row")
    assert buttons.model_dump(mode="json", exclude_none=True) == {
        "type": "buttons", "body": "Pick one", "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}]}
    assert menu.model_dump(mode="json", exclude_none=True) == {
        "type": "list", "body": "Menu", "button": "Open", "sections": [{"title": "S", "rows": [ROW]}]}
    # what a helper builds is what the same dict parses to through the message-content union
    for built in (buttons, menu):
        parsed = CONTENT.validate_python(built.model_dump(mode="json"))
        assert type(parsed) is type(built) and parsed == built
    with pytest.raises(ValidationError):  # the helpers enforce Meta's limits too
        ButtonsContent(body="Pick one", buttons=[{"id": str(n), "title": "t"} for n in range(4)])
    with pytest.raises(ValidationError):
        ListContent(body="Menu", button="Open", sections=[{"rows": [ROW] * 11}])
