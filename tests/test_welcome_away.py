"""The welcome and away plugins, driven by signed WhatsApp webhooks through the WhatsApp connector
(as Meta would post them), with the engine's clock set to each message's time so nothing is stale.

Welcome: once on the first message, again after the configured silence, in the customer's
language. Away: only outside business hours (across Madrid's DST change), at most once per
customer per N hours, with the next opening written in the customer's language."""

from __future__ import annotations

import copy
import json

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from automation_support import MADRID_HOURS, chats, deliver_signed, envelope, receive, sent_bodies
from hypothesis import given
from hypothesis import strategies as st

from connectzap import ConfigurationError, load_settings
from connectzap.core import clock
from connectzap.core.business_hours import DAYS
from connectzap.plugins.away import AwaySettings, opening_words
from connectzap.plugins.welcome import WelcomeSettings
from connectzap.testing import run

SPAIN, BRAZIL, US, GERMANY = "34612345678", "5511987654321", "16505551234", "4915112345678"


@pytest.fixture
def customers(make):
    return chats(make)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- welcome ------------------------------------------------------------------------------------------

def test_a_first_message_is_welcomed_once_in_the_customers_language(customers):
    chat = customers(welcome={"enabled": True, "default_language": "en"})
    monday = utc(2026, 12, 7, 11)
    chat.write(SPAIN, monday)
    chat.write(SPAIN, monday + timedelta(minutes=5))
    chat.write(BRAZIL, monday + timedelta(minutes=6))
    chat.write(GERMANY, monday + timedelta(minutes=7))
    assert chat.answers(SPAIN) == ["¡Hola! Gracias por escribirnos. Te respondemos enseguida."]
    assert chat.answers(BRAZIL) == ["Olá! Obrigado por nos escrever. Já vamos te responder."]
    assert chat.answers(GERMANY) == ["Hi! Thanks for writing to us. We will get back to you shortly."]


def test_a_customer_silent_for_longer_than_after_silence_days_is_welcomed_again(customers):
    chat = customers(welcome={"enabled": True, "after_silence_days": 30, "texts": {"es": "¡Bienvenido!"}})
    start = utc(2026, 1, 5, 11)
    chat.write(SPAIN, start)
    chat.write(SPAIN, start + timedelta(days=10))       # 10 days of silence: known
    chat.write(SPAIN, start + timedelta(days=39))       # 29 days after the last one: still known
    chat.write(SPAIN, start + timedelta(days=70))       # 31 days: welcomed again
    assert chat.answers(SPAIN) == ["¡Bienvenido!", "¡Bienvenido!"]


def test_welcome_is_off_until_enabled_and_keeps_no_message_text(customers):
    chat = customers(welcome={"texts": {"es": "¡Hola!"}})
    chat.write(SPAIN, utc(2026, 12, 7, 11), body="mi pedido 1234")
    assert chat.answers() == []
    on = customers(welcome={"enabled": True})
    on.write(SPAIN, utc(2026, 12, 7, 11), body="mi pedido 1234")
    with on.app.db.read() as conn:
        stored = conn.exec_driver_sql("SELECT key, value FROM plugin_state WHERE plugin = 'welcome'").all()
    assert len(stored) == 1
    assert SPAIN not in str(stored) and "pedido" not in str(stored)


def test_a_replayed_webhook_is_welcomed_once(customers):
    chat = customers(welcome={"enabled": True})
    at = utc(2026, 12, 7, 11)
    chat.write(SPAIN, at, wamid="wamid.same")
    chat.write(SPAIN, at, wamid="wamid.same")
    assert len(chat.answers(SPAIN)) == 1


# --- away ---------------------------------------------------------------------------------------------

def test_away_answers_outside_hours_with_the_next_opening_and_is_silent_when_open(customers):
    chat = customers(away={"enabled": True})
    chat.write(SPAIN, utc(2026, 12, 7, 14, 30))   # Monday 15:30 in Madrid: closed until 17:00
    chat.write(BRAZIL, utc(2026, 12, 5, 12))      # Saturday
    chat.write(US, utc(2026, 12, 7, 10))          # Monday 11:00 in Madrid: open
    assert chat.answers(SPAIN) == ["¡Gracias por escribirnos! Ahora estamos cerrados. Abrimos hoy a las 17:00 y "
                                   "te responderemos entonces."]
    assert chat.answers(BRAZIL) == ["Obrigado pela mensagem! Agora estamos fechados. Abrimos na segunda-feira às "
                                    "10:00 e responderemos assim que possível."]
    assert chat.answers(US) == []


def test_away_follows_the_business_clock_across_the_dst_change(customers):
    chat = customers(away={"enabled": True, "texts": {"es": "Cerrado. Abrimos {{ next_opening }}."}})
    # 08:30 UTC on two Mondays: 09:30 CET before Madrid's change (closed), 10:30 CEST after it (open).
    chat.write(SPAIN, utc(2026, 3, 23, 8, 30))
    chat.write(BRAZIL, utc(2026, 3, 30, 8, 30))
    # Saturday night before the change: the opening is Monday 10:00 CEST, one hour earlier in UTC.
    chat.write(US, utc(2026, 3, 28, 22))
    assert chat.answers(SPAIN) == ["Cerrado. Abrimos hoy a las 10:00."]
    assert chat.answers(BRAZIL) == []
    assert chat.answers(US) == ["Thanks for your message! We are closed right now. We open on Monday at 10:00 AM "
                                "and will answer you then."]


def test_away_goes_at_most_once_per_customer_every_n_hours(customers):
    chat = customers(away={"enabled": True, "once_every_hours": 12})
    saturday = utc(2026, 12, 5, 9)
    for hours in (0, 1, 11.9, 12, 13, 30):
        chat.write(SPAIN, saturday + timedelta(hours=hours))
    chat.write(BRAZIL, saturday + timedelta(hours=1))   # another customer has their own allowance
    assert len(chat.answers(SPAIN)) == 3                 # at 0, 12 and 30 hours
    assert len(chat.answers(BRAZIL)) == 1


def test_a_holiday_is_closed_and_the_message_names_the_day_after(customers):
    chat = customers(away={"enabled": True, "default_language": "es"},
                     business_hours={**MADRID_HOURS, "holidays": ["2026-12-08"]})
    chat.write(SPAIN, utc(2026, 12, 8, 10))   # Tuesday, a holiday
    assert chat.answers(SPAIN) == ["¡Gracias por escribirnos! Ahora estamos cerrados. Abrimos mañana a las 10:00 y "
                                   "te responderemos entonces."]


# --- the next opening in words -------------------------------------------------------------------------

MADRID = ZoneInfo("Europe/Madrid")


@pytest.mark.parametrize(("opening", "language", "expected"), [
    (datetime(2026, 12, 7, 17, 0, tzinfo=MADRID), "es", "hoy a las 17:00"),
    (datetime(2026, 12, 8, 9, 30, tzinfo=MADRID), "es", "mañana a las 9:30"),
    (datetime(2026, 12, 10, 13, 0, tzinfo=MADRID), "es", "el jueves a las 13:00"),
    (datetime(2026, 12, 8, 1, 0, tzinfo=MADRID), "es", "mañana a la 1:00"),
    (datetime(2026, 12, 21, 9, 0, tzinfo=MADRID), "es", "el lunes 21 de diciembre a las 9:00"),
    (datetime(2026, 12, 7, 17, 0, tzinfo=MADRID), "pt", "hoje às 17:00"),
    (datetime(2026, 12, 12, 9, 0, tzinfo=MADRID), "pt", "no sábado às 9:00"),
    (datetime(2026, 12, 21, 9, 0, tzinfo=MADRID), "pt", "na segunda-feira, 21 de dezembro, às 9:00"),
    (datetime(2026, 12, 7, 17, 0, tzinfo=MADRID), "en", "today at 5:00 PM"),
    (datetime(2026, 12, 8, 0, 15, tzinfo=MADRID), "en", "tomorrow at 12:15 AM"),
    (datetime(2026, 12, 21, 12, 0, tzinfo=MADRID), "en", "on Monday, December 21 at 12:00 PM"),
    (datetime(2026, 12, 21, 12, 0, tzinfo=MADRID), "de", "2026-12-21 12:00"),
])
def test_the_next_opening_is_written_as_customers_say_it(opening, language, expected):
    monday_afternoon = datetime(2026, 12, 7, 15, 0, tzinfo=MADRID)
    assert opening_words(opening, monday_afternoon, language) == expected


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)), st.integers(0, 400 * 24 * 60),
       st.sampled_from(["es", "pt", "en"]))
def test_the_words_name_the_openings_day_and_time(now, minutes, language):
    opening = now + timedelta(minutes=minutes)
    words = opening_words(opening, now, language)
    days = (opening.date() - now.date()).days
    if days >= 7:
        assert str(opening.day) in words
    if language != "en":
        assert f"{opening.hour}:{opening.minute:02d}" in words
    else:
        assert f"{opening.hour % 12 or 12}:{opening.minute:02d} {'AM' if opening.hour < 12 else 'PM'}" in words


# --- configuration -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("section", "expected"), [
    ("[plugins.away]\nenabled = true\n",
     "plugins.away: enabled, but [business_hours] has no opening ranges"),
    ('[business_hours]\nmonday = ["09:00-14:00"]\n[plugins.away]\nenabled = true\n'
     '[plugins.away.texts]\nes = "Abrimos {{ nex_opening }}"\n',
     "plugins.away.texts: unknown variable 'nex_opening' (did you mean 'next_opening'?)"),
    ('[plugins.away]\nonce_every_hours = 0\n', "plugins.away.once_every_hours: Input should be greater than 0"),
    ('[plugins.welcome]\ndefault_language = "fr"\n', "plugins.welcome: default_language 'fr' has no text"),
    ('[plugins.welcome]\nafter_silence_days = -1\n', "plugins.welcome.after_silence_days"),
    ('[plugins.welcome]\nenable = true\n', "plugins.welcome.enable: unknown key (did you mean 'enabled'?)"),
])
def test_a_config_mistake_fails_at_start_with_one_line(tmp_path: Path, make, section: str, expected: str):
    config = tmp_path / "connectzap.toml"
    config.write_text(section)
    settings = load_settings(config)
    with pytest.raises(ConfigurationError) as raised:
        make(plugins=settings.plugins, business_hours=settings.business_hours.model_dump())
    message = str(raised.value)
    assert expected in message and "\n" not in message


def test_the_settings_models_are_what_the_engine_validates(make):
    app = make(plugins={"welcome": {"enabled": True}, "away": {"enabled": True}}, business_hours=MADRID_HOURS)
    assert isinstance(app.plugin_settings["welcome"], WelcomeSettings)
    assert isinstance(app.plugin_settings["away"], AwaySettings)


def test_connectzap_simulate_shows_the_away_answer_it_would_send(tmp_path: Path):
    """As a user tries it: `connectzap simulate` with the sandbox (which also logs the read receipt)."""
    from test_opt_out_keywords import config_file, cz, inbound
    closed_day = DAYS[(datetime.now(UTC).weekday() + 3) % 7]   # open three days from now only
    config = config_file(tmp_path, f'[business_hours]\n{closed_day} = ["09:00-10:00"]\n'
                                   '[plugins.away]\nenabled = true\n')
    items = tmp_path / "inbound.json"
    items.write_text(json.dumps([inbound(SPAIN, "Hola", 1)]))
    report = json.loads(cz(config, "simulate", str(items), "--json").stdout)
    (event,) = [e for e in report["events"] if e["kind"] == "inbound_message"]
    (answer,) = [m for m in event["messages"] if m["target"] == "away"]
    assert answer["request"]["body"]["text"]["body"].startswith("¡Gracias por escribirnos! Ahora estamos cerrados.")


def test_a_first_message_that_is_a_stop_keyword_gets_only_its_confirmation(customers):
    chat = customers(welcome={"enabled": True}, away={"enabled": True})
    chat.write(SPAIN, utc(2026, 12, 5, 12), body="BAJA")      # Saturday: closed, and a first message
    assert chat.answers(SPAIN) == ["Ya no recibirás nuestras ofertas. Responde ALTA para volver a suscribirte."]
    chat.write(BRAZIL, utc(2026, 12, 7, 11), body="Olá")      # Monday, open: the welcome alone
    assert chat.answers(BRAZIL) == ["Olá! Obrigado por nos escrever. Já vamos te responder."]


def test_connectzap_events_shows_why_no_away_message_went(customers):
    chat = customers(away={"enabled": True, "once_every_hours": 12})
    saturday = utc(2026, 12, 5, 9)
    chat.write(SPAIN, saturday)
    chat.write(SPAIN, saturday + timedelta(hours=2))
    (latest, *_) = chat.app.events(kind="inbound_message")
    (away,) = [d for d in chat.app.event(latest.id).deliveries if d.target == "away"]
    assert [(n.code, n.detail) for n in away.notes] == [
        ("away_recently", "an away message went 2.0 h ago (once_every_hours = 12)")]
    assert away.messages == []


def test_a_customer_known_only_by_business_scoped_user_id_is_welcomed_once(customers):
    """A WhatsApp user with a username and no visible number: welcomed through their BSUID."""
    chat = customers(welcome={"enabled": True})
    payload = json.loads((Path(__file__).parent / "payloads" / "whatsapp" / "bsuid_only.json").read_text())
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    monday = utc(2026, 12, 7, 11)
    for n in range(2):
        webhook = copy.deepcopy(payload)
        webhook["entry"][0]["changes"][0]["value"]["messages"][0].update(
            {"id": f"{message['id']}{n}", "timestamp": str(int((monday + timedelta(minutes=n)).timestamp()))})
        with clock.use_clock(lambda n=n: (monday + timedelta(minutes=n, seconds=2)).timestamp()):
            deliver_signed(chat.app, webhook)
            run(chat.app)
    welcomed = [body for body in sent_bodies(chat.app) if body.get("type") == "text"]
    assert [(body.get("recipient") or body.get("to"), body["text"]["body"]) for body in welcomed] == [
        ("US.13491208655302741918", "Hi! Thanks for writing to us. We will get back to you shortly.")]


# --- the same customer under several identifiers ----------------------------------------------------------

SAM_BSUID, SAM_NUMBER = "US.13491208655302741918", "16505551234"


def write_as(chat, at: datetime, *, phone: str | None = None, user_id: str | None = None) -> None:
    """A message from a customer shown by number, by BSUID, or both (Meta's shapes, tests/payloads/whatsapp)."""
    message: dict = {"type": "text", "text": {"body": "Hola"}, **({"from": phone} if phone else {}),
                     **({"from_user_id": user_id} if user_id else {})}
    contact: dict = {"profile": {"name": "Sam"}, **({"wa_id": phone} if phone else {}),
                     **({"user_id": user_id} if user_id else {})}
    webhook = envelope({**message, "timestamp": str(int(at.timestamp()))})
    value = webhook["entry"][0]["changes"][0]["value"]
    value["contacts"] = [contact]
    value["messages"][0] = {k: v for k, v in value["messages"][0].items() if k != "from"} | message
    with clock.use_clock(lambda: at.timestamp() + 2):
        receive(chat.app, webhook)


def welcomes(chat) -> int:
    return sum(1 for body in sent_bodies(chat.app) if body.get("type") == "text" and "Thanks for writing" in
               body["text"]["body"])


@pytest.mark.parametrize("first, then", [
    ({"user_id": SAM_BSUID}, {"phone": SAM_NUMBER, "user_id": SAM_BSUID}),      # the number shows up later
    ({"phone": SAM_NUMBER, "user_id": SAM_BSUID}, {"user_id": SAM_BSUID}),      # the number is hidden later
    ({"phone": SAM_NUMBER}, {"phone": SAM_NUMBER, "user_id": SAM_BSUID}),       # known before BSUIDs existed
], ids=["bsuid-then-number", "number-then-bsuid", "number-then-both"])
def test_a_customer_is_welcomed_once_whichever_linked_identifier_they_write_with(customers, first, then):
    chat = customers(welcome={"enabled": True, "default_language": "en"})
    monday = utc(2026, 12, 7, 11)
    write_as(chat, monday, **first)
    write_as(chat, monday + timedelta(hours=2), **then)
    write_as(chat, monday + timedelta(hours=4), **first)
    assert welcomes(chat) == 1


def test_a_customer_who_changed_number_is_not_welcomed_again(customers):
    chat = customers(welcome={"enabled": True, "default_language": "en"})
    monday = utc(2026, 12, 7, 11)
    write_as(chat, monday, phone=SAM_NUMBER, user_id=SAM_BSUID)
    notice = json.loads((Path(__file__).parent / "payloads" / "whatsapp" /
                         "system_user_changed_number_bsuid.json").read_text())
    notice["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int((monday + timedelta(hours=1))
                                                                                    .timestamp()))
    with clock.use_clock(lambda: (monday + timedelta(hours=1, seconds=2)).timestamp()):
        receive(chat.app, notice)
    write_as(chat, monday + timedelta(hours=2), phone="16505559876", user_id="US.20583746102938475610")
    assert welcomes(chat) == 1


def test_the_away_allowance_follows_the_customer_when_their_number_is_linked(customers):
    chat = customers(away={"enabled": True, "once_every_hours": 12, "default_language": "en"})
    saturday = utc(2026, 12, 5, 9)
    write_as(chat, saturday, user_id=SAM_BSUID)
    write_as(chat, saturday + timedelta(hours=1), phone=SAM_NUMBER, user_id=SAM_BSUID)
    write_as(chat, saturday + timedelta(hours=2), user_id=SAM_BSUID)
    assert len([b for b in sent_bodies(chat.app) if b.get("type") == "text"]) == 1


@pytest.mark.parametrize(("n", "hours", "days"), [(1, "1 hour", "1 day"), (2, "2 hours", "2 days")])
def test_the_console_summaries_agree_in_number(n, hours, days):
    """They said "at most once every 1 hours" and "again after 1 days of silence"."""
    assert AwaySettings(enabled=True, once_every_hours=n).console_summary()[0] == (
        "away", f"on: outside business hours, at most once every {hours}")
    assert WelcomeSettings(enabled=True, after_silence_days=n).console_summary()[0] == (
        "welcome", f"on: again after {days} of silence")


@pytest.mark.parametrize(("silent", "said"), [(1, "1 day"), (1.5, "1.5 days")])
def test_the_known_contact_note_agrees_in_number(customers, silent, said):
    """It said "(1.0 days ago, ...)"."""
    chat = customers(welcome={"enabled": True, "after_silence_days": 30})
    start = utc(2026, 1, 5, 11)
    chat.write(SPAIN, start)
    chat.write(SPAIN, start + timedelta(days=silent))
    (latest, *_) = chat.app.events(kind="inbound_message")
    (welcome,) = [d for d in chat.app.event(latest.id).deliveries if d.target == "welcome"]
    assert [(n.code, n.detail) for n in welcome.notes] == [
        ("known_contact", f"the customer wrote before ({said} ago, less than after_silence_days)")]
