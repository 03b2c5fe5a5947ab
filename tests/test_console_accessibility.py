"""What issue #19 asks of the console beyond its routes, checked without a browser:

- accessible: every form control on every page has a label; every text colour of the stylesheet
  meets WCAG 2.2 AA contrast (4.5:1) on every background it can sit on, and the focus outline 3:1;
  every kind of control the pages use shows where the keyboard focus is; each page starts with a
  skip link to its content;
- the same engine methods as the REST API and the CLI: the console holds no SQL of its own;
- screenshots of each page in docs/console.md, taken by the browser tests.

The browser tests (tests/test_console_browser.py) check labels and width again in Chromium, and that
the keyboard's first stop is the skip link."""

from __future__ import annotations

import ast
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from console_support import ANA, csrf_of, log_in, unknown_message
from test_console_routes import console, shop  # noqa: F401  (the story's shop, as a fixture)

import connectzap.console

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = Path(connectzap.console.__file__).parent
CSS = (CONSOLE / "static" / "console.css").read_text()


# --- labels, on every page ---------------------------------------------------------------------------------------

class Controls(HTMLParser):
    """The form controls of a page that need a name, and what names them: a ``<label for>``, a
    ``<label>`` around it, ``aria-label`` or ``aria-labelledby``."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.open_labels = 0
        self.skip_first = None  # the first link's target, and whether it came before anything else focusable

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "label":
            self.open_labels += 1
            if a.get("for"):
                self.label_for.add(a["for"] or "")
        if tag == "a" and self.skip_first is None:
            self.skip_first = a.get("href")
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit", "button"):
            self.controls.append({**a, "tag": tag, "wrapped": "yes" if self.open_labels else None})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.open_labels = max(0, self.open_labels - 1)

    def unlabelled(self) -> list[str]:
        return [f"{c['tag']} {c.get('name') or c.get('id')}" for c in self.controls
                if not (c["wrapped"] or c.get("aria-label") or c.get("aria-labelledby")
                        or (c.get("id") and c["id"] in self.label_for))]


def parsed(page: str) -> Controls:
    found = Controls()
    found.feed(page)
    return found


def test_the_label_check_can_fail():
    assert parsed('<label for="a">A</label><input id="a"><input name="b"><select name="c"></select>'
                  ).unlabelled() == ["input b", "select c"]
    assert parsed('<label>A <input name="a"></label><input name="b" aria-label="B">'
                  '<input type="hidden" name="csrf">').unlabelled() == []


async def test_every_control_on_every_page_has_a_label_and_each_page_a_skip_link(shop):  # noqa: F811
    app, ids = shop
    mid = unknown_message(app)
    refused = app.messages(status="refused")[0]["id"]
    async with console(app) as client:
        login = (await client.get("/console/login")).text
        await log_in(client)
        page = (await client.get("/console/campaigns")).text
        made = await client.post("/console/campaigns", data={"csrf": csrf_of(page), "name": "winter",
                                                             "template": "order_confirmation|en"},
                                 files={"audience": ("list.csv", f"phone,1,2\n{ANA},Ana,7\n".encode())})
        campaign = made.headers["location"].split("?")[0]
        paths = ["/console", "/console/messages", f"/console/messages/{refused}", f"/console/messages/{mid}",
                 "/console/messages/unknown", "/console/events", f"/console/events/{ids['dead']}", "/console/dead",
                 "/console/contacts", f"/console/contacts?contact={app.contact_key(ANA)}&masked=x",
                 "/console/templates", "/console/connectors", "/console/automation", "/console/campaigns",
                 campaign, f"{campaign}/preview", "/console/messages/m0000"]
        pages = {"/console/login": login}
        for path in paths:
            answer = await client.get(path)
            assert answer.status_code in (200, 404), path
            pages[path] = answer.text
    assert len(pages) == len(paths) + 1
    for path, text in pages.items():
        found = parsed(text)
        assert found.unlabelled() == [], path
        assert found.skip_first == "#main" and 'id="main"' in text, path  # the first link: to the content


# --- contrast of the stylesheet's colours ------------------------------------------------------------------------

def relative_luminance(colour: str) -> float:
    """WCAG 2.2's relative luminance of an sRGB colour ``#rgb`` or ``#rrggbb``."""
    hexa = colour.lstrip("#")
    if len(hexa) == 3:
        hexa = "".join(c * 2 for c in hexa)
    channels = [int(hexa[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(one: str, other: str) -> float:
    light, dark = sorted((relative_luminance(one), relative_luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_contrast_ratio_is_wcags():
    assert contrast("#000", "#fff") == pytest.approx(21)
    assert contrast("#fff", "#fff") == pytest.approx(1)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # just under AA
    assert contrast("#767676", "#fff") == pytest.approx(4.54, abs=0.01)  # the classic lightest AA grey


def rules(css: str) -> list[tuple[str, dict[str, str]]]:
    """The stylesheet's rules, ``var()`` resolved: (selector, {property: value})."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    found = [(sel.strip(), {k.strip(): v.strip() for k, _, v in (d.partition(":") for d in body.split(";"))
                            if v.strip()})
             for sel, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css)]
    variables = {k: v for sel, props in found if sel == ":root" for k, v in props.items() if k.startswith("--")}
    return [(sel, {k: re.sub(r"var\((--[\w-]+)\)", lambda m: variables[m.group(1)], v) for k, v in props.items()})
            for sel, props in found if sel != ":root"]


COLOUR = re.compile(r"#[0-9a-fA-F]{6}\b|#[0-9a-fA-F]{3}\b")


def colour(value: str | None) -> str | None:
    found = COLOUR.search(value or "")
    return found.group(0) if found else None


def text_pairs(css: str) -> set[tuple[str, str, str]]:
    """(foreground, background, where) for every text colour on every background it can sit on. A
    rule naming both a colour and a background (a button, a step of the timeline) is that pair; a
    colour named alone may sit on the page or on any background named alone (a notice, a preview)."""
    parsed_rules = rules(css)
    body = dict(parsed_rules)["body"]
    page_ink, page_bg = colour(body["color"]), colour(body["background"])
    assert page_ink and page_bg
    free_fg, free_bg, bound = {page_ink: "body"}, {page_bg: "body"}, set()
    for selector, props in parsed_rules:
        fg, bg = colour(props.get("color")), colour(props.get("background") or props.get("background-color"))
        if fg and bg:
            bound.add((fg, bg, selector))
        elif fg:
            free_fg.setdefault(fg, selector)
        elif bg:
            free_bg.setdefault(bg, selector)
    return bound | {(fg, bg, f"{where} on {on}") for fg, where in free_fg.items() for bg, on in free_bg.items()}


def test_every_text_colour_meets_aa_contrast_on_every_background_it_can_sit_on():
    pairs = text_pairs(CSS)
    assert len(pairs) > 20  # the stylesheet's colours were found
    low = sorted((round(contrast(fg, bg), 2), fg, bg, where) for fg, bg, where in pairs if contrast(fg, bg) < 4.5)
    assert low == []


def test_the_contrast_check_can_fail():
    weak = ":root { --ink: #111; }\nbody { color: var(--ink); background: #fff; }\n.hint { color: #999; }\n" \
           ".note { background: #333; }\nbutton { color: #fff; background: #8fbc8f; }\n"
    failing = {(fg, bg) for fg, bg, _ in text_pairs(weak) if contrast(fg, bg) < 4.5}
    assert failing == {("#999", "#fff"), ("#111", "#333"), ("#999", "#333"), ("#fff", "#8fbc8f")}


def test_the_focus_outline_is_visible_on_every_kind_of_control_the_pages_use():
    used = {tag for page in (CONSOLE / "templates").glob("*.html")
            for tag in re.findall(r"<(a|button|input|select|textarea|summary)\b", page.read_text())}
    assert {"a", "button", "input", "select", "textarea"} <= used
    outlined: set[str] = set()
    for selector, props in rules(CSS):
        if ":focus" in selector and colour(props.get("outline")):
            assert contrast(colour(props["outline"]) or "", "#ffffff") >= 3, selector  # WCAG 1.4.11
            outlined |= {part.split(":")[0].strip() for part in selector.split(",")}
    assert used <= outlined
    skip = {sel: props for sel, props in rules(CSS) if sel.startswith(".skip")}
    assert "-9999px" in skip[".skip"]["left"] and skip[".skip:focus"]["left"] != skip[".skip"]["left"]


# --- no SQL of its own ---------------------------------------------------------------------------------------------

def test_the_console_holds_no_sql_of_its_own():
    """Everything it reads or changes goes through the engine (``Connectzap``) and the core's modules
    the CLI and REST API use: it imports no database library and no store module, and reaches no
    connection (``.db``)."""
    for module in CONSOLE.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            else:
                names = []
            for name in names:
                assert not re.search(r"(^|\.)(sqlalchemy|sqlite3|psycopg\w*)\b|\bstore\b", name), (module.name, name)
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("db", "execute", "begin", "read"), (module.name, node.lineno, node.attr)


# --- screenshots ---------------------------------------------------------------------------------------------------

PAGES = {  # each page template, and the screenshot of it in docs/console.md
    "overview.html": "overview", "messages.html": "messages", "message.html": "message",
    "unknown.html": "unknown", "events.html": "events", "event.html": "event", "dead.html": "dead-letters",
    "contacts.html": "contacts", "templates.html": "templates", "campaigns.html": "campaigns",
    "campaign.html": "campaign", "campaign_preview.html": "campaign-preview", "connectors.html": "connectors",
    "automation.html": "automation", "login.html": "login",
}
NOT_SHOWN = {"missing.html": "a 404 page: one sentence", "refused.html": "a 403 page: one sentence"}


def test_each_page_has_a_screenshot_in_the_docs_taken_by_the_browser_tests():
    templates = {p.name for p in (CONSOLE / "templates").glob("*.html") if '{% extends "base.html" %}' in p.read_text()}
    assert templates == set(PAGES) | set(NOT_SHOWN)
    docs = (ROOT / "docs" / "console.md").read_text()
    shown = set(re.findall(r"!\[[^\]]*\]\(console/([\w-]+)\.png\)", docs))
    taken = set(re.findall(r'\bshot\(page, "([\w-]+)"\)', (ROOT / "tests" / "test_console_browser.py").read_text()))
    assert set(PAGES.values()) <= shown
    assert shown <= taken  # every screenshot in the docs is one the browser tests take
    files = {p.stem for p in (ROOT / "docs" / "console").glob("*.png")}
    assert shown <= files and files <= taken  # none missing, none left from a page no test visits
