"""POST /v1/messages/batch: many messages through the gate in one request and one transaction, one
result per item; refusals and idempotency conflicts stay on their item."""

from __future__ import annotations

import json
import threading
import time
from contextlib import asynccontextmanager
from urllib.parse import quote

from server_support import AUTH, KEY, PHONE, api_engine, serving
from sqlalchemy import func, select

from connectzap.core import gate
from connectzap.core.messages import Outgoing
from connectzap.core.models import Category, ConsentChange
from connectzap.core.store.schema import outbox
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

OTHER = "+4915199999901"
BATCH = "/v1/messages/batch"


def template(order: str = "42", to: str = PHONE, key: str | None = None, name: str = "order_confirmation") -> dict:
    item: dict = {"to": to, "content": {"type": "template", "name": name, "language": "en", "body": ["Ana", order]}}
    return item | ({"idempotency_key": key} if key else {})


def text(body: str = "hello", to: str = PHONE, key: str | None = None) -> dict:
    return {"to": to, "content": {"type": "text", "body": body}} | ({"idempotency_key": key} if key else {})


def stored(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())


def ready(make):  # type: ignore[no-untyped-def]
    """An engine with the order template."""
    engine = api_engine(make)
    seed_template(engine, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    return engine


@asynccontextmanager
async def consented(engine):  # type: ignore[no-untyped-def]
    """A client of ``engine`` after a utility opt-in for PHONE (not for OTHER) was recorded."""
    async with serving(engine) as client:
        answer = await client.put(f"/v1/contacts/{quote(PHONE)}/consent", headers=AUTH, json={
            "categories": ["utility"], "source": "checkout", "proof": "ticked 'send me order updates'"})
        assert answer.status_code == 200, answer.text
        yield client


async def test_each_item_gets_its_own_result_in_order_and_refusals_do_not_fail_the_batch(make):
    engine = ready(make)
    async with consented(engine) as client:
        answer = await client.post(BATCH, headers=AUTH, json={"messages": [
            template("1"), template("2", to=OTHER), text(), template("3", name="nope"), template("4")]})
        shown = [(await client.get(f"/v1/messages/{r['id']}", headers=AUTH)).json() for r in answer.json()["results"]]
    assert answer.status_code == 200, answer.text
    body = answer.json()
    results = body["results"]
    assert [(r["status"], r["reason"], r["duplicate"]) for r in results] == [
        ("queued", None, False), ("refused", "no_consent", False), ("refused", "window_closed", False),
        ("refused", "template_unknown", False), ("queued", None, False)]
    assert "utility" in results[1]["detail"] and results[0]["detail"] is None
    assert len({r["id"] for r in results}) == 5
    assert (body["accepted"], body["refused"], body["conflicts"], body["duplicates"]) == (2, 3, 0, 0)
    # Refusals are recorded like the single endpoint's, and each id is the message the item became.
    assert [(m["status"], m["reason"]) for m in shown] == [(r["status"], r["reason"]) for r in results]
    assert [p["text"] for p in shown[4]["content"]["body"]] == ["Ana", "4"]
    assert stored(engine) == 5


async def test_repeating_a_batch_answers_with_the_same_ids_and_stores_nothing(make):
    engine = ready(make)
    items = [template("1", key="c-1"), template("2", to=OTHER, key="c-2"), text(key="c-3")]
    async with consented(engine) as client:
        first = (await client.post(BATCH, headers=AUTH, json={"messages": items})).json()
        await Worker(engine).run_until_idle()
        again = await client.post(BATCH, headers=AUTH, json={"messages": items})
    assert again.status_code == 200
    second = again.json()
    assert [r["id"] for r in second["results"]] == [r["id"] for r in first["results"]]
    assert all(r["duplicate"] for r in second["results"]) and second["duplicates"] == 3
    # A duplicate shows the message's status now (the worker sent the queued one meanwhile) and,
    # for a refusal, the reason and detail recorded the first time.
    assert [r["status"] for r in second["results"]] == ["delivered", "refused", "refused"]
    assert [(r["reason"], r["detail"]) for r in second["results"][1:]] == [
        (r["reason"], r["detail"]) for r in first["results"][1:]]
    assert stored(engine) == 3 and len(engine.channel.sent()) == 1


async def test_keys_are_shared_with_the_single_endpoint(make):
    engine = ready(make)
    async with consented(engine) as client:
        single = await client.post("/v1/messages", json=template("1"), headers={"Idempotency-Key": "o-1", **AUTH})
        batch = (await client.post(BATCH, headers=AUTH, json={"messages": [
            template("1", key="o-1"), template("9", key="o-1"), template("2", key="o-2")]})).json()
        same = await client.post("/v1/messages", json=template("2"), headers={"Idempotency-Key": "o-2", **AUTH})
        other = await client.post("/v1/messages", json=template("3"), headers={"Idempotency-Key": "o-2", **AUTH})
    assert single.status_code == 202
    assert batch["results"][0] == {"id": single.json()["id"], "status": "queued", "reason": None, "detail": None,
                                   "duplicate": True}
    assert batch["results"][1]["status"] == "conflict"
    assert same.status_code == 202 and same.json() == {"id": batch["results"][2]["id"], "status": "queued",
                                                      "duplicate": True}
    assert other.status_code == 409 and other.json()["error"] == "conflict"
    assert stored(engine) == 2


async def test_a_key_reused_for_another_message_is_a_conflict_on_that_item_only(make):
    engine = ready(make)
    async with consented(engine) as client:
        await client.post(BATCH, headers=AUTH, json={"messages": [template("1", key="k-1")]})
        answer = await client.post(BATCH, headers=AUTH, json={"messages": [
            template("5"), template("2", key="k-1"), template("6", key="k-6")]})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert results[1] == {"id": None, "status": "conflict", "reason": "idempotency_conflict",
                          "detail": gate.REASONS["idempotency_conflict"], "duplicate": False}
    assert [r["status"] for r in (results[0], results[2])] == ["queued", "queued"]
    assert answer.json()["conflicts"] == 1 and answer.json()["accepted"] == 2
    assert stored(engine) == 3  # the first k-1 message, and the two new ones


async def test_keys_repeated_inside_one_batch(make):
    engine = ready(make)
    async with consented(engine) as client:
        answer = await client.post(BATCH, headers=AUTH, json={"messages": [
            template("1", key="d-1"), template("1", key="d-1"), template("2", key="d-1"), template("1"),
            template("1")]})
    results = answer.json()["results"]
    assert [(r["status"], r["duplicate"]) for r in results] == [
        ("queued", False), ("queued", True), ("conflict", False), ("queued", False), ("queued", False)]
    assert results[1]["id"] == results[0]["id"]
    assert len({results[0]["id"], results[3]["id"], results[4]["id"]}) == 3  # no key: each is new
    assert stored(engine) == 3


def test_a_concurrent_batch_with_the_same_keys_gets_the_first_ones_messages(make):
    """Another transaction holds the keys until it commits (PostgreSQL: the insert waits on it and
    then skips the rows; SQLite: the write lock): items become duplicates or conflicts, not errors."""
    engine = ready(make)
    engine.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="t", proof="p"))
    first_batch = [Outgoing.model_validate(template(n, key=f"r-{n}")) for n in ("1", "2")]
    second_batch = [Outgoing.model_validate(template(order, key=key))
                    for order, key in (("1", "r-1"), ("9", "r-2"), ("3", "r-3"))]
    answers: list[list[gate.Decision]] = []
    racing = threading.Thread(target=lambda: answers.append(engine.send_many(second_batch, strict_key=True)))
    with engine.db.begin() as conn:
        first = gate.admit_many(engine.db, conn, engine.secret,
                                [gate.Admission(m, f"api:{m.idempotency_key}") for m in first_batch], strict_key=True)
        racing.start()
        time.sleep(0.5)  # let the other transaction reach the insert (or the write lock) before this commits
    racing.join(30)
    [second] = answers
    assert (second[0].id, second[0].duplicate) == (first[0].id, True)
    assert (second[1].status, second[1].reason) == ("conflict", "idempotency_conflict")
    assert second[2].status == "queued" and not second[2].duplicate
    assert stored(engine) == 3


async def test_more_than_the_limit_or_none_is_422_and_stores_nothing(make):
    engine = ready(make)
    async with consented(engine) as client:
        too_many = await client.post(BATCH, headers=AUTH, json={"messages": [template(str(n)) for n in range(1001)]})
        empty = await client.post(BATCH, headers=AUTH, json={"messages": []})
        missing = await client.post(BATCH, headers=AUTH, json={})
    assert too_many.status_code == 422 and too_many.json()["error"] == "invalid_request"
    assert too_many.json()["detail"] == "messages: at most 1000 messages per request, got 1001; split the batch"
    assert empty.status_code == 422 and empty.json()["errors"][0]["type"] == "too_short"
    assert missing.status_code == 422 and missing.json()["errors"][0]["loc"] == ["body", "messages"]
    assert stored(engine) == 0


async def test_a_full_batch_fits_the_default_body_limit(make):
    engine = ready(make)
    items = [template(f"{n:06d}", key=f"campaign-2026-11-order-{n:06d}") for n in range(1000)]
    body = json.dumps({"messages": items}).encode()
    async with consented(engine) as client:
        answer = await client.post(BATCH, headers={**AUTH, "Content-Type": "application/json"}, content=body)
    assert len(body) < engine.settings.api.max_body_bytes == 1_048_576
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["accepted"] == 1000 and len(answer.json()["results"]) == 1000
    assert stored(engine) == 1000


async def test_a_body_over_the_limit_is_413_and_stores_nothing(make):
    engine = api_engine(make, api={"keys": [KEY], "max_body_bytes": 2000})
    async with serving(engine) as client:
        answer = await client.post(BATCH, headers=AUTH, json={"messages": [text(str(n)) for n in range(40)]})
    assert answer.status_code == 413 and answer.json()["error"] == "payload_too_large"
    assert stored(engine) == 0


async def test_an_invalid_item_rejects_the_whole_batch_naming_each_bad_index(make):
    engine = ready(make)
    async with consented(engine) as client:
        answer = await client.post(BATCH, headers=AUTH, json={"messages": [
            template("1"), template("2", to="SECRET-VALUE-1"),
            {"to": PHONE, "content": {"type": "text", "body": "hi", "colour": "SECRET-VALUE-2"}}, template("3")]})
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["error"] == "invalid_request" and error["detail"].startswith("messages.1: not a valid phone number")
    assert [(e["loc"][:3], e["type"]) for e in error["errors"]] == [
        (["body", "messages", 1], "invalid_phone"), (["body", "messages", 2], "extra_forbidden")]
    assert "SECRET-VALUE" not in answer.text
    assert stored(engine) == 0


async def test_auth_and_json_are_required_before_anything_is_read(make):
    engine = ready(make)
    body = json.dumps({"messages": [template("1")]})
    async with consented(engine) as client:
        anonymous = await client.post(BATCH, content=body, headers={"Content-Type": "application/json"})
        wrong = await client.post(BATCH, content=body, headers={"Authorization": "Bearer wrong-key-0123456789",
                                                                "Content-Type": "application/json"})
        plain = await client.post(BATCH, content=body, headers={**AUTH, "Content-Type": "text/plain"})
        broken = await client.post(BATCH, content=b'{"messages": [', headers={**AUTH,
                                                                              "Content-Type": "application/json"})
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "unauthorized")
    assert (plain.status_code, plain.json()["error"]) == (415, "unsupported_media_type")
    assert (broken.status_code, broken.json()["error"]) == (400, "bad_json")
    assert stored(engine) == 0


async def test_answers_never_carry_numbers_or_message_text(make):
    engine = ready(make)
    async with consented(engine) as client:
        answer = await client.post(BATCH, headers=AUTH, json={"messages": [
            template("SECRET-ORDER-1"), template("SECRET-ORDER-2", to=OTHER), text("SECRET-TEXT-3"),
            template("SECRET-ORDER-4", key="p-1"), template("SECRET-ORDER-5", key="p-1")]})
    assert answer.status_code == 200
    for secret in ("SECRET", PHONE, PHONE.lstrip("+"), OTHER.lstrip("+"), "Ana", "+49*"):
        assert secret not in answer.text
    assert set(answer.json()) == {"results", "accepted", "refused", "conflicts", "duplicates"}
    assert {key for r in answer.json()["results"] for key in r} == {"id", "status", "reason", "detail", "duplicate"}


async def test_openapi_documents_the_batch_route_like_the_others(make):
    engine = api_engine(make)
    async with serving(engine) as client:
        schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"][BATCH]["post"]
    assert operation["summary"].startswith("Send up to 1000 messages")
    assert {"200", "400", "401", "413", "415", "422", "503"} <= set(operation["responses"])
    assert operation["security"] == schema["paths"]["/v1/messages"]["post"]["security"]
    body = schema["components"]["schemas"]["MessageBatch"]["properties"]["messages"]
    assert (body["minItems"], body["maxItems"]) == (1, 1000)
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/BatchResult")


async def test_items_are_validated_as_the_document_describes_them(make):
    """A 200 answer must not accept what the OpenAPI document calls invalid: no coercion of
    `false` to a number or to a template parameter; the documented string shorthand stays valid."""
    engine = ready(make)
    location = {"to": PHONE, "content": {"type": "location", "latitude": 52.5, "longitude": False}}
    flag = template("1") | {"content": {"type": "template", "name": "order_confirmation", "language": "en",
                                        "body": ["Ana", True]}}
    async with consented(engine) as client:
        coerced = await client.post(BATCH, headers=AUTH, json={"messages": [template("1"), location]})
        boolean = await client.post(BATCH, headers=AUTH, json={"messages": [flag]})
        schema = (await client.get("/openapi.json")).json()
    assert coerced.status_code == 422 and coerced.json()["errors"][0]["loc"] == ["body", "messages", 1]
    assert coerced.json()["detail"] == "messages.1: content.location.longitude: Input should be a valid number"
    assert boolean.status_code == 422 and boolean.json()["errors"][0]["loc"][:3] == ["body", "messages", 0]
    body = schema["components"]["schemas"]["TemplateContent"]["properties"]["body"]["anyOf"][0]["items"]
    assert {"type": "string"} in body["anyOf"] and {"type": "number"} in body["anyOf"]
    # One flat anyOf, no nested union: fuzzers must be able to negate these items (test_openapi_document).
    assert [m for m in body["anyOf"] if "anyOf" in m or "oneOf" in m or "discriminator" in m] == []
    assert "discriminator" not in body
    assert stored(engine) == 0
