"""connectzap's own one-click unsubscribe (``unsubscribe_base_url``): the signed, expiring token on
its own, then the whole path -- a marketing email through a real SMTP server (aiosmtpd) links to
connectzap, GET shows a page and changes nothing, POST (RFC 8058) revokes marketing on email once,
and a forged or expired token changes nothing."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from connectzap import Category, ConsentChange, Connectzap
from connectzap.connectors.email.settings import EmailSettings
from connectzap.connectors.email.signatures import (UnsubscribeClaim, sign_unsubscribe, unsubscribe_key,
                                                    verify_unsubscribe)
from connectzap.core import clock
from connectzap.core import consent as ledger
from connectzap.core.channel import EMAIL, WHATSAPP
from connectzap.core.errors import SignatureError
from connectzap.core.plugins import pm
from connectzap.core.store.schema import events
from connectzap.core.worker import Worker
from connectzap.testing import deliver, webhook_request
from email_support import email_config, smtp_relay
from test_email_path import ADDRESS, PHONE, ConsentHeard, email, templates

KEY = unsubscribe_key(b"install-secret-for-tests")
CONTACT = "0123456789abcdef0123456789abcdef"
NOW = 1_800_000_000
BASE = "https://hooks.shop.example"
ONE_CLICK = b"List-Unsubscribe=One-Click"


# --- the token ------------------------------------------------------------------------------

def test_a_token_names_contact_category_medium_and_expiry() -> None:
    token = sign_unsubscribe(CONTACT, "marketing", "email", NOW + 60, KEY)
    claim = verify_unsubscribe(token, KEY, NOW)
    assert (claim.contact_key, claim.category, claim.medium, claim.expires) == (CONTACT, "marketing", "email",
                                                                                NOW + 60)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", token)  # goes into a URL as it is


@pytest.mark.parametrize(("token", "reason"), [
    (None, "malformed"), ("", "malformed"), ("u1.zz.marketing.email.1.x", "malformed"),
    (sign_unsubscribe(CONTACT, "marketing", "email", NOW + 60, b"another key"), "does not match"),
    (sign_unsubscribe(CONTACT, "marketing", "email", NOW + 60, KEY).replace("marketing", "utility"),
     "does not match"),
    (sign_unsubscribe(CONTACT, "marketing", "email", NOW + 60, KEY).replace(str(NOW + 60), str(NOW + 6000)),
     "does not match"),
    (sign_unsubscribe(CONTACT, "marketing", "email", NOW - 1, KEY), "expired"),
])
def test_a_forged_altered_or_expired_token_is_refused(token: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify_unsubscribe(token, KEY, NOW)


def test_without_a_key_nothing_verifies() -> None:
    with pytest.raises(SignatureError, match="no unsubscribe key"):
        verify_unsubscribe(sign_unsubscribe(CONTACT, "marketing", "email", NOW + 60, KEY), b"", NOW)


@given(st.from_regex(r"[0-9a-f]{32}", fullmatch=True), st.sampled_from(["marketing", "utility"]),
       st.sampled_from(["email", "sms"]), st.integers(0, 10**11), st.integers(0, 200), st.characters())
def test_every_signed_token_verifies_and_every_one_character_change_does_not(
        contact: str, category: str, medium: str, expires: int, where: int, char: str) -> None:
    token = sign_unsubscribe(contact, category, medium, expires, KEY)
    assert verify_unsubscribe(token, KEY, expires) == UnsubscribeClaim(contact, category, medium, expires,
                                                                       token.rsplit(".", 1)[1][:12])
    at = where % len(token)
    changed = token[:at] + char + token[at + 1:]
    if changed != token:
        with pytest.raises(SignatureError):
            verify_unsubscribe(changed, KEY, expires)


def test_the_base_url_must_be_https_and_excludes_an_own_page() -> None:
    section = {"host": "smtp.shop.example", "from_address": "shop@shop.example"}
    assert EmailSettings.model_validate({**section, "unsubscribe_base_url": BASE + "/"}).unsubscribe_base_url == BASE
    for bad in ({"unsubscribe_base_url": "http://hooks.shop.example"},
                {"unsubscribe_base_url": BASE + "/?x=1"},
                {"unsubscribe_base_url": BASE, "list_unsubscribe_url": "https://shop.example/u/{outbox_id}"},
                {"unsubscribe_base_url": BASE, "unsubscribe_valid_days": 7}):
        with pytest.raises(ValueError):
            EmailSettings.model_validate({**section, **bad})


# --- the whole path ---------------------------------------------------------------------------

@pytest.fixture
def heard() -> Any:
    listener = ConsentHeard()
    pm.register(listener, name="one_click_consent_heard")
    yield listener
    pm.unregister(name="one_click_consent_heard")


async def sent_link(make: Any, tmp_path: Path) -> tuple[Connectzap, str]:
    """An engine that served one marketing email to PHONE's address, and the URL it links to."""
    with smtp_relay(tmp_path) as relay:
        section = email_config(relay, templates_dir=str(templates(tmp_path / "tpl")), unsubscribe_base_url=BASE,
                               list_unsubscribe_mailto="unsubscribe@shop.example")
        app = make(connectors={"email": section})
        for category in (Category.UTILITY, Category.MARKETING):
            app.set_consent(ConsentChange(phone=PHONE, category=category, granted=True, source="test", proof="form",
                                          medium=EMAIL))
        app.set_consent(ConsentChange(phone=PHONE, category=Category.MARKETING, granted=True, source="test",
                                      proof="form"))  # WhatsApp's own
        sent = app.send(email("news", Category.MARKETING))
        await Worker(app).run_until_idle()
    [got] = relay.received
    header = str(got.message["List-Unsubscribe"])
    url = re.match(r"<(https://[^>]+)>", header)
    assert url is not None and got.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "mailto:unsubscribe@shop.example" in header
    assert url.group(1) in got.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert ADDRESS not in url.group(1) and PHONE.lstrip("+") not in url.group(1)
    row = app.message(sent.id)
    assert row is not None and row["contact_key"] in url.group(1)
    return app, url.group(1)


def call(app: Connectzap, url: str, method: str = "POST", body: bytes = ONE_CLICK) -> Any:
    path = url.removeprefix(BASE)
    return deliver(app, "email", webhook_request(path, body if method == "POST" else b"", method=method,
                                                 content_type="application/x-www-form-urlencoded"))


def marketing_on_email(app: Connectzap) -> bool:
    return app.consent(PHONE, medium=EMAIL)[Category.MARKETING].granted


async def test_get_shows_a_page_and_changes_nothing(make: Any, tmp_path: Path, heard: ConsentHeard) -> None:
    app, url = await sent_link(make, tmp_path)
    heard.changes.clear()
    for _ in range(3):  # a link scanner, a previewer, the reader
        answer = call(app, url, "GET")
        assert answer.status == 200 and answer.content_type.startswith("text/html")
        html = str(answer.body)
        assert '<html lang="en">' in html and '<form method="post">' in html
        assert '<button type="submit">Unsubscribe</button>' in html and "One-Click" in html
        assert "Ana&#x27;s Shop" in html  # the sender's name, escaped
    await Worker(app).run_until_idle()
    assert marketing_on_email(app) and heard.changes == []


async def test_post_revokes_marketing_on_email_once(make: Any, tmp_path: Path, heard: ConsentHeard) -> None:
    app, url = await sent_link(make, tmp_path)
    heard.changes.clear()
    answer = call(app, url)
    assert answer.status == 200 and "You are unsubscribed" in str(answer.body)
    await Worker(app).run_until_idle()
    revoked = app.consent(PHONE, medium=EMAIL)[Category.MARKETING]
    assert not revoked.granted and revoked.source == "email:unsubscribe" and "RFC 8058" in (revoked.proof or "")
    assert app.consent(PHONE, medium=EMAIL)[Category.UTILITY].granted  # only marketing
    assert app.consent(PHONE)[Category.MARKETING].granted  # and only on email
    [change] = heard.changes
    assert change.medium == EMAIL and not change.granted and change.category == Category.MARKETING
    assert ADDRESS not in json.dumps(change.model_dump(mode="json"))
    contact = app.contact_key(PHONE)
    for _ in range(2):  # the mail client retries; the reader presses the page's button too
        again = call(app, url)
        assert again.status == 200 and "You are unsubscribed" in str(again.body)
    await Worker(app).run_until_idle()
    assert len(heard.changes) == 1
    with app.db.read() as conn:
        assert [r.granted for r in ledger.history(conn, contact, EMAIL)].count(False) == 1
        assert len(ledger.history(conn, contact, WHATSAPP)) == 1
    assert app.send(email("news", Category.MARKETING)).reason == "opted_out"


@pytest.mark.parametrize("damage", ["forged", "expired", "no_one_click_body", "not_served"])
async def test_a_refused_request_changes_nothing(make: Any, tmp_path: Path, heard: ConsentHeard,
                                                  damage: str) -> None:
    app, url = await sent_link(make, tmp_path)
    heard.changes.clear()
    if damage == "forged":
        contact, category, medium, expires = url.rsplit("/", 1)[1].split(".")[1:5]
        answer = call(app, BASE + "/unsubscribe/email/" + sign_unsubscribe(contact, category, medium, int(expires),
                                                                         b"a guessed key"))
    elif damage == "expired":
        with clock.use_clock(lambda: time.time() + 91 * 86400):
            answer = call(app, url)
    elif damage == "no_one_click_body":
        answer = call(app, url, body=b"")
    else:  # the operator turned connectzap's unsubscribe off: old links are refused, not obeyed
        connector = app.connectors["email"]
        connector.settings = connector.settings.model_copy(update={"unsubscribe_base_url": None})
        answer = call(app, url)
    assert answer.status == 400 and answer.content_type.startswith("text/html")
    if damage != "no_one_click_body":
        assert "not valid or has expired" in str(answer.body) and "unsubscribe@shop.example" in str(answer.body)
    await Worker(app).run_until_idle()
    assert marketing_on_email(app) and heard.changes == []
    with app.db.read() as conn:  # nothing was journaled
        assert conn.execute(select(events.c.id).where(events.c.kind == "consent_changed",
                                                      events.c.source == "email")).first() is None


async def test_the_bounce_webhook_still_takes_post_only(make: Any, tmp_path: Path) -> None:
    app, _ = await sent_link(make, tmp_path)
    answer = deliver(app, "email", webhook_request("/webhooks/email", method="GET"))
    assert answer.status == 405


async def test_the_unsubscribe_over_http(make: Any) -> None:
    """Through the real HTTP edge (Starlette routing, the {token} path parameter, form bodies)."""
    from server_support import journaled, serving
    app = make(connectors={"email": {"host": "smtp.shop.example", "from_address": "Ana's Shop <shop@shop.example>",
                                     "unsubscribe_base_url": BASE}})
    connector = app.connectors["email"]
    token = sign_unsubscribe(app.contact_key(PHONE), "marketing", "email", int(time.time()) + 3600,
                             connector.unsubscribe_key)  # type: ignore[attr-defined]
    form = {"content-type": "application/x-www-form-urlencoded"}
    async with serving(app) as client:
        page = await client.get(f"/unsubscribe/email/{token}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<form method="post">' in page.text and journaled(app, "email") == 0
        done = await client.post(f"/unsubscribe/email/{token}", content=ONE_CLICK, headers=form)
        again = await client.post(f"/unsubscribe/email/{token}", content=ONE_CLICK, headers=form)
        altered = token[:-1] + ("B" if token.endswith("A") else "A")
        forged = await client.post(f"/unsubscribe/email/{altered}", content=ONE_CLICK, headers=form)
        bounce_get = await client.get("/webhooks/email")
    assert done.status_code == again.status_code == 200 and "You are unsubscribed" in again.text
    assert forged.status_code == 400 and bounce_get.status_code == 405
    assert journaled(app, "email") == 1
