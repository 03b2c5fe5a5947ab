"""Configuration: one TOML file, environment variables on top (``CONNECTZAP_SECTION__KEY``).

The file comes from ``--config`` or ``CONNECTZAP_CONFIG``; without one, the embedded defaults
run everything on this machine (SQLite under ``data_dir``, the sandbox channel). Relative paths
written in the file (``data_dir``, ``sandbox.log_file``, a SQLite ``database.url``) and the default
``data_dir`` are resolved against the file's folder, so a command started from any directory (a
cron job) finds the same database and hash key; relative paths from environment variables or
without a file are resolved against the current directory, once, at load time. Connector and
plugin sections (``[connectors.NAME]``, ``[plugins.NAME]``) are validated by their owners.
Secrets are :class:`~pydantic.SecretStr` and never printed; :func:`redacted` masks the rest.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import tomllib
import warnings
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from .business_hours import BusinessHoursSettings
from .errors import ConfigurationError
from .media import FallbackMedia

SECRET_WORDS = ("secret", "token", "password", "api_key", "apikey", "consumer_key", "keys", "authorization")


DEFAULT_DATA_DIR = ".connectzap"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(Section):
    url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///<data_dir>/connectzap.db``. ``postgresql+psycopg://...`` to scale out."""
    pool_size: int = 5


class PrivacySettings(Section):
    hash_secret: SecretStr | None = None
    """Key for the HMAC that replaces phone numbers at rest. Default: a random key kept in data_dir."""
    retention_hours: float = Field(default=0, ge=0)
    """How long payloads of finished events/messages are kept. 0 = erased at once."""


class PhoneSettings(Section):
    default_region: str | None = None
    """ISO country used for numbers written without a country code, e.g. ``"DE"``."""


class WorkerSettings(Section):
    max_attempts: int = Field(default=8, ge=1)
    backoff_base_seconds: float = Field(default=2.0, gt=0)
    backoff_max_seconds: float = Field(default=3600.0, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    poll_interval_seconds: float = Field(default=0.2, gt=0)
    """How long a loop waits before looking again after a batch smaller than ``batch_size``; after a
    full batch it looks again at once."""
    batch_size: int = Field(default=50, ge=1)
    """Events a dispatch loop claims at once, and messages a send lane claims when the sender does not
    size its lanes. On PostgreSQL a dispatch loop that finds a backlog claims twice as many after each
    full claim, up to 4x this, and this many again after a short one (``dispatcher.ClaimSize``)."""
    status_batch_size: int = Field(default=200, ge=1)
    """How many status events a dispatcher claims at once while nothing listens to them (no
    ``on_message_status`` hook, no connector): it applies them itself in the claim's transaction, and
    a bigger batch costs less per status. Other events, and the sender's messages, are claimed
    ``batch_size`` at a time. On SQLite the batch holds the write lock while it is applied (about
    0.2 ms per status), so a much larger value delays webhook acknowledgements."""
    send_concurrency: int = Field(default=32, ge=1)
    sender_lanes: int | None = Field(default=None, ge=1, le=16)
    """Send loops per worker. Unset: sized by Little's law from the channel's rate and the send
    latency the worker measures, each lane claiming a fifth of a second of the rate (two lanes of
    ``batch_size`` and ``send_concurrency`` when the channel knows no rate). Set, that many lanes of
    ``batch_size`` messages, ``send_concurrency`` in flight each: at least 1 + rate x (latency +
    about 0.1 s) / ``batch_size`` (docs/whatsapp-sending.md)."""
    dispatch_lanes: int | None = Field(default=None, ge=1, le=8)
    """Dispatch loops per worker, each claiming and running its own batches. Unset: 2 on PostgreSQL
    (one loop claims and prepares its batch while the other's hooks run and commit, so a worker does
    not wait on one round trip at a time), 1 on SQLite (its writers take turns anyway). Ordering per
    key holds across lanes as across workers: the lease is the lock (docs/serving.md)."""
    processes: int | None = Field(default=None, ge=0, le=64)
    """Worker processes ``connectzap serve`` starts (``--workers`` overrides). Unset: one per CPU core
    but one (the edge's), at least one; 0: none, as ``--no-workers``."""
    unknown_policy: Literal["resend", "fail"] = "resend"
    """What settles a message left ``unknown`` (its request may have reached the channel, no answer
    came) when no status webhook did within ``unknown_grace_seconds``: ``resend`` it with the same
    ``biz_opaque_callback_data``, or mark it ``failed`` (reason ``unconfirmed``) and tell
    ``on_message_status``. See docs/whatsapp-sending.md for the duplicate risk."""
    unknown_grace_seconds: float = Field(default=3600.0, gt=0)
    """How long an ``unknown`` message waits for a status webhook before ``unknown_policy`` applies."""
    resend_unknown_after_seconds: float | None = Field(default=None, gt=0)
    """Deprecated: ``unknown_policy = "resend"`` with ``unknown_grace_seconds`` set to this."""

    @model_validator(mode="after")
    def _old_resend_setting(self) -> WorkerSettings:
        if self.resend_unknown_after_seconds is not None:
            warnings.warn("workers.resend_unknown_after_seconds is deprecated: use workers.unknown_policy = "
                          "\"resend\" and workers.unknown_grace_seconds", DeprecationWarning, stacklevel=2)
            if "unknown_grace_seconds" not in self.model_fields_set:
                self.unknown_grace_seconds = self.resend_unknown_after_seconds
            if "unknown_policy" not in self.model_fields_set:
                self.unknown_policy = "resend"
        return self


class SandboxSettings(Section):
    log_file: str | None = None
    """JSON-lines file that receives every sandbox request body. Default ``<data_dir>/sandbox-sends.jsonl``."""
    simulate_statuses: bool = True
    quiet: bool = False
    latency_seconds: float = Field(default=0.0, ge=0, le=30)
    """Pretend each answer takes this long after WhatsApp got the request, as a real round trip
    does (for pacing experiments and crash-recovery tests)."""
    template_approval_seconds: float = Field(default=10.0, ge=0, le=86400)
    """How long a template created on the sandbox stays PENDING before its review ends (Meta's takes
    minutes to a day); the outcome arrives as a template status event, as Meta's webhook would."""


class ApiSettings(Section):
    keys: list[SecretStr] = Field(default_factory=list)
    """Bearer keys accepted by the REST API; list several to rotate without downtime."""
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    """Larger request bodies are refused with 413 before they are parsed."""
    host: str = "127.0.0.1"
    """Address ``connectzap serve`` listens on (``--host`` overrides)."""
    port: int = Field(default=8000, ge=0, le=65535)
    """Port ``connectzap serve`` listens on (``--port`` overrides; 0 picks a free one)."""
    processes: int = Field(default=1, ge=1, le=64)
    """HTTP edge processes ``connectzap serve`` starts, all accepting on the one port
    (``--edge-processes`` overrides)."""
    trust_proxy_headers: bool = False
    """Honour X-Forwarded-Proto/Host when rebuilding the URL a webhook was sent to (HubSpot v3 signs
    it). Only behind a proxy you run, which overwrites those headers."""


class AutomationSettings(Section):
    stale_after_minutes: float = Field(default=10.0, gt=0)
    """No automatic answer (FAQ, welcome, away, bot...) to an inbound message older than this: a
    webhook backlog must not produce answers to questions asked long ago. Plugins may ask for less."""
    typing_indicator: bool = True
    """Right before an automatic answer that quotes the customer's message goes out, mark that
    message read (blue ticks) and show WhatsApp's typing indicator (channels that can: the Cloud
    API, the sandbox). A failure there never holds the answer back."""


class ReplySettings(Section):
    fallback_template: str | None = Field(default=None, min_length=1, max_length=512)
    """The approved template a person's reply goes as when the customer's 24-hour window is closed
    (e.g. "You have a new message about order {{1}}"); none: such a reply is refused ``window_closed``."""
    fallback_language: str = Field(default="en", min_length=2, max_length=15)
    handoff_minutes: int = Field(default=60, ge=0, le=525_600)
    """For how long a person's reply hands the conversation to people (no automatic answers); 0: not at all."""


class FallbackSettings(Section):
    codes: list[str] = Field(default_factory=list, max_length=100)
    """Error codes of a failed WhatsApp message (the vendor's, e.g. ``"131049"``, or a channel's
    ``code``) that trigger the message's fallback (``fallback_channels``), besides ``unreachable``
    (no WhatsApp account), which always does."""
    media: FallbackMedia = Field(default_factory=list)
    """The media a WhatsApp message about a record (one with an ``origin``: an order notification,
    a reminder, a review request) falls back on when neither it, its plugin nor its connector (a
    shop's ``fallback``) names any, e.g. ``["sms", "email"]``. Default: none. A person's reply and an
    automatic answer have no origin, and a campaign's messages are admitted by the campaign: never."""
    keep_hours: float = Field(default=24, ge=0, le=720)
    """How long a sent WhatsApp message that names fallback media keeps its content and the
    recipient's address, waiting for a failed status to fall back on (``privacy.retention_hours``
    when longer). A ``delivered``, ``read`` or ``failed`` status settles it sooner: then its data is
    erased as any message's."""


class ConsoleSettings(Section):
    enabled: bool = False
    """Serve the operator console at ``/console`` (off unless turned on)."""
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    """How long a console login lasts."""
    secure_cookies: bool = True
    """Send the login cookie only over HTTPS (browsers also accept it from ``http://127.0.0.1`` and
    ``http://localhost``). Turn off only to log in over plain HTTP on a network you trust."""
    login_attempts: int = Field(default=5, ge=1, le=1000)
    """Failed logins allowed per user name, and per client address, in 15 minutes."""
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    """The address vendors reach this service at (``https://hooks.example.com``), for the webhook
    URLs the connectors page shows; default: the address the page was asked at."""
    max_upload_bytes: int = Field(default=64 * 1_048_576, gt=0)
    """The largest file the console accepts (a campaign's audience, a consent CSV; every other request keeps
    ``api.max_body_bytes``); only a logged-in session's upload is read."""


class PricingSettings(Section):
    """What a billable message costs, for campaign reports: Meta's per-message pricing says which
    messages are billable and in which category, not what they cost (its rate card is published as
    a file to download, not an API), so the prices are yours to enter from your rate card or bill."""

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    """ISO 4217 code the prices are in (shown beside every cost)."""
    rates: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    """Price per billable message: ``rates.<pricing category>.<recipient country>``, the country an
    ISO 3166 code (``DE``) or ``"*"`` for every other; the category is Meta's (``marketing``,
    ``utility``, ``authentication``, ``authentication_international``...)."""

    @model_validator(mode="after")
    def _checked(self) -> PricingSettings:
        for category, by_market in self.rates.items():
            for market, price in by_market.items():
                if market != "*" and not re.fullmatch(r"[A-Z]{2}", market):
                    raise ValueError(f"pricing.rates.{category}: {market!r} is not a country code (DE) or \"*\"")
                if not price.is_finite() or price < 0:
                    raise ValueError(f"pricing.rates.{category}.{market}: a price is a number of at least 0")
        return self

    def price(self, category: str | None, country: str | None) -> Decimal | None:
        """The price of one billable message of ``category`` to ``country``; None: not in the table."""
        by_market = self.rates.get(category or "")
        if by_market is None:
            return None
        return by_market.get(country or "*", by_market.get("*"))


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(env_prefix="CONNECTZAP_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path(DEFAULT_DATA_DIR)
    """SQLite file, sandbox log and generated keys. Relative: against the config file's folder."""
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    phones: PhoneSettings = Field(default_factory=PhoneSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    business_hours: BusinessHoursSettings = Field(default_factory=BusinessHoursSettings)
    """When the business answers (:mod:`connectzap.core.business_hours`); unset: always open."""
    automation: AutomationSettings = Field(default_factory=AutomationSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    replies: ReplySettings = Field(default_factory=ReplySettings)
    fallback: FallbackSettings = Field(default_factory=FallbackSettings)
    pricing: PricingSettings = Field(default_factory=PricingSettings)
    connectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    config_path: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables win over the file's values (passed in as init kwargs).
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        # Whatever is still relative here came from the environment or from code: it means the
        # current directory, now -- not whichever directory a later process happens to run in.
        if not self.data_dir.is_absolute():
            self.data_dir = self.data_dir.absolute()
        if self.config_path is not None and not self.config_path.is_absolute():
            self.config_path = self.config_path.absolute()
        if self.sandbox.log_file and not Path(self.sandbox.log_file).is_absolute():
            self.sandbox.log_file = str(Path(self.sandbox.log_file).absolute())
        if self.database.url:
            self.database.url = sqlite_url_against(self.database.url, Path.cwd())
        return self

    def __repr_args__(self) -> Any:
        # Connector and plugin sections are plain dicts until their owners validate them, so
        # their secrets are not SecretStr yet: mask them in repr()/str() too.
        for name, value in super().__repr_args__():
            yield name, (redacted(value) if name in ("connectors", "plugins") else value)

    # --- derived values --------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'connectzap.db'}"

    @property
    def sandbox_log(self) -> Path:
        return Path(self.sandbox.log_file) if self.sandbox.log_file else self.data_dir / "sandbox-sends.jsonl"

    @property
    def hash_secret_file(self) -> Path | None:
        """Where the generated HMAC key lives; ``None`` when ``privacy.hash_secret`` is configured."""
        return None if self.privacy.hash_secret is not None else self.data_dir / "hash-secret"

    def hash_secret(self) -> bytes:
        """The HMAC key for contact hashes; created once in data_dir when not configured."""
        if self.privacy.hash_secret is not None:
            value = self.privacy.hash_secret.get_secret_value()
            if len(value) < 16:
                raise ConfigurationError("privacy.hash_secret must be at least 16 characters")
            return value.encode()
        path = self.data_dir / "hash-secret"
        value = create_once(path, lambda: secrets.token_hex(32))
        if len(value) < 16:
            raise ConfigurationError(f"{path} holds no usable hash key (at least 16 characters); restore it from "
                                     "your backup -- a new key would orphan every stored consent")
        return value.encode()

    def connector_section(self, name: str) -> dict[str, Any] | None:
        return self.connectors.get(name)

    def plugin_section(self, name: str) -> dict[str, Any]:
        return self.plugins.get(name, {})


def create_once(path: Path, make: Callable[[], str]) -> str:
    """The content of ``path``, written first with ``make()`` (mode 0600) when the file is missing.

    Processes starting together on one data_dir (serve and a worker) must all end up with the same
    key, and none may read a half-written file: the content goes to a private temporary file that
    is hard-linked into place, so the first link wins and the others read the winner's. Where the
    file system has no hard links, an exclusive create is the fallback.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        content = make() + "\n"
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # another process linked its file first: that one is the key
            except OSError:  # no hard links on this file system (some network and FUSE ones)
                with contextlib.suppress(FileExistsError):
                    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
                        fh.write(content)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
    return path.read_text().strip()


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (``path`` or ``CONNECTZAP_CONFIG``), apply env vars, validate.

    Raises :class:`ConfigurationError` with one readable line per problem.
    """
    from pydantic import ValidationError

    file = path or os.environ.get("CONNECTZAP_CONFIG")
    data: dict[str, Any] = {}
    if file:
        p = Path(file)
        if not p.is_file():
            raise ConfigurationError(f"config file not found: {p}")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{p}: not valid TOML ({exc})") from None
        p = p.absolute()
        data = resolve_file_paths(data, p.parent)
        data["config_path"] = p
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc, prefix="config", model=Settings)) from None
    except SettingsError as exc:
        raise ConfigurationError(_describe_env_error(exc)) from None


TOOL_VARIABLES: dict[str, str] = {
    "CONNECTZAP_CONFIG": "the config file (as --config)",
    "CONNECTZAP_DEBUG": "show tracebacks instead of one-line errors",
    "CONNECTZAP_STRICT_PLUGINS": "a plugin that fails to load stops start-up",
    "CONNECTZAP_LOAD_PLUGINS": "load only these installed plugins",
    "CONNECTZAP_DISABLE_PLUGIN_AUTOLOAD": "load no installed plugin",
    "CONNECTZAP_DISABLE_BUNDLED": "leave out these bundled plugins",
    "CONNECTZAP_TRACE_PLUGINS": "log every event-hook call",
    "CONNECTZAP_DOCTOR_SHOW": "doctor prints the whole (redacted) configuration",
    "CONNECTZAP_TEST_DATABASE_URL": "the test suite's PostgreSQL",
}
"""Environment variables connectzap reads besides ``CONNECTZAP_<SECTION>__<KEY>`` settings."""


def unknown_environment(environ: dict[str, str], sections: dict[str, dict[str, set[str] | None]]) -> list[str]:
    """One line per ``CONNECTZAP_*`` variable that nothing reads (a typo such as a single ``_``
    between section and key is silently ignored otherwise), with the closest real name.

    ``sections`` maps ``connectors``/``plugins`` to {section name: its keys, or None if unknown}.
    """
    import difflib
    core = _core_sections()
    known = set(TOOL_VARIABLES) | {f"CONNECTZAP_{name.upper()}" for name in Settings.model_fields
                                   if name not in core and name != "config_path"}
    for name, model in core.items():
        known |= {f"CONNECTZAP_{name.upper()}"} | {f"CONNECTZAP_{name.upper()}__{key.upper()}"
                                                  for key in model.model_fields}
    problems = []
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith("CONNECTZAP_") or upper in known:
            continue
        parts = upper.removeprefix("CONNECTZAP_").split("__")
        table = sections.get(parts[0].lower())
        if table is not None and len(parts) >= 2:
            section = parts[1].lower()
            keys = table.get(section)
            if section in table and (keys is None or len(parts) == 2 or parts[2].lower() in keys):
                continue
            choices = [f"CONNECTZAP_{parts[0]}__{n.upper()}" for n in table]
            if keys is not None and len(parts) > 2:
                choices = [f"CONNECTZAP_{parts[0]}__{parts[1]}__{k.upper()}" for k in keys]
        else:
            choices = sorted(known)
        # Compared without the prefix every name shares, or everything looks close.
        stripped = {choice.removeprefix("CONNECTZAP_"): choice for choice in choices}
        close = [stripped[c] for c in difflib.get_close_matches(upper.removeprefix("CONNECTZAP_"), stripped, n=1,
                                                                 cutoff=0.75)]
        problems.append(f"environment variable {variable} is not a connectzap setting"
                        + (f" (did you mean {close[0]}?)" if close else ""))
    return problems


def _core_sections() -> dict[str, type[BaseModel]]:
    out: dict[str, type[BaseModel]] = {}
    for name, info in Settings.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            out[name] = info.annotation
    return out


def resolve_file_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """The file's relative paths (and the default ``data_dir``) made absolute against ``base``."""
    data = dict(data)
    data_dir = data.get("data_dir", DEFAULT_DATA_DIR)
    if isinstance(data_dir, str):
        data["data_dir"] = str(_against(Path(data_dir).expanduser(), base))
    sandbox = data.get("sandbox")
    if isinstance(sandbox, dict) and isinstance(sandbox.get("log_file"), str):
        data["sandbox"] = {**sandbox, "log_file": str(_against(Path(sandbox["log_file"]).expanduser(), base))}
    database = data.get("database")
    if isinstance(database, dict) and isinstance(database.get("url"), str):
        data["database"] = {**database, "url": sqlite_url_against(database["url"], base)}
    return data


def _against(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else base / path


def sqlite_url_against(url: str, base: Path) -> str:
    """A SQLite URL whose relative file path is made absolute against ``base``; other URLs unchanged.

    ``sqlite:///connectzap.db`` is relative (three slashes), ``sqlite:////srv/cz.db`` absolute;
    in-memory databases and ``file:`` URIs are left as written.
    """
    scheme, sep, rest = url.partition(":///")
    if not sep or not scheme.startswith("sqlite"):
        return url
    path, query_sep, query = rest.partition("?")
    if path in ("", ":memory:") or path.startswith(("file:", "/")):
        return url
    return f"{scheme}:///{_against(Path(path).expanduser(), base)}{query_sep}{query}"


def _describe_env_error(exc: Exception) -> str:
    """pydantic-settings says 'error parsing value for field "api"': name the variable, never its value."""
    text = str(exc)
    field = text.split('field "', 1)[1].split('"', 1)[0] if 'field "' in text else ""
    prefix = f"CONNECTZAP_{field.upper()}"
    names = sorted(name for name in os.environ if name.upper() == prefix or name.upper().startswith(prefix + "__"))
    return (f"environment variable {' or '.join(names) or prefix + '__...'} cannot be read: lists and tables are "
            """written as JSON, e.g. '["first", "second"]' or '{"name": "value"}'""")


# Errors a union reports for each alternative that did not fit ("not a dict", "not a string").
# When another error explains the failure better, these are noise.
_BRANCH_MISMATCH = {"dict_type", "model_type", "model_attributes_type", "list_type", "string_type", "int_type",
                    "float_type", "bool_type", "is_instance_of"}
_MEMBER_TAG = re.compile(r"^(?:[A-Z][a-z0-9]+){2,}$|^(?:str|int|float|bool)$")


def _key_path(loc: tuple[Any, ...]) -> str:
    """``rules.0.params.0`` -- without the tags pydantic adds for union members
    (``list[union[...]]``, ``function-after[...]``, ``ParamSpec``)."""
    return ".".join(str(x) for x in loc if not (isinstance(x, str) and ("[" in x or _MEMBER_TAG.match(x))))


def field_names(model: type[BaseModel]) -> set[str]:
    """Every key ``model`` and the models nested in it accept (for "did you mean")."""
    seen: set[type[BaseModel]] = set()
    names: set[str] = set()

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation in seen:
                return
            seen.add(annotation)
            for name, info in annotation.model_fields.items():
                names.add(name)
                walk(info.annotation)
        for arg in getattr(annotation, "__args__", ()) or ():
            walk(arg)

    walk(model)
    return names


def describe_validation_error(exc: Any, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """One line per problem, never echoing the offending value (it may be a secret). With
    ``model``, an unknown key gets the closest key the model accepts."""
    import difflib
    known = sorted(field_names(model)) if model is not None else []
    errors = exc.errors()
    telling = [err for err in errors if err.get("type") not in _BRANCH_MISMATCH]
    parts: list[str] = []
    for err in telling or errors:
        where = _key_path(tuple(err.get("loc", ())))
        where = f"{prefix}.{where}" if prefix and where else (where or prefix)
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown key"
            loc = err.get("loc") or ("",)
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.75)
            if close:
                msg += f" (did you mean {close[0]!r}?)"
        line = f"{where}: {msg}"
        if line not in parts:
            parts.append(line)
    return "; ".join(parts)


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS)


def redacted(value: Any, key: str = "") -> Any:
    """A copy of ``value`` (settings dump, headers, payload) with secrets masked."""
    if isinstance(value, SecretStr):
        return "**********" if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        return {k: redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if key and _is_secret_key(key):
            return ["**********" for _ in value]
        return [redacted(v, key) for v in value]
    if key and _is_secret_key(key) and value not in (None, "", False):
        return "**********"
    if isinstance(value, Path):
        return str(value)
    return value
