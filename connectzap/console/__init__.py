"""The operator console at ``/console``: server-rendered pages over the engine's own methods.

Turned on with ``[console] enabled = true``; ``connectzap serve`` then adds it to every edge
process (:func:`mount`). It reads what the CLI and the REST API read (:mod:`connectzap.core.views`,
the engine's methods) and acts through the same engine methods as the CLI: no SQL of its own.
"""

from __future__ import annotations

# importing them adds their routes
from . import automation_pages, campaigns, connector_pages, consent_import, template_pages  # noqa: F401
from .pages import mount

__all__ = ["mount"]
