"""Engines for tests: a fresh database per app, the sandbox channel, workers run until idle."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from ..core.app import ChannelFactory, Connectzap
from ..core.channel import Channel
from ..core.models import TemplateInfo
from ..core.settings import Settings
from ..core.simulation import Simulation
from ..core.worker import Worker


_made_schemas: dict[str, str] = {}
"""The PostgreSQL schemas this process made for engines (name -> the server's URL) and has not dropped
yet. Under pytest, the connectzap plugin drops those a test left behind once it is over (a test that
fails, a helper that does not drop, an engine that never started), and the rest when the session ends."""


def _postgres_schema_url(base: str) -> str:
    """A URL whose connections live in a fresh schema of their own (tests may run in parallel)."""
    schema = "cz_" + secrets.token_hex(6)
    url = base if "+psycopg" in base else base.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        engine.dispose()
    _made_schemas[schema] = url
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def _schema_of(url: str) -> str | None:
    """The schema a URL of :func:`_postgres_schema_url` names; None for any other URL."""
    if "search_path%3D" not in url:
        return None
    return url.rsplit("search_path%3D", 1)[1].split("&", 1)[0]


def _drop_schema(base: str, schema: str) -> None:
    engine = create_engine(base)
    try:
        with engine.begin() as conn:
            # an engine still in a transaction on it would make DROP wait for good: give up instead
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()
    _made_schemas.pop(schema, None)


def drop_postgres_schema(url: str) -> None:
    """Drop the schema a PostgreSQL URL of :func:`make_app` names (with everything in it); nothing
    for any other URL, or when it is gone already."""
    schema = _schema_of(url)
    if schema is None:
        return
    _drop_schema(_made_schemas.get(schema, url.split("?", 1)[0]), schema)


def _drop_made_schemas(keep: Iterable[str] = ()) -> list[tuple[str, Exception]]:
    """Drop every schema this process made and has not dropped, except those in ``keep``. What could
    not be dropped stays listed (a later call tries again) and is returned with its error."""
    failed: list[tuple[str, Exception]] = []
    for schema, base in list(_made_schemas.items()):
        if schema in keep:
            continue
        try:
            _drop_schema(base, schema)
        except Exception as error:  # noqa: BLE001 -- reported by the caller; the others are still dropped
            failed.append((schema, error))
    return failed


def make_app(tmp_path: Path, *, database_url: str | None = None, channel: Channel | ChannelFactory | None = None,
             start: bool = True, simulation: Simulation | None = None, **settings: Any) -> Connectzap:
    """An engine in ``tmp_path``. PostgreSQL when ``database_url`` (or CONNECTZAP_TEST_DATABASE_URL) says so:
    in a fresh schema, unless the URL already names one (another engine's ``settings.database_url``,
    to restart on the same database). An engine that fails to build or start is closed, and the fresh
    schema dropped, before the error is raised; drop a started one's with :func:`drop_postgres_schema`
    (under pytest, the connectzap plugin drops what a test leaves once it is over).
    With ``simulation``, a simulating engine (connectors rehearsed: test a ``Connector.rehearse``)."""
    url = database_url or os.environ.get("CONNECTZAP_TEST_DATABASE_URL")
    fresh = bool(url and url.startswith("postgres") and "search_path%3D" not in url)  # naming one: a restart
    if url and fresh:
        url = _postgres_schema_url(url)
    app: Connectzap | None = None
    try:
        data: dict[str, Any] = {"data_dir": tmp_path, "sandbox": {"quiet": True}}
        data.update(settings)
        if url:
            data.setdefault("database", {})["url"] = url
        app = Connectzap(Settings(**data), channel=channel, simulation=simulation)
        return app.start() if start else app
    except BaseException:
        # the error raised is the one to see; a schema left here is dropped later (it stays listed)
        if app is not None:
            with suppress(Exception):
                app.close()
        if url and fresh:
            with suppress(Exception):
                drop_postgres_schema(url)
        raise


def run(app: Connectzap, worker: Worker | None = None) -> Worker:
    """Run the dispatcher and sender until nothing is due. Safe inside or outside an event loop."""
    worker = worker or Worker(app)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(worker.run_until_idle())
        return worker
    raise RuntimeError("inside an event loop, use: await Worker(app).run_until_idle()")


def seed_template(app: Connectzap, name: str, body: str, *, language: str = "en", category: str = "UTILITY",
                  status: str = "APPROVED", parameter_format: str = "POSITIONAL",
                  extra_components: list[dict[str, Any]] | None = None, waba_id: str | None = None) -> TemplateInfo:
    """Put a template in the cache, as `connectzap templates sync` would (of business account
    ``waba_id``; None: of no particular account, so any number may send it)."""
    from ..core import templates
    info = TemplateInfo(name=name, language=language, category=category, status=status,
                        # a plain str in this helper's signature; the model upper-cases and checks it
                        parameter_format=parameter_format,  # type: ignore[arg-type]
                        components=[{"type": "BODY", "text": body}, *(extra_components or [])], waba_id=waba_id)
    with app.db.begin() as conn:
        templates.put(app.db, conn, info)
    return info
