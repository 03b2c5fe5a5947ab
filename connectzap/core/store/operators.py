"""The operator console's rows: users (a password hash each), sessions (a hash of the cookie's
token) and the audit log (who did what, when). Nothing here sees a password or a token itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, select

from .database import Database
from .schema import console_audit, console_sessions, console_users


def add_user(db: Database, conn: Connection, name: str, password_hash: str, at: float) -> None:
    """Add ``name``, or give an existing user a new password."""
    db.upsert(conn, console_users, {"name": name, "password_hash": password_hash, "created_at": at}, ["name"])


def remove_user(conn: Connection, name: str) -> bool:
    """Remove a user and end their sessions; False when there was no such user."""
    conn.execute(delete(console_sessions).where(console_sessions.c.actor == f"user:{name}"))
    return bool(conn.execute(delete(console_users).where(console_users.c.name == name)).rowcount)


def password_hash(conn: Connection, name: str) -> str | None:
    row = conn.execute(select(console_users.c.password_hash).where(console_users.c.name == name)).first()
    return row[0] if row else None


def users(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(console_users.c.name, console_users.c.created_at).order_by(console_users.c.name))
    return [dict(r._mapping) for r in rows]


def open_session(conn: Connection, token_hash: str, actor: str, at: float, expires_at: float) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < at))  # old ones go on the way
    conn.execute(console_sessions.insert().values(token_hash=token_hash, actor=actor, created_at=at,
                                                  expires_at=expires_at))


def session_actor(conn: Connection, token_hash: str, at: float) -> str | None:
    """Who holds this session, while it has not expired (a removed user's sessions are gone)."""
    row = conn.execute(select(console_sessions.c.actor).where(console_sessions.c.token_hash == token_hash,
                                                              console_sessions.c.expires_at > at)).first()
    return row[0] if row else None


def close_session(conn: Connection, token_hash: str) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.token_hash == token_hash))


def record(conn: Connection, *, at: float, actor: str, action: str, target: str | None = None,
           detail: str | None = None, address: str | None = None) -> None:
    conn.execute(console_audit.insert().values(at=at, actor=actor[:80], action=action[:48],
                                               target=target[:255] if target else None, detail=detail,
                                               address=address[:64] if address else None))


def count_since(conn: Connection, action: str, since: float, *, target: str | None = None,
                address: str | None = None) -> int:
    """How many ``action`` rows since ``since`` (naming ``target``, or from ``address``, when given)."""
    stmt = select(func.count()).select_from(console_audit).where(console_audit.c.action == action,
                                                                console_audit.c.at >= since)
    if target is not None:
        stmt = stmt.where(console_audit.c.target == target)
    if address is not None:
        stmt = stmt.where(console_audit.c.address == address)
    return int(conn.execute(stmt).scalar_one())


def audit_log(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(select(console_audit).order_by(console_audit.c.id.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]
