"""docs/automation.md, "Opt-in by link and QR code": each configuration starts an engine as
written and signs a customer up in its language, as the prose says."""

from __future__ import annotations

import asyncio
import re
import tomllib
from pathlib import Path

from automation_support import CUSTOMER, WHATSAPP, button_reply, receive, sent_bodies, text
from connectzap import Category
from connectzap.plugins.optin import links
from connectzap.testing import FakeWhatsApp

DOC = Path(__file__).resolve().parents[1] / "docs" / "automation.md"
TOML = re.compile(r"```toml\n(.*?)```", re.S)


def section(title: str) -> str:
    return DOC.read_text(encoding="utf-8").split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def examples() -> list[dict]:
    return [tomllib.loads(block) for block in TOML.findall(section("Opt-in by link and QR code (`optin`)"))]


def consent_of(app, category: Category):
    return [r for r in app.consent_history("+" + CUSTOMER) if r.category == category]


def test_the_spanish_example_signs_up_with_its_own_confirmation(make):
    spanish, _, _ = examples()
    app = make(channel=FakeWhatsApp(), connectors=WHATSAPP, plugins=spanish["plugins"])
    _, url = asyncio.run(links.publish(app, keyword="ALTA", category=Category.MARKETING))
    assert url.startswith("https://wa.me/34600000000?text=ALTA%3A%20quiero%20recibir%20ofertas")
    receive(app, text("ALTA: quiero recibir ofertas y novedades de Tienda Sol por WhatsApp."))
    assert [r.granted for r in consent_of(app, Category.MARKETING)] == [True]
    assert [m["text"]["body"] for m in sent_bodies(app)] == [
        "¡Listo! Te avisaremos de ofertas y novedades de Tienda Sol. Para darte de baja, escribe BAJA."]


def test_the_portuguese_example_asks_first(make):
    _, portuguese, _ = examples()
    app = make(channel=FakeWhatsApp(), connectors=WHATSAPP, plugins=portuguese["plugins"])
    receive(app, text("QUERO: quero receber ofertas e novidades de Loja Praia pelo WhatsApp."))
    [ask] = sent_bodies(app)
    assert consent_of(app, Category.MARKETING) == []
    button = ask["interactive"]["action"]["buttons"][0]["reply"]
    assert button["title"] == "Sim"
    receive(app, button_reply(button["id"], "Sim"))
    assert [r.granted for r in consent_of(app, Category.MARKETING)] == [True]
    assert sent_bodies(app)[-1]["text"]["body"].startswith("Obrigado! Você receberá ofertas e novidades de Loja Praia")


def test_the_english_example_signs_up_for_order_updates(make):
    _, _, english = examples()
    app = make(channel=FakeWhatsApp(), connectors=WHATSAPP, plugins=english["plugins"])
    receive(app, text("UPDATES: please send my order updates from Corner Store on WhatsApp."))
    [record] = consent_of(app, Category.UTILITY)
    assert record.granted and "please send my order updates from Corner Store" in record.proof
    assert consent_of(app, Category.MARKETING) == []
    assert sent_bodies(app)[0]["text"]["body"].startswith(
        "Thank you! You will receive order and account updates from Corner Store")
