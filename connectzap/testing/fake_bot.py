"""A chatbot stand-in for testing the chatbot bridge (``[plugins.chatbot] url``): a local HTTP
server that records every request and answers as told -- messages, "later", an HTTP error, a
body that is not a valid answer, or nothing for a while (a slow bot)::

    with FakeBot() as bot:
        bot.answer({"type": "text", "body": "Hola, ¿en qué te ayudo?"})
        ...  # [plugins.chatbot] url = bot.url
        bot.stall(10)          # the next requests get no answer for 10 s
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class BotRequest:
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


class FakeBot:
    def __init__(self) -> None:
        self.requests: list[BotRequest] = []
        self._status = 200
        self._body: bytes = b'{"messages": []}'
        self._delay = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self.released = threading.Event()
        """Set to let stalled requests finish at once (a test's clean-up)."""

    # --- what the bot answers ------------------------------------------------------------------

    def answer(self, *messages: dict[str, Any]) -> None:
        """Answer with these outbound contents (``{"type": "text", "body": ...}``)."""
        self._set(200, json.dumps({"messages": list(messages)}).encode(), 0.0)

    def later(self) -> None:
        """Answer 202: the bot will answer through the REST API."""
        self._set(202, b"", 0.0)

    def fail(self, status: int = 500) -> None:
        self._set(status, b'{"error": "bot broken"}', 0.0)

    def garbage(self, body: bytes = b"<html>not an answer</html>") -> None:
        self._set(200, body, 0.0)

    def stall(self, seconds: float) -> None:
        """Hold each answer ``seconds`` before sending it (keeps the current answer)."""
        with self._lock:
            self._delay = seconds

    def _set(self, status: int, body: bytes, delay: float) -> None:
        with self._lock:
            self._status, self._body, self._delay = status, body, delay

    # --- serving -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start the bot first (with FakeBot() as bot)"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/bot"

    def __enter__(self) -> FakeBot:
        bot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with bot._lock:
                    bot.requests.append(BotRequest(body, {k.lower(): v for k, v in self.headers.items()}))
                    status, answer, delay = bot._status, bot._body, bot._delay
                if delay:
                    bot.released.wait(delay)
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the bridge gave up waiting and closed the connection

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float = 30.0) -> list[BotRequest]:
        """The requests once ``count`` arrived (polling; generous for a loaded machine)."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.requests)
