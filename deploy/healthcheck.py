"""Container health check for connectzap (the image's HEALTHCHECK runs it; so can any supervisor).

    python healthcheck.py            # serve: GET /healthz on this machine, healthy on 200
    python healthcheck.py --worker   # worker: a heartbeat from a worker on this host in the last 30 s

Exit 0 when healthy, 1 otherwise, with one line on stdout saying why (Docker keeps it in
`docker inspect`). The serve check uses only the standard library, so it costs little every
interval. The port is ``CONNECTZAP_API__PORT`` (default 8000), as ``serve`` reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request

HEARTBEAT_SECONDS = 30  # what /healthz counts as a live worker; workers beat every few seconds


def check_serve(url: str, timeout: float) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return True, f"{url}: {answer.status} {_summary(answer.read())}"
    except urllib.error.HTTPError as exc:  # 503: /healthz says what needs attention
        return False, f"{url}: {exc.code} {_summary(exc.read())}"
    except (OSError, ValueError) as exc:
        return False, f"{url}: no answer ({getattr(exc, 'reason', exc)})"


def _summary(body: bytes) -> str:
    """The fields an operator needs from /healthz, on one line."""
    try:
        health = json.loads(body)
    except ValueError:
        return "(not JSON)"
    keys = ("ok", "database", "channel", "workers", "paused", "plugin_errors")
    return " ".join(f"{key}={json.dumps(health.get(key))}" for key in keys if key in health)


def check_worker(host: str) -> tuple[bool, str]:
    """A worker's id starts with its host name; in a container that is the container's own."""
    from sqlalchemy import create_engine, func, select
    from sqlalchemy.engine import make_url

    from connectzap.core.settings import load_settings
    from connectzap.core.store.schema import workers

    settings = load_settings()
    url = settings.database_url
    password = make_url(url).password
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            beats = conn.execute(select(func.count()).select_from(workers).where(
                workers.c.id.startswith(f"{host}:"),
                workers.c.heartbeat_at > time.time() - HEARTBEAT_SECONDS)).scalar_one()
    except Exception as exc:  # noqa: BLE001 -- any failure to read the heartbeat means unhealthy
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if password:
            text = text.replace(str(password), "**********")
        return False, f"database: {text}"
    finally:
        engine.dispose()
    if not beats:
        return False, f"no worker on {host} has beaten in the last {HEARTBEAT_SECONDS} s"
    return True, f"{beats} worker(s) on {host} alive"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help="check this host's `connectzap worker`")
    parser.add_argument("--url", help="the /healthz URL (default: http://127.0.0.1:$CONNECTZAP_API__PORT/healthz)")
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    if args.worker:
        ok, line = check_worker(socket.gethostname())
    else:
        url = args.url or f"http://127.0.0.1:{os.environ.get('CONNECTZAP_API__PORT', '8000')}/healthz"
        ok, line = check_serve(url, args.timeout)
    print(("healthy: " if ok else "unhealthy: ") + line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
