"""Rendering console pages: Jinja2 templates shipped in the package, autoescaped, with headers
that keep the pages to themselves (no framing, no outside scripts, nothing cached)."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from ..core.app import Connectzap
from ..core.version import __version__
from ..core.views import utc
from ..core.wording import counted
from .sessions import Session, csrf_token

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


def at(ts: float | None) -> str:
    return when(utc(ts))


def age(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


@cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("connectzap.console", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = when
    env.filters["age"] = age
    env.filters["at"] = at
    env.globals["version"] = __version__
    env.globals["counted"] = counted  # counts in templates agree in number too
    return env


def render(request: Request, engine: Connectzap, session: Session | None, template: str, *, status: int = 200,
           **context: Any) -> HTMLResponse:
    """A page; with a session, its forms get the session's CSRF token and the header says who is in."""
    if session is not None:
        context.setdefault("csrf", csrf_token(engine, session.token))
        context.setdefault("who", session.who)
    context.setdefault("nav", None)
    html = environment().get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)
