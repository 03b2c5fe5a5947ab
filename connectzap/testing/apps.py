"""Engines for tests: a fresh database per app, the sandbox channel, workers run until idle."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from ..core.app import ChannelFactory, Connectzap
from ..core.channel import Channel
from ..core.models import TemplateInfo
from ..core.settings import Settings
from ..core.simulation import Simulation
from ..core.worker import Worker


def _postgres_schema_url(base: str) -> str:
    """A URL whose connections live in a fresh schema of their own (tests may run in parallel)."""
    schema = "cz_" + secrets.token_hex(6)
    url = base if "+psycopg" in base else base.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def drop_postgres_schema(url: str) -> None:
    if "search_path%3D" not in url:
        return
    schema = url.rsplit("search_path%3D", 1)[1].split("&", 1)[0]
    base = url.split("?", 1)[0]
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def make_app(tmp_path: Path, *, database_url: str | None = None, channel: Channel | ChannelFactory | None = None,
             start: bool = True, simulation: Simulation | None = None, **settings: Any) -> Connectzap:
    """An engine in ``tmp_path``. PostgreSQL when ``database_url`` (or CONNECTZAP_TEST_DATABASE_URL) says so:
    in a fresh schema, unless the URL already names one (another engine's ``settings.database_url``,
    to restart on the same database).
    With ``simulation``, a simulating engine (connectors rehearsed: test a ``Connector.rehearse``)."""
    url = database_url or os.environ.get("CONNECTZAP_TEST_DATABASE_URL")
    if url and url.startswith("postgres") and "search_path%3D" not in url:  # one naming its schema: a restart
        url = _postgres_schema_url(url)
    data: dict[str, Any] = {"data_dir": tmp_path, "sandbox": {"quiet": True}}
    data.update(settings)
    if url:
        data.setdefault("database", {})["url"] = url
    app = Connectzap(Settings(**data), channel=channel, simulation=simulation)
    return app.start() if start else app


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
