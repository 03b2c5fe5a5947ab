"""The sandbox channel: the embedded default when no WhatsApp credentials are configured.

It builds the exact Cloud API request body, validates it, answers with a wamid, appends the
body to a JSON-lines file, prints a one-line summary, and journals simulated ``sent`` and
``delivered`` statuses -- so the whole pipeline runs on a fresh machine with no account.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...core.bsuids import split
from ...core.channel import BaseChannel, OutboundSend
from ...core.clock import iso_utc, utcnow
from ...core.models import Event, EventKind, MessageStatus
from ...core.phones import mask
from .payloads import checked_body, read_receipt_body

if TYPE_CHECKING:
    from ...core.app import Connectzap

class SandboxChannel(BaseChannel):
    name = "sandbox"

    def __init__(self, app: Connectzap, log_file: Path | None = None) -> None:
        self.app = app
        self.path = log_file or app.settings.sandbox_log
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    async def send(self, message: OutboundSend) -> str:
        body = checked_body(message)
        wamid = "wamid.sandbox." + secrets.token_hex(12)
        # the engine's clock: the log's times agree with the outbox's, also under a test's clock
        self._append({"at": iso_utc(utcnow()), "wamid": wamid, "body": body})
        if not self.app.settings.sandbox.quiet:
            what = body["type"] + (f" {body['template']['name']}" if body["type"] == "template" else "")
            print(f"[sandbox] {what} -> {mask(message.recipient)} ({wamid})", file=sys.stderr)
        if self.app.settings.sandbox.latency_seconds:
            await asyncio.sleep(self.app.settings.sandbox.latency_seconds)  # the answer is still on its way
        if self.app.settings.sandbox.simulate_statuses:
            self._simulate(message, wamid)
        return wamid

    async def mark_read(self, wamid: str, *, typing: bool = False, phone_number_id: str | None = None) -> bool:
        """Log the read receipt (and typing indicator) request the Cloud API would get."""
        self._append({"at": iso_utc(utcnow()), "read": read_receipt_body(wamid, typing)})
        return True

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            # One write() of one line with O_APPEND: a crash leaves whole lines only.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    def _simulate(self, message: OutboundSend, wamid: str) -> None:
        events = []
        for status in ("sent", "delivered"):
            phone, user_id = split(message.recipient)
            st = MessageStatus(wamid=wamid, status=status, timestamp=utcnow(), recipient=phone,
                               recipient_user_id=user_id, outbox_id=message.outbox_id)
            events.append(Event.of(EventKind.MESSAGE_STATUS, st, source="sandbox", dedupe_key=f"{wamid}:{status}"))
        self.app.ingest(events)

    async def reconcile(self, outbox_id: str) -> Any:
        """The sandbox keeps its own log, so it can tell whether a message went out."""
        if not self.path.exists():
            return None
        needle = f'"biz_opaque_callback_data": "{outbox_id}"'
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if needle in line:
                    try:
                        return json.loads(line)["wamid"]
                    except (ValueError, KeyError):
                        continue
        return None

    def sent(self) -> list[dict[str, Any]]:
        """Every message request body the sandbox accepted, oldest first."""
        return [record["body"] for record in self._records() if "body" in record]

    def read_receipts(self) -> list[dict[str, Any]]:
        """Every read receipt (and typing indicator) request body, oldest first."""
        return [record["read"] for record in self._records() if "read" in record]

    def _records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line]

    async def aclose(self) -> None:
        return None
