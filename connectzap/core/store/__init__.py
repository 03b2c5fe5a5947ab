"""Durable state: the event journal, per-plugin deliveries, the outbox, consent, windows, templates."""

from .database import Database

__all__ = ["Database"]
