"""STOP/START by keyword: Spanish, Portuguese and English words matched whole, in any case, with or
without accents; the confirmation in the customer's language (the word's own, else the number's
country's), its wording and the categories set in config. Run as a user tries it: `connectzap
simulate` shows the reply WhatsApp would get, `simulate --live` records the consent."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectzap.plugins.opt_out_keywords import (
    REPLIES,
    START_WORDS,
    STOP_WORDS,
    KeywordSettings,
    normalise,
    settings_of,
)

CONNECTZAP = Path(sys.executable).with_name("connectzap")
PAYLOAD = json.loads((Path(__file__).parent / "payloads" / "whatsapp" / "text.json").read_text())
DEFAULTS = KeywordSettings()


def inbound(wa_id: str, text: str, n: int) -> dict[str, Any]:
    """A WhatsApp webhook item for `simulate`: customer ``wa_id`` wrote ``text`` just now."""
    body = copy.deepcopy(PAYLOAD)
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = wa_id
    value["messages"][0].update({"from": wa_id, "id": f"wamid.keyword{n}", "timestamp": str(int(time.time())),
                                 "text": {"body": text}})
    return {"webhook": "/webhooks/whatsapp", "body": body}


def config_file(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "connectzap.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nquiet = true\n{extra}')
    return config


def cz(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(CONNECTZAP), "--config", str(config), *args], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done


def replies_of(config: Path, tmp_path: Path, said: list[tuple[str, str]]) -> list[str | None]:
    """What `connectzap simulate` says the plugin would answer to each (wa_id, text)."""
    items = tmp_path / "inbound.json"
    items.write_text(json.dumps([inbound(wa_id, text, n) for n, (wa_id, text) in enumerate(said)]))
    report = json.loads(cz(config, "simulate", str(items), "--json").stdout)
    answers: list[str | None] = []
    for event in report["events"]:
        if event["kind"] != "inbound_message":
            continue
        bodies = [m["request"]["body"]["text"]["body"] for m in event["messages"] if m["target"] == "opt_out_keywords"]
        answers.append(bodies[0] if bodies else None)
    return answers


def test_the_reply_is_in_the_customers_language(tmp_path: Path):
    said = [
        ("34612345678", "Baja"),         # Spanish word, Spanish number
        ("16505551234", "BAJA"),         # Spanish word from a US number: the word decides
        ("5511987654321", "Sair"),       # Portuguese word, Brazilian number
        ("5511987654322", "STOP"),       # a word of many languages: the number's country decides
        ("34612345679", "cancelar"),     # Spanish and Portuguese: the country decides...
        ("351912345678", "Cancelar."),   # ...both ways
        ("4915112345678", "stop"),       # a country without a built-in reply: the default language
        ("34612345670", "¡ALTA!"),       # START in Spanish
        ("351912345679", "voltar"),      # START in Portuguese
        ("16505551235", "Start"),        # START in English
        ("34612345671", "baja por favor"),  # not the whole message: no keyword
        ("34612345672", "Dónde está mi pedido?"),
    ]
    assert replies_of(config_file(tmp_path), tmp_path, said) == [
        REPLIES["es"]["stop"], REPLIES["es"]["stop"], REPLIES["pt"]["stop"], REPLIES["pt"]["stop"],
        REPLIES["es"]["stop"], REPLIES["pt"]["stop"], REPLIES["en"]["stop"],
        REPLIES["es"]["start"], REPLIES["pt"]["start"], REPLIES["en"]["start"], None, None]


def test_wording_languages_and_categories_come_from_config(tmp_path: Path):
    config = config_file(tmp_path, """
[plugins.opt_out_keywords]
categories = ["marketing", "utility"]
default_language = "de"
stop = ["stop", "baja", "abmelden"]
start = ["start", "alta"]
[plugins.opt_out_keywords.replies.es]
stop = "Hecho: no más mensajes de la tienda. Escribe ALTA si cambias de idea."
[plugins.opt_out_keywords.replies.de]
stop = "Erledigt: keine Angebote mehr. Antworten Sie START, um sie wieder zu erhalten."
start = "Willkommen zurück bei unseren Angeboten."
[plugins.opt_out_keywords.countries]
CH = "de"
""")
    said = [("34612345678", "baja"), ("34612345679", "alta"), ("41791234567", "stop"),
            ("4915112345678", "abmelden"), ("5511987654321", "sair")]
    assert replies_of(config, tmp_path, said) == [
        "Hecho: no más mensajes de la tienda. Escribe ALTA si cambias de idea.",
        REPLIES["es"]["start"],  # a text the config leaves out keeps the built-in one
        "Erledigt: keine Angebote mehr. Antworten Sie START, um sie wieder zu erhalten.",  # CH -> de
        "Erledigt: keine Angebote mehr. Antworten Sie START, um sie wieder zu erhalten.",
        None,  # `stop` replaced the built-in words: SAIR is not one of them any more
    ]
    # For real: the STOP revokes exactly the configured categories, with the message as proof.
    items = tmp_path / "one.json"
    items.write_text(json.dumps([inbound("34612345678", "BAJA", 99)]))
    cz(config, "simulate", "--live", "--yes", str(items))
    shown = json.loads(cz(config, "consent", "show", "+34612345678", "--json").stdout)
    assert sorted((r["category"], r["granted"], r["source"]) for r in shown) == [
        ("marketing", False, "whatsapp:keyword"), ("utility", False, "whatsapp:keyword")]
    assert "customer wrote 'baja'" in shown[0]["proof"]


def test_the_deprecated_single_wording_still_answers_everyone(tmp_path: Path):
    config = config_file(tmp_path, '[plugins.opt_out_keywords]\nstop_reply = "Unsubscribed."\n')
    assert replies_of(config, tmp_path, [("34612345678", "baja"), ("16505551234", "stop"),
                                         ("34612345679", "alta")]) == [
        "Unsubscribed.", "Unsubscribed.", REPLIES["es"]["start"]]


@pytest.mark.parametrize(("section", "named"), [
    ({"replys": {"es": {"stop": "x"}}}, "replys"),
    ({"replies": {"es": {"stopp": "x"}}}, "replies.es.stopp"),
    ({"categories": ["promotions"]}, "categories.0"),
    ({"stop": ["stop"], "start": ["Stop!"]}, "stop"),
    ({"default_language": "it"}, "default_language 'it' has no reply texts"),
    ({"countries": {"Switzerland": "de"}}, "countries"),
])
def test_a_wrong_section_names_the_key(section: dict[str, Any], named: str):
    class Ctx:  # built by hand: no engine validated the section (one does at start-up: test_plugin_settings_cli)
        config = section
        plugin_settings = None
    with pytest.raises(ValueError, match="plugins.opt_out_keywords") as raised:
        settings_of(Ctx())  # type: ignore[arg-type]
    assert named in str(raised.value)


# --- matching -------------------------------------------------------------------------------------

ACCENTS = {"a": "áàãâ", "e": "éê", "i": "í", "o": "óõô", "u": "úü", "c": "ç", "n": "ñ"}


@st.composite
def written(draw: st.DrawFn, word: str) -> str:
    """``word`` as a customer might type it: any case, accents added or not, punctuation around."""
    out = []
    for ch in word:
        ch = draw(st.sampled_from([ch, *ACCENTS.get(ch, "")]))
        out.append(ch.upper() if draw(st.booleans()) else ch)
    before = draw(st.sampled_from(["", " ", "¡", "¿", "  "]))
    after = draw(st.sampled_from(["", ".", "!", "!!", " ", "?"]))
    return before + "".join(out) + after


ALL_STOP = sorted({w for words in STOP_WORDS.values() for w in words})
ALL_START = sorted({w for words in START_WORDS.values() for w in words})


@given(data=st.data(), which=st.sampled_from(["stop", "start"]))
def test_every_default_keyword_matches_however_it_is_written(data: st.DataObject, which: str):
    word = data.draw(st.sampled_from(ALL_STOP if which == "stop" else ALL_START))
    said = normalise(data.draw(written(word)))
    assert said in (DEFAULTS.stop if which == "stop" else DEFAULTS.start)
    assert said not in (DEFAULTS.start if which == "stop" else DEFAULTS.stop)


@given(data=st.data(), extra=st.sampled_from(["please", "por favor", "amanhã", "de novo", "2"]))
def test_a_keyword_inside_a_longer_message_is_not_one(data: st.DataObject, extra: str):
    word = data.draw(st.sampled_from(ALL_STOP + ALL_START))
    said = normalise(f"{data.draw(written(word))} {extra}")
    assert said not in DEFAULTS.stop and said not in DEFAULTS.start


def test_the_defaults_cover_spanish_and_portuguese():
    for word in ("BAJA", "PARAR", "CANCELAR", "SAIR", "PARE", "STOP", "Stop promotions", "arrêt", "STOPP"):
        assert normalise(word) in DEFAULTS.stop, word
    for word in ("ALTA", "VOLVER", "VOLTAR", "START"):
        assert normalise(word) in DEFAULTS.start, word
    assert normalise("STOP_PROMOTIONS") in DEFAULTS.stop  # a quick-reply button's payload


def test_the_documented_configuration_is_valid():
    import re
    import tomllib
    doc = (Path(__file__).resolve().parents[1] / "docs" / "consent.md").read_text()
    [block] = [b for b in re.findall(r"```toml\n(.*?)```", doc, re.DOTALL) if "opt_out_keywords" in b]
    section = tomllib.loads(block)["plugins"]["opt_out_keywords"]
    settings = KeywordSettings.model_validate(section)
    assert settings.reply("stop", "de").startswith("Sie erhalten keine Angebote")
    assert settings.reply("start", "pt") == REPLIES["pt"]["start"]  # left out: the built-in text
    assert settings.choose_language("stop", "stop", "+41791234567") == "de"


def test_the_confirmation_goes_from_the_number_the_customer_wrote_to(make: Any) -> None:
    """A business with several numbers behind one webhook: the reply leaves from the number the
    customer wrote to, not the default one (the customer would get it from a stranger's number)."""
    from sqlalchemy import select

    from connectzap import Contact, Event, InboundMessage
    from connectzap.core.store.schema import outbox
    from connectzap.testing import run

    app = make()
    for n, number in enumerate(("second-number-1111", "third-number-2222")):
        stop = InboundMessage(wamid=f"wamid.stop{n}", type="text", timestamp=datetime.now(UTC),
                              contact=Contact(phone=f"+3461234567{n}"), business_phone_number_id=number, text="BAJA")
        app.ingest([Event.of("inbound_message", stop, source="whatsapp", dedupe_key=stop.wamid)])
    run(app)
    with app.db.read() as conn:
        sent = conn.execute(select(outbox.c.idempotency_key, outbox.c.business_phone_number_id, outbox.c.status)).all()
    by_key = {row.idempotency_key.rsplit(":", 2)[-2]: row for row in sent}
    assert {key: row.business_phone_number_id for key, row in by_key.items()} == {
        "wamid.stop0": "second-number-1111", "wamid.stop1": "third-number-2222"}
    assert {row.status for row in sent} <= {"accepted", "sent", "delivered"}  # inside that number's window
