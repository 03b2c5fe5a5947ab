"""Outbound Cloud API: request shapes against cassettes built from Meta's reference, and the whole
path (gate -> outbox -> pacer -> channel -> bookkeeping) against the local fake Graph server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import vcr

from connectzap import Category, ConsentChange, Contact, Event, InboundMessage, Outgoing, TemplateContent, TextContent
from connectzap.connectors.whatsapp.channel import CloudApiChannel
from connectzap.connectors.whatsapp.client import GraphClient
from connectzap.connectors.whatsapp.settings import WhatsAppSettings
from connectzap.core.channel import OutboundSend
from connectzap.core.errors import (FatalDeliveryError, RetriableDeliveryError,
                                    SendingPausedError, SkippableDeliveryError)
from connectzap.core.messages import (ButtonsContent, ContactsContent, CtaUrlContent, CurrencyParam, DateTimeParam,
                                      HeaderParam, ListContent, LocationContent, MediaContent, MediaRef,
                                      ProductContent, ProductListContent, ReactionContent)
from connectzap.core.worker import Worker
from connectzap.testing import seed_template
from connectzap.testing.fake_graph import FakeGraph

CASSETTES = Path(__file__).parent.parent / "cassettes" / "whatsapp"
PHONE = "+16505551234"
NUMBER = "106540352242922"


def _json_body(r1: Any, r2: Any) -> None:
    """Sent JSON must equal the cassette's JSON (multipart uploads are matched by path only)."""
    def parsed(r: Any) -> Any:
        body = r.body.decode() if isinstance(r.body, bytes) else r.body
        try:
            return json.loads(body) if body else None
        except ValueError:
            return "<non-json>"
    a, b = parsed(r1), parsed(r2)
    assert a == b or "<non-json>" in (a, b), f"request body differs:\n{a}\n{b}"


def cassette(name: str) -> Any:
    recorder = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="none", filter_headers=["authorization"],
                       match_on=["method", "scheme", "host", "path", "query", "json_body"])
    recorder.register_matcher("json_body", _json_body)
    return recorder.use_cassette(f"{name}.yaml", allow_playback_repeats=False)


def meta_settings(**overrides: Any) -> WhatsAppSettings:
    data: dict[str, Any] = {"access_token": "EAAG-not-a-real-token", "phone_number_id": NUMBER,
                            "waba_id": "102290129340398", "app_secrets": ["s"], "verify_token": "v",
                            "transport": "httpx"}
    data.update(overrides)
    return WhatsAppSettings(**data)


def out(content: Any, *, reply_to: str | None = None, category: str = "utility",
        outbox_id: str = "msg1") -> OutboundSend:
    return OutboundSend(outbox_id=outbox_id, recipient=PHONE, content=content, category=category, reply_to=reply_to)


# ============================================================================================
# cassettes: one request shape per message type, errors, media, templates, profile
# ============================================================================================

MESSAGE_CASES: list[tuple[str, Any, dict[str, Any]]] = [
    ("text", TextContent(body="text-message-content"), {}),
    ("reply", TextContent(body="thanks"),
     {"reply_to": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUYzMjEzNDM2RTZGQ0MzMDJBRgA="}),
    ("template_positional", TemplateContent(
        name="order_update", language="en_US",
        header=HeaderParam(type="image", media=MediaRef(link="https://example.com/the-image.jpg")),
        body=["text-string", CurrencyParam(fallback_value="$100.99", code="USD", amount_1000=100990),
              DateTimeParam(fallback_value="February 25, 1977")],
        buttons=[{"sub_type": "quick_reply", "index": 0, "payload": "aGlzIHRoaXMgaXMgY29v"},
                 {"sub_type": "url", "index": 1, "text": "order/42"},
                 {"sub_type": "copy_code", "index": 2, "coupon_code": "SAVE10"}]), {}),
    ("template_named", TemplateContent(name="welcome", language="en",
                                       header=HeaderParam(type="text", text="Jessica", parameter_name="first_name"),
                                       body={"first_name": "Jessica", "order_number": "SKBUP2-4CPIG9"}), {}),
    ("template_document_header", TemplateContent(
        name="invoice", language="en",
        header=HeaderParam(type="document", media=MediaRef(id="1013859600285441", filename="invoice.pdf"))), {}),
    ("template_video_header", TemplateContent(
        name="promo", language="en", header=HeaderParam(type="video", media=MediaRef(link="https://example.com/a.mp4"))),
     {}),
    ("template_location_header", TemplateContent(
        name="pickup", language="en", header=HeaderParam(type="location", latitude=37.758056, longitude=-122.425332,
                                                         name="META HQ", address="1 Hacker Way, Menlo Park, CA 94025")),
     {}),
    ("image_id", MediaContent(type="image", media=MediaRef(id="1479537139650973")), {}),
    ("image_link", MediaContent(type="image", media=MediaRef(link="https://example.com/a.jpg")), {}),
    ("video", MediaContent(type="video", media=MediaRef(id="1166846181421424"), caption="<VIDEO_CAPTION_TEXT>"), {}),
    ("audio", MediaContent(type="audio", media=MediaRef(link="https://example.com/a.mp3")), {}),
    ("document", MediaContent(type="document", media=MediaRef(id="1376223850470843", filename="<DOCUMENT_FILENAME>"),
                              caption="<DOCUMENT_CAPTION_TO_SEND>"), {}),
    ("sticker", MediaContent(type="sticker", media=MediaRef(id="798882015472548")), {}),
    ("location", LocationContent(latitude=37.758056, longitude=-122.425332, name="META HQ",
                                 address="1 Hacker Way, Menlo Park, CA 94025"), {}),
    ("contacts", ContactsContent(contacts=[{"name": {"formatted_name": "John Smith", "first_name": "John",
                                                     "last_name": "Smith"},
                                            "phones": [{"phone": "+1 (650) 555-1234", "type": "WORK",
                                                        "wa_id": "16505551234"}],
                                            "emails": [{"email": "test@whatsapp.com", "type": "HOME"}]}]), {}),
    ("reaction", ReactionContent(message_id="wamid.HBgLM", emoji="\U0001f600"), {}),
    ("buttons", ButtonsContent(body="<BUTTON_TEXT>", buttons=[{"id": "<UNIQUE_BUTTON_ID_1>", "title": "Yes"},
                                                              {"id": "<UNIQUE_BUTTON_ID_2>", "title": "No"}]), {}),
    ("list", ListContent(body="<BODY_TEXT>", button="Choose", header="<HEADER_TEXT>", footer="<FOOTER_TEXT>",
                         sections=[{"title": "Section 1", "rows": [{"id": "row-1", "title": "Row 1",
                                                                    "description": "First row"}]}]), {}),
    ("cta_url", CtaUrlContent(body="Your parcel is on its way", display_text="Track order",
                              url="https://example.com/track/42"), {}),
    ("product", ProductContent(catalog_id="367025965434465", product_retailer_id="<ID_TEST_ITEM_1>",
                               body="<OPTIONAL_BODY_TEXT>"), {}),
    ("product_list", ProductListContent(catalog_id="146265584024623", header="<HEADER>", body="<BODY>",
                                        sections=[{"title": "<SECTION1_TITLE>",
                                                   "product_retailer_ids": ["<SKU>"]}]), {}),
]


async def test_every_message_type_matches_meta_reference_shapes():
    channel = CloudApiChannel(meta_settings(), GraphClient(meta_settings()))
    wamids = []
    with cassette("send_messages") as cas:
        for n, (_name, content, extra) in enumerate(MESSAGE_CASES):
            wamids.append(await channel.send(out(content, outbox_id=f"msg{n}", **extra)))
        assert await channel.mark_read("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUYzMjEzNDM2RTZGQ0MzMDJBRgA=")
        assert await channel.mark_read("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUYzMjEzNDM2RTZGQ0MzMDJBRgA=", typing=True)
        assert cas.all_played
    await channel.aclose()
    assert len(set(wamids)) == len(MESSAGE_CASES) and all(w.startswith("wamid.") for w in wamids)


async def test_marketing_templates_use_marketing_messages_only_when_enabled():
    promo = TemplateContent(name="seasonal_promotion_text_only", language="en",
                            body=["the end of August", "25OFF", "25%"])
    enabled = meta_settings(marketing_messages_api=True)
    channel = CloudApiChannel(enabled, GraphClient(enabled))
    with cassette("marketing_messages") as cas:
        await channel.send(out(promo, category="marketing", outbox_id="mkt1"))   # -> /marketing_messages
        await channel.send(out(promo, category="utility", outbox_id="utl1"))     # utility stays on /messages
        assert cas.all_played
    await channel.aclose()
    disabled = CloudApiChannel(meta_settings(), GraphClient(meta_settings()))
    assert disabled.route(out(promo, category="marketing")) == "messages"


async def test_local_media_is_uploaded_then_sent_by_id(tmp_path):
    pdf = tmp_path / "invoice.pdf"
    pdf.write_bytes(b"%PDF-1.4 fake")
    channel = CloudApiChannel(meta_settings(), GraphClient(meta_settings()))
    doc = MediaContent(type="document", media=MediaRef(file=str(pdf), filename="invoice.pdf"), caption="Your invoice")
    with cassette("media_upload") as cas:
        await channel.send(out(doc, outbox_id="doc1"))
        await channel.send(out(doc, outbox_id="doc2"))  # same file: no second upload
        assert cas.all_played
        assert [r.path for r in cas.requests].count(f"/v27.0/{NUMBER}/media") == 1
    await channel.aclose()


ERROR_CASES = [
    (131047, SkippableDeliveryError, "window_closed"),
    (131050, SkippableDeliveryError, "opted_out"),
    (131026, SkippableDeliveryError, "unreachable"),
    (132000, FatalDeliveryError, "template_error"),
    (190, SendingPausedError, "token_expired"),
    (130429, RetriableDeliveryError, "rate_limited"),
    (131056, RetriableDeliveryError, "rate_limited"),
    (131000, RetriableDeliveryError, "retry"),
    (None, RetriableDeliveryError, "retry"),  # 503 with an HTML body
]


async def test_error_answers_are_classified_with_meta_details():
    channel = CloudApiChannel(meta_settings(), GraphClient(meta_settings()))
    with cassette("send_errors") as cas:
        for n, (code, cls, reason) in enumerate(ERROR_CASES):
            with pytest.raises(cls) as caught:
                await channel.send(out(TextContent(body=f"error case {n}"), outbox_id=f"err{n}"))
            exc = caught.value
            assert type(exc) is cls and exc.code == reason and exc.vendor_code == code
            if code is not None:
                assert exc.trace_id and exc.details, "fbtrace_id and error_data.details must be kept"
        assert cas.all_played
    await channel.aclose()


async def test_templates_list_follows_every_page_then_create_and_delete(app):
    from connectzap.connectors.whatsapp import templates_api
    from connectzap.core import templates as cache
    client = GraphClient(meta_settings())
    with cassette("templates") as cas:
        kept, _ = await templates_api.sync(client, app)
        created = await templates_api.create(client, app, {
            "name": "seasonal_promotion_text_only", "language": "en", "category": "MARKETING",
            "components": [{"type": "BODY", "text": "Shop now through {{1}}", "example": {"body_text": [["August"]]}}]})
        removed = await templates_api.delete(client, app, "order_update")
        assert cas.all_played
    await client.aclose()
    assert kept == 3  # two on page one, one on page two
    assert (created.status, created.category, created.id) == ("PENDING", "MARKETING", "594425479261596")
    assert removed == 1
    with app.db.read() as conn:
        cached = {(t.name, t.language): t for t in cache.all_templates(conn)}
    assert set(cached) == {("welcome", "en"), ("hello_world", "en_US"), ("seasonal_promotion_text_only", "en")}
    assert cached[("welcome", "en")].parameter_format == "NAMED"


async def test_business_profile_get_and_set():
    from connectzap.connectors.whatsapp import profile
    client = GraphClient(meta_settings())
    with cassette("profile") as cas:
        shown = await profile.show(client)
        await profile.update(client, {"about": "Fresh bread daily", "websites": ["https://example.com"]})
        assert cas.all_played
    await client.aclose()
    assert shown["vertical"] == "RETAIL" and shown["websites"] == ["https://www.example.com"]


def test_token_never_appears_in_reprs():
    settings = meta_settings(access_token="EAAG-super-secret")
    channel = CloudApiChannel(settings, GraphClient(settings))
    assert "super-secret" not in repr(channel) + repr(channel.client) + repr(settings) + str(settings)


# ============================================================================================
# end to end through the engine against the fake Graph server
# ============================================================================================

@pytest.fixture
def fake():
    with FakeGraph(token="test-token") as server:
        yield server


def live(fake: FakeGraph, **overrides: Any) -> dict[str, Any]:
    section: dict[str, Any] = {"access_token": "test-token", "phone_number_id": NUMBER, "waba_id": "waba1",
                               "app_secrets": ["secret"], "verify_token": "verify", "api_base_url": fake.url,
                               "messages_per_second": 1000, "pair_spacing_seconds": 0,
                               "daily_unique_recipients": None, "timeout_seconds": 2}
    section.update(overrides)
    return {"whatsapp": section}


def consent(app: Any, category: Category = Category.UTILITY) -> None:
    app.set_consent(ConsentChange(phone=PHONE, category=category, granted=True, source="test", proof="checkbox"))


def open_window(app: Any) -> None:
    msg = InboundMessage(wamid="wamid.in1", type="text", timestamp=datetime.now(UTC), contact=Contact(phone=PHONE),
                         text="hi")
    app.ingest([Event.of("inbound_message", msg, source="whatsapp", dedupe_key="wamid.in1")])


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_live_send_is_accepted_with_wamid(make, fake, transport):
    app = make(connectors=live(fake, transport=transport))
    assert isinstance(app.channel, CloudApiChannel) and app.channel.pacer is not None
    seed_template(app, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed.")
    consent(app)
    decision = app.send(Outgoing(to=PHONE, content=TemplateContent(name="order_confirmation", language="en",
                                                                   body=["Ana", "42"])))
    await Worker(app).run_until_idle()
    await app.aclose()
    row = app.message(decision.id)
    assert row["status"] == "accepted" and row["wamid"].startswith("wamid.fake.")
    [body] = fake.sends()
    assert body["biz_opaque_callback_data"] == decision.id and body["to"] == PHONE.lstrip("+")
    assert body["template"]["components"][0]["parameters"][1]["text"] == "42"


async def test_window_closed_sends_the_fallback_template(make, fake):
    app = make(connectors=live(fake))
    seed_template(app, "follow_up", "Hi {{1}}, can we help?")
    consent(app)
    open_window(app)
    await Worker(app).run_until_idle()
    fake.fail(131047, to=PHONE, type="text", details="Message failed to send because more than 24 hours have passed")
    fallback = TemplateContent(name="follow_up", language="en", body=["Ana"])
    decision = app.send(Outgoing(to=PHONE, content=TextContent(body="Any questions?"), fallback=fallback))
    assert decision.status == "queued"
    await Worker(app).run_until_idle()
    await app.aclose()
    assert [b["type"] for b in fake.sends()] == ["text", "template"]
    row = app.message(decision.id)
    assert row["status"] == "accepted" and row["template_name"] == "follow_up"


async def test_opted_out_answer_records_a_marketing_opt_out(make, fake):
    app = make(connectors=live(fake))
    seed_template(app, "spring_sale", "Spring sale: {{1}} off", category="MARKETING")
    consent(app, Category.MARKETING)
    fake.fail(131050, to=PHONE, details="User stopped marketing messages")
    decision = app.send(Outgoing(to=PHONE, content=TemplateContent(name="spring_sale", language="en", body=["20%"])))
    await Worker(app).run_until_idle()
    await app.aclose()
    row = app.message(decision.id)
    assert (row["status"], row["reason"], row["error_code"]) == ("failed", "opted_out", "131050")
    assert app.consent(PHONE)[Category.MARKETING].granted is False


async def test_expired_token_pauses_sending_and_health_says_so(make, fake):
    app = make(connectors=live(fake, access_token="expired-token"))
    seed_template(app, "order_confirmation", "Order {{1}} confirmed")
    consent(app)
    decision = app.send(Outgoing(to=PHONE, content=TemplateContent(name="order_confirmation", language="en",
                                                                   body=["42"])))
    await Worker(app).run_until_idle()
    await app.aclose()
    health = app.health()
    assert health["paused"] and "190" in health["paused"] and health["ok"] is False
    row = app.message(decision.id)
    assert row["status"] == "queued" and row["error_code"] == "190"  # waits for the fix, not failed
    assert "expired-token" not in health["paused"]


async def test_timeout_marks_unknown_and_never_resends(make, fake):
    app = make(connectors=live(fake, timeout_seconds=0.3))
    seed_template(app, "order_confirmation", "Order {{1}} confirmed")
    consent(app)
    fake.stall(1.5, to=PHONE)
    decision = app.send(Outgoing(to=PHONE, content=TemplateContent(name="order_confirmation", language="en",
                                                                   body=["42"])))
    worker = Worker(app)
    await worker.run_until_idle()
    await worker.run_until_idle()
    await app.aclose()
    row = app.message(decision.id)
    assert row["status"] == "unknown" and row["wamid"] is None
    assert len([r for r in fake.requests if r.path.endswith("/messages")]) == 1


async def test_marketing_route_and_local_media_end_to_end(make, fake, tmp_path):
    app = make(connectors=live(fake, marketing_messages_api=True))
    seed_template(app, "spring_sale", "Spring sale: {{1}} off", category="MARKETING")
    consent(app, Category.MARKETING)
    open_window(app)
    await Worker(app).run_until_idle()
    photo = tmp_path / "shelf.jpg"
    photo.write_bytes(b"\xff\xd8\xff fake jpeg")
    app.send(Outgoing(to=PHONE, content=TemplateContent(name="spring_sale", language="en", body=["20%"])))
    app.send(Outgoing(to=PHONE, content=MediaContent(type="image", media=MediaRef(file=str(photo)))))
    await Worker(app).run_until_idle()
    await app.aclose()
    paths = [r.path.rsplit("/", 1)[-1] for r in fake.requests]
    assert sorted(paths) == ["marketing_messages", "media", "messages"]
    upload = next(r for r in fake.requests if r.path.endswith("/media"))
    assert upload.body["type"] == "image/jpeg" and upload.body["filename"] == "shelf.jpg"
    image = next(b for b in fake.sends() if b["type"] == "image")
    assert image["image"]["id"].startswith("media.fake.")


async def test_pair_limit_answer_delays_only_that_recipient(make, fake):
    other = "+16505550000"
    app = make(connectors=live(fake))
    seed_template(app, "order_confirmation", "Order {{1}} confirmed")
    for phone in (PHONE, other):
        app.set_consent(ConsentChange(phone=phone, category=Category.UTILITY, granted=True, source="t", proof="x"))
    fake.fail(131056, to=PHONE, details="too many messages to the same number")
    first = app.send(Outgoing(to=PHONE, content=TemplateContent(name="order_confirmation", language="en", body=["1"])))
    second = app.send(Outgoing(to=other, content=TemplateContent(name="order_confirmation", language="en", body=["2"])))
    await Worker(app).run_until_idle()
    await app.aclose()
    held, sent = app.message(first.id), app.message(second.id)
    assert sent["status"] == "accepted"
    assert held["status"] == "queued" and held["error_code"] == "131056"
    assert held["next_attempt_at"] > datetime.now(UTC).timestamp() + 5
