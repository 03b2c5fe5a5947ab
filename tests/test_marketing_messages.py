"""The Marketing Messages API: MARKETING templates go to /marketing_messages where enabled (per
account), with message_activity_sharing and the marketing time-to-live Meta allows (12 h to 30
days, on the template); a refusal Meta *answered* with a listed code sends the message once through
/messages instead; a timeout or a retriable answer never does, so nothing is sent twice.
Cassette: cassettes/whatsapp/marketing_messages_fallback.yaml (built from Meta's reference); the
rest against the local Graph stand-in (connectzap.testing.fake_graph)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_whatsapp_client import NUMBER, PHONE, cassette, consent, fake, live, meta_settings, out

from connectzap import Category, Outgoing, TemplateContent
from connectzap.connectors.whatsapp import errors, templates_api
from connectzap.connectors.whatsapp.channel import REFUSAL_HOLD_SECONDS, CloudApiChannel
from connectzap.connectors.whatsapp.client import GraphClient
from connectzap.connectors.whatsapp.pacer import Pacer
from connectzap.connectors.whatsapp.settings import MARKETING_TTL, WhatsAppSettings
from connectzap.core.store.database import Database
from connectzap.core.errors import (AmbiguousDeliveryError, DeliveryError, FatalDeliveryError, PacedError, PayloadError,
                                   SendingPausedError)
from connectzap.core.worker import Worker
from connectzap.testing import seed_template

__all__ = ["fake"]  # the fixture, imported for this module's tests

PROMO = TemplateContent(name="seasonal_promotion_text_only", language="en", body=["the end of August", "25OFF", "25%"])


async def test_a_refusal_falls_back_once_to_messages_cassette():
    enabled = meta_settings(marketing_messages_api=True, marketing_message_activity_sharing=True)
    channel = CloudApiChannel(enabled, GraphClient(enabled))
    with cassette("marketing_messages_fallback") as cas:
        wamid = await channel.send(out(PROMO, category="marketing", outbox_id="mkt2"))
        assert cas.all_played and cas.play_count == 2
    await channel.aclose()
    assert wamid == "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI0102"


# --- the rule, over any answers: at most one accepted send, and a listed refusal always resends once ---

class ScriptedClient:
    """A GraphClient stand-in: answers each send from a script and counts what each route accepted."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []
        self.accepted: list[str] = []

    async def send_message(self, number: str, body: dict[str, Any], *, marketing: bool = False) -> str:
        route = "marketing_messages" if marketing else "messages"
        self.calls.append(route)
        answer = self.answers.pop(0) if self.answers else "ok"
        if answer == "ok":
            self.accepted.append(route)
            return f"wamid.{len(self.calls)}"
        if answer == "timeout":  # the request may have acted: Meta may have sent it
            self.accepted.append(route + "?")
            raise AmbiguousDeliveryError("no answer", code="unknown")
        status, code = {"refused": (403, 10), "other_fatal": (400, 132000), "paused": (401, 190),
                        "retry": (400, 130429), "skip": (400, 131050), "server": (503, None)}[answer]
        raise errors.classify(status, {"error": {"code": code, "message": answer}} if code else "<html>")

    async def aclose(self) -> None:
        return None


ANSWERS = ["ok", "timeout", "refused", "other_fatal", "paused", "retry", "skip", "server"]


@settings(max_examples=200, deadline=None)
@given(answers=st.lists(st.sampled_from(ANSWERS), min_size=1, max_size=3), fallback=st.booleans())
async def test_no_answer_sequence_sends_twice_and_every_refusal_is_sent_anyway(answers: list[str],
                                                                                fallback: bool) -> None:
    view = meta_settings(marketing_messages_api=True,
                         marketing_messages_fallback_codes=[10] if fallback else [])
    client = ScriptedClient(answers)
    channel = CloudApiChannel(view, client)  # type: ignore[arg-type]  # the scripted stand-in
    try:
        await channel.send(out(PROMO, category="marketing"))
    except DeliveryError:
        pass
    first = answers[0]
    assert len(client.accepted) <= 1, client.accepted  # never two routes that may both have sent it
    assert client.calls[0] == "marketing_messages"
    if first == "refused" and fallback:
        assert client.calls == ["marketing_messages", "messages"]  # what may go, goes (once)
    else:
        assert client.calls == ["marketing_messages"]  # nothing else after any other answer


async def test_after_a_refusal_the_number_uses_messages_for_a_while():
    view = meta_settings(marketing_messages_api=True)
    client = ScriptedClient(["refused"])
    channel = CloudApiChannel(view, client)  # type: ignore[arg-type]  # the scripted stand-in
    await channel.send(out(PROMO, category="marketing", outbox_id="a"))
    await channel.send(out(PROMO, category="marketing", outbox_id="b"))
    assert client.calls == ["marketing_messages", "messages", "messages"]


# --- a refusal of the Marketing Messages API stops only what must stop ---------------------------

@settings(max_examples=200, deadline=None)
@given(sends=st.lists(st.tuples(st.sampled_from(["marketing", "utility"]), st.booleans(), st.sampled_from(ANSWERS)),
                      min_size=1, max_size=6),
       fallback=st.booleans())
async def test_a_refusal_never_pauses_other_sending(sends: list[tuple[str, bool, str]], fallback: bool) -> None:
    """Any sequence of sends (marketing or utility, its campaign choosing the API or not) and answers:
    only Meta's token/account errors (190, or code 10 from /messages) pause all sending; a refusal of
    the Marketing Messages API (code 10 there) fails that one message unless it may go through
    /messages, and afterwards the number's marketing that may not go there waits without a request,
    while everything else goes on."""
    view = meta_settings(marketing_messages_api=True, marketing_messages_fallback_codes=[10] if fallback else [])
    client = ScriptedClient([])
    channel = CloudApiChannel(view, client)  # type: ignore[arg-type]  # the scripted stand-in
    refused = False
    for n, (category, chosen, answer) in enumerate(sends):
        client.answers = [answer, "ok"]  # the first request gets the drawn answer, a fallback "ok"
        message = replace(out(PROMO, category=category, outbox_id=f"m{n}"), prefer_marketing_api=chosen or None)
        calls, accepted = len(client.calls), len(client.accepted)
        may_fall_back = fallback and not chosen
        try:
            await channel.pace(message)
            await channel.send(message)
            error: Exception | None = None
        except (DeliveryError, PacedError) as exc:
            error = exc
        mine = client.calls[calls:]
        assert len(client.accepted) - accepted <= 1  # never two routes that may both have sent it
        # all sending pauses for the token or account (190), or a permission refused on /messages itself
        pauses = answer == "paused" or (answer == "refused" and mine[:1] == ["messages"])
        assert isinstance(error, SendingPausedError) == (bool(mine) and pauses), (mine, error)
        if category == "utility":
            assert mine == ["messages"]  # a marketing refusal never holds anything else back
        elif refused and not may_fall_back:
            assert mine == [] and isinstance(error, PacedError)  # waits for the hold, nothing asked
        elif refused:
            assert mine == ["messages"]  # a listed refusal: through /messages during the hold
        elif answer == "refused":
            refused = True
            if may_fall_back:
                assert mine == ["marketing_messages", "messages"] and error is None
            else:
                assert mine == ["marketing_messages"]
                assert isinstance(error, FatalDeliveryError) and error.code == "marketing_messages_refused"
                assert error.vendor_code == 10
        else:
            assert mine == ["marketing_messages"]


async def test_no_fallback_codes_a_refusal_fails_only_that_message_and_holds_marketing(make, fake):
    """The bug: with marketing_messages_fallback_codes = [] Meta's code 10 paused all sending."""
    fake.fail(10, http_status=403, path="/marketing_messages")
    app = make(connectors=live(fake, marketing_messages_api=True, marketing_messages_fallback_codes=[]))
    seed_template(app, "spring_sale", "Spring sale: {{1}} off", category="MARKETING")
    seed_template(app, "order_ready", "Your order {{1}} is ready", category="UTILITY")
    consent(app, Category.MARKETING)
    consent(app, Category.UTILITY)
    promo = app.send(Outgoing(to=PHONE, content=TemplateContent(name="spring_sale", language="en", body=["20%"])))
    await Worker(app).run_until_idle()
    notice = app.send(Outgoing(to=PHONE, content=TemplateContent(name="order_ready", language="en", body=["A1"])))
    await Worker(app).run_until_idle()
    await app.aclose()
    assert not app.paused()
    failed = app.message(promo.id)
    assert failed["status"] == "failed" and failed["error_code"] == "10", failed
    assert app.message(notice.id)["status"] == "accepted"
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests] == ["marketing_messages", "messages"]


# --- end to end against the Graph stand-in ----------------------------------------------------

async def sent_promo(app: Any) -> dict[str, Any]:
    seed_template(app, "spring_sale", "Spring sale: {{1}} off", category="MARKETING")
    consent(app, Category.MARKETING)
    decision = app.send(Outgoing(to=PHONE, content=TemplateContent(name="spring_sale", language="en", body=["20%"])))
    await Worker(app).run_until_idle()
    await app.aclose()
    return app.message(decision.id)


async def test_marketing_messages_with_activity_sharing_end_to_end(make, fake):
    app = make(connectors=live(fake, marketing_messages_api=True, marketing_message_activity_sharing=False))
    row = await sent_promo(app)
    assert row["status"] == "accepted"
    [send] = [r for r in fake.requests if r.path.endswith("/marketing_messages")]
    assert send.body["message_activity_sharing"] is False and send.body["template"]["name"] == "spring_sale"
    assert not [r for r in fake.requests if r.path.endswith("/messages")]


async def test_refused_then_sent_once_through_messages_end_to_end(make, fake):
    fake.fail(10, http_status=403, path="/marketing_messages", details="terms of service not accepted")
    app = make(connectors=live(fake, marketing_messages_api=True))
    row = await sent_promo(app)
    assert row["status"] == "accepted"
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests] == ["marketing_messages", "messages"]
    assert fake.accepted() == {row["id"]: 1}


async def test_no_fallback_codes_means_a_refusal_fails_the_message(make, fake):
    fake.fail(10, http_status=403, path="/marketing_messages")
    app = make(connectors=live(fake, marketing_messages_api=True, marketing_messages_fallback_codes=[]))
    row = await sent_promo(app)
    assert not [r for r in fake.requests if r.path.endswith("/messages")]
    assert row["status"] != "accepted" and not fake.accepted()


async def test_a_timeout_on_marketing_messages_is_never_sent_again_elsewhere(make, fake):
    fake.stall(3, to=PHONE)  # longer than timeout_seconds: the request may have acted
    app = make(connectors=live(fake, marketing_messages_api=True))
    row = await sent_promo(app)
    assert row["status"] == "unknown"
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests] == ["marketing_messages"]


async def test_an_account_may_turn_the_api_on_or_off(make, fake):
    section = live(fake, marketing_messages_api=False)["whatsapp"]
    for key in ("access_token", "phone_number_id", "waba_id"):
        section.pop(key)
    section["accounts"] = [{"waba_id": "waba1", "access_token": "test-token", "numbers": [NUMBER],
                            "marketing_messages_api": True}]
    app = make(connectors={"whatsapp": section})
    await sent_promo(app)
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests] == ["marketing_messages"]


# --- time-to-live: Meta's bounds, on the template -----------------------------------------------

def test_marketing_ttl_setting_is_held_to_metas_bounds():
    assert meta_settings(marketing_ttl_seconds=MARKETING_TTL[0]).marketing_ttl_seconds == 43_200
    for wrong in (MARKETING_TTL[0] - 1, MARKETING_TTL[1] + 1, 600):
        with pytest.raises(ValidationError):
            meta_settings(marketing_ttl_seconds=wrong)


@given(category=st.sampled_from(["MARKETING", "UTILITY", "AUTHENTICATION"]), seconds=st.integers(-5, 3_000_000))
def test_a_template_ttl_is_accepted_exactly_within_the_categorys_bounds(category: str, seconds: int) -> None:
    low, high = {"MARKETING": (43_200, 2_592_000), "UTILITY": (30, 43_200), "AUTHENTICATION": (30, 900)}[category]
    allowed = low <= seconds <= high or (seconds == -1 and category != "MARKETING")
    try:
        assert templates_api.checked_ttl(category, seconds) == seconds and allowed
    except PayloadError:
        assert not allowed


async def test_created_marketing_templates_get_the_ttl_and_templates_ttl_changes_it(make, fake):
    app = make(connectors=live(fake, marketing_messages_api=True, marketing_ttl_seconds=86_400))
    settings_ = app.settings.connectors["whatsapp"]
    view = WhatsAppSettings.model_validate(settings_) if isinstance(settings_, dict) else settings_
    client = GraphClient(view)
    body = [{"type": "BODY", "text": "Spring sale: {{1}} off", "example": {"body_text": [["20%"]]}}]
    made = await templates_api.create(client, app, {"name": "spring_sale", "language": "en",
                                                    "category": "MARKETING", "components": body})
    utility = await templates_api.create(client, app, {"name": "order_ready", "language": "en",
                                                       "category": "UTILITY", "components": body})
    posted = [r.body for r in fake.requests if r.path.endswith("/message_templates")]
    assert posted[0]["message_send_ttl_seconds"] == 86_400 and "message_send_ttl_seconds" not in posted[1]
    await templates_api.set_ttl(client, app, "spring_sale", 2 * 86_400)
    assert fake.templates[0]["message_send_ttl_seconds"] == 2 * 86_400 and fake.templates[0]["id"] == made.id
    with pytest.raises(PayloadError, match="43200 to 2592000"):
        await templates_api.set_ttl(client, app, "spring_sale", 3600)
    with pytest.raises(PayloadError, match="templates sync"):
        await templates_api.set_ttl(client, app, "no_such_template", 86_400)
    assert utility.id and len([r for r in fake.requests if r.path.endswith(f"/{made.id}")]) == 1
    await client.aclose()


# --- the hold is shared: every worker on the database sees another's refusal ----------------------

class Clock:
    """One wall clock the two "processes" read (moved by hand: no timed test)."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def worker_channel(db: Database, clock: Clock, view: WhatsAppSettings) -> tuple[CloudApiChannel, ScriptedClient]:
    client = ScriptedClient([])
    pacer = Pacer(db, default_number=NUMBER, messages_per_second=1000.0, pair_spacing_seconds=0.0,
                  daily_unique_recipients=None, burst_seconds=0.0, clock=clock)
    return CloudApiChannel(view, client, pacer=pacer), client  # type: ignore[arg-type]  # the scripted stand-in


@pytest.mark.parametrize("fallback", [False, True])
async def test_a_refusal_holds_the_numbers_marketing_in_every_worker_until_the_hold_ends(app, fallback: bool) -> None:
    """Worker A's refusal from /marketing_messages reaches worker B (its own pool, like another
    process): B asks that API nothing more for the hold -- its marketing waits, or goes through
    /messages where the code is listed -- while B's utility sends go on; after the hold B tries the
    API again."""
    view = meta_settings(marketing_messages_api=True, marketing_messages_fallback_codes=[10] if fallback else [])
    other = Database(app.db.url)
    clock = Clock()
    try:
        a, a_client = worker_channel(app.db, clock, view)
        b, b_client = worker_channel(other, clock, view)
        a_client.answers = ["refused"]
        try:
            await a.send(out(PROMO, category="marketing", outbox_id="a1"))
        except FatalDeliveryError:
            assert not fallback
        clock.t += 1
        promo = out(PROMO, category="marketing", outbox_id="b1")
        if fallback:
            await b.pace(promo)
            await b.send(promo)
            assert b_client.calls == ["messages"]  # straight to /messages: the API is not asked again
        else:
            with pytest.raises(PacedError) as held:
                await b.pace(promo)
            assert held.value.code == "marketing_messages_held" and held.value.retry_after == pytest.approx(599)
            assert b_client.calls == []
        await b.send(out(TemplateContent(name="order_ready", language="en"), outbox_id="b2"))
        assert b_client.calls[-1] == "messages"  # utility is never held
        calls = len(b_client.calls)
        clock.t += REFUSAL_HOLD_SECONDS
        await b.pace(promo)
        await b.send(promo)
        assert b_client.calls[calls:] == ["marketing_messages"]  # the hold is over: the API is asked again
        await a.aclose()
        await b.aclose()
    finally:
        other.dispose()
