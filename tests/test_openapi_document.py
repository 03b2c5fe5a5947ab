"""The published OpenAPI document says what the API really accepts, in a shape that schema-driven
tools can work with (the roots of three schemathesis failures, each pinned here)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from server_support import AUTH, PHONE, api_engine, serving

from connectzap.testing import seed_template


def _walk(node: Any, path: str = "#"):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


async def _document(make) -> dict[str, Any]:
    async with serving(api_engine(make)) as client:
        return (await client.get("/openapi.json")).json()


async def test_every_tagged_union_member_requires_its_tag(make):
    # The API refuses a content or a template parameter without "type" (pydantic needs the tag to
    # pick the member), so the document must not call it optional.
    schemas = (await _document(make))["components"]["schemas"]
    tagged = [name for name, schema in schemas.items()
              if "type" in schema.get("properties", {}) and "const" in schema["properties"]["type"]]
    assert {"TextContent", "TemplateContent", "TextParam", "CurrencyParam", "DateTimeParam"} <= set(tagged)
    assert [name for name in tagged if "type" not in schemas[name].get("required", [])] == []


async def test_no_array_items_are_a_discriminated_oneof(make):
    # Fuzzers negate array items; a oneOf with a discriminator there made schemathesis fail to
    # generate ("Cannot generate an array with 1 demanded elements") about one run in five.
    document = await _document(make)
    offenders = [path for path, node in _walk(document)
                 if node.get("type") == "array" and isinstance(node.get("items"), dict) and "oneOf" in node["items"]]
    assert offenders == []


async def test_content_without_its_type_is_refused_as_documented(make):
    engine = api_engine(make)
    seed_template(engine, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    async with serving(engine) as client:
        for content in ({"body": "hello"},
                        {"type": "template", "name": "order_confirmation", "language": "en",
                         "body": [{"text": "Ana"}, {"type": "text", "text": "42"}]}):
            answer = await client.post("/v1/messages", headers=AUTH, json={"to": PHONE, "content": content})
            assert answer.status_code == 422, answer.text


@pytest.mark.parametrize("value", ["1700000000", "3.255752662071303e-27", "-1e3", "2026-01-31", "tomorrow"])
async def test_time_filters_take_iso_date_times_only(make, value):
    async with serving(api_engine(make)) as client:
        for path in ("/v1/messages", "/v1/events"):
            answer = await client.get(path, params={"since": value}, headers=AUTH)
            assert answer.status_code == 422, (path, value, answer.text)
            assert "ISO 8601" in json.dumps(answer.json())


async def test_time_filters_accept_iso_date_times(make):
    async with serving(api_engine(make)) as client:
        for value in ("2026-01-31T12:00:00Z", "2026-01-31T12:00:00+01:00", "2026-01-31 12:00:00.5+00:00"):
            for path in ("/v1/messages", "/v1/events"):
                answer = await client.get(path, params={"since": value}, headers=AUTH)
                assert answer.status_code == 200, (path, value, answer.text)
