"""The REST API /v1 over HTTP: auth, sending through the gate, idempotency, reading, consent, templates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_support import AUTH, KEY, OLD_KEY, PHONE, api_engine, serving

from connectzap.core.http.auth import ApiKeys
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

OTHER = "+4915199999901"


def template(order: str = "42") -> dict:
    return {"to": PHONE, "content": {"type": "template", "name": "order_confirmation", "language": "en",
                                     "body": ["Ana", order]}}


async def grant(client, phone: str = PHONE, *categories: str) -> dict:
    answer = await client.put(f"/v1/contacts/{quote(phone)}/consent", headers=AUTH,
                              json={"categories": list(categories or ["utility"]), "source": "checkout",
                                    "proof": "ticked 'send me order updates on WhatsApp'"})
    assert answer.status_code == 200, answer.text
    return answer.json()


# --- authentication -------------------------------------------------------------------------------

async def test_no_configured_keys_refuses_every_request(make):
    engine = api_engine(make, api={"keys": []})
    async with serving(engine) as client:
        answer = await client.get("/v1/messages", headers=AUTH)
    assert answer.status_code == 401 and "no api.keys" in answer.json()["detail"]
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", [None, "Bearer wrong-key-0123456789", f"Basic {KEY}", "Bearer "])
async def test_missing_or_wrong_key_is_401_before_the_body_is_read(make, header):
    engine = api_engine(make)
    headers = {"Content-Type": "text/plain"} | ({"Authorization": header} if header else {})
    async with serving(engine) as client:
        answer = await client.post("/v1/messages", content=b"not json", headers=headers)
    assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"
    assert KEY not in answer.text


async def test_every_listed_key_works_so_keys_rotate_without_downtime(make):
    engine = api_engine(make)
    async with serving(engine) as client:
        for key in (KEY, OLD_KEY):
            assert (await client.get("/v1/templates", headers={"Authorization": f"Bearer {key}"})).status_code == 200


@given(keys=st.lists(st.text(st.characters(codec="ascii", exclude_characters="\x00"), min_size=1, max_size=40),
                     min_size=1, max_size=4),
       given_key=st.text(st.characters(codec="ascii"), max_size=40))
def test_api_keys_accept_exactly_the_configured_ones(keys, given_key):
    from pydantic import SecretStr
    accepted = ApiKeys([SecretStr(k) for k in keys])
    assert accepted.accepts(given_key) == (given_key in keys)
    assert all(accepted.accepts(k) for k in keys)


# --- sending --------------------------------------------------------------------------------------

async def test_refusal_carries_a_machine_readable_reason_and_is_recorded(make):
    engine = api_engine(make)
    seed_template(engine, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    async with serving(engine) as client:
        refused = await client.post("/v1/messages", json=template(), headers=AUTH)
        recorded = await client.get(f"/v1/messages/{refused.json()['id']}", headers=AUTH)
    assert refused.status_code == 422
    assert refused.json()["error"] == "no_consent" and "utility" in refused.json()["detail"]
    assert recorded.json()["status"] == "refused" and recorded.json()["reason"] == "no_consent"


async def test_queued_message_is_sent_and_then_erased(make):
    engine = api_engine(make)
    seed_template(engine, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    async with serving(engine) as client:
        await grant(client)
        queued = await client.post("/v1/messages", json=template(), headers=AUTH)
        assert queued.status_code == 202, queued.text
        message_id = queued.json()["id"]
        waiting = (await client.get(f"/v1/messages/{message_id}", headers=AUTH)).json()
        await Worker(engine).run_until_idle()
        done = (await client.get(f"/v1/messages/{message_id}", headers=AUTH)).json()
    assert queued.json() == {"id": message_id, "status": "queued", "duplicate": False}
    assert waiting["recipient"] == "+49*********78" and waiting["content"]["name"] == "order_confirmation"
    assert PHONE not in json.dumps(waiting)
    assert done["status"] == "delivered" and done["wamid"].startswith("wamid.")
    assert done["content"] is None and done["recipient"] is None
    assert [b["template"]["name"] for b in engine.channel.sent()] == ["order_confirmation"]


async def test_idempotency_key_same_body_same_answer_other_body_409(make):
    engine = api_engine(make)
    seed_template(engine, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    async with serving(engine) as client:
        await grant(client)
        key = {"Idempotency-Key": "order-42-confirmation", **AUTH}
        first = await client.post("/v1/messages", json=template(), headers=key)
        again = await client.post("/v1/messages", json=template(), headers=key)
        other = await client.post("/v1/messages", json=template("43"), headers=key)
        await Worker(engine).run_until_idle()
    assert first.status_code == again.status_code == 202
    assert again.json() == {"id": first.json()["id"], "status": "queued", "duplicate": True}
    assert other.status_code == 409 and other.json()["error"] == "conflict"
    assert len(engine.channel.sent()) == 1


async def test_refused_request_repeated_with_its_key_gets_the_same_refusal(make):
    engine = api_engine(make)
    async with serving(engine) as client:
        key = {"Idempotency-Key": "k-1", **AUTH}
        body = {"to": PHONE, "content": {"type": "text", "body": "hello"}}
        first = await client.post("/v1/messages", json=body, headers=key)
        again = await client.post("/v1/messages", json=body, headers=key)
    assert first.status_code == again.status_code == 422
    assert first.json() == again.json() and first.json()["error"] == "window_closed"


async def test_inbound_webhook_opens_the_window_for_a_free_form_reply(make):
    from server_support import inbound_text, meta_signed
    engine = api_engine(make)
    body = inbound_text("wamid.question-1", "Does it come in blue?")
    async with serving(engine) as client:
        assert (await client.post("/webhooks/whatsapp", content=body, headers=meta_signed(body))).status_code == 200
        await Worker(engine).run_until_idle()
        reply = await client.post("/v1/messages", headers=AUTH,
                                  json={"to": PHONE, "content": {"type": "text", "body": "Yes, in blue too."},
                                        "reply_to": "wamid.question-1"})
        await Worker(engine).run_until_idle()
    assert reply.status_code == 202, reply.text
    sent = engine.channel.sent()
    assert sent[-1]["text"]["body"] == "Yes, in blue too." and sent[-1]["context"] == {"message_id": "wamid.question-1"}


# --- bad input ------------------------------------------------------------------------------------

async def test_bad_input_gets_clear_json_errors_without_echo(make):
    engine = api_engine(make)
    async with serving(engine) as client:
        wrong_type = await client.post("/v1/messages", content=json.dumps(template()), headers={
            **AUTH, "Content-Type": "text/plain"})
        broken = await client.post("/v1/messages", content=b'{"to": "+49151', headers={
            **AUTH, "Content-Type": "application/json"})
        invalid = await client.post("/v1/messages", headers=AUTH, json={
            "to": PHONE, "content": {"type": "text", "body": "hi", "colour": "SECRET-VALUE-1"}})
        bad_phone = await client.post("/v1/messages", headers=AUTH, json={
            "to": "SECRET-VALUE-2", "content": {"type": "text", "body": "hi"}})
        missing = await client.get("/v1/messages/m000nothing", headers=AUTH)
        wrong_method = await client.delete("/v1/messages", headers=AUTH)
        nowhere = await client.get("/v2/anything", headers=AUTH)
    assert (wrong_type.status_code, wrong_type.json()["error"]) == (415, "unsupported_media_type")
    assert (broken.status_code, broken.json()["error"]) == (400, "bad_json")
    assert (invalid.status_code, invalid.json()["error"]) == (422, "invalid_request")
    assert invalid.json()["errors"][0]["loc"][-1] == "colour"
    assert (bad_phone.status_code, bad_phone.json()["error"]) == (422, "invalid_phone")
    assert bad_phone.json()["field"] == "phone"
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")
    assert (nowhere.status_code, nowhere.json()["error"]) == (404, "not_found")
    for answer in (wrong_type, broken, invalid, bad_phone, missing, wrong_method, nowhere):
        assert "SECRET-VALUE" not in answer.text and "Traceback" not in answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["x-content-type-options"] == "nosniff"


async def test_api_body_limit_is_413(make):
    engine = api_engine(make, api={"keys": [KEY], "max_body_bytes": 200})
    async with serving(engine) as client:
        answer = await client.post("/v1/messages", headers=AUTH, json={
            "to": PHONE, "content": {"type": "text", "body": "x" * 500}})
    assert answer.status_code == 413 and answer.json()["error"] == "payload_too_large"


# --- reading messages -----------------------------------------------------------------------------

async def test_listing_filters_by_recipient_status_and_time(make):
    engine = api_engine(make)
    async with serving(engine) as client:
        await grant(client, OTHER)
        for phone in (PHONE, PHONE, OTHER):
            await client.post("/v1/messages", headers=AUTH,
                              json={"to": phone, "content": {"type": "text", "body": "hi"}})
        mine = (await client.get("/v1/messages", params={"phone": PHONE}, headers=AUTH)).json()
        national = (await client.get("/v1/messages", params={"phone": "015199999901", "country": "DE"},
                                     headers=AUTH)).json()
        refused = (await client.get("/v1/messages", params={"status": "refused"}, headers=AUTH)).json()
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        later = (await client.get("/v1/messages", params={"since": future}, headers=AUTH)).json()
        earlier = (await client.get("/v1/messages", params={"until": future}, headers=AUTH)).json()
        misspelt = await client.get("/v1/messages", params={"phone_number": PHONE}, headers=AUTH)
    assert misspelt.status_code == 422
    assert "allowed: channel, country, cursor, fallback_of, limit" in misspelt.json()["detail"]
    assert PHONE not in misspelt.text
    assert len(mine["messages"]) == 2 and len(national["messages"]) == 1
    assert len(refused["messages"]) == 3  # free-form outside the window: all refused
    assert later["messages"] == [] and len(earlier["messages"]) == 3


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(0, 7), limit=st.integers(1, 4))
async def test_cursor_pagination_returns_each_message_once_newest_first(make_once, count, limit):
    engine, phone = make_once()
    ids = [engine.send_text_refused(phone) for _ in range(count)]
    seen: list[str] = []
    async with serving(engine) as client:
        cursor = None
        while True:
            params = {"phone": phone, "limit": limit} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/v1/messages", params=params, headers=AUTH)).json()
            seen += [m["id"] for m in page["messages"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == sorted(ids, reverse=True)


@pytest.fixture
def make_once(make):
    """One engine for all examples; each example gets a fresh recipient so they do not mix."""
    from connectzap.core.messages import Outgoing, TextContent
    engine = api_engine(make)
    numbers = iter(range(10_000_000, 99_999_999))

    def send_text_refused(phone: str) -> str:
        return engine.send(Outgoing(to=phone, content=TextContent(body="hi"))).id

    engine.send_text_refused = send_text_refused  # type: ignore[attr-defined]
    return lambda: (engine, f"+49151{next(numbers)}")


# --- consent --------------------------------------------------------------------------------------

async def test_consent_put_get_delete_per_category_with_proof(make):
    engine = api_engine(make)
    async with serving(engine) as client:
        granted = await grant(client, PHONE, "marketing", "utility")
        revoked = (await client.delete(f"/v1/contacts/{quote(PHONE)}/consent", headers=AUTH,
                                       params={"category": "marketing", "source": "support-call",
                                               "proof": "asked by phone"})).json()
        national = (await client.get("/v1/contacts/015112345678/consent", params={"country": "DE"},
                                     headers=AUTH)).json()
        everything = (await client.delete(f"/v1/contacts/{quote(PHONE)}/consent", headers=AUTH)).json()
    assert granted["phone"] == "+49*********78" and PHONE not in json.dumps(granted)
    assert {c: v["granted"] for c, v in granted["categories"].items()} == {"marketing": True, "utility": True}
    assert granted["categories"]["marketing"]["proof"].startswith("ticked")
    assert revoked["categories"]["marketing"]["granted"] is False
    assert revoked["categories"]["marketing"]["source"] == "support-call"
    assert revoked["categories"]["utility"]["granted"] is True
    assert national == revoked
    assert {c: v["granted"] for c, v in everything["categories"].items()} == {
        "marketing": False, "utility": False, "authentication": False}
    assert len(everything["history"]) == 2 + 1 + 3
    assert engine.consent(PHONE)[next(iter(engine.consent(PHONE)))].granted is False


async def test_consent_needs_proof_and_a_valid_number(make):
    engine = api_engine(make)
    async with serving(engine) as client:
        no_proof = await client.put(f"/v1/contacts/{quote(PHONE)}/consent", headers=AUTH,
                                    json={"categories": ["marketing"], "source": "web"})
        blank_proof = await client.put(f"/v1/contacts/{quote(PHONE)}/consent", headers=AUTH,
                                       json={"categories": ["utility"], "source": "web", "proof": " \t "})
        bad_number = await client.get("/v1/contacts/12/consent", headers=AUTH)
        ledger = (await client.get(f"/v1/contacts/{quote(PHONE)}/consent", headers=AUTH)).json()
    assert no_proof.status_code == 422 and no_proof.json()["errors"][0]["loc"] == ["body", "proof"]
    assert blank_proof.status_code == 422 and blank_proof.json()["errors"][0]["loc"] == ["body", "proof"]
    assert ledger["history"] == [], ledger
    assert bad_number.status_code == 422 and bad_number.json()["error"] == "invalid_phone"


async def test_consent_of_a_customer_known_only_by_email_address(make):
    engine = api_engine(make)
    address = "Ana@Example.ORG"
    async with serving(engine) as client:
        put = await client.put(f"/v1/contacts/{quote(address)}/consent", headers=AUTH,
                               json={"categories": ["marketing"], "source": "newsletter form",
                                     "proof": "box 'news by email' ticked", "medium": "email"})
        read = (await client.get(f"/v1/contacts/{quote('Ana@example.org')}/consent", headers=AUTH)).json()
        on_whatsapp = await client.put(f"/v1/contacts/{quote(address)}/consent", headers=AUTH,
                                       json={"categories": ["marketing"], "source": "web", "proof": "form"})
        not_an_address = await client.get(f"/v1/contacts/{quote('ana@@example')}/consent", headers=AUTH)
        revoked = (await client.delete(f"/v1/contacts/{quote(address)}/consent", headers=AUTH,
                                       params={"medium": "email", "category": "marketing"})).json()
    assert put.status_code == 200, put.text
    answer = put.json()
    assert answer["phone"] == "A***@example.org" and "Ana@" not in json.dumps(answer)
    assert answer["categories"] == {} and answer["media"]["email"]["marketing"]["granted"] is True
    assert {**read, "phone": None} == {**answer, "phone": None}  # the domain's case does not matter: one customer
    assert engine.consent("Ana@example.org", medium="email")["marketing"].granted is False  # revoked since
    assert revoked["media"]["email"]["marketing"]["granted"] is False
    assert on_whatsapp.status_code == 422 and on_whatsapp.json()["error"] == "invalid_recipient"
    assert "medium email" in on_whatsapp.json()["detail"]
    assert not_an_address.status_code == 422 and not_an_address.json()["error"] == "invalid_recipient"


# --- templates, health, metrics, docs -------------------------------------------------------------

async def test_templates_come_from_the_cache(make):
    engine = api_engine(make)
    seed_template(engine, "order_confirmation", "Hi {{1}}", language="de")
    async with serving(engine) as client:
        listed = (await client.get("/v1/templates", headers=AUTH)).json()
    assert [(t["name"], t["language"], t["status"]) for t in listed["templates"]] == [
        ("order_confirmation", "de", "APPROVED")]


async def test_health_is_503_while_sending_is_paused(make):
    engine = api_engine(make)
    async with serving(engine) as client:
        healthy = await client.get("/healthz")
        engine.set_paused("access token expired (190)")
        paused = await client.get("/healthz")
    assert healthy.status_code == 200 and healthy.json()["ok"] is True and healthy.json()["database"] == "ok"
    assert paused.status_code == 503 and paused.json()["paused"] == "access token expired (190)"


async def test_metrics_show_queue_depth_and_send_outcomes(make):
    engine = api_engine(make)
    seed_template(engine, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    async with serving(engine) as client:
        await grant(client)
        await client.post("/v1/messages", json=template(), headers=AUTH)
        before = (await client.get("/metrics")).text
        await Worker(engine).run_until_idle()
        after = await client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    assert 'connectzap_queue_depth{queue="messages_queued"} 1.0' in before
    assert 'connectzap_queue_depth{queue="messages_queued"} 0.0' in after.text
    assert 'connectzap_sends_total{outcome="ok"} 1.0' in after.text
    assert "connectzap_send_seconds_count 1.0" in after.text


async def test_openapi_describes_the_api_and_its_bearer_auth(make):
    engine = api_engine(make)
    async with serving(engine) as client:
        schema = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert {"/v1/messages", "/v1/messages/{message_id}", "/v1/contacts/{phone}/consent", "/v1/templates",
            "/healthz", "/metrics"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "422" in schema["paths"]["/v1/messages"]["post"]["responses"]
    assert docs.status_code == 200


def test_serve_without_configured_keys_uses_one_generated_key(tmp_path):
    from connectzap.core.server import ensure_api_key
    from connectzap.core.settings import Settings
    first = Settings(data_dir=tmp_path)
    path = ensure_api_key(first)
    again = Settings(data_dir=tmp_path)
    assert path == ensure_api_key(again) == tmp_path / "api-key"
    assert (path.stat().st_mode & 0o777) == 0o600
    key = path.read_text().strip()
    assert len(key) >= 32 and [k.get_secret_value() for k in again.api.keys] == [key]
    assert ensure_api_key(Settings(data_dir=tmp_path / "other", api={"keys": [KEY]})) is None
    assert not (tmp_path / "other" / "api-key").exists()


# --- scheduled sends --------------------------------------------------------------------------------

@pytest.mark.parametrize("when", ["0001-01-01T00:00:00-05:00", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59-12:00"])
async def test_a_not_before_that_cannot_be_stored_is_refused_and_nothing_is_queued(make, when):
    engine = api_engine(make)
    seed_template(engine, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    async with serving(engine) as client:
        await grant(client)
        answer = await client.post("/v1/messages", headers=AUTH, json=template() | {"not_before": when})
        listed = await client.get("/v1/messages", headers=AUTH)
    assert answer.status_code == 422 and "not_before" in answer.text
    assert listed.status_code == 200 and listed.json()["messages"] == []


async def test_a_not_before_without_a_zone_is_utc_and_listed_as_it_was_asked(make):
    engine = api_engine(make)
    seed_template(engine, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    async with serving(engine) as client:
        await grant(client)
        answer = await client.post("/v1/messages", headers=AUTH,
                                   json=template() | {"not_before": "2031-05-04T10:30:00"})
        listed = await client.get("/v1/messages", headers=AUTH)
    assert answer.status_code in (200, 201, 202), answer.text
    [message] = listed.json()["messages"]
    assert datetime.fromisoformat(message["not_before"]) == datetime(2031, 5, 4, 10, 30, tzinfo=UTC)
