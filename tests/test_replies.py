"""A person's reply from wherever they work (issue #20, item 3 and 4): free-form inside the 24-hour
window, the fallback template outside it, never silently dropped, and the conversation handed to
people -- through the engine, ``POST /v1/conversations/{contact}/reply``, ``GET
/v1/contacts/{phone}/window`` and the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_support import AUTH, api_engine, serving
from test_cli import config, ok, one_line_error, run  # noqa: F401 - the CLI tests' engine on both databases

from connectzap import Category, ConsentChange
from connectzap.core import windows
from connectzap.core.app import Connectzap
from connectzap.core.settings import load_settings
from connectzap.testing.apps import seed_template

ANA = "+4915112345678"
SHOP_NUMBER = "106540352242922"
OTHER_NUMBER = "207651463353033"
NOTICE = "new_message_notice"
REPLIES = {"fallback_template": NOTICE, "fallback_language": "en", "handoff_minutes": 30}


def _engine(make: Callable[..., Connectzap], **replies: object) -> Connectzap:
    app = api_engine(make, replies={**REPLIES, **replies})
    seed_template(app, NOTICE, "You have a new message about order {{1}}.")
    return app


def _wrote(app: Connectzap, phone: str, hours_ago: float, number: str | None = SHOP_NUMBER) -> None:
    with app.db.begin() as conn:
        windows.open_window(app.db, conn, app.contact_key(phone), time.time() - hours_ago * 3600, number)


def _utility_opt_in(app: Connectzap, phone: str) -> None:
    app.set_consent(ConsentChange(phone=phone, category=Category.UTILITY, granted=True, source="checkout"))


def _stored(app: Connectzap, message_id: str) -> dict[str, object]:
    row = app.message(message_id)
    return {"type": row["content_type"], "template": row["template_name"], "from": row["business_phone_number_id"]}


async def test_inside_the_window_the_text_goes_from_the_number_the_customer_wrote_to(make):
    app = _engine(make)
    _wrote(app, ANA, hours_ago=30, number=OTHER_NUMBER)  # an older, closed window on another number
    _wrote(app, ANA, hours_ago=2)
    async with serving(app) as client:
        got = await client.post(f"/v1/conversations/{ANA}/reply", headers=AUTH, json={"text": "It ships today."})
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["sent_as"], body["status"], body["handed_off"], body["duplicate"]) == ("text", "queued", True, False)
    assert body["window"]["open"] is True and body["window"]["contact"] != ANA
    assert [n["business_phone_number_id"] for n in body["window"]["numbers"]] == [SHOP_NUMBER, OTHER_NUMBER]
    assert [n["open"] for n in body["window"]["numbers"]] == [True, False]
    assert _stored(app, body["id"]) == {"type": "text", "template": None, "from": SHOP_NUMBER}
    person = app.conversation(ANA)
    assert (person.handled_by, person.reason) == ("human", "agent reply")
    assert person.until is not None and person.since is not None
    assert 29 * 60 < (person.until - person.since).total_seconds() <= 30 * 60


async def test_outside_the_window_the_configured_template_goes_with_its_parameters(make):
    app = _engine(make)
    _wrote(app, ANA, hours_ago=25)
    _utility_opt_in(app, ANA)
    async with serving(app) as client:
        got = await client.post(f"/v1/conversations/{ANA}/reply", headers=AUTH,
                                json={"text": "Your parcel left.", "fallback_params": ["1042"]})
    assert got.status_code == 200, got.text
    assert (got.json()["sent_as"], got.json()["window"]["open"]) == ("template", False)
    assert _stored(app, got.json()["id"]) == {"type": "template", "template": NOTICE, "from": SHOP_NUMBER}
    assert app.conversation(ANA).handled_by == "human"


async def test_a_closed_window_without_a_template_is_refused_not_dropped_and_hands_nothing_over(make):
    app = _engine(make, fallback_template=None)
    _wrote(app, ANA, hours_ago=25)
    async with serving(app) as client:
        got = await client.post(f"/v1/conversations/{ANA}/reply", headers=AUTH, json={"text": "Hello?"})
        assert (got.status_code, got.json()["error"]) == (422, "window_closed")
        assert app.message(got.json()["id"])["status"] == "refused"  # on record, with its reason
        assert app.conversation(ANA).handled_by == "bot"
        # the template needs consent like any business-initiated message
        app.settings.replies.fallback_template = NOTICE
        no_consent = await client.post(f"/v1/conversations/{ANA}/reply", headers=AUTH,
                                       json={"text": "Hello?", "fallback_params": ["1042"]})
    assert (no_consent.status_code, no_consent.json()["error"]) == (422, "no_consent")


async def test_a_repeated_reply_sends_once_and_a_different_one_under_the_same_key_is_a_conflict(make):
    app = _engine(make)
    _wrote(app, ANA, hours_ago=1)
    headers, where = {**AUTH, "Idempotency-Key": "note-77"}, f"/v1/conversations/{ANA}/reply"
    async with serving(app) as client:
        first = (await client.post(where, headers=headers, json={"text": "On its way"})).json()
        app.release(ANA)
        again = (await client.post(where, headers=headers, json={"text": "On its way"})).json()
        other = await client.post(where, headers=headers, json={"text": "Different"})
    assert (again["id"], again["duplicate"], again["handed_off"]) == (first["id"], True, False)
    assert app.conversation(ANA).handled_by == "bot"  # a replayed reply does not take the conversation again
    assert other.status_code == 409
    assert len(app.messages(phone=ANA)) == 1


async def test_handoff_minutes_zero_leaves_the_conversation_to_the_bot(make):
    app = _engine(make, handoff_minutes=0)
    _wrote(app, ANA, hours_ago=1)
    async with serving(app) as client:
        got = (await client.post(f"/v1/conversations/{ANA}/reply", headers=AUTH, json={"text": "Hi"})).json()
    assert (got["sent_as"], got["handed_off"]) == ("text", False)
    assert app.conversation(ANA).handled_by == "bot"


async def test_the_window_endpoint_says_whether_it_is_open_and_when_it_closes(make):
    app = _engine(make)
    async with serving(app) as client:
        never = (await client.get(f"/v1/contacts/{ANA}/window", headers=AUTH)).json()
        assert (never["open"], never["closes_at"], never["numbers"]) == (False, None, [])
        wrote_at = time.time() - 3600
        with app.db.begin() as conn:
            windows.open_window(app.db, conn, app.contact_key(ANA), wrote_at, SHOP_NUMBER)
        got = await client.get(f"/v1/contacts/{ANA}/window", headers=AUTH)
        assert (await client.get(f"/v1/contacts/{ANA}/window")).status_code == 401
    body = got.json()
    assert body["open"] is True and ANA not in got.text
    closes = body["numbers"][0]["closes_at"]
    assert body["closes_at"] == closes
    from datetime import datetime
    assert abs(datetime.fromisoformat(closes).timestamp() - (wrote_at + 24 * 3600)) < 1


def test_the_cli_replies_and_shows_the_window(config: Path):  # noqa: F811
    closed = run(config, "conversations", "reply", ANA, "Hello", "--json")
    assert "window_closed" in one_line_error(closed, code=3)
    assert json.loads(ok(run(config, "conversations", "window", ANA, "--json")))["open"] is False
    app = Connectzap(load_settings(config)).start()
    _wrote(app, ANA, hours_ago=1)
    app.close()
    sent = json.loads(ok(run(config, "conversations", "reply", ANA, "Hello", "--key", "k1", "--json")))
    assert (sent["sent_as"], sent["handed_off"], sent["window"]["open"]) == ("text", True, True)
    assert ANA not in json.dumps(sent)
    shown = json.loads(ok(run(config, "conversations", "show", ANA, "--json")))
    assert (shown["handled_by"], shown["reason"]) == ("human", "agent reply")


_phones = count(20_000_000)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hours_ago=st.one_of(st.none(), st.floats(min_value=0.01, max_value=23.9), st.floats(min_value=24.1,
                                                                                            max_value=47.9)),
       template=st.booleans(), consent=st.booleans())
def test_a_reply_is_the_text_exactly_inside_the_window_else_the_template_else_refused(
        make, hours_ago: float | None, template: bool, consent: bool):
    """Both sides: nothing free-form goes to a closed window, and every reply that may go is admitted."""
    app = _app_for_property(make)
    app.settings.replies.fallback_template = NOTICE if template else None
    phone = f"+49151{next(_phones):08d}"
    if hours_ago is not None:
        _wrote(app, phone, hours_ago)
    if consent:
        _utility_opt_in(app, phone)
    done = app.reply(phone, "text from a person", fallback_params=["1"])
    inside = hours_ago is not None and hours_ago < 24
    if inside:
        expected = ("queued", "text", None)
    elif not template:
        expected = ("refused", None, "window_closed")
    elif consent:
        expected = ("queued", "template", None)
    else:
        expected = ("refused", None, "no_consent")
    assert (done.decision.status, done.sent_as, done.decision.reason) == expected
    assert done.handed_off is (done.decision.status == "queued")


_made: dict[int, Connectzap] = {}


def _app_for_property(make: Callable[..., Connectzap]) -> Connectzap:
    """One engine for all of a property's examples (each example uses a contact of its own)."""
    if id(make) not in _made:
        _made.clear()
        _made[id(make)] = _engine(make)
    return _made[id(make)]


async def test_an_empty_reply_or_an_unknown_field_is_invalid_input_and_stores_nothing(make):
    app = _engine(make)
    _wrote(app, ANA, hours_ago=1)
    async with serving(app) as client:
        empty = await client.post(f"/v1/conversations/{ANA}/reply", headers=AUTH, json={"text": ""})
        extra = await client.post(f"/v1/conversations/{ANA}/reply", headers=AUTH, json={"text": "x", "to": "y"})
    assert (empty.status_code, extra.status_code) == (422, 422)
    assert app.messages(phone=ANA) == [] and app.conversation(ANA).handled_by == "bot"
