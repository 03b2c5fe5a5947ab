"""SMS customers send, through the real edge (signed Twilio form posts): journaled as inbound messages
on the ``sms`` medium once per MessageSid, given to the hooks that declare the medium, logged on the
HubSpot timeline and sent by the generic connector's webhooks as SMS, never opening a WhatsApp
window, and nothing of them kept once the work is done."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from generic_support import receiver
from server_support import serving
from sms_support import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, callback, inbound_params, settings

from connectzap import Category, ConsentChange, Connectzap, EventKind, InboundMessage, hookimpl, inbound_media
from connectzap.connectors.hubspot.fake import FakeHubSpot
from connectzap.connectors.sms import webhooks
from connectzap.connectors.sms.signatures import sign_twilio
from connectzap.core.channel import SMS, WHATSAPP
from connectzap.core.errors import PayloadError
from connectzap.core.media import EVERY, declared_inbound_media
from connectzap.core.signatures import verify_standard
from connectzap.core.worker import Worker
from connectzap.testing import deliver, registered_plugin, sample_event
from hubspot_support import hubspot_config
from test_privacy import found_at

PHONE = "+4915112345678"
TEXT = "Is the blue jacket back in stock? Zebrastrasse 17"
SID = "SM" + "c" * 32
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
WEBHOOK_SECRET = "whsec_c3Vic2NyaXB0aW9uLXNpZ25pbmcta2V5LTAx"
KEYWORDS = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "START", "YES", "UNSTOP"]


def parsed(params: dict[str, str]) -> list[Any]:
    return webhooks.parse(urlencode(params).encode(), {}, account_sid=ACCOUNT_SID, now=NOW,
                          key_of=lambda e164: f"key:{e164}", opt_out=KEYWORDS[:8], opt_in=KEYWORDS[8:])


# --- parsing -------------------------------------------------------------------------------------

def test_a_text_is_an_inbound_message_on_sms_keyed_by_its_message_sid() -> None:
    [event] = parsed(inbound_params(TEXT, sender="0049 151 12345678", sid=SID))
    assert (event.kind, event.source, event.dedupe_key) == (EventKind.INBOUND_MESSAGE, "sms", SID)
    message = InboundMessage.model_validate(event.data)
    assert (message.medium, message.wamid, message.type, message.text) == (SMS, SID, "text", TEXT)
    assert message.contact.phone == PHONE and message.media_types == [] and message.media is None


def test_an_mms_records_its_attachments_by_type_and_count_only() -> None:
    params = inbound_params("look", sid=SID, NumMedia="2", MediaContentType0="image/jpeg",
                            MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME1",
                            MediaContentType1="video/mp4", MediaUrl1="https://api.twilio.com/x/ME2")
    [event] = parsed(params)
    message = InboundMessage.model_validate(event.data)
    assert message.type == "image" and message.media_types == ["image/jpeg", "video/mp4"]
    assert message.media is not None and message.media.mime_type == "image/jpeg" and message.media.url is None
    assert "api.twilio.com" not in event.model_dump_json()  # the media's URLs are not kept: nothing is fetched
    [bare] = parsed(inbound_params("", sid=SID, NumMedia="1", MediaContentType0="application/pdf"))
    assert (bare.data["type"], bare.data.get("text")) == ("document", None)
    with pytest.raises(PayloadError) as raised:
        parsed(inbound_params("x", NumMedia="many"))
    assert raised.value.field == "NumMedia"


@given(st.text(max_size=200))
def test_every_text_is_either_a_keyword_or_one_inbound_message(body: str) -> None:
    events = parsed(inbound_params(body, sid=SID))
    inbound = [e for e in events if e.kind == EventKind.INBOUND_MESSAGE]
    changes = [e for e in events if e.kind == EventKind.CONSENT_CHANGED]
    keyword = webhooks.keyword_change(body, KEYWORDS[:8], KEYWORDS[8:]) is not None
    assert (len(inbound), bool(changes)) == ((0, True) if keyword else (1, False))
    if inbound:
        assert inbound[0].data.get("text") == (body or None) and inbound[0].data["medium"] == SMS


@given(st.sampled_from(KEYWORDS))
def test_a_keyword_is_no_inbound_message(word: str) -> None:
    assert all(e.kind == EventKind.CONSENT_CHANGED for e in parsed(inbound_params(f" {word.lower()}! ", sid=SID)))


def test_the_medium_is_backward_compatible_and_checked() -> None:
    old = {"wamid": "wamid.1", "type": "text", "timestamp": "2026-12-03T09:00:00Z", "contact": {"phone": PHONE}}
    assert InboundMessage.model_validate(old).medium == WHATSAPP  # journaled before the field existed
    with pytest.raises(ValueError):
        InboundMessage.model_validate({**old, "medium": "Not A Medium"})


def test_undeclared_hooks_act_on_whatsapp_only() -> None:
    def plain(message: Any, ctx: Any) -> None: ...

    @inbound_media(SMS)
    def sms_only(message: Any, ctx: Any) -> None: ...

    @inbound_media(EVERY)
    def every(message: Any, ctx: Any) -> None: ...

    assert declared_inbound_media(plain) == {WHATSAPP}
    assert declared_inbound_media(sms_only) == {SMS}
    assert declared_inbound_media(every) is None
    with pytest.raises(ValueError):
        inbound_media()


# --- through the engine ---------------------------------------------------------------------------

class Listener:
    """Two automations: one declares SMS and WhatsApp, one declares nothing (WhatsApp only)."""

    def __init__(self) -> None:
        self.both: list[tuple[str, str, str | None, bool]] = []
        self.plain: list[str] = []

    @hookimpl
    @inbound_media(WHATSAPP, SMS)
    def on_inbound_message(self, message: InboundMessage, ctx: Any) -> None:
        self.both.append((message.medium, message.wamid, message.text, ctx.window_open(PHONE)))


class PlainListener:
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    @hookimpl
    def on_inbound_message(self, message: InboundMessage, ctx: Any) -> None:
        self.seen.append(message.medium)


@pytest.fixture
def listeners() -> Iterator[Listener]:
    listener = Listener()
    with registered_plugin(listener, name="sms_listener"), \
            registered_plugin(PlainListener(listener.plain), name="plain_listener"):
        yield listener


def sms_engine(make: Callable[..., Connectzap], **connectors: Any) -> Connectzap:
    return make(connectors={"sms": settings(status_callback_url=PUBLIC_URL), **connectors})


async def test_an_sms_reaches_the_hooks_that_declare_it_once_and_opens_no_window(
        make: Callable[..., Connectzap], listeners: Listener) -> None:
    app = sms_engine(make)
    request = callback(inbound_params(TEXT, sender=PHONE, sid=SID))
    assert deliver(app, "sms", request).body == {"received": 1, "duplicates": 0}
    assert deliver(app, "sms", request).body == {"received": 0, "duplicates": 1}  # Twilio retried it
    await Worker(app).run_until_idle()
    assert listeners.both == [(SMS, SID, TEXT, False)] and listeners.plain == []
    assert app.window(PHONE).open is False
    [event] = app.events(kind="inbound_message")
    assert event.status == "done" and event.source == "sms"
    # a WhatsApp message still reaches both, and opens the window
    app.ingest([sample_event("inbound_message")])
    await Worker(app).run_until_idle()
    assert [m for m, *_ in listeners.both] == [SMS, WHATSAPP] and listeners.plain == [WHATSAPP]


async def test_a_forged_or_unsigned_sms_is_refused_and_nothing_is_journaled(
        make: Callable[..., Connectzap], listeners: Listener) -> None:
    app = sms_engine(make)
    params = inbound_params(TEXT, sender=PHONE, sid=SID)
    assert deliver(app, "sms", callback(params, token="someone-elses-token")).status == 401
    assert deliver(app, "sms", callback(params, token=None)).status == 401
    await Worker(app).run_until_idle()
    assert app.events(kind="inbound_message") == [] and listeners.both == []


async def test_an_sms_over_http_keeps_nothing_once_done(make: Callable[..., Connectzap], listeners: Listener) -> None:
    app = sms_engine(make)
    app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="test",
                                  proof="form", medium=SMS))
    body = urlencode(inbound_params(TEXT, sender=PHONE, sid=SID))
    url = "http://testserver/webhooks/sms"
    headers = {"content-type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": sign_twilio(url, parse_qsl(body), AUTH_TOKEN)}
    async with serving(app) as client:
        first = await client.post("/webhooks/sms", content=body, headers=headers)
        again = await client.post("/webhooks/sms", content=body, headers=headers)
    assert (first.status_code, first.json()["received"], again.json()["duplicates"]) == (200, 1, 1)
    await Worker(app).run_until_idle()
    assert [(m, t) for m, _, t, _ in listeners.both] == [(SMS, TEXT)]
    Worker(app).housekeeping()
    assert found_at(app.db.url, [PHONE, PHONE.lstrip("+"), TEXT]) == []


@pytest.fixture
def hubspot() -> Iterator[FakeHubSpot]:
    with FakeHubSpot() as server:
        yield server


async def test_hubspot_logs_the_sms_on_the_contacts_timeline_as_sms(make: Callable[..., Connectzap],
                                                                   hubspot: FakeHubSpot) -> None:
    ana = hubspot.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = sms_engine(make, hubspot=hubspot_config(hubspot.url))
    request = callback(inbound_params(TEXT, sender=PHONE, sid=SID, NumMedia="1", MediaContentType0="image/png"))
    assert deliver(app, "sms", request).status == 200
    assert deliver(app, "sms", request).status == 200
    await Worker(app).run_until_idle()
    [entry] = hubspot.objects("communications")
    props = entry["properties"]
    assert props["hs_communication_channel_type"] == "SMS"
    body = props["hs_communication_body"]
    assert "SMS received" in body and "WhatsApp" not in body and SID in body
    assert "Zebrastrasse 17" in body and "[1 attachment: image/png]" in body
    assert hubspot.associations == [("communications", entry["id"], ana, 81)]
    assert app.window(PHONE).open is False


async def test_the_generic_connectors_webhook_delivers_the_sms_marked_as_sms(make: Callable[..., Connectzap]) -> None:
    async with receiver() as crm:
        app = sms_engine(make, generic={"subscriptions": {"crm": {"url": crm.url, "secret": WEBHOOK_SECRET}}})
        request = callback(inbound_params(TEXT, sender=PHONE, sid=SID))
        assert deliver(app, "sms", request).status == 200
        assert deliver(app, "sms", request).status == 200  # a replay: still one webhook
        await Worker(app).run_until_idle()
    [sent] = crm.ok()
    h = sent["headers"]
    verify_standard(h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature"), sent["body"],
                    [WEBHOOK_SECRET])
    body = json.loads(sent["body"])
    assert (body["type"], body["source"]) == ("inbound_message", "sms")
    assert (body["data"]["medium"], body["data"]["wamid"], body["data"]["text"]) == (SMS, SID, TEXT)
    assert body["data"]["contact"]["phone"] == PHONE


async def test_hubspot_logs_a_sent_sms_as_an_sms(make: Callable[..., Connectzap], hubspot: FakeHubSpot) -> None:
    """The ``accepted`` status of a message sent on SMS names its medium, so the timeline says SMS
    (a WhatsApp message's still says WhatsApp)."""
    from connectzap import Outgoing
    from connectzap.testing import FakeChannel, FakeWhatsApp
    ana = hubspot.add_contact({"firstname": "Ana", "mobilephone": PHONE})
    app = make(connectors={"hubspot": hubspot_config(hubspot.url)}, channel=FakeWhatsApp())
    app.use_channel(FakeChannel(SMS))
    for medium in (SMS, WHATSAPP):
        app.set_consent(ConsentChange(phone=PHONE, category=Category.UTILITY, granted=True, source="test",
                                      proof="form", medium=medium))
    app.ingest([sample_event("inbound_message")])  # opens Ana's window for the WhatsApp text
    await Worker(app).run_until_idle()
    for medium in (SMS, WHATSAPP):
        app.send(Outgoing.model_validate({"to": {"phone": PHONE}, "channel": medium, "category": "utility",
                                          "content": {"type": "text", "body": f"Shipped, by {medium}"}}))
    await Worker(app).run_until_idle()
    sent = {e["properties"]["hs_communication_body"]: e["properties"]["hs_communication_channel_type"]
            for e in hubspot.objects("communications") if "sent" in e["properties"]["hs_communication_body"]}
    by_medium = {medium: [kind for body, kind in sent.items() if f"Shipped, by {medium}" in body]
                 for medium in (SMS, WHATSAPP)}
    assert by_medium == {SMS: ["SMS"], WHATSAPP: ["WHATS_APP"]}, sent
    assert all(a[2] == ana for a in hubspot.associations)
