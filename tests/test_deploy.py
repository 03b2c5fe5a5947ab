"""Deployment files do what docs/deploying.md says: the Dockerfile, compose.yaml, the systemd units
and the health check script.

Without Docker, the files are read and their invariants checked (non-root user, health checks,
serve + worker on PostgreSQL, every setting they set lands where it should), and the compose
services are run as real processes with the environment and commands compose would give them (the
smoke run of docs/deploying.md, on the test PostgreSQL instead of the compose one). With a Docker
daemon that can pull the base image, the image is built and run as well.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import NO_PG_REASON
from serve_support import Running
from sqlalchemy.engine import make_url

from connectzap.cli import cli
from connectzap.core.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONNECTZAP = BIN / "connectzap"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"
UNITS = {"serve": ROOT / "deploy" / "connectzap.service", "worker": ROOT / "deploy" / "connectzap-worker.service"}
PG_URL = os.environ.get("CONNECTZAP_TEST_DATABASE_URL")


# --- reading the files ---------------------------------------------------------------------------

def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += (" " if current else "") + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            lines.append(current)
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last_from = max(n for n, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for op, args in final_stage():
        if op == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def build_args() -> dict[str, str]:
    return {k: v for op, args in dockerfile() if op == "ARG" for k, _, v in [args.partition("=")]}


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec form (a JSON list), not a shell string: {args}"
    return value


def interpolate(value: Any) -> Any:
    """Compose's ${NAME:-default} / ${NAME:?error}, as on a machine where none of them is set."""
    if isinstance(value, str):
        def one(match: re.Match[str]) -> str:
            name, op, rest = match.group(1), match.group(2), match.group(3)
            if op == ":?":
                raise AssertionError(f"compose.yaml requires ${{{name}}} to be set: {rest}")
            return rest if op == ":-" else ""
        return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


def compose() -> dict[str, Any]:
    return interpolate(yaml.safe_load((ROOT / "compose.yaml").read_text()))


def service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a named volume or a path relative to compose.yaml)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        found[target] = source
    return found


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file: section -> key -> every value given (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), f"{path.name}:{n}: broken section header"
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"{path.name}:{n}: not KEY=VALUE inside a section: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def dockerignored(path: str) -> bool:
    """Whether .dockerignore leaves ``path`` out of the build context (the last matching rule wins)."""
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        keep = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            ignored = not keep
    return ignored


def cli_args_parse(args: list[str]) -> None:
    """The subcommand and its options exist (click parses them without running anything)."""
    command = cli.commands[args[0]]
    command.make_context(args[0], list(args[1:]))


# --- the Dockerfile --------------------------------------------------------------------------------

def test_image_runs_as_an_unprivileged_user():
    users = [args for op, args in final_stage() if op == "USER"]
    assert users, "the final stage sets no USER: the container would run as root"
    name = users[-1].split(":")[0]
    assert name not in ("root", "0"), f"USER {users[-1]} is root"
    useradd = " ".join(args for op, args in final_stage() if op == "RUN")
    if name.isdigit():
        assert f"--uid {name}" in useradd, f"USER {name}: no user with that uid is created in the image"
    ops = [op for op, _ in final_stage()]
    after = ops[ops.index("USER"):]
    assert "RUN" not in after, "a RUN after USER would run unprivileged: order the steps so USER comes last"


def test_image_health_check_runs_the_script_on_serve():
    checks = [args for op, args in final_stage() if op == "HEALTHCHECK"]
    assert len(checks) == 1, "the final stage needs exactly one HEALTHCHECK"
    options, _, command = checks[0].partition("CMD ")
    argv = exec_form(command)
    script = argv[-1]
    copies = [args.split() for op, args in final_stage() if op == "COPY" and "--from" not in args]
    assert ["deploy/healthcheck.py", script] in copies, f"{script} is not copied from deploy/healthcheck.py"
    assert "--worker" not in argv, "the image's default command is serve: check serve"
    assert "--timeout=" in options and "--start-period=" in options
    assert exec_form(dict(final_stage())["ENTRYPOINT"]) == ["connectzap"]
    assert exec_form(dict(final_stage())["CMD"]) == ["serve"]


def test_image_settings_land_where_serve_reads_them(monkeypatch):
    env = image_env()
    for key, value in env.items():
        if key.startswith("CONNECTZAP_"):
            monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.api.host == "0.0.0.0", "serve must listen on every interface inside a container"
    assert [args for op, args in final_stage() if op == "EXPOSE"] == [str(settings.api.port)]
    volumes = [v for op, args in final_stage() if op == "VOLUME" for v in exec_form(args)]
    assert str(settings.data_dir) in volumes, "data_dir must be a volume, or state dies with the container"
    assert dict(final_stage())["WORKDIR"] == str(settings.data_dir)


def test_image_base_is_slim_python_311_and_the_context_holds_what_it_copies():
    base = build_args()["PYTHON_IMAGE"]
    first = (ROOT / "Dockerfile").read_text().splitlines()[0].replace(" ", "").lower()
    assert not first.startswith("#syntax="), "a syntax line makes BuildKit pull a frontend: air-gapped builds fail"
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base), base
    assert all(args.split()[0] == "${PYTHON_IMAGE}" for op, args in dockerfile() if op == "FROM")
    for op, args in dockerfile():
        if op == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: no such file"
                assert not dockerignored(source.rstrip("/")), f"COPY {source}: .dockerignore leaves it out"
    assert dockerignored(".venv") and dockerignored("tests/test_deploy.py") and dockerignored(".git")


# --- compose.yaml ----------------------------------------------------------------------------------

def test_compose_runs_serve_and_a_worker_on_the_postgres_service():
    services = compose()["services"]
    assert {"postgres", "serve", "worker"} <= set(services)
    db = services["postgres"]
    assert db["healthcheck"]["test"], "postgres needs a health check for depends_on to wait on"
    db_env = service_env(db)
    assert services["serve"]["command"] == ["serve", "--no-workers"]
    assert services["worker"]["command"] == ["worker"]
    for name in ("serve", "worker"):
        service = services[name]
        cli_args_parse(service["command"])
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        url = make_url(service_env(service)["CONNECTZAP_DATABASE__URL"])
        assert url.drivername == "postgresql+psycopg"
        assert (url.host, url.port) == ("postgres", 5432), f"{name} does not reach the postgres service"
        assert url.username == db_env["POSTGRES_USER"] and url.password == db_env["POSTGRES_PASSWORD"]
        assert url.database == db_env["POSTGRES_DB"]
        assert service["image"] == services["serve"]["image"] and service.get("build") == "."
    # serve migrates the schema and writes the keys into the shared volume before the worker starts.
    assert services["worker"]["depends_on"]["serve"]["condition"] == "service_healthy"


def test_compose_health_checks_and_ports_match_the_image():
    services = compose()["services"]
    env = image_env()
    serve_check = services["serve"]["healthcheck"]["test"]
    worker_check = services["worker"]["healthcheck"]["test"]
    script = exec_form(next(args for op, args in final_stage() if op == "HEALTHCHECK").partition("CMD ")[2])[-1]
    assert serve_check[0] == "CMD" and serve_check[-1] == script
    assert worker_check[0] == "CMD" and worker_check[-2:] == [script, "--worker"]
    published = [p.rsplit(":", 1)[-1] for p in services["serve"]["ports"]]
    port = service_env(services["serve"]).get("CONNECTZAP_API__PORT", env["CONNECTZAP_API__PORT"])
    assert published == [port]
    assert "ports" not in services["worker"] and "ports" not in services["postgres"]


def test_compose_mounts_a_valid_config_and_shares_the_data_volume():
    spec = compose()
    services = spec["services"]
    serve_env, worker_env = service_env(services["serve"]), service_env(services["worker"])
    config = serve_env["CONNECTZAP_CONFIG"]
    source = mounts(services["serve"])[config]
    assert (ROOT / source).is_file(), f"compose mounts {source}, which does not exist"
    load_settings(ROOT / source)  # raises on a bad key
    data = serve_env.get("CONNECTZAP_DATA_DIR", image_env()["CONNECTZAP_DATA_DIR"])
    volume = mounts(services["serve"])[data]
    assert volume in spec["volumes"], f"{data} is not on a named volume"
    assert mounts(services["worker"])[data] == volume, "serve and worker must share the hash and API keys"
    assert worker_env == serve_env


# --- systemd ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", sorted(UNITS))
def test_systemd_unit_is_hardened_and_wired(role):
    parsed = unit(UNITS[role])
    service = parsed["Service"]

    def one(key: str) -> str:
        assert key in service, f"{UNITS[role].name}: no {key}="
        return service[key][-1]

    dynamic = service.get("DynamicUser", ["no"])[-1] == "yes"
    assert dynamic or one("User") not in ("root", "0"), "run as a dedicated user or DynamicUser=yes"
    assert one("ProtectSystem") == "strict" and one("NoNewPrivileges") == "yes"
    assert one("CapabilityBoundingSet") == ""
    state = one("StateDirectory")
    env = dict(value.split("=", 1) for value in service.get("Environment", []))
    assert env["CONNECTZAP_DATA_DIR"] == f"/var/lib/{state}", "data_dir must be the StateDirectory"
    assert one("WorkingDirectory") == f"/var/lib/{state}"
    assert one("EnvironmentFile").lstrip("-").startswith("/etc/"), "secrets come from an EnvironmentFile"
    assert env["CONNECTZAP_CONFIG"].startswith("/etc/")
    argv = shlex.split(one("ExecStart"))
    assert Path(argv[0]).name == "connectzap" and argv[1] == role
    cli_args_parse(argv[1:])
    assert int(one("TimeoutStopSec")) > 30, "serve takes up to 30 s to answer requests in flight"
    assert parsed["Install"]["WantedBy"] == ["multi-user.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("role", sorted(UNITS))
def test_systemd_analyze_verifies_the_unit(role, tmp_path):
    """verify also checks that ExecStart's program exists: point it at this environment's connectzap."""
    text = UNITS[role].read_text()
    assert "/opt/connectzap/bin/connectzap" in text
    copy = tmp_path / UNITS[role].name
    copy.write_text(text.replace("/opt/connectzap/bin/connectzap", str(CONNECTZAP)))
    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (done.stdout + done.stderr).splitlines() if copy.name in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr
    usage = subprocess.run(["systemd-analyze", "security", "--help"], capture_output=True, text=True, timeout=60)
    if "--offline" in usage.stdout:  # systemd 250+: score the unit file without loading it
        # Exposure on systemd's 0-100 scale; a unit without hardening scores 96, these 14 ("OK").
        scored = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=20", str(copy)],
                                capture_output=True, text=True, timeout=60)
        assert scored.returncode == 0, scored.stdout[-3000:] + scored.stderr


# --- the compose services as real processes --------------------------------------------------------

def wait_for(check, what: str, within: float = 90, every: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"never happened: {what}")


def container_env(service: str, data_dir: Path, database_url: str) -> dict[str, str]:
    """What the container's process would see: image ENV, then the service's environment; the paths
    and the database are this machine's (the config file is the one compose mounts)."""
    spec = compose()["services"][service]
    env = {**os.environ, **image_env(), **service_env(spec)}
    env.pop("CONNECTZAP_TEST_DATABASE_URL", None)
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env["CONNECTZAP_LOAD_PLUGINS"] = ""  # bundled plugins only, whatever else this venv has installed
    env["CONNECTZAP_CONFIG"] = str(ROOT / mounts(spec)[env["CONNECTZAP_CONFIG"]])
    env["CONNECTZAP_DATA_DIR"] = str(data_dir)
    env["CONNECTZAP_DATABASE__URL"] = database_url
    env["CONNECTZAP_API__HOST"] = "127.0.0.1"  # 0.0.0.0 inside a container; loopback here
    env["CONNECTZAP_WORKERS__POLL_INTERVAL_SECONDS"] = "0.05"
    env["CONNECTZAP_SANDBOX__QUIET"] = "true"
    return env


def healthcheck(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HEALTHCHECK), *args], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def fresh_postgres() -> Any:
    """An empty PostgreSQL schema, as the compose database is on first start: the services migrate it."""
    from connectzap.testing.apps import _postgres_schema_url, drop_postgres_schema
    assert PG_URL
    url = _postgres_schema_url(PG_URL)
    yield url
    drop_postgres_schema(url)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason=NO_PG_REASON)
def test_compose_services_run_as_wired_and_pass_the_documented_smoke_run(fresh_postgres, tmp_path):
    phone = "+14155550123"
    serve_env = container_env("serve", tmp_path, fresh_postgres)
    serve_env["CONNECTZAP_API__PORT"] = "0"  # a free port; the health check is told the one chosen
    worker_env = container_env("worker", tmp_path, fresh_postgres)
    services = compose()["services"]
    serve = Running([str(CONNECTZAP), *services["serve"]["command"]], serve_env)
    worker = None
    try:
        url = serve.wait_for_line("serving on ").split("serving on ", 1)[1].split()[0]
        port = url.rsplit(":", 1)[1]
        check_env = {**serve_env, "CONNECTZAP_API__PORT": port}
        served = healthcheck(check_env)
        assert served.returncode == 0 and served.stdout.startswith("healthy: "), served.stdout + served.stderr
        assert "ok=true" in served.stdout and 'channel="sandbox"' in served.stdout
        lonely = healthcheck(worker_env, "--worker")
        assert lonely.returncode == 1 and "no worker" in lonely.stdout, lonely.stdout + lonely.stderr

        worker = Running([str(CONNECTZAP), *services["worker"]["command"]], worker_env)
        alive = wait_for(lambda: (r := healthcheck(worker_env, "--worker")).returncode == 0 and r,
                         "the worker's health check", every=1)
        assert alive.stdout.startswith("healthy: 1 worker(s)")

        # The smoke run of docs/deploying.md: consent, an inbound message, a reply, the sandbox log.
        key = (tmp_path / "api-key").read_text().strip()
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, timeout=30) as client:
            health = client.get("/healthz").json()
            assert health["ok"] is True and health["workers"] >= 1, health
            consent = client.put(f"/v1/contacts/{phone}/consent", headers=auth, json={
                "categories": ["utility"], "source": "signup form", "proof": "Yes, send me order updates"})
            assert consent.status_code == 200, consent.text
            inbound = json.dumps({"kind": "inbound_message", "data": {
                "wamid": "wamid.deploy-smoke", "type": "text", "contact": {"phone": phone},
                "text": "Hi, where is my order?"}})
            fed = subprocess.run([str(CONNECTZAP), "simulate", "--live", "--yes", "-"], input=inbound,
                                 env=serve_env, capture_output=True, text=True, timeout=120)
            assert fed.returncode == 0, fed.stdout + fed.stderr
            send = client.post("/v1/messages", headers=auth, json={
                "to": phone, "content": {"type": "text", "body": "It ships today!"}})
            assert send.status_code == 202, send.text
            sandbox = tmp_path / "sandbox-sends.jsonl"
            wait_for(lambda: sandbox.exists() and "It ships today!" in sandbox.read_text(), "the sandbox send")
            shown = wait_for(lambda: (m := client.get(f"/v1/messages/{send.json()['id']}", headers=auth).json())
                             ["status"] in ("sent", "delivered") and m, "the message sent")
        sent = [json.loads(line)["body"] for line in sandbox.read_text().splitlines()]
        assert sent[-1]["to"] == phone.lstrip("+") and sent[-1]["text"]["body"] == "It ships today!"
        assert shown["id"] == send.json()["id"]
    finally:
        codes = [worker.stop() if worker else 0, serve.stop()]
    assert codes == [0, 0], "".join(serve.output) + "".join(worker.output if worker else [])
    for process in (serve, worker):
        assert "Traceback" not in "".join(process.output)


# --- the image, when Docker can build it ------------------------------------------------------------
# Containers share the host's network (loopback only, a port chosen here), so the test needs no
# bridge and sends nothing beyond this machine. CONNECTZAP_TEST_DOCKER_BASE names a stand-in for the
# python:3.11-slim base where Docker Hub cannot be reached (a local Debian 12 image with python3.11,
# python3-venv and python-is-python3 does).

DOCKER_BASE = os.environ.get("CONNECTZAP_TEST_DOCKER_BASE")


def docker_or_skip() -> tuple[str, str]:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker command on this machine: the image is not built (the file checks above still ran)")
    info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                          timeout=60)
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        pytest.skip(f"no Docker daemon answers ({reason}): the image is not built")
    base = DOCKER_BASE or build_args()["PYTHON_IMAGE"]
    have = subprocess.run([docker, "image", "inspect", base], capture_output=True, timeout=60).returncode == 0
    if not have:
        pulled = subprocess.run([docker, "pull", base], capture_output=True, text=True, timeout=600)
        if pulled.returncode != 0:
            reason = (pulled.stderr.strip().splitlines() or ["failed"])[-1]
            pytest.skip(f"the base image {base} cannot be pulled ({reason}): the image is not built "
                        "(CONNECTZAP_TEST_DOCKER_BASE may name a local stand-in)")
    return docker, base


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Docker:
    """The image built once per test, and every container and volume it made removed afterwards."""

    def __init__(self, docker: str, base: str) -> None:
        self.docker, self.base = docker, base
        self.tag = f"connectzap-test:{os.getpid()}"
        self.made: list[tuple[str, str]] = []

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.docker, *args], capture_output=True, text=True, timeout=timeout)

    def build(self) -> None:
        built = self("build", "--network", "host", "--build-arg", f"PYTHON_IMAGE={self.base}", "-t", self.tag,
                     str(ROOT), timeout=1800)
        assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
        self.made.append(("rmi", self.tag))

    def volume(self) -> str:
        name = f"connectzap-test-{os.getpid()}-{len(self.made)}"
        self.made.append(("volume", name))
        return name

    def run(self, name: str, *options: str, command: tuple[str, ...] = ()) -> str:
        name = f"connectzap-test-{os.getpid()}-{name}"
        self.made.insert(0, ("rm", name))
        started = self("run", "-d", "--name", name, "--network", "host", *options, self.tag, *command)
        assert started.returncode == 0, started.stderr
        return name

    def health(self, name: str) -> str:
        def verdict() -> str | None:
            status = self("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()
            return status if status in ("healthy", "unhealthy") else None
        status = wait_for(verdict, f"a health check verdict on {name}", within=240, every=1)
        return str(status)

    def logs(self, name: str) -> str:
        done = self("logs", name)
        checks = self("inspect", "--format", "{{json .State.Health.Log}}", name).stdout
        return done.stdout + done.stderr + "\nhealth checks: " + checks

    def clean(self) -> None:
        for kind, name in self.made:
            if kind == "rm":
                self("rm", "-f", "-v", name)
            elif kind == "volume":
                self("volume", "rm", "-f", name)
            else:
                self("rmi", "-f", name)


@pytest.fixture
def docker() -> Any:
    made = Docker(*docker_or_skip())
    try:
        made.build()
        yield made
    finally:
        made.clean()


@pytest.mark.slow
def test_image_serves_healthy_as_non_root_keeps_state_in_the_volume_and_stops_cleanly(docker):
    port = free_port()
    data = docker.volume()
    name = docker.run("serve", "-v", f"{data}:/data", "-e", "CONNECTZAP_API__HOST=127.0.0.1",
                      "-e", f"CONNECTZAP_API__PORT={port}", "--health-interval", "2s", "--health-start-period", "120s")
    assert docker.health(name) == "healthy", docker.logs(name)
    health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
    assert health.status_code == 200 and health.json()["ok"] is True and health.json()["channel"] == "sandbox"
    assert docker("exec", name, "id", "-u").stdout.strip() == "10001"
    owners = docker("exec", name, "stat", "-c", "%u %a %n", "/data", "/data/api-key", "/data/hash-secret")
    assert owners.stdout.split("\n")[:3] == ["10001 755 /data", "10001 600 /data/api-key",
                                              "10001 600 /data/hash-secret"], owners.stdout + owners.stderr
    assert f"connectzap serving on http://127.0.0.1:{port} (sqlite, channel sandbox" in docker.logs(name)
    assert docker("stop", "-t", "40", name, timeout=90).returncode == 0
    assert docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0", docker.logs(name)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason=NO_PG_REASON)
def test_image_runs_the_compose_services_serve_and_worker_on_postgres(docker, fresh_postgres):
    """compose.yaml's two connectzap services, as containers of the built image on one data volume,
    with the test PostgreSQL standing in for the compose one: both healthy, and a message sent."""
    services = compose()["services"]
    port = free_port()
    data = docker.volume()
    shared = ["-v", f"{data}:/data", "-e", f"CONNECTZAP_DATABASE__URL={fresh_postgres}",
              "-e", "CONNECTZAP_API__HOST=127.0.0.1", "-e", f"CONNECTZAP_API__PORT={port}"]
    serve = docker.run("serve-pg", *shared, "--health-interval", "2s",
                       "--health-start-period", "120s", command=tuple(services["serve"]["command"]))
    assert docker.health(serve) == "healthy", docker.logs(serve)
    worker_check = services["worker"]["healthcheck"]
    worker = docker.run("worker", *shared, "--health-cmd", shlex.join(worker_check["test"][1:]),
                        "--health-timeout", worker_check["timeout"], "--health-interval", "2s",
                        "--health-start-period", "120s", command=tuple(services["worker"]["command"]))
    assert docker.health(worker) == "healthy", docker.logs(worker)
    key = docker("exec", serve, "cat", "/data/api-key").stdout.strip()
    auth = {"Authorization": f"Bearer {key}"}
    phone = "+14155550123"
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        assert client.get("/healthz").json()["workers"] >= 1
        assert client.put(f"/v1/contacts/{phone}/consent", headers=auth, json={
            "categories": ["utility"], "source": "signup form", "proof": "Yes"}).status_code == 200
        inbound = json.dumps({"kind": "inbound_message", "data": {
            "wamid": "wamid.image-smoke", "type": "text", "contact": {"phone": phone}, "text": "Hi"}})
        fed = subprocess.run([docker.docker, "exec", "-i", serve, "connectzap", "simulate", "--live", "--yes", "-"],
                             input=inbound, capture_output=True, text=True, timeout=180)
        assert fed.returncode == 0, fed.stdout + fed.stderr
        send = client.post("/v1/messages", headers=auth, json={
            "to": phone, "content": {"type": "text", "body": "It ships today!"}})
        assert send.status_code == 202, send.text
    line = wait_for(lambda: "It ships today!" in (out := docker("exec", serve, "cat", "/data/sandbox-sends.jsonl")
                                                  .stdout) and out, "the worker's sandbox send", every=1)
    assert json.loads(line.splitlines()[-1])["body"]["to"] == phone.lstrip("+")
    for name in (worker, serve):
        assert docker("stop", "-t", "40", name, timeout=90).returncode == 0
        assert docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0", docker.logs(name)
