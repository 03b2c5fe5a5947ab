"""Webhook signature schemes for connector authors (``from connectzap import signatures``).

The generic primitives are the core's (:mod:`connectzap.core.signatures`): an HMAC of the raw
body, Standard Webhooks, a shared secret. The vendors' schemes now live with their connectors --
``connectzap.connectors.whatsapp.signatures`` (Meta), ``connectzap.connectors.woocommerce.signatures``
and ``connectzap.connectors.hubspot.signatures`` (v1-v3). Their old names here still work, with a
:class:`DeprecationWarning` naming the new home.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any

from .core.signatures import (SecretLike, any_equal, as_key, check_age, mac, secret_keys, sign_hmac, sign_standard,
                              verify_hmac, verify_shared_secret, verify_standard)

_MOVED = {
    "sign_meta": "whatsapp", "verify_meta": "whatsapp",
    "sign_woocommerce": "woocommerce", "verify_woocommerce": "woocommerce",
    **{f"{verb}_hubspot_{version}": "hubspot" for verb in ("sign", "verify") for version in ("v1", "v2", "v3")},
}

__all__ = ["SecretLike", "any_equal", "as_key", "check_age", "mac", "secret_keys", "sign_hmac", "sign_standard",
           "verify_hmac", "verify_shared_secret", "verify_standard"]


def _home(connector: str) -> ModuleType:
    # Imported on first use only: importing connectzap does not load every connector.
    if connector == "whatsapp":
        from .connectors.whatsapp import signatures as whatsapp
        return whatsapp
    if connector == "woocommerce":
        from .connectors.woocommerce import signatures as woocommerce
        return woocommerce
    from .connectors.hubspot import signatures as hubspot
    return hubspot


def __getattr__(name: str) -> Any:
    connector = _MOVED.get(name)
    if connector is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = _home(connector)
    warnings.warn(f"connectzap.signatures.{name} moved to {home.__name__}.{name}", DeprecationWarning, stacklevel=2)
    return getattr(home, name)


def __dir__() -> list[str]:
    return sorted([*__all__, *_MOVED])
