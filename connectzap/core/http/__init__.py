"""The HTTP service: webhook edge, REST ``/v1``, health and metrics (see :mod:`connectzap.core.server`)."""

from .app import create_app

__all__ = ["create_app"]
