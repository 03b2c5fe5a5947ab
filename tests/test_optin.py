"""Opt-in by link and QR code (issue 17, item 5): the link and its QR code from the CLI and the
REST API, the keyword recorded as consent with the link's wording as proof and confirmed once,
double opt-in recorded only on the Yes tap, and STOP/START keywords agreeing with the links."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from automation_support import CUSTOMER, WHATSAPP, again, button_reply, receive, sent_bodies, text
from connectzap import Category, ConfigurationError, StartupError, leading_keyword, normalise_keyword
from connectzap.plugins.optin import links
from connectzap.testing import FakeWhatsApp

CONNECTZAP = Path(sys.executable).with_name("connectzap")
SHOP = {"business_name": "Tienda Sol", "number": "+34 600 000 000", "language": "es"}


def cz(config: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(CONNECTZAP), "--config", str(config), *args], capture_output=True, text=True,
                          timeout=300, check=False)
    assert (done.returncode == 0) == ok, done.stderr
    return done


def config_file(tmp_path: Path, body: str) -> Path:
    config = tmp_path / "connectzap.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nquiet = true\n{body}')
    return config


def prefilled(url: str) -> str:
    return parse_qs(urlsplit(url).query)["text"][0]


# --- the link and its QR code ----------------------------------------------------------------------

def test_cli_prints_the_link_and_writes_its_qr_code(tmp_path):
    config = config_file(tmp_path, '[plugins.optin]\nbusiness_name = "Tienda Sol"\nnumber = "+34 600 000 000"\n'
                                   'language = "es"\n')
    png, svg = tmp_path / "alta.png", tmp_path / "alta.svg"
    shown = json.loads(cz(config, "optin", "link", "--category", "marketing", "--keyword", "ALTA",
                          "--png", str(png), "--svg", str(svg), "--json").stdout)
    assert shown["url"].startswith("https://wa.me/34600000000?text=")
    assert prefilled(shown["url"]) == shown["text"] == \
        "ALTA: quiero recibir ofertas y novedades de Tienda Sol por WhatsApp."
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    # the QR code holds the printed link, nothing else
    assert svg.read_bytes() == links.qr_svg(shown["url"])
    custom = json.loads(cz(config, "optin", "link", "--category", "utility", "--keyword", "avisos",
                           "--text", "AVISOS de mis pedidos, por favor", "--json").stdout)
    assert prefilled(custom["url"]) == "AVISOS de mis pedidos, por favor" and custom["category"] == "utility"


def test_cli_refuses_in_one_line(tmp_path):
    no_number = config_file(tmp_path, '[plugins.optin]\nbusiness_name = "Tienda Sol"\n')
    failed = cz(no_number, "optin", "link", "--keyword", "ALTA", ok=False)
    assert "set number in [plugins.optin]" in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    config = config_file(tmp_path, '[plugins.optin]\nbusiness_name = "Tienda Sol"\nnumber = "+34600000000"\n')
    cz(config, "optin", "link", "--keyword", "ALTA")
    taken = cz(config, "optin", "link", "--keyword", "alta", "--category", "utility", ok=False)
    assert "already signs up for marketing" in taken.stderr
    wrong_start = cz(config, "optin", "link", "--keyword", "ALTA", "--text", "Quiero ALTA", ok=False)
    assert "must start with the keyword" in wrong_start.stderr


async def test_the_rest_api_serves_the_qr_code_behind_the_api_key(make):
    from server_support import AUTH, serving
    app = make(api={"keys": ["test-key-0123456789abcdef"]}, plugins={"optin": SHOP})
    async with serving(app) as client:
        query = {"keyword": "ALTA", "category": "marketing"}
        assert (await client.get("/v1/optin/qr", params=query)).status_code == 401
        svg = await client.get("/v1/optin/qr", params=query, headers=AUTH)
        png = await client.get("/v1/optin/qr", params={**query, "format": "png"}, headers=AUTH)
        clash = await client.get("/v1/optin/qr", params={**query, "category": "utility"}, headers=AUTH)
        typo = await client.get("/v1/optin/qr", params={**query, "keywrd": "x"}, headers=AUTH)
    url = svg.headers["x-optin-link"]
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert svg.content == links.qr_svg(url) and prefilled(url).startswith("ALTA: quiero recibir")
    assert png.status_code == 200 and png.content == links.qr_png(url)
    assert clash.status_code == 409 and typo.status_code == 422
    # the link made through the API is the one the keyword handler knows
    assert "alta" in app.plugin_state("optin").get(links.STATE_KEY)


def test_the_number_comes_from_the_cloud_api_when_not_configured(make):
    from connectzap.testing.fake_graph import FakeGraph
    with FakeGraph() as graph:
        app = make(connectors={"whatsapp": {"access_token": "test-token", "phone_number_id": "106540352242922",
                                            "app_secrets": ["s"], "verify_token": "v",
                                            "api_base_url": graph.url}},
                   plugins={"optin": {"business_name": "Tienda Sol"}})
        import asyncio
        _, url = asyncio.run(links.publish(app, keyword="ALTA", category=Category.MARKETING))
    assert url.startswith("https://wa.me/15550783881?text=ALTA")


@pytest.mark.parametrize("section, problem", [
    ({"replies": {"es": {"confirmed": "Hola {nombre}"}}}, "unknown placeholder {nombre}"),
    ({"links": [{"keyword": "ALTA"}]}, "links need business_name"),
    ({"language": "de"}, "no 'confirmed' text for language 'de'"),
    ({"number": "12"}, "plugins.optin.number"),
    ({"replies": {"pt": {"button": "Sim, quero receber tudo"}}}, "plugins.optin.replies.pt.button"),
])
def test_config_mistakes_stop_the_start_in_one_line(make, section, problem):
    with pytest.raises((ConfigurationError, StartupError)) as raised:
        make(plugins={"optin": section})
    assert problem in str(raised.value) and "\n" not in str(raised.value)


@given(st.text(min_size=1, max_size=300))
def test_the_link_carries_the_text_exactly(wording):
    assert prefilled(links.wa_me("+34600000000", wording)) == wording


@given(keyword=st.from_regex(r"[A-Za-zÁÉÍÓÚáéíóúÑñ]{2,12}", fullmatch=True), rest=st.text(max_size=80))
@example(keyword="AA", rest="\x1f")   # a control separator str.split treats as a space
def test_a_message_starting_with_the_keyword_is_recognised(keyword, rest):
    key = normalise_keyword(keyword)
    assert leading_keyword(f"{keyword}: {rest}", {key}) == key
    # ...and one that merely contains it later is not
    assert leading_keyword(f"hola {keyword}", {key}) in (None, "hola") or normalise_keyword("hola") == key


# --- the keyword, answered through the testing kit ---------------------------------------------------

def optin_app(make, **section):
    app = make(channel=FakeWhatsApp(), connectors=WHATSAPP, plugins={"optin": {**SHOP, **section}})
    import asyncio
    asyncio.run(links.publish(app, keyword="ALTA", category=Category.MARKETING))
    return app


def history(app) -> list:
    return [r for r in app.consent_history("+" + CUSTOMER) if r.category == Category.MARKETING]


def test_the_keyword_records_consent_with_the_wording_and_confirms_once(make):
    app = optin_app(make)
    first = text("ALTA: quiero recibir ofertas y novedades de Tienda Sol por WhatsApp.")
    receive(app, first, again(first))           # Meta delivered it twice
    receive(app, text("alta"))                  # the customer sent it again
    records = history(app)
    assert len(records) == 1 and records[0].granted and records[0].source == "whatsapp:keyword"
    assert "'ALTA: quiero recibir ofertas y novedades de Tienda Sol por WhatsApp.'" in records[0].proof
    sent = sent_bodies(app)
    assert [m["text"]["body"] for m in sent] == [
        "¡Gracias! Recibirás ofertas y novedades de Tienda Sol por WhatsApp. Responde BAJA para darte de baja."]
    assert sent[0]["context"]["message_id"]


def test_other_messages_are_left_alone(make):
    app = optin_app(make)
    receive(app, text("hola, ¿tenéis tallas grandes?"), text("quiero el ALTA"))
    assert history(app) == [] and sent_bodies(app) == []


def test_double_opt_in_records_only_on_the_yes_tap(make):
    app = optin_app(make, double_opt_in=True)
    receive(app, text("ALTA: quiero recibir ofertas y novedades de Tienda Sol por WhatsApp."))
    assert history(app) == []
    [ask] = sent_bodies(app)
    button = ask["interactive"]["action"]["buttons"][0]["reply"]
    assert button["title"] == "Sí" and ask["interactive"]["body"]["text"].startswith("¿Quieres recibir")
    tap = button_reply(button["id"], button["title"])
    receive(app, tap, again(tap), button_reply(button["id"], button["title"]))
    [record] = history(app)
    assert record.granted and "tapped the Yes button" in record.proof and "Tienda Sol" in record.proof
    assert len(sent_bodies(app)) == 2 and sent_bodies(app)[1]["text"]["body"].startswith("¡Gracias!")


def test_start_keywords_and_links_agree(make):
    # ALTA is a built-in START word too: with a link on it, one record and one confirmation
    app = optin_app(make)
    receive(app, text("ALTA"))
    assert len(history(app)) == 1 and len(sent_bodies(app)) == 1
    # without a link, START keeps working as before
    plain = make("plain", channel=FakeWhatsApp(), connectors=WHATSAPP, plugins={"optin": SHOP})
    receive(plain, text("ALTA"))
    [record] = history(plain)
    assert record.granted and "customer wrote 'alta'" in record.proof
    assert len(sent_bodies(plain)) == 1 and "BAJA" in sent_bodies(plain)[0]["text"]["body"]
