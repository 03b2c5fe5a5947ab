"""Configuration: TOML, environment overrides, redaction, and connectors that fail closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectzap import Connectzap
from connectzap.core.errors import ConfigurationError
from connectzap.core.settings import load_settings, redacted

TOKEN = "EAAG-very-secret-access-token"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connectzap.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n' + text)
    return path


def test_toml_values_and_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[workers]\nmax_attempts = 3\nbatch_size = 7\n[phones]\ndefault_region = \"DE\"\n")
    settings = load_settings(path)
    assert (settings.workers.max_attempts, settings.workers.batch_size, settings.phones.default_region) == (3, 7, "DE")
    assert settings.config_path == path
    monkeypatch.setenv("CONNECTZAP_WORKERS__MAX_ATTEMPTS", "11")
    monkeypatch.setenv("CONNECTZAP_PRIVACY__RETENTION_HOURS", "2.5")
    settings = load_settings(path)
    assert settings.workers.max_attempts == 11 and settings.workers.batch_size == 7  # env wins, file fills in
    assert settings.privacy.retention_hours == 2.5
    monkeypatch.setenv("CONNECTZAP_CONFIG", str(path))
    assert load_settings().workers.batch_size == 7


def test_defaults_run_on_this_machine(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'connectzap.db'}"
    assert settings.sandbox_log == tmp_path / "data" / "sandbox-sends.jsonl"
    secret = settings.hash_secret()
    assert len(secret) >= 32 and settings.hash_secret() == secret  # generated once, then kept
    assert (tmp_path / "data" / "hash-secret").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(("text", "needle"), [
    ("[workers]\nmax_attempts = 0\n", "workers.max_attempts"),
    ("[workers]\nmax_attemps = 3\n", "workers.max_attemps"),
    ("[privacy]\nretention_hours = -1\n", "privacy.retention_hours"),
    ("data_dir = = 1\n", "not valid TOML"),
])
def test_bad_config_is_one_line_naming_the_field(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(write(tmp_path, text))
    assert needle in caught.value.message and "\n" not in caught.value.message


def test_short_hash_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[privacy]\nhash_secret = "tiny"\n'))
    with pytest.raises(ConfigurationError) as caught:
        settings.hash_secret()
    assert "tiny" not in caught.value.message


def test_secrets_are_redacted_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTZAP_API__KEYS", '["api-key-one-0123456789"]')
    path = write(tmp_path, f'[privacy]\nhash_secret = "hash-secret-0123456789"\n'
                           f'[connectors.whatsapp]\naccess_token = "{TOKEN}"\napp_secrets = ["app-secret-1"]\n'
                           'verify_token = "verify-me"\nphone_number_id = "123"\n')
    settings = load_settings(path)
    shown = str(redacted(settings.model_dump())) + repr(settings) + str(settings)
    for secret in ("api-key-one-0123456789", "hash-secret-0123456789", TOKEN, "app-secret-1", "verify-me"):
        assert secret not in shown
    assert redacted(settings.model_dump())["connectors"]["whatsapp"]["phone_number_id"] == "123"


def test_whatsapp_with_a_token_but_no_app_secret_refuses_to_start(tmp_path: Path) -> None:
    path = write(tmp_path, f'[connectors.whatsapp]\naccess_token = "{TOKEN}"\nphone_number_id = "123"\n'
                           'verify_token = "verify-me"\n')
    app = Connectzap(load_settings(path))
    try:
        with pytest.raises(ConfigurationError) as caught:
            app.start()
    finally:
        app.close()
    message = caught.value.message
    assert "whatsapp" in message and "app_secrets" in message and "\n" not in message
    assert TOKEN not in message


def test_a_disabled_connector_needs_no_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, f'[connectors.whatsapp]\nenabled = false\naccess_token = "{TOKEN}"\n')
    app = Connectzap(load_settings(path)).start()
    try:
        # and with it gone, nothing offers a channel: sends wait (tests/test_channel.py)
        assert "whatsapp" not in app.connectors and app.channel_missing is not None
    finally:
        app.close()


@pytest.mark.parametrize("which", ["hash key", "api key"])
def test_processes_starting_together_get_one_generated_key_never_a_half_written_one(
        which: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """serve and a worker starting on a fresh data_dir: the first holds still while generating its
    key; the second, arriving meanwhile, must not read an empty file (an empty HMAC key would hash
    every number differently, silently) and both must end up with one and the same key."""
    import secrets
    import threading

    from connectzap.core.server import ensure_api_key
    from connectzap.core.settings import Settings

    generating, go_on = threading.Event(), threading.Event()
    made = iter(f"generated-key-number-{n}-0123456789abcdef" for n in range(10))

    def slow_first_then_quick(*_: object) -> str:
        value = next(made)
        if value.startswith("generated-key-number-0-"):
            generating.set()
            assert go_on.wait(timeout=30), "the second process never finished"
        return value

    name = "token_hex" if which == "hash key" else "token_urlsafe"
    monkeypatch.setattr(secrets, name, slow_first_then_quick)

    def key_of(settings: Settings) -> str:
        if which == "hash key":
            return settings.hash_secret().decode()
        ensure_api_key(settings)
        return settings.api.keys[0].get_secret_value()

    first: list[str] = []
    errors: list[BaseException] = []

    def start_first() -> None:
        try:
            first.append(key_of(Settings(data_dir=tmp_path)))
        except BaseException as exc:  # noqa: BLE001 -- reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=start_first)
    thread.start()
    assert generating.wait(timeout=30)
    try:
        second = key_of(Settings(data_dir=tmp_path))  # while the first is still generating
    finally:
        go_on.set()
        thread.join(timeout=30)
    assert not errors, errors
    assert second == first[0] == "generated-key-number-1-0123456789abcdef"
    assert oct((tmp_path / ("hash-secret" if which == "hash key" else "api-key")).stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["hash-secret" if which == "hash key" else "api-key"]


def test_an_unknown_key_names_the_closest_real_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(write(tmp_path, "[workers]\nmax_attemps = 3\n"))
    assert caught.value.message == "config.workers.max_attemps: unknown key (did you mean 'max_attempts'?)"
    with pytest.raises(ConfigurationError) as caught:
        load_settings(write(tmp_path, "[workers]\nzzz = 3\n"))
    assert caught.value.message == "config.workers.zzz: unknown key"  # nothing close: no guess


def test_every_variable_the_code_reads_is_declared_so_doctor_does_not_call_it_unknown() -> None:
    import re

    import connectzap
    from connectzap.core.settings import TOOL_VARIABLES, unknown_environment
    root = Path(connectzap.__file__).parent
    read = re.compile(r"""(?:environ(?:\.get)?\(|environ\[|getenv\(|envvar=|setdefault\()\s*"""
                      r"""["'](CONNECTZAP_[A-Z_]+)["']""")
    used = {name for path in root.rglob("*.py") for name in read.findall(path.read_text(encoding="utf-8"))}
    assert used and used <= set(TOOL_VARIABLES), sorted(used - set(TOOL_VARIABLES))
    assert unknown_environment({name: "1" for name in TOOL_VARIABLES}, {}) == []
    assert unknown_environment({"CONNECTZAP_WORKERS__BATCH_SIZE": "5", "PATH": "/bin"}, {}) == []
    assert unknown_environment({"CONNECTZAP_WORKERS__BATCH_SIZ": "5"}, {}) == [
        "environment variable CONNECTZAP_WORKERS__BATCH_SIZ is not a connectzap setting "
        "(did you mean CONNECTZAP_WORKERS__BATCH_SIZE?)"]
