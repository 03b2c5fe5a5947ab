"""The people who operate connectzap through the console: their accounts, their sessions and the
audit log of what they did. Passwords are hashed by the console before they get here, and a
session is known by the SHA-256 of its token: the store holds nothing that logs anyone in."""

from __future__ import annotations

import hashlib
from typing import Any

from .store import operators as rows
from .store.database import Database, now

FAILED_LOGIN = "login_failed"


def token_hash(token: str) -> str:
    """How a session token is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


class Operators:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- accounts -----------------------------------------------------------------------------

    def add_user(self, name: str, password_hash: str) -> None:
        with self.db.begin() as conn:
            rows.add_user(self.db, conn, name, password_hash, now())

    def remove_user(self, name: str) -> bool:
        with self.db.begin() as conn:
            return rows.remove_user(conn, name)

    def users(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return rows.users(conn)

    def password_hash(self, name: str) -> str | None:
        with self.db.read() as conn:
            return rows.password_hash(conn, name)

    # --- sessions -------------------------------------------------------------------------------

    def open_session(self, token: str, actor: str, seconds: float) -> None:
        t = now()
        with self.db.begin() as conn:
            rows.open_session(conn, token_hash(token), actor, t, t + seconds)

    def session_actor(self, token: str) -> str | None:
        with self.db.read() as conn:
            return rows.session_actor(conn, token_hash(token), now())

    def close_session(self, token: str) -> None:
        with self.db.begin() as conn:
            rows.close_session(conn, token_hash(token))

    # --- the audit log ----------------------------------------------------------------------------

    def record(self, actor: str, action: str, target: str | None = None, detail: str | None = None,
               address: str | None = None) -> None:
        """Record what ``actor`` did (or tried: a failed login names the user name it tried)."""
        with self.db.begin() as conn:
            rows.record(conn, at=now(), actor=actor, action=action, target=target, detail=detail, address=address)

    def failed_logins(self, name: str, address: str | None, seconds: float) -> int:
        """Failed logins in the last ``seconds``: the larger of those naming ``name`` and those from ``address``."""
        since = now() - seconds
        with self.db.read() as conn:
            named = rows.count_since(conn, FAILED_LOGIN, since, target=name)
            near = rows.count_since(conn, FAILED_LOGIN, since, address=address) if address else 0
        return max(named, near)

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return rows.audit_log(conn, limit)
