"""docs/automation.md, "Chatbot bridge": each configuration starts an engine as written (its url
pointed at a local fake bot) and does what the prose says."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from automation_support import WHATSAPP, receive, sent_bodies, text
from connectzap.testing import FakeBot, FakeWhatsApp

DOC = Path(__file__).resolve().parents[1] / "docs" / "automation.md"


def examples() -> list[dict]:
    section = DOC.read_text(encoding="utf-8").split("\n## Chatbot bridge (`chatbot`)\n", 1)[1].split("\n## ", 1)[0]
    return [tomllib.loads(block)["plugins"]["chatbot"] for block in re.findall(r"```toml\n(.*?)```", section, re.S)]


def engine(make, section: dict, bot: FakeBot, name: str):
    return make(name, channel=FakeWhatsApp(), connectors=WHATSAPP, plugins={"chatbot": {**section, "url": bot.url}})


def test_each_example_forwards_and_falls_back_in_its_language(make):
    spanish, portuguese, english = examples()
    with FakeBot() as bot:
        bot.fail(500)
        for name, section, expected in (("es", spanish, "Ahora mismo no puedo responderte"),
                                        ("pt", portuguese, "Não consegui responder agora"),
                                        ("en", english, "Sorry, our assistant is not available")):
            app = engine(make, section, bot, name)
            receive(app, text("hola"))
            [answer] = sent_bodies(app)
            assert answer["text"]["body"].startswith(expected)
        assert len(bot.requests) == 3
    assert spanish["hand_to_human_on_failure"] is True and app.conversation("+34612345678").handled_by == "bot"


def test_the_english_example_allows_two_messages(make):
    *_, english = examples()
    with FakeBot() as bot:
        bot.answer({"type": "text", "body": "Hi!"}, {"type": "text", "body": "How can I help?"})
        app = engine(make, english, bot, "two")
        receive(app, text("hello"))
        assert sorted(m["text"]["body"] for m in sent_bodies(app)) == ["Hi!", "How can I help?"]
        bot.answer(*[{"type": "text", "body": str(n)} for n in range(3)])
        receive(app, text("more"))
        assert sent_bodies(app)[-1]["text"]["body"] == english["fallback_text"]
