"""Test helpers for connectzap and its plugins, shipped in the wheel.

``make_app`` builds an engine on a temporary SQLite file (or ``CONNECTZAP_TEST_DATABASE_URL``)
with the sandbox channel; :func:`run` drives its workers synchronously until idle.
"""

from .apps import make_app, run, seed_template

__all__ = ["make_app", "run", "seed_template"]
