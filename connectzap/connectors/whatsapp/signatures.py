"""Meta's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``,
keyed with the app secret.

With several business accounts (each onboarded to its own Meta app, so signed with its own app
secret), :func:`verify_meta_accounts` also decides *whose* webhook it is: the signature must
match some account's secret, and no business account or number in the body may belong to an
account whose secret did not match. Holding one app's secret therefore lets nobody speak for
another account's numbers; ids no account lists are left to the parser, which refuses numbers
that are not configured.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ...core.errors import SignatureError
from ...core.signatures import SecretLike, any_equal, mac, secret_keys, sign_hmac, verify_hmac

PREFIX = "sha256="


def sign_meta(body: bytes, app_secret: SecretLike) -> str:
    return sign_hmac(body, app_secret, prefix=PREFIX)


def verify_meta(body: bytes, header: str | None, app_secrets: SecretLike | Iterable[SecretLike]) -> None:
    verify_hmac(body, header, app_secrets, prefix=PREFIX)


@dataclass(frozen=True)
class SigningAccount:
    """What signature checking needs to know of one configured business account."""

    label: str
    waba_id: str | None
    numbers: frozenset[str]
    secrets: tuple[SecretLike, ...] = field(repr=False)


def verify_meta_accounts(body: bytes, header: str | None, accounts: Sequence[SigningAccount]) -> frozenset[str]:
    """The labels of the accounts whose app secret signed ``body``; raises :class:`SignatureError`
    (fail closed) when none did, or when the body names a business account or number that
    belongs to an account whose secret did not sign it.

    Every account's secrets are tried, with no early exit, each comparison in constant time."""
    if not header:
        raise SignatureError("signature header missing")
    value = header.strip()
    if not value.lower().startswith(PREFIX):
        raise SignatureError(f"signature must start with {PREFIX!r}")
    try:
        given = bytes.fromhex(value[len(PREFIX):])
    except ValueError:
        raise SignatureError("signature is not valid hex") from None
    signed_by = set()
    any_secret = False
    for account in accounts:
        keys = [k for k in (s.encode() if isinstance(s, str) else s for s in account.secrets) if k]
        any_secret = any_secret or bool(keys)
        if keys and any_equal((mac(k, body) for k in keys), given):
            signed_by.add(account.label)
    if not any_secret:
        secret_keys(())  # raises "no secret configured"
    if not signed_by:
        raise SignatureError("signature does not match")
    for account in accounts:
        if account.label in signed_by:
            continue
        for kind, named in _named_ids(body):
            if named == account.waba_id or named in account.numbers:
                raise SignatureError(f"{kind} {named} belongs to account {account.label}, "
                                     "whose app secret did not sign this request")
    return frozenset(signed_by)


def _named_ids(body: bytes) -> list[tuple[str, str]]:
    """(what, id) for each entry's business account id and each change's phone number id. A body
    that is not such a document names nothing (the parser refuses it)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return []
    found: list[tuple[str, str]] = []
    entries = document.get("entry") if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("id"), (str, int)) and not isinstance(entry.get("id"), bool):
            found.append(("business account", str(entry["id"])))
        changes = entry.get("changes")
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            metadata = value.get("metadata") if isinstance(value, dict) else None
            number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            if isinstance(number, (str, int)) and not isinstance(number, bool):
                found.append(("phone number", str(number)))
    return found
