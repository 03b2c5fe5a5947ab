"""Who is logged in: a random token in an HttpOnly, SameSite=Strict cookie, kept in the store as
its SHA-256 (:mod:`connectzap.core.operators`), so every edge process knows the session and
logging out ends it everywhere. Each form carries a CSRF token derived from the session token and
the hash key; the login form, before any session, carries one bound to a cookie of its own."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response

from ..core.app import Connectzap

COOKIE = "connectzap_console"
LOGIN_COOKIE = "connectzap_console_login"
PATH = "/console"


@dataclass(frozen=True)
class Session:
    actor: str
    """``user:NAME`` or ``api key``."""
    token: str

    @property
    def who(self) -> str:
        return self.actor.removeprefix("user:")


def csrf_token(engine: Connectzap, bound_to: str) -> str:
    """The token a form must send back: a keyed hash of the session (or login) cookie's value."""
    return hmac.new(engine.secret, b"console-csrf:" + bound_to.encode(), hashlib.sha256).hexdigest()


def csrf_ok(engine: Connectzap, bound_to: str | None, given: str | None) -> bool:
    if not bound_to or not given:
        return False
    return hmac.compare_digest(csrf_token(engine, bound_to), given)


def current(request: Request, engine: Connectzap) -> Session | None:
    """The request's session, if its cookie names one that has not expired."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 128:
        return None
    actor = engine.operators.session_actor(token)
    return Session(actor, token) if actor else None


def start(engine: Connectzap, response: Response, actor: str) -> None:
    settings = engine.settings.console
    token = secrets.token_urlsafe(32)
    seconds = settings.session_hours * 3600
    engine.operators.open_session(token, actor, seconds)
    response.set_cookie(COOKIE, token, max_age=int(seconds), path=PATH, httponly=True, samesite="strict",
                        secure=settings.secure_cookies)
    response.delete_cookie(LOGIN_COOKIE, path=PATH)


def end(engine: Connectzap, response: Response, session: Session) -> None:
    engine.operators.close_session(session.token)
    response.delete_cookie(COOKIE, path=PATH)


def login_binding(request: Request) -> str:
    """The login form's CSRF binding: the login cookie's value, or a fresh one to set."""
    value = request.cookies.get(LOGIN_COOKIE)
    return value if value and len(value) <= 64 else secrets.token_urlsafe(24)


def set_login_binding(engine: Connectzap, response: Response, value: str) -> None:
    response.set_cookie(LOGIN_COOKIE, value, max_age=3600, path=PATH, httponly=True, samesite="strict",
                        secure=engine.settings.console.secure_cookies)
