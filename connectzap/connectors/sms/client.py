"""An async client for the one Twilio REST call connectzap makes: create a Message.

``POST {api_base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with a form body (``To``,
``From`` or ``MessagingServiceSid``, ``Body``, ``StatusCallback``), HTTP basic auth with the account
SID and auth token. The token lives in a ``SecretStr`` and in httpx's auth only: it is in no repr,
log line or error. Non-2xx answers and requests without an answer become errors of the tree
(:mod:`.errors`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from .errors import classify, from_transport
from .settings import SmsSettings


class TwilioClient:
    """One client per channel, made inside the running event loop (and again when the loop
    changes: CLI commands run several short loops)."""

    def __init__(self, settings: SmsSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"TwilioClient(base_url={self.settings.api_base_url!r}, account_sid={self.settings.account_sid!r})"

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            auth = httpx.BasicAuth(self.settings.account_sid, self.settings.auth_token.get_secret_value())
            self._http = httpx.AsyncClient(base_url=self.settings.api_base_url, auth=auth, transport=self._transport,
                                           timeout=httpx.Timeout(self.settings.timeout_seconds))
            self._loop = loop
        return self._http

    async def create_message(self, form: dict[str, str]) -> dict[str, Any]:
        """Send one message; the Message resource Twilio answered with (its ``sid``, ``status``...)."""
        try:
            response = await self._client().post(self.settings.messages_path, data=form)
        except (httpx.TransportError, TimeoutError) as exc:
            raise from_transport(exc) from None
        try:
            payload = json.loads(response.content) if response.content else None
        except ValueError:
            payload = None
        if response.status_code >= 300:
            raise classify(response.status_code, payload, response.headers)
        if not isinstance(payload, dict) or not isinstance(payload.get("sid"), str):
            # Twilio took the request (2xx) but the answer is unreadable: the message may be out.
            raise from_transport(httpx.DecodingError("the answer carries no message sid"))
        return payload

    async def aclose(self) -> None:
        http, self._http, self._loop = self._http, None, None
        if http is not None:
            await http.aclose()
