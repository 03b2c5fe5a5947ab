"""auto_replies and handoff, as customers meet them: signed WhatsApp webhooks through the testing kit
(sandbox-like fake channel), on SQLite and PostgreSQL. The configurations are docs/automation.md's,
read from the doc as written: keywords whole-word and accent-blind, a menu tree of buttons and list
rows, regexes, message types, per-language answers, cooldown, staleness, a replayed webhook answered
once, a handoff silencing every automatic answer until released. Config mistakes: one line at start."""

from __future__ import annotations

import re
import time
import tomllib
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from automation_support import WHATSAPP, again, button_reply, envelope, receive, text
from hypothesis import given
from hypothesis import strategies as st

from connectzap import AutomaticAnswer, ConfigurationError, Event, EventKind, MessageStatus, StartupError
from connectzap.plugins.auto_replies import AutoRepliesSettings
from connectzap.plugins.matching import contains, words_of
from connectzap.testing import FakeWhatsApp, run

DOC = Path(__file__).resolve().parents[1] / "docs" / "automation.md"
SPAIN, BRAZIL, US, GERMANY = "34612345678", "5511987654321", "16505551234", "4915112345678"


def examples(title: str) -> list[dict[str, Any]]:
    section = DOC.read_text(encoding="utf-8").split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    return [tomllib.loads(block) for block in re.findall(r"```toml\n(.*?)```", section, re.S)]


SPANISH, BRAZILIAN, AMERICAN = examples("Frequent questions (`auto_replies`)")
HANDOFF_ES, HANDOFF_PT, HANDOFF_EN = examples("Human handoff")


def shop(make: Any, *configs: dict[str, Any]) -> Any:
    plugins: dict[str, Any] = {}
    for config in configs:
        plugins |= config["plugins"]
    return make(channel=FakeWhatsApp(), connectors=WHATSAPP, plugins=plugins)


def answers(app: Any, to: str | None = None) -> list[str]:
    """What the customers (or customer ``to``) got, in order, one readable line each."""
    out = []
    for body in app.channel.sent():
        if to is not None and body["to"] != to:
            continue
        kind = body["type"]
        if kind == "text":
            out.append(body["text"]["body"])
        elif kind == "interactive":
            out.append(f"[{body['interactive']['type']}] {body['interactive']['body']['text']}")
        else:
            out.append(f"[{kind}]")
    return out


def location(**kw: Any) -> dict[str, Any]:
    return envelope({"type": "location", "location": {"latitude": 40.4, "longitude": -3.7}}, **kw)


def image(**kw: Any) -> dict[str, Any]:
    return envelope({"type": "image", "image": {"id": "1479537139650973", "mime_type": "image/jpeg",
                                                "sha256": "29ed500fa64eb55fc19dc4124acb300e5dcc54a0f822a301ae99944db"}},
                    **kw)


def list_reply(row_id: str, title: str, **kw: Any) -> dict[str, Any]:
    return envelope({"type": "interactive", "interactive": {"type": "list_reply",
                                                            "list_reply": {"id": row_id, "title": title}}}, **kw)


def older(webhook: dict[str, Any], minutes: float) -> dict[str, Any]:
    webhook["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(time.time() - minutes * 60))
    return webhook


# --- the Spanish shop, end to end ---------------------------------------------------------------------

def test_the_spanish_menu_tree_keywords_regex_and_location(make):
    app = shop(make, SPANISH)
    receive(app, text("¿A qué HORA abrís mañana?"), text("ahora mismo no"),  # "hora" is not in "ahora"
            text("Hola"), button_reply("envios", "Envíos"), text("¿dónde está mi pedido 1042?"),
            text("¿Tenéis tienda física?"))
    said = answers(app)
    assert said[0].startswith("Abrimos de lunes a viernes")
    assert said[1] == "[button] ¡Hola! ¿En qué te ayudamos?"
    assert said[2].startswith("Enviamos en 24-48 h")  # the tap: never held back by a cooldown
    assert said[3] == "[location]" and len(said) == 4  # the regex asked about shipping again: cooling down
    bodies = app.channel.sent()
    assert all(b["context"]["message_id"].startswith("wamid.") for b in bodies)  # each quotes its question


def test_a_tap_on_the_handoff_button_hands_over_and_silences_every_automatic_answer(make):
    app = shop(make, SPANISH)
    for said in (text("menu"), button_reply("persona", "Hablar con alguien"), text("¿horario?"), text("hola")):
        receive(app, said)  # one at a time: a button is tapped once its menu arrived
    assert answers(app) == ["[button] ¡Hola! ¿En qué te ayudamos?",
                            "Te pasamos con una persona del equipo. Te responderá en cuanto pueda."]
    state = app.conversation("+" + SPAIN)
    assert state.handled_by == "human" and state.reason == "auto_replies rule persona" and state.until is not None
    app.release("+" + SPAIN)
    receive(app, text("¿Cuál es el horario?"))
    assert answers(app)[-1].startswith("Abrimos de lunes a viernes")


def test_a_replayed_webhook_is_answered_once_and_a_stale_message_not_at_all(make):
    app = shop(make, SPANISH)
    first = text("horario")
    receive(app, first, again(first))
    receive(app, older(text("envios", wa_id=BRAZIL), minutes=11))  # the core's 10-minute limit
    assert len(answers(app)) == 1
    strict = shop(make, {"plugins": {"auto_replies": {**SPANISH["plugins"]["auto_replies"],
                                                      "stale_after_minutes": 2}}})
    receive(strict, older(text("envios"), minutes=3))
    assert answers(strict) == []


def test_cooldown_per_contact_and_rule(make):
    app = shop(make, SPANISH)
    receive(app, text("horario"), text("horario, otra vez"), text("horario", wa_id=BRAZIL), text("envío"))
    assert [a[:8] for a in answers(app, SPAIN)] == ["Abrimos ", "Enviamos"]  # the second "horario" waits
    assert [a[:8] for a in answers(app, BRAZIL)] == ["Abrimos "]  # per contact


# --- the Brazilian and the bilingual US shop ----------------------------------------------------------

def test_the_brazilian_list_menu_and_an_image_answered_with_the_catalogue(make):
    app = shop(make, BRAZILIAN)
    receive(app, text("Oi!", wa_id=BRAZIL), list_reply("trocas", "Trocas e devoluções", wa_id=BRAZIL),
            image(wa_id=BRAZIL), location(wa_id=BRAZIL))
    said = answers(app)
    assert said == ["[list] Olá! Escolha um assunto:", said[1], "[document]"]  # a location matches no rule
    assert said[1].startswith("Você tem 7 dias")
    assert app.channel.sent()[2]["document"]["link"] == "https://loja.example.com.br/catalogo.pdf"


def test_the_answer_is_in_the_language_of_the_words_else_the_country_else_the_default(make):
    app = shop(make, AMERICAN)
    receive(app, text("What are your opening times?", wa_id=US),
            text("¿Cuál es el horario?", wa_id=US),      # Spanish words from a US number: the words decide
            text("refund", wa_id=GERMANY), text("devolucion", wa_id=SPAIN))
    us = answers(app, US)
    assert us[0].startswith("We are open") and us[1].startswith("Abrimos de lunes") and len(us) == 2
    assert answers(app, GERMANY) == ["[cta_url] Start a return in two minutes on our site."]  # the default
    assert answers(app, SPAIN) == ["[cta_url] Inicia tu devolución en dos minutos en nuestra web."]


# --- the handoff plugin, in the three languages of the doc --------------------------------------------

@pytest.mark.parametrize(("config", "customer", "asks", "confirmation"), [
    (HANDOFF_ES, SPAIN, "Quiero hablar con un AGENTE, por favor", "¡Claro! Una persona del equipo"),
    (HANDOFF_PT, BRAZIL, "quero falar com o vendedor", "Certo! Um atendente"),
    (HANDOFF_EN, US, "Can I talk to someone?", None),
])
def test_the_handoff_keyword_examples(make, config, customer, asks, confirmation):
    app = shop(make, config, SPANISH)
    receive(app, text(asks, wa_id=customer), text("horario", wa_id=customer))
    said = answers(app)
    assert said == ([] if confirmation is None else [said[0]])  # the FAQ rule stays quiet meanwhile
    if confirmation:
        assert said[0].startswith(confirmation)
    state = app.conversation("+" + customer)
    minutes = config["plugins"]["handoff"]["minutes"]
    assert state.handled_by == "human" and (state.until is None) == (minutes == 0)


def test_the_keyword_confirmation_wins_over_an_faq_answer_to_the_same_message(make):
    app = shop(make, HANDOFF_ES, {"plugins": {"auto_replies": {"default_language": "es", "rules": [
        {"name": "any", "regex": ["."], "answer": {"es": {"type": "text", "body": "Respuesta automática"}}}]}}})
    receive(app, text("agente"))
    assert answers(app) == ["¡Claro! Una persona del equipo te atenderá por aquí en horario de tienda."]
    [event] = [e for e in app.events(kind="inbound_message")]
    reasons = {m.reason for d in app.event(event.id).deliveries for m in d.messages}
    assert "automatic_superseded" in reasons


def test_a_person_answering_from_the_whatsapp_business_app_takes_the_conversation_over(make):
    app = shop(make, HANDOFF_PT, SPANISH)
    echo = MessageStatus(wamid="wamid.echo.1", status="accepted", timestamp=datetime.now(UTC), recipient="+" + SPAIN,
                         sent_from="business_app", content={"type": "text", "text": {"body": "Hola, soy Marta"}})
    app.ingest([Event.of(EventKind.MESSAGE_STATUS, echo, source="whatsapp", dedupe_key="echo-1")])
    run(app)
    state = app.conversation("+" + SPAIN)
    assert state.handled_by == "human" and state.reason == "a person answered from the WhatsApp Business app"
    receive(app, text("¿horario?"))
    assert answers(app) == []  # the bot does not talk over Marta
    quiet = shop(make, {"plugins": {"handoff": {**HANDOFF_PT["plugins"]["handoff"], "app_replies": False}}})
    other = echo.model_copy(update={"wamid": "wamid.echo.2", "recipient": "+" + BRAZIL})
    quiet.ingest([Event.of(EventKind.MESSAGE_STATUS, other, source="whatsapp", dedupe_key="echo-2")])
    run(quiet)
    assert quiet.conversation("+" + BRAZIL).handled_by == "bot"


def test_the_handoff_plugin_is_off_until_enabled(make):
    app = shop(make, SPANISH)
    receive(app, text("agente"))
    assert app.conversation("+" + SPAIN).handled_by == "bot"


# --- config mistakes: one line at start ---------------------------------------------------------------

def _rule(**kw: Any) -> dict[str, Any]:
    return {"name": "r", "keywords": ["x"], "answer": {"en": {"type": "text", "body": "hi"}}, **kw}


@pytest.mark.parametrize(("rules", "said"), [
    ([_rule(regex=["(unclosed"])], "bad regular expression '(unclosed'"),
    ([_rule(answer={"en": {"type": "buttons", "body": "?", "buttons": [{"id": "nowhere", "title": "Go"}]}})],
     "'nowhere' names no rule"),
    ([_rule(), _rule()], "rule names must be unique: r"),
    ([_rule(answer={"es": {"type": "text", "body": "hola"}})], "no answer in default_language 'en'"),
    ([_rule(answer={})], "has no answer"),
    ([_rule(answer={"en": {"type": "buttons", "body": "?", "buttons": [{"id": "r", "title": "x" * 21}]}})],
     "at most 20 characters"),
    ([_rule(keywrds=["x"])], "unknown key"),
])
def test_config_mistakes_stop_the_start_with_one_line(make, rules, said):
    with pytest.raises((ConfigurationError, StartupError)) as failed:
        shop(make, {"plugins": {"auto_replies": {"rules": rules}}})
    message = str(failed.value)
    assert said in message and "\n" not in message and "plugins.auto_replies" in message


# --- the matcher: whole words, any case and accents ---------------------------------------------------

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzñ", min_size=2, max_size=8)


def _shout(word: str, accents: list[bool], upper: list[bool]) -> str:
    out = []
    for ch, accent, up in zip(word, accents, upper, strict=False):
        ch = unicodedata.normalize("NFC", ch + "\u0301") if accent and ch in "aeiou" else ch
        out.append(ch.upper() if up else ch)
    return "".join(out)


@given(before=st.lists(words, max_size=4), keyword=words, after=st.lists(words, max_size=4),
       accents=st.lists(st.booleans(), min_size=8, max_size=8), upper=st.lists(st.booleans(), min_size=8, max_size=8),
       glue=st.sampled_from([" ", ", ", "¿", "! ", " -- "]))
def test_a_keyword_matches_as_whole_words_in_any_case_and_accents_and_never_inside_a_word(
        before, keyword, after, accents, upper, glue):
    message = glue.join([*before, _shout(keyword, accents, upper), *after]) + "?"
    assert contains(words_of(message), words_of(keyword))
    glued = f"x{keyword}" if not keyword.startswith("x") else f"z{keyword}"
    assert not contains(words_of(" ".join([*before, glued])), words_of(keyword)) or keyword in before


def test_settings_validate_as_the_doc_writes_them():
    for config in (SPANISH, BRAZILIAN, AMERICAN):
        settings = AutoRepliesSettings.model_validate(config["plugins"]["auto_replies"])
        assert settings.rules and all(rule.answer for rule in settings.rules)
    assert AutomaticAnswer.faq.rank > AutomaticAnswer.keyword.rank


def _notes(app: Any, target: str) -> list[tuple[str, str]]:
    return [(n.code, n.detail) for e in app.events(limit=200) for d in app.event(e.id).deliveries
            if d.target == target for n in d.notes]


@pytest.mark.parametrize(("minutes", "said"), [(1, "1 minute"), (2, "2 minutes")])
def test_the_stale_and_cooldown_notes_agree_in_number(make, minutes, said):
    """They said "older than 1 minutes" and "less than 1 minutes ago"."""
    app = shop(make, {"plugins": {"auto_replies": {**SPANISH["plugins"]["auto_replies"], "cooldown_minutes": minutes,
                                                   "stale_after_minutes": minutes}}})
    receive(app, older(text("horario", wa_id=BRAZIL), minutes=minutes + 0.5))
    receive(app, text("horario"), text("horario, otra vez"))
    notes = _notes(app, "auto_replies")
    assert ("stale", f"rule horario: the message is older than {said}") in notes
    assert ("cooldown", f"rule horario answered this contact less than {said} ago") in notes
