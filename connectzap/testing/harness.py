"""One connector on a fresh engine, driven without HTTP: what every conformance test stands on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ..core.connector import Connector, WebhookRequest, WebhookResponse
from ..core import ingress
from ..core import templates as template_cache
from ..core.app import Connectzap
from ..core.models import TemplateInfo
from ..core.settings import _is_secret_key
from ..core.store.schema import events, outbox
from .apps import drop_postgres_schema, make_app, run
from .fakes import FakeWhatsApp
from .plugins import ConnectorRegistration, registered_plugin
from .samples import Sample
from .signing import Signer


def deliver(app: Connectzap, connector: str | Connector, request: WebhookRequest) -> WebhookResponse:
    """Hand ``request`` to a connector the way the HTTP edge does (handshake, verify, parse, journal)
    and return the answer it would send. ``connector`` is an enabled connector's name or instance."""
    target = app.connectors[connector] if isinstance(connector, str) else connector
    return ingress.handle(target, request, app.ingest)


@dataclass
class ConnectorSpec:
    """Everything the suite needs to know about one connector (see :func:`connector_test_class`)."""

    connector: type[Connector]
    config: dict[str, Any]
    samples: tuple[Sample, ...]
    signer: Signer | None = None
    secret_field: str | None = None
    plugins: tuple[Any, ...] = ()
    templates: tuple[TemplateInfo, ...] = ()
    app_settings: dict[str, Any] = field(default_factory=dict)
    stale_seconds: float = 3600.0
    reply_sync: str = "call"

    def __post_init__(self) -> None:
        names = [s.name for s in self.samples]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"sample names must be unique: {', '.join(duplicates)}")
        if self.reply_sync not in ("call", "count"):
            raise ValueError("reply_sync must be 'call' (run the real sync method) or 'count' (only count calls)")
        if self.signer is not None and self.secret_field is None:
            declared = [n for n in self.connector.settings_model.secret_fields() if n in self.config]
            if len(declared) != 1:
                raise ValueError(f"{self.connector.__name__}: say which setting signs webhooks: secret_field=... "
                                 f"(secret settings in config: {', '.join(declared) or 'none'})")
            self.secret_field = declared[0]

    @property
    def name(self) -> str:
        return self.connector.name

    @property
    def secret(self) -> str:
        """The current signing secret (the first one when the setting is a list)."""
        value = self.config[self.secret_field or ""]
        return str(value[0] if isinstance(value, list) else value)

    def secret_values(self) -> list[str]:
        """Every secret in the config, for "never printed" checks."""
        out: list[str] = []
        model = self.connector.settings_model
        # Declared secrets, and settings whose names say they hold one (declared or not).
        names = {*model.secret_fields(), *(n for n in model.model_fields if _is_secret_key(n))}
        for name in sorted(names):
            value = self.config.get(name, model.model_fields[name].default)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and len(item) >= 4:
                    out.append(item)
        return out

    def select(self, which: str) -> list[Sample]:
        if which == "all":
            return list(self.samples)
        if which == "success":
            return [s for s in self.samples if s.succeeds]
        if which == "error":
            return [s for s in self.samples if not s.succeeds]
        if which == "first_success":
            return [s for s in self.samples if s.succeeds][:1]
        if which == "effects":
            return [s for s in self.samples if s.succeeds and s.expect_kinds]
        raise ValueError(f"unknown sample selection {which!r}")


class Harness:
    """A started engine with the fake WhatsApp channel, the connector enabled with ``spec.config``,
    and the spec's plugins registered. Use :func:`open_harness`."""

    def __init__(self, spec: ConnectorSpec, app: Connectzap, channel: FakeWhatsApp) -> None:
        self.spec = spec
        self.app = app
        self.channel = channel
        self.connector = app.connectors[spec.name]

    def request(self, sample: Sample, *, sign: bool = True, secret: str | None = None,
                now: float | None = None) -> WebhookRequest:
        """The sample's request, signed with the configured secret unless told otherwise."""
        request = sample.request(self.spec.connector)
        if sign and self.spec.signer is not None:
            request = self.spec.signer.sign(request, secret or self.spec.secret, now=now)
        return request

    def deliver(self, request: WebhookRequest, connector: Connector | None = None) -> WebhookResponse:
        """What the HTTP edge does: handshake, verify, parse, journal, answer."""
        return deliver(self.app, connector or self.connector, request)

    def connector_with(self, **config: Any) -> Connector:
        """Another instance of the connector on the same engine, with some settings replaced."""
        settings = self.spec.connector.settings_model.model_validate({**self.spec.config, **config})
        return self.spec.connector(settings, self.app)

    def run(self) -> None:
        run(self.app)

    def journaled(self) -> int:
        with self.app.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar_one())

    def outbox_rows(self) -> list[dict[str, Any]]:
        with self.app.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(select(outbox).order_by(outbox.c.created_at))]

    def snapshot(self) -> tuple[int, int, int]:
        """(events journaled, messages in the outbox, send attempts): what a replay must not change."""
        return self.journaled(), len(self.outbox_rows()), len(self.channel.attempts)


@contextmanager
def open_harness(spec: ConnectorSpec, tmp_path: Path, *, extra_plugins: Iterable[Any] = (),
                 **config: Any) -> Iterator[Harness]:
    """A :class:`Harness` for the length of a ``with`` block; everything is undone on exit."""
    with ExitStack() as stack:
        for plugin in (*spec.plugins, *extra_plugins):
            stack.enter_context(registered_plugin(plugin))
        stack.enter_context(registered_plugin(ConnectorRegistration(spec.connector), f"conformance:{spec.name}"))
        channel = FakeWhatsApp()
        settings = {"connectors": {spec.name: {**spec.config, **config}}, **spec.app_settings}
        app = make_app(tmp_path, channel=channel, start=False, **settings)
        stack.callback(drop_postgres_schema, app.db.url)
        stack.callback(app.close)
        app.start()
        put_templates(app, spec.templates)
        yield Harness(spec, app, channel)


def put_templates(app: Connectzap, infos: Iterable[TemplateInfo]) -> None:
    """Put templates in the engine's cache, as `connectzap templates sync` would."""
    with app.db.begin() as conn:
        for info in infos:
            template_cache.put(app.db, conn, info)
