"""Console passwords: argon2id through argon2-cffi (its default parameters, salted per hash)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a console password needs at least {MIN_LENGTH} characters")
    return _hasher().hash(password)


@cache
def _stand_in() -> str:
    return _hasher().hash("no such user, same cost")


def check_password(stored: str | None, given: str) -> bool:
    """Whether ``given`` matches ``stored``; an unknown user (``stored`` None) costs the same time."""
    try:
        return _hasher().verify(stored or _stand_in(), given) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
