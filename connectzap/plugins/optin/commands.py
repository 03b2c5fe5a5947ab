"""``connectzap optin link``: print an opt-in link and write its QR code."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from connectzap import Category
from connectzap.cli.output import emit, json_option

from . import links


@click.group("optin")
def optin_group() -> None:
    """Links and QR codes that sign customers up on WhatsApp."""


@optin_group.command("link")
@click.option("--category", type=click.Choice([c.value for c in Category]), default=Category.MARKETING.value,
              show_default=True, help="What the customer signs up for.")
@click.option("--keyword", required=True, help="The word the message starts with, e.g. ALTA.")
@click.option("--text", help="The whole prefilled message (it must start with the keyword). Default: the "
                             "built-in wording of --language, naming business_name.")
@click.option("--language", help="Language of the wording and the answers (default: [plugins.optin] language).")
@click.option("--number", "phone_number_id", help="phone_number_id of the business number (default: the main one).")
@click.option("--png", type=click.Path(dir_okay=False, writable=True, path_type=Path), help="Write the QR code here.")
@click.option("--svg", type=click.Path(dir_okay=False, writable=True, path_type=Path), help="Write the QR code here.")
@json_option
@click.pass_obj
def optin_link(obj: Any, category: str, keyword: str, text: str | None, language: str | None,
               phone_number_id: str | None, png: Path | None, svg: Path | None, as_json: bool) -> None:
    """Print a wa.me link whose message signs the customer up, and write its QR code (PNG, SVG).
    The link is remembered: every worker recognises its keyword from now on."""
    app = obj.app()
    link, url = asyncio.run(links.publish(app, keyword=keyword, category=Category(category), text=text,
                                          language=language, phone_number_id=phone_number_id))
    if png is not None:
        png.write_bytes(links.qr_png(url))
    if svg is not None:
        svg.write_bytes(links.qr_svg(url))
    emit({"url": url, "keyword": link.keyword, "category": link.category.value, "language": link.language,
          "text": link.text, "png": str(png) if png else None, "svg": str(svg) if svg else None}, as_json)
