"""Helpers for the tests that run connectzap as users run it: ``serve`` and ``worker`` as real
processes. Their config file, their environment, starting them with stderr where nothing blocks,
waiting on them, and the crash tests' shop (a plugin installed the way pip installs one, and its
orders journaled in bulk)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server_support import APP_SECRET, KEY

from connectzap import Category, ConsentChange, Connectzap, Event, EventKind
from connectzap.core.settings import load_settings
from connectzap.testing import seed_template
from connectzap.testing.apps import _postgres_schema_url
from connectzap.testing.venvs import fake_distribution

CONNECTZAP = Path(sys.executable).with_name("connectzap")


# --- configuration and environment ------------------------------------------------------------

def database_url(backend: str, tmp_path: Path) -> str:
    """A fresh database for processes to share: a PostgreSQL schema of its own, or a SQLite file."""
    if backend == "postgres":
        return _postgres_schema_url(os.environ["CONNECTZAP_TEST_DATABASE_URL"])
    return f"sqlite:///{tmp_path / 'connectzap.db'}"


def config_file(path: Path, *, data_dir: Path, database_url: str, rest: str) -> Path:
    """Write a config at ``path``: ``data_dir`` and ``[database] url``, then the test's own ``rest``."""
    path.write_text(f'data_dir = "{data_dir}"\n[database]\nurl = "{database_url}"\n' + rest.lstrip("\n"))
    return path


def sandbox_serve_config(folder: Path, database_url: str) -> Path:
    """The one-process smoke test's config: the API key, signed WhatsApp webhooks, the sandbox
    writing its sends to ``folder/sandbox.jsonl``."""
    return config_file(folder / "connectzap.toml", data_dir=folder, database_url=database_url, rest=f"""
[api]
keys = ["{KEY}"]
[sandbox]
log_file = "{folder / 'sandbox.jsonl'}"
quiet = true
[workers]
poll_interval_seconds = 0.05
[connectors.whatsapp]
app_secrets = ["{APP_SECRET}"]
verify_token = "smoke-verify-token"
""")


def process_env(**extra: str) -> dict[str, str]:
    """This test's environment for a child process, without the test runner's and connectzap's own
    variables (the config file says everything), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CONNECTZAP_"))}
    env.update(extra)
    return env


# --- starting and waiting -----------------------------------------------------------------------

def start_worker(config: Path, env: dict[str, str], stderr: Path) -> subprocess.Popen[bytes]:
    """``python -m connectzap --config FILE worker``. stderr goes to a file, not a pipe: nobody reads
    a pipe while the worker runs, and a full one would block its logging."""
    with stderr.open("ab") as err:
        return subprocess.Popen([sys.executable, "-m", "connectzap", "--config", str(config), "worker"],
                                env=env, stdout=subprocess.DEVNULL, stderr=err)


def finish_with_worker(config: Path, env: dict[str, str], stderr: Path, check: Callable[[], Any], what: str,
                       within: float) -> None:
    """Start a worker, wait until ``check`` holds, then stop it with SIGTERM: it must exit cleanly."""
    proc = start_worker(config, env, stderr)
    try:
        wait_for(check, what, within, proc=proc, log=stderr)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, stderr.read_text()[-3000:]


def start_serve(config: Path, env: dict[str, str], stderr: Path, *options: str) -> subprocess.Popen[bytes]:
    """``connectzap --config FILE serve OPTIONS``, stderr to a file (as :func:`start_worker`)."""
    with stderr.open("ab") as err:
        return subprocess.Popen([str(CONNECTZAP), "--config", str(config), "serve", *options], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)


def wait_for(check: Callable[[], Any], what: str, within: float = 60, *, proc: subprocess.Popen[Any] | None = None,
             log: Path | None = None, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something true, and return that. Fails naming ``what`` after
    ``within`` seconds, or at once when ``proc`` has exited -- with the end of ``log`` when given."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        tail = f": {log.read_text(errors='replace')[-3000:]}" if log is not None and log.exists() else ""
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited early ({proc.returncode}) waiting for {what}{tail}")
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}{tail}")
        time.sleep(every)


def logged_ids(log: Path) -> list[str]:
    """biz_opaque_callback_data of every complete line in the sandbox log (one per request made)."""
    if not log.exists():
        return []
    ids = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            ids.append(json.loads(line)["body"]["biz_opaque_callback_data"])
        except ValueError:
            continue  # a line still being written
    return ids


def free_port() -> int:
    """A port nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting to be reaped counts)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] == "Z"
    except FileNotFoundError:
        return True


class Running:
    """A process and its stderr lines as they arrive (read on a thread, so nothing blocks)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.output.append(line)
            self.lines.put(line)

    def wait_for_line(self, text: str, within: float = 90) -> str:
        """The first line (from here on) containing ``text``; fails when the process exits first."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if text in line:
                return line
        raise AssertionError(f"never said {text!r}:\n" + "".join(self.output))

    def stop(self) -> int:
        """SIGTERM, and the exit code (a process still there after a minute is killed, and fails)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


class Served(Running):
    """``connectzap --config FILE serve --port 0 OPTIONS`` (bundled plugins only unless ``env`` says
    otherwise); :meth:`url` waits for the line saying where it serves."""

    def __init__(self, config: Path, env: dict[str, str] | None = None, options: tuple[str, ...] = ()) -> None:
        super().__init__([str(CONNECTZAP), "--config", str(config), "serve", "--port", "0", *options],
                         env or {**os.environ, "CONNECTZAP_LOAD_PLUGINS": ""})

    def url(self, within: float = 60) -> str:
        return self.wait_for_line("serving on ", within).split("serving on ", 1)[1].split()[0]


# --- the crash tests' shop ------------------------------------------------------------------------

def crash_settings(log: Path) -> str:
    """The crash tests' settings: a fixed hash key (the observer reads what the workers wrote),
    leases and polls short enough for kills to matter, and the sandbox writing every request to
    ``log``."""
    return f"""
[privacy]
hash_secret = "crash-test-secret-0123456789"
[workers]
lease_seconds = 2
poll_interval_seconds = 0.05
batch_size = 25
[sandbox]
quiet = true
log_file = "{log}"
# No simulated statuses: they can settle a message before the kill, and then no message is ever
# caught mid-send, which is the path these tests must exercise.
simulate_statuses = false
# A real answer takes a while after Meta got the request; that gap is where a kill leaves a
# message sent but unrecorded.
latency_seconds = 0.05
"""


CRASH_PLUGIN = "cz_crash_plugin"
CRASH_PLUGIN_SOURCE = """
from connectzap import TemplateContent, hookimpl

@hookimpl
def on_order_created(order, ctx):
    ctx.send(order.customer, TemplateContent(name="order_confirmation", language="en", body=[order.id]),
             key=f"order:{order.id}")
"""


def crash_plugin_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a process running the crash plugin, installed as a distribution with a
    ``connectzap`` entry point on the path and selected with ``CONNECTZAP_LOAD_PLUGINS``."""
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "cz-crash-plugin", "1.0", CRASH_PLUGIN, CRASH_PLUGIN_SOURCE)
    return process_env(PYTHONPATH=str(site), CONNECTZAP_LOAD_PLUGINS=CRASH_PLUGIN, CONNECTZAP_STRICT_PLUGINS="1")


def journal_orders(config: Path, count: int) -> None:
    """``count`` consented orders (order ``n`` for ``+49151`` + ``10000000 + n``), journaled 500 at a
    time, and the template the crash plugin sends."""
    app = Connectzap(load_settings(config)).start()
    try:
        seed_template(app, "order_confirmation", "Order {{1}} is confirmed")
        for at in range(0, count, 500):
            batch = []
            for n in range(at, min(at + 500, count)):
                phone = f"+49151{10000000 + n}"
                consent = ConsentChange(phone=phone, category=Category.UTILITY, granted=True, source="checkout",
                                        proof="order confirmations by WhatsApp")
                batch.append(Event(kind=EventKind.ORDER_CREATED, source="shop", dedupe_key=f"order-{n}",
                                   consents=[consent],
                                   data={"id": str(n), "status": "processing", "customer": {"phone": phone}}))
            app.ingest(batch)
    finally:
        app.close()
