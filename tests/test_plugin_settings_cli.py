"""A mistake in a plugin's section stops ``doctor``, ``serve`` and ``worker`` before any order arrives.

Each case runs the CLI as a user types it, in a subprocess: one ``error: ...`` line on stderr naming
the config file, the key and the reason, exit code 1, no traceback -- and ``serve`` never starts
listening. Before this, each of these became a dead letter at the first real order (or was ignored).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectzap.cli.exits import ExitCode

HEAD = '[sandbox]\nquiet = true\n[api]\nkeys = ["a-long-enough-api-key-for-tests"]\nport = 0\n'
RULE = '''
[[plugins.order_notifications.rules]]
status = "processing"
template = "order_confirmation"
language = "en"
params = ["{{ first_name }}", "{{ number }}"]
'''


def connectzap(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CONNECTZAP_"))}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "connectzap", "--config", str(config), *args], cwd=config.parent,
                          env=environment, capture_output=True, text=True, timeout=120)


def write(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "connectzap.toml"
    config.write_text(HEAD + text)
    return config


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a refusal."""
    assert done.returncode == ExitCode.ERROR, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr and "connectzap serving" not in done.stdout + done.stderr
    return lines[0]


def seed_cache(config: Path) -> None:
    """The rule's template in the template cache, as `templates sync` leaves it."""
    from connectzap import Connectzap, load_settings
    from connectzap.testing import seed_template
    app = Connectzap(load_settings(config)).start()
    seed_template(app, "order_confirmation", "Hi {{1}}, order {{2}} is confirmed")
    app.close()


CASES = {
    "typo'd key": (RULE.replace("template =", "templat ="),
                   "plugins.order_notifications.rules.0.templat: unknown key (did you mean 'template'?)"),
    "misspelt section": (RULE.replace("plugins.order_notifications", "plugins.order_notification"),
                         "[plugins.order_notification]: no plugin has this name "
                         "(did you mean 'order_notifications'?)"),
    "broken Jinja": (RULE.replace("{{ number }}", "{{ number }"),
                     "plugins.order_notifications.rules.0.params.1: not valid Jinja"),
    "unknown variable": (RULE.replace("{{ first_name }}", "{{ frist_name }}"),
                         "plugins.order_notifications.rules.0.params.0: unknown variable 'frist_name' "
                         "(did you mean 'first_name'?)"),
    "unknown template": (RULE.replace('template = "order_confirmation"', 'template = "order_confirmaton"'),
                         "plugins.order_notifications.rules.0.template: template 'order_confirmaton' is not in "
                         "the template cache (did you mean 'order_confirmation'?)"),
    "missing translation": (RULE.replace('language = "en"', 'languages = { DE = "de" }\ndefault_language = "en"'),
                            "plugins.order_notifications.rules.0.template: template 'order_confirmation' has no "
                            "de translation in the template cache"),
    "lead welcome": ('[plugins.lead_welcome]\ntemplate = "order_confirmation"\nparams = ["{% if %}"]\n',
                     "plugins.lead_welcome.params.0: not valid Jinja"),
    "opt-out keywords": ('[plugins.opt_out_keywords]\ncategories = ["marketting"]\n',
                         "plugins.opt_out_keywords.categories.0: Input should be"),
    "misspelt connector": ('[connectors.hubspt]\naccess_token = "pat-x"\n',
                           "[connectors.hubspt]: no connector has this name (did you mean 'hubspot'?)"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_doctor_serve_and_worker_refuse_with_one_line(tmp_path: Path, case: str) -> None:
    text, reason = CASES[case]
    config = write(tmp_path, RULE)
    seed_cache(config)  # the good config, with its template in the cache, is fine...
    assert connectzap(config, "doctor").stdout.strip().endswith("ok")
    config.write_text(HEAD + text)  # ...and the mistake is what stops it
    # serve and worker share the check (the worker once is enough: each start costs a process)
    for command in ("doctor", "serve", "worker") if case == "unknown template" else ("doctor", "serve"):
        line = refused(connectzap(config, command))
        assert line.startswith(f"error: {config}: "), line
        assert reason in line, line


@pytest.mark.slow
def test_a_fresh_cache_names_every_missing_template_at_once(tmp_path: Path) -> None:
    config = write(tmp_path, RULE + '[plugins.order_notifications.owner]\nphone = "+4915112345678"\n'
                                    'template = "new_order_alert"\n')
    line = refused(connectzap(config, "serve"))
    assert "rules.0.template: template 'order_confirmation' is not in the template cache" in line
    assert "owner.template: template 'new_order_alert' is not in the template cache" in line
    assert "connectzap templates sync" in line


@pytest.mark.slow
def test_doctor_reports_unknown_environment_variables(tmp_path: Path) -> None:
    config = write(tmp_path, "")
    done = connectzap(config, "doctor", env={"CONNECTZAP_WORKERS_MAX_ATTEMPTS": "3",
                                             "CONNECTZAP_CONECTORS__HUBSPOT__ACCESS_TOKEN": "pat-x",
                                             "CONNECTZAP_NONSENSE": "1",
                                             "CONNECTZAP_WORKERS__BATCH_SIZE": "5",
                                             "CONNECTZAP_DEBUG": ""})
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stdout.splitlines() if line.startswith("warning: environment")]
    assert warnings == [
        "warning: environment variable CONNECTZAP_CONECTORS__HUBSPOT__ACCESS_TOKEN is not a connectzap setting",
        "warning: environment variable CONNECTZAP_NONSENSE is not a connectzap setting",
        "warning: environment variable CONNECTZAP_WORKERS_MAX_ATTEMPTS is not a connectzap setting "
        "(did you mean CONNECTZAP_WORKERS__MAX_ATTEMPTS?)",
    ]
    assert done.stdout.strip().endswith("3 warnings")


@pytest.mark.slow
def test_a_misspelt_section_from_the_environment_is_refused_too(tmp_path: Path) -> None:
    config = write(tmp_path, "")
    line = refused(connectzap(config, "doctor", env={"CONNECTZAP_PLUGINS__ORDER_NOTIFICATION__RULES": "[]"}))
    assert "[plugins.order_notification]: no plugin has this name (did you mean 'order_notifications'?)" in line


GENERIC = """
[connectors.generic.sources.bookings.auth]
scheme = "standard"
secrets = ["whsec_q4hnRiw3JONFzfu7ioJm3HhYlRjFq1b0"]

[[connectors.generic.sources.bookings.mappings]]
kind = "send"
phone = "data.client.phone"
template = "appointment_remindr"
language = "en"
"""


@pytest.mark.slow
def test_a_generic_send_mapping_naming_an_unknown_template_is_refused(tmp_path: Path) -> None:
    config = write(tmp_path, RULE + GENERIC.replace("appointment_remindr", "order_confirmation"))
    seed_cache(config)
    assert connectzap(config, "doctor").stdout.strip().endswith("ok")
    config.write_text(HEAD + RULE + GENERIC)
    line = refused(connectzap(config, "serve"))
    assert line == (f"error: {config}: connectors.generic.sources.bookings.mappings.0.template: template "
                    "'appointment_remindr' is not in the template cache (create or approve it, then run: "
                    "connectzap templates sync)")
