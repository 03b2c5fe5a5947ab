"""Bearer API keys for ``/v1``: every configured key is compared, in constant time.

Several keys may be configured at once: add the new key, move clients over, remove the old
one -- no downtime. With no key configured the API refuses everything (it never runs open).
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request
from fastapi.security import HTTPBearer
from pydantic import SecretStr

# Declares the scheme in OpenAPI; the check itself runs in :func:`authenticate` before the body is read.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key from settings `api.keys`.")

CHALLENGE = {"WWW-Authenticate": "Bearer"}


class ApiKeys:
    def __init__(self, keys: list[SecretStr]) -> None:
        self._keys = [k.get_secret_value().encode() for k in keys if k.get_secret_value()]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def accepts(self, given: str) -> bool:
        candidate = given.encode()
        ok = False
        for key in self._keys:  # no early exit: every key costs the same comparison
            ok |= hmac.compare_digest(key, candidate)
        return ok


def authenticate(request: Request, keys: ApiKeys) -> None:
    """Raise 401 unless the request carries ``Authorization: Bearer <one of the keys>``."""
    if not keys:
        raise HTTPException(401, "the REST API is disabled: no api.keys are configured", headers=CHALLENGE)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "send an API key as 'Authorization: Bearer <key>'", headers=CHALLENGE)
    if not keys.accepts(token.strip()):
        raise HTTPException(401, "the API key is not valid", headers=CHALLENGE)
