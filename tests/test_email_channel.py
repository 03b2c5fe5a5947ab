"""The email channel against a real SMTP server on 127.0.0.1 (aiosmtpd): STARTTLS, TLS from the
first byte, AUTH, the MIME it sends, and every SMTP failure mapped to the exception tree."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connectzap.connectors.email import EmailChannel, EmailSettings
from connectzap.connectors.email.channel import recipient_address
from connectzap.core.channel import OutboundSend
from connectzap.core.errors import (AmbiguousDeliveryError, RetriableDeliveryError, SendingPausedError,
                                    SkippableDeliveryError)
from connectzap.core.messages import MediaContent, MediaRef, TemplateContent, TextContent
from email_support import PASSWORD, Relay, email_config, free_port, smtp_relay


def channel(relay: Relay, **extra: Any) -> EmailChannel:
    return EmailChannel(EmailSettings(**email_config(relay, **extra)))


def send(content: Any, *, recipient: str = "ana@example.org", category: str = "utility",
         outbox_id: str = "m0001") -> OutboundSend:
    return OutboundSend(outbox_id=outbox_id, recipient=recipient, content=content, category=category)


def write_template(root: Path, name: str, language: str, subject: str, text: str, html: str | None = None) -> None:
    folder = root / name / language
    folder.mkdir(parents=True)
    (folder / "subject.txt").write_text(subject)
    (folder / "body.txt").write_text(text)
    if html is not None:
        (folder / "body.html").write_text(html)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    root = tmp_path / "email-templates"
    write_template(root, "order_confirmation", "en", "Order {{ params[0] }} confirmed\n",
                   "Hi {{ params[1] }}, order {{ params[0] }} is confirmed.\n",
                   "<p>Hi {{ params[1] }}, order <b>{{ params[0] }}</b> is confirmed.</p>\n")
    write_template(root, "order_confirmation", "pt", "Pedido {{ params[0] }} confirmado",
                   "Olá {{ params[1] }}!", "<p>Olá {{ params[1] }}!</p>")
    write_template(root, "newsletter", "en", "News for {{ first_name }}",
                   "Hello {{ first_name }}. Unsubscribe: {{ unsubscribe_url }}",
                   '<p>Hello {{ first_name }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>')
    write_template(root, "no_link", "en", "Sale", "Big sale", "<p>Big sale</p>")
    write_template(root, "text_only", "en", "Plain", "Just text {{ params[0] }}")
    return root


async def test_text_send_over_starttls_with_login(tmp_path: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        wamid = await channel(relay, default_subject="News from Ana's Shop").send(send(TextContent(body="Hello Ana")))
    [got] = relay.received
    assert got.tls and got.login == "shop" and relay.logins == ["shop"]
    assert got.mail_from == "shop@shop.example" and got.rcpt_tos == ["ana@example.org"]
    mail = got.message
    assert mail["Message-ID"] == wamid == "<m0001.cz@shop.example>"
    assert mail["From"] == "Ana's Shop <shop@shop.example>" and mail["To"] == "ana@example.org"
    assert mail["Reply-To"] == "help@shop.example" and mail["Subject"] == "News from Ana's Shop"
    assert mail["Date"] and mail["X-PM-Metadata-connectzap_outbox"] == "m0001"
    assert mail.get_content_type() == "text/plain" and mail.get_content().strip() == "Hello Ana"
    assert "List-Unsubscribe" not in mail  # not marketing


async def test_non_ascii_and_dot_lines_arrive_intact(tmp_path: Path) -> None:
    body = "Olá Ana, ça va? 🎉\n.a line that starts with a dot\n.\nend"
    with smtp_relay(tmp_path) as relay:
        await channel(relay, default_subject="Pedido nº 7 — confirmação").send(send(TextContent(body=body)))
    [got] = relay.received
    assert all(byte < 128 for byte in got.raw)  # 7-bit on the wire: no relay needs 8BITMIME
    assert got.message["Subject"] == "Pedido nº 7 — confirmação"
    assert got.message.get_content().replace("\r\n", "\n").rstrip("\n") == body


async def test_implicit_tls(tmp_path: Path) -> None:
    with smtp_relay(tmp_path, mode="tls") as relay:
        await channel(relay, tls="tls").send(send(TextContent(body="over TLS")))
    assert relay.received[0].tls and relay.received[0].login == "shop"


async def test_plain_relay_without_login(tmp_path: Path) -> None:
    with smtp_relay(tmp_path, mode="none") as relay:
        await channel(relay, tls="none", username=None, password=None).send(send(TextContent(body="local")))
    assert not relay.received[0].tls and relay.received[0].login is None


async def test_template_is_multipart_alternative_and_escapes_parameters_in_html(tmp_path: Path,
                                                                                 templates: Path) -> None:
    content = TemplateContent(name="order_confirmation", language="en_US",
                              body=["#1001", "<script>alert('x')</script> & Bob"])
    with smtp_relay(tmp_path) as relay:
        await channel(relay, templates_dir=str(templates)).send(send(content))
    mail = relay.received[0].message
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["Subject"] == "Order #1001 confirmed"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Hi <script>alert('x')</script> & Bob, order #1001 is confirmed." in text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Bob" in html and "<script>" not in html
    assert "<b>#1001</b>" in html  # the template's own markup stays markup


async def test_language_falls_back_to_base_then_default(tmp_path: Path, templates: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        ch = channel(relay, templates_dir=str(templates))
        await ch.send(send(TemplateContent(name="order_confirmation", language="pt_BR", body=["7", "Rui"])))
        await ch.send(send(TemplateContent(name="order_confirmation", language="de", body=["8", "Udo"])))
        await ch.send(send(TemplateContent(name="text_only", language="en", body=["x"])))
    subjects = [r.message["Subject"] for r in relay.received]
    assert subjects == ["Pedido 7 confirmado", "Order 8 confirmed", "Plain"]
    assert relay.received[2].message.get_content_type() == "text/plain"


@pytest.mark.parametrize(("content", "code"), [
    (TemplateContent(name="nope", language="en"), "template_missing"),
    (TemplateContent(name="../etc", language="en"), "template_missing"),
    (TemplateContent(name="order_confirmation", language="en", body=["only one"]), "template_error"),
    (MediaContent(type="image", media=MediaRef(link="https://x.example/a.png")), "unsupported_content"),
])
async def test_content_that_cannot_be_an_email_is_skipped_before_any_smtp(tmp_path: Path, templates: Path,
                                                                         content: Any, code: str) -> None:
    ch = EmailChannel(EmailSettings(host="127.0.0.1", port=free_port(), from_address="shop@shop.example",
                                    templates_dir=str(templates)))  # nothing listens: no connection is tried
    with pytest.raises(SkippableDeliveryError) as caught:
        await ch.send(send(content))
    assert caught.value.code == code


async def test_without_templates_dir_a_template_is_skipped(tmp_path: Path) -> None:
    ch = EmailChannel(EmailSettings(host="127.0.0.1", from_address="shop@shop.example"))
    with pytest.raises(SkippableDeliveryError) as caught:
        await ch.send(send(TemplateContent(name="order_confirmation", language="en")))
    assert caught.value.code == "template_missing" and "templates_dir" in caught.value.message


@pytest.mark.parametrize(("setup", "error", "code"), [
    ({"rcpt_reply": "550 5.1.1 No such user here"}, SkippableDeliveryError, "unreachable"),
    ({"rcpt_reply": "553 mailbox name not allowed"}, SkippableDeliveryError, "unreachable"),
    ({"rcpt_reply": "554 5.7.1 Relay access denied"}, SkippableDeliveryError, "smtp_rejected"),
    ({"rcpt_reply": "450 4.2.1 Mailbox busy, try later"}, RetriableDeliveryError, "smtp_later"),
    ({"mail_reply": "421 4.7.0 Too many connections"}, RetriableDeliveryError, "smtp_later"),
    ({"mail_reply": "553 5.7.1 Sender address rejected"}, SendingPausedError, "smtp_sender_refused"),
    ({"data_reply": "451 4.3.0 Queue full"}, RetriableDeliveryError, "smtp_later"),
    ({"data_reply": "554 5.7.1 Message rejected as spam"}, SkippableDeliveryError, "smtp_rejected"),
    ({"drop_in_data": True}, AmbiguousDeliveryError, "smtp_unknown"),
])
async def test_smtp_failures_map_to_the_exception_tree(tmp_path: Path, setup: dict[str, Any],
                                                       error: type[Exception], code: str) -> None:
    with smtp_relay(tmp_path) as relay:
        for name, value in setup.items():
            setattr(relay, name, value)
        with pytest.raises(error) as caught:
            await channel(relay).send(send(TextContent(body="hi")))
    assert type(caught.value) is error and caught.value.code == code  # type: ignore[attr-defined]
    assert relay.received == []


async def test_wrong_password_pauses_sending_and_never_shows_the_password(tmp_path: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        with pytest.raises(SendingPausedError) as caught:
            await channel(relay, password="wrong-secret-91").send(send(TextContent(body="hi")))
    assert caught.value.code == "smtp_auth" and "wrong-secret-91" not in str(caught.value)
    assert "wrong-secret-91" not in repr(caught.value)


async def test_a_login_the_relay_does_not_offer_pauses_sending(tmp_path: Path) -> None:
    with smtp_relay(tmp_path, mode="tls", auth=False) as relay:
        with pytest.raises(SendingPausedError) as caught:
            await channel(relay, tls="tls").send(send(TextContent(body="hi")))
    assert caught.value.code == "smtp_not_supported" and relay.received == []


async def test_untrusted_certificate_pauses_sending(tmp_path: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        ch = EmailChannel(EmailSettings(**{**email_config(relay), "ca_file": None}))
        with pytest.raises(SendingPausedError) as caught:
            await ch.send(send(TextContent(body="hi")))
    assert caught.value.code == "smtp_tls"


async def test_nobody_listening_is_retriable(tmp_path: Path) -> None:
    ch = EmailChannel(EmailSettings(host="127.0.0.1", port=free_port(), tls="none", from_address="s@shop.example"))
    with pytest.raises(RetriableDeliveryError) as caught:
        await ch.send(send(TextContent(body="hi")))
    assert caught.value.code == "smtp_connection"


@pytest.mark.parametrize("recipient", ["+34612345678", "Ana <ana@example.org>", "ana@example.org\r\nBcc: x@y.z",
                                       "ana@localhost", "a@b.c, d@e.f", "", "ana@@example.org"])
async def test_a_recipient_that_is_no_email_address_is_skipped(recipient: str) -> None:
    with pytest.raises(SkippableDeliveryError) as caught:
        recipient_address(recipient)
    assert caught.value.code == "invalid_recipient"


@given(st.text(max_size=40))
def test_an_accepted_recipient_is_one_bare_address(text: str) -> None:
    try:
        address = recipient_address(text)
    except SkippableDeliveryError:
        return
    assert address == text.strip() and address.count("@") >= 1
    assert not any(c in address for c in "\r\n<>, ")


def test_settings_keep_the_password_out_of_reprs() -> None:
    settings = EmailSettings(host="smtp.example", username="u", password=PASSWORD, from_address="s@shop.example")
    for shown in (repr(settings), str(settings), settings.model_dump_json(), repr(EmailChannel(settings))):
        assert PASSWORD not in shown
    assert settings.smtp_port == 587 and EmailSettings(host="h", tls="tls", from_address="s@a.example").smtp_port == 465


@pytest.mark.parametrize(("extra", "named"), [
    ({"from_address": "not an address"}, "from_address"),
    ({"from_address": "shop@shop.example\nBcc: x@y.z"}, "from_address"),
    ({"reply_to": "nobody"}, "reply_to"),
    ({"username": "u"}, "username and password"),
    ({"username": "u", "password": "p", "tls": "none"}, "password would cross"),
    ({"tls": "ssl"}, "tls"),
    ({"list_unsubscribe_url": "http://shop.example/u"}, "https"),
    ({"list_unsubscribe_url": "https://shop.example/u/{contact}"}, "{outbox_id}"),
    ({"templates_dir": "/nonexistent/templates"}, "templates_dir"),
    ({"default_subject": "two\nlines"}, "one line"),
])
def test_bad_settings_are_refused_with_a_clear_reason(extra: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EmailSettings(**{"host": "smtp.example", "from_address": "s@shop.example", **extra})
    assert named in str(caught.value)


async def test_marketing_email_carries_one_click_unsubscribe_headers(tmp_path: Path, templates: Path) -> None:
    content = TemplateContent(name="newsletter", language="en", body={"first_name": "Ana"})
    with smtp_relay(tmp_path) as relay:
        await channel(relay, templates_dir=str(templates), list_unsubscribe_mailto="unsub@shop.example",
                      list_unsubscribe_url="https://shop.example/unsubscribe/{outbox_id}?a=1&b=2").send(
            send(content, category="marketing", outbox_id="m0042"))
    mail = relay.received[0].message
    assert mail["List-Unsubscribe"] == ("<https://shop.example/unsubscribe/m0042?a=1&b=2>, "
                                        "<mailto:unsub@shop.example?subject=unsubscribe>")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "https://shop.example/unsubscribe/m0042?a=1&b=2" in mail.get_body(("plain",)).get_content()
    assert 'href="https://shop.example/unsubscribe/m0042?a=1&amp;b=2"' in mail.get_body(("html",)).get_content()


async def test_mailto_only_unsubscribe_has_no_one_click_header(tmp_path: Path, templates: Path) -> None:
    content = TemplateContent(name="newsletter", language="en", body={"first_name": "Ana"})
    with smtp_relay(tmp_path) as relay:
        await channel(relay, templates_dir=str(templates), list_unsubscribe_mailto="mailto:unsub@shop.example").send(
            send(content, category="marketing"))
    mail = relay.received[0].message
    assert mail["List-Unsubscribe"] == "<mailto:unsub@shop.example?subject=unsubscribe>"
    assert "List-Unsubscribe-Post" not in mail


@pytest.mark.parametrize(("name", "unsubscribe", "said"), [
    ("no_link", {"list_unsubscribe_url": "https://shop.example/u/{outbox_id}"}, "text body"),
    ("newsletter", {}, "list_unsubscribe_url or list_unsubscribe_mailto"),
])
async def test_marketing_email_without_an_unsubscribe_link_is_refused(tmp_path: Path, templates: Path, name: str,
                                                                      unsubscribe: dict[str, str], said: str) -> None:
    content = TemplateContent(name=name, language="en", body={"first_name": "Ana"})
    with smtp_relay(tmp_path) as relay:
        with pytest.raises(SkippableDeliveryError) as caught:
            await channel(relay, templates_dir=str(templates), **unsubscribe).send(send(content, category="marketing"))
        await channel(relay, templates_dir=str(templates), **unsubscribe).send(send(content, category="utility"))
    assert caught.value.code == "unsubscribe_missing" and said in caught.value.message
    assert len(relay.received) == 1 and "List-Unsubscribe" not in relay.received[0].message  # utility goes, plain


def test_the_channel_sends_on_the_email_medium() -> None:
    from connectzap.core.channel import EMAIL, Channel
    ch = EmailChannel(EmailSettings(host="h", from_address="s@shop.example"))
    assert isinstance(ch, Channel) and ch.medium == EMAIL


def test_relative_paths_mean_the_config_files_folder(tmp_path: Path, templates: Path) -> None:
    settings = EmailSettings(host="h", from_address="s@shop.example", templates_dir=templates.name)
    assert settings.against(templates.parent).templates_dir == templates
    with pytest.raises(ValueError, match="templates_dir"):
        settings.against(tmp_path / "elsewhere")


def test_the_connector_resolves_templates_against_the_config_file(tmp_path: Path, templates: Path) -> None:
    from connectzap.core.errors import ConfigurationError
    from connectzap.testing import make_app
    config = {"connectors": {"email": {"host": "h", "from_address": "s@shop.example",
                                       "templates_dir": templates.name}}}
    app = make_app(tmp_path, config_path=templates.parent / "connectzap.toml", **config)
    assert app.connectors["email"].settings.templates_dir == templates
    (tmp_path / "b").mkdir()
    with pytest.raises(ConfigurationError, match=r"\[connectors.email\] templates_dir"):
        make_app(tmp_path / "b", config_path=tmp_path / "nowhere" / "connectzap.toml", **config)


async def test_pace_sends_back_a_message_that_would_wait_long_for_the_relays_limit() -> None:
    from connectzap.core.errors import PacedError
    ch = EmailChannel(EmailSettings(host="h", from_address="s@shop.example", messages_per_second=0.1))
    await ch.pace(send(TextContent(body="x")))  # the first slot is now
    with pytest.raises(PacedError) as caught:
        await ch.pace(send(TextContent(body="x")))  # the next is 10 s away
    assert caught.value.retry_after == pytest.approx(10, abs=0.5) and ch.messages_per_second() == 0.1
    assert EmailChannel(EmailSettings(host="h", from_address="s@shop.example")).rate is None


@given(st.lists(st.text(min_size=1, max_size=30), min_size=2, max_size=2))
def test_any_parameter_arrives_as_text_in_both_parts(tmp_path_factory: Any, params: list[str]) -> None:
    import email as stdlib_email
    import html as stdlib_html
    from email.policy import default as default_policy

    from markupsafe import escape

    from connectzap.connectors.email.composing import Composer
    root = tmp_path_factory.getbasetemp() / "prop-templates"
    if not root.exists():
        write_template(root, "t", "en", "S {{ params[0] }}", "T[{{ params[0] }}|{{ params[1] }}]",
                       "<p>H[{{ params[0] }}|{{ params[1] }}]</p>")
    composer = Composer(EmailSettings(host="h", from_address="s@shop.example", templates_dir=str(root)))
    composed = composer.compose(send(TemplateContent(name="t", language="en", body=params)), "ana@example.org")
    mail = stdlib_email.message_from_bytes(composed.message.as_bytes(), policy=default_policy)
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    norm = [p.replace("\r\n", "\n").replace("\r", "\n") for p in params]
    assert f"T[{norm[0]}|{norm[1]}]" in text.replace("\r\n", "\n")
    flat = html.replace("\r\n", "\n")
    assert f"H[{escape(norm[0])}|{escape(norm[1])}]" in flat and flat.count("<") == 2  # only the template's tags
    assert stdlib_html.unescape(flat).count(f"H[{norm[0]}|{norm[1]}]") == 1
    assert mail["Subject"] == " ".join(f"S {params[0]}".split())  # one line, whatever the parameter holds


def test_the_unsubscribe_rule_is_the_channels_declared_refusal(templates: Path) -> None:
    from connectzap.core.channel import MediumRules
    ch = EmailChannel(EmailSettings(host="h", from_address="s@shop.example", templates_dir=str(templates),
                                    list_unsubscribe_url="https://shop.example/u/{outbox_id}"))
    assert isinstance(ch, MediumRules)
    no_link = TemplateContent(name="no_link", language="en")
    refusal = ch.refusal(send(no_link, category="marketing"), 0.0)
    assert refusal is not None and refusal.reason == "unsubscribe_missing" and refusal.retry_at is None
    assert ch.refusal(send(no_link, category="utility"), 0.0) is None
    newsletter = TemplateContent(name="newsletter", language="en", body={"first_name": "Ana"})
    assert ch.refusal(send(newsletter, category="marketing"), 0.0) is None
    assert ch.refusal(send(TemplateContent(name="nope", language="en"), category="marketing"), 0.0) is None


# --- connections kept across messages ---------------------------------------------------------------

async def test_one_connection_carries_many_messages_up_to_the_limit(tmp_path: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        mailer = channel(relay, connection_max_messages=3)
        for number in range(7):
            await mailer.send(send(TextContent(body=f"message {number}"), outbox_id=f"m{number}"))
        await mailer.aclose()
    assert [got.message["Message-ID"] for got in relay.received] == [f"<m{n}.cz@shop.example>" for n in range(7)]
    assert relay.connections == 3 and relay.logins == ["shop"] * 3  # 3 + 3 + 1, one login each
    assert mailer.kept == []


async def test_a_connection_per_message_when_the_limit_is_one(tmp_path: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        mailer = channel(relay, connection_max_messages=1)
        for number in range(3):
            await mailer.send(send(TextContent(body="hi"), outbox_id=f"m{number}"))
        assert mailer.kept == []
    assert relay.connections == 3 and len(relay.received) == 3


async def test_an_idle_connection_is_closed_not_reused(tmp_path: Path) -> None:
    now = [1000.0]
    with smtp_relay(tmp_path) as relay:
        mailer = channel(relay, connection_idle_seconds=30)
        mailer.monotonic = lambda: now[0]
        await mailer.send(send(TextContent(body="one"), outbox_id="m1"))
        now[0] += 29
        await mailer.send(send(TextContent(body="two"), outbox_id="m2"))
        assert relay.connections == 1
        now[0] += 31
        await mailer.send(send(TextContent(body="three"), outbox_id="m3"))
        await mailer.aclose()
    assert relay.connections == 2 and len(relay.received) == 3


async def test_a_connection_the_relay_dropped_is_replaced_and_the_message_goes_once(tmp_path: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        relay.close_after_data = True  # the relay hangs up after each message
        mailer = channel(relay)
        await mailer.send(send(TextContent(body="one"), outbox_id="m1"))
        await asyncio.sleep(0.2)  # the hang-up arrives
        await mailer.send(send(TextContent(body="two"), outbox_id="m2"))
        await mailer.aclose()
    assert [got.message["Message-ID"] for got in relay.received] == ["<m1.cz@shop.example>", "<m2.cz@shop.example>"]
    assert relay.connections == 2 and relay.mails == 2


async def test_a_drop_noticed_only_at_mail_from_is_retried_on_a_new_connection(tmp_path: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        mailer = channel(relay)
        relay.close_after_data = True
        await mailer.send(send(TextContent(body="one"), outbox_id="m1"))
        relay.close_after_data = False
        time.sleep(0.3)  # the relay hangs up meanwhile; blocking, so this loop has not read the hang-up yet
        [kept] = mailer.kept
        assert kept.smtp.is_connected  # as far as the client knows: MAIL FROM is what finds out
        await mailer.send(send(TextContent(body="two"), outbox_id="m2"))
        await mailer.aclose()
    assert [got.message["Message-ID"] for got in relay.received] == ["<m1.cz@shop.example>", "<m2.cz@shop.example>"]
    assert relay.connections == 2


async def test_a_drop_during_data_on_a_kept_connection_stays_ambiguous(tmp_path: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        mailer = channel(relay)
        await mailer.send(send(TextContent(body="one"), outbox_id="m1"))
        relay.drop_in_data = True
        with pytest.raises(AmbiguousDeliveryError):
            await mailer.send(send(TextContent(body="two"), outbox_id="m2"))
        assert mailer.kept == []  # a failed connection is never kept
        relay.drop_in_data = False
        await mailer.send(send(TextContent(body="three"), outbox_id="m3"))
        await mailer.aclose()
    assert [got.message["Message-ID"] for got in relay.received] == ["<m1.cz@shop.example>", "<m3.cz@shop.example>"]
    assert relay.mails == 3 and relay.connections == 2  # m2 was started once, on the kept connection, never again


async def test_a_refused_recipient_on_a_kept_connection_is_not_retried(tmp_path: Path) -> None:
    with smtp_relay(tmp_path) as relay:
        mailer = channel(relay)
        await mailer.send(send(TextContent(body="one"), outbox_id="m1"))
        relay.rcpt_reply = "550 5.1.1 No such user"
        with pytest.raises(SkippableDeliveryError):
            await mailer.send(send(TextContent(body="two"), outbox_id="m2"))
    assert relay.connections == 1 and len(relay.received) == 1
