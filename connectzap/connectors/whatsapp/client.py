"""An async client for the Graph API endpoints connectzap uses.

httpx is the API; the transport under it is configurable (``transport``): ``"aiohttp"``
(httpx-aiohttp) or ``"httpx"`` (httpx's own). The default was chosen by
``bench/send_throughput.py`` (figures in docs/whatsapp-sending.md). The access token lives in
a ``SecretStr`` and in the Authorization header only; it is never logged or shown in a repr.

Every non-2xx answer becomes one exception from :mod:`.errors`; so does a request that got no
answer -- ambiguous for sends (the message may be out), retriable for everything else.

Message sends take a lean path: a prepared ``httpx.Request`` handed straight to the client's
transport. ``AsyncClient.request`` cost about as much CPU per send as the transport itself
(URL merging, header merging, the auth and redirect generators, and above all the cookie jar).
On the ``aiohttp`` transport a send goes one step further: straight to the transport's own
aiohttp session (the same connection pool), with the headers and timeouts the transport would
have given it and aiohttp's errors mapped to httpx's as the transport maps them -- no
``httpx.Request`` or ``httpx.Response`` is built (about a quarter of a send's client CPU).
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
from pathlib import Path
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from ...core.channel import SentId
from ...core.errors import ConfigurationError, FatalDeliveryError
from . import errors
from .payloads import read_receipt_body
from .settings import WhatsAppSettings

if TYPE_CHECKING:
    from httpx_aiohttp import AiohttpTransport

TRANSPORTS = ("aiohttp", "httpx")
SEND_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
"""The encoder of send bodies, made once (``json.dumps`` with options builds one per call): the
bytes httpx's ``json=`` would send."""
HELD_STATUSES = ("held_for_quality_assessment", "paused")
"""``messages[0].message_status`` values of a send answer that mean "accepted, delivery held"."""


def _transport(name: str, max_connections: int) -> httpx.AsyncBaseTransport:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    if name == "aiohttp":
        from httpx_aiohttp import AiohttpTransport
        return AiohttpTransport(limits=limits)
    if name == "httpx":
        return httpx.AsyncHTTPTransport(limits=limits)
    raise ConfigurationError(f"connectors.whatsapp.transport must be one of {', '.join(TRANSPORTS)}, got {name!r}")


def _answer(status: int, headers: Mapping[str, str], content: bytes) -> Any:
    """The parsed JSON of a 2xx answer; anything else raised as a classified error."""
    try:
        payload = json.loads(content) if content else {}
    except ValueError:
        payload = None
    if status >= 400 or (isinstance(payload, dict) and "error" in payload):
        raise errors.classify(status, payload, headers)
    if not isinstance(payload, (dict, list)):
        raise errors.classify(502 if status < 300 else status,
                              {"error": {"message": "the API answered with something that is not JSON"}})
    return payload


class _AiohttpSend:
    """A send POSTed on the aiohttp transport's own session, as the transport would post it:
    its pool, the request's headers but ``Host`` and ``Content-Length`` (aiohttp writes those)
    and ``Accept-Encoding`` (gzip and deflate, which aiohttp decodes),
    the timeouts mapped the transport's way, aiohttp's errors raised as the httpx errors the
    transport raises (each with the aiohttp error as its cause, which :func:`.errors.from_transport`
    reads)."""

    def __init__(self, transport: AiohttpTransport, headers: httpx.Headers,
                 timeout: dict[str, float | None]) -> None:
        from aiohttp import ClientSession, ClientTimeout
        from httpx_aiohttp.transport import map_aiohttp_exceptions
        if not isinstance(transport.client, ClientSession):  # the session it would make on its first request
            transport.client = transport.get_client()
        self.session: ClientSession = transport.client
        from multidict import CIMultiDict
        self.headers = CIMultiDict((k, v) for k, v in headers.multi_items()
                                   if k.lower() not in ("host", "content-length"))
        # aiohttp decodes the answer here (httpx did, on the transport's path): ask only for what
        # it always can, whatever optional decoders httpx found installed
        self.headers["Accept-Encoding"] = "gzip, deflate"
        self.timeout = ClientTimeout(sock_connect=timeout.get("connect"), sock_read=timeout.get("read"),
                                     connect=timeout.get("pool"))
        self.mapped = map_aiohttp_exceptions

    async def post(self, url: str, content: bytes) -> Any:
        with self.mapped():
            async with self.session.post(url, data=content, headers=self.headers, allow_redirects=False,
                                         compress=False, timeout=self.timeout) as response:
                content = await response.read()
        return _answer(response.status, response.headers, content)


class GraphClient:
    """One Graph API client per engine. It is created lazily inside the running event loop and
    re-created when the loop changes (CLI commands run several short loops)."""

    def __init__(self, settings: WhatsAppSettings, *, max_connections: int = 100) -> None:
        if settings.access_token is None:
            raise ConfigurationError("connectors.whatsapp.access_token is not set")
        _transport(settings.transport, 1)  # fail at start-up on a bad transport name, not at first send
        self.settings = settings
        self.base_url = settings.graph_url + "/"
        self.max_connections = max_connections
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # the send path's prepared parts, made with the client (see _client)
        self._transport: httpx.AsyncBaseTransport | None = None
        self._send_headers = httpx.Headers()
        self._send_timeout: dict[str, float | None] = {}
        self._send_urls: dict[str, httpx.URL] = {}
        self._aiohttp_send: _AiohttpSend | None = None

    def __repr__(self) -> str:
        return f"GraphClient(base_url={self.base_url!r}, transport={self.settings.transport!r})"

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            token = self.settings.access_token.get_secret_value()  # type: ignore[union-attr]  # __init__ checked it
            self._transport = _transport(self.settings.transport, self.max_connections)
            self._http = httpx.AsyncClient(
                base_url=self.base_url, headers={"Authorization": f"Bearer {token}"},
                timeout=httpx.Timeout(self.settings.timeout_seconds), transport=self._transport)
            # the headers and timeout build_request would give a JSON POST, made once
            self._send_headers = httpx.Headers(self._http.headers)
            self._send_headers["Content-Type"] = "application/json"
            self._send_timeout = self._http.timeout.as_dict()
            self._aiohttp_send = None
            if self.settings.transport == "aiohttp":
                from httpx_aiohttp import AiohttpTransport
                if isinstance(self._transport, AiohttpTransport):  # not a test's stand-in transport
                    self._aiohttp_send = _AiohttpSend(self._transport, self._send_headers, self._send_timeout)
            self._loop = loop
        return self._http

    async def aclose(self) -> None:
        http, self._http, self._loop = self._http, None, None
        if http is not None:
            await http.aclose()

    # --- requests (sends take _send_json) ------------------------------------------------

    async def request(self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None,
                      files: Any = None, data: dict[str, Any] | None = None, is_send: bool = False) -> Any:
        """Call the Graph API and return the parsed JSON, or raise a classified error.

        ``is_send``: the request delivers a message, so no answer means "maybe sent".
        """
        try:
            response = await self._client().request(method, path, json=json_body, params=params, files=files,
                                                     data=data)
            content = await response.aread()
        except (httpx.TransportError, TimeoutError) as exc:
            raise errors.from_transport(exc, may_have_acted=is_send and method != "GET") from None
        return _answer(response.status_code, response.headers, content)

    async def _send_json(self, path: str, body: Any) -> Any:
        """POST ``body`` like ``request(..., is_send=True)`` does, minus AsyncClient's per-call work.

        The client was made with an explicit transport, so it has no proxy mounts and this
        transport is the one it would pick; follow_redirects is off (a 3xx is answered as is),
        there is no auth flow or event hook, and Graph calls need no cookies."""
        http = self._client()
        url = self._send_urls.get(path)
        if url is None:  # the URL AsyncClient would build, parsed once per number and route
            url = self._send_urls[path] = http.build_request("POST", path).url
        content = SEND_JSON.encode(body).encode()
        if self._aiohttp_send is not None:
            try:
                return await self._aiohttp_send.post(str(url), content)
            except (httpx.TransportError, TimeoutError) as exc:
                raise errors.from_transport(exc, may_have_acted=True) from None
        request = httpx.Request("POST", url, headers=self._send_headers, content=content,
                                extensions={"timeout": self._send_timeout})
        assert self._transport is not None
        try:
            response = await self._transport.handle_async_request(request)
            try:
                content = await response.aread()
            except BaseException:
                await response.aclose()  # give the connection back, as AsyncClient.send does
                raise
        except (httpx.TransportError, TimeoutError) as exc:
            raise errors.from_transport(exc, may_have_acted=True) from None
        return _answer(response.status_code, response.headers, content)

    # --- messages -------------------------------------------------------------------------

    async def send_message(self, phone_number_id: str, body: dict[str, Any], *, marketing: bool = False) -> str:
        """POST a message body; return its wamid. MARKETING templates may use /marketing_messages."""
        path = f"{phone_number_id}/{'marketing_messages' if marketing else 'messages'}"
        answer = await self._send_json(path, body)
        try:
            sent = answer["messages"][0]
            wamid = str(sent["id"])
        except (KeyError, IndexError, TypeError):
            # accepted but no wamid: we cannot correlate statuses, yet it may well be out
            from ...core.errors import AmbiguousDeliveryError
            raise AmbiguousDeliveryError("the API accepted the message but returned no message id") from None
        # Pacing: Meta holds some template sends for a quality check (``held_for_quality_assessment``) or
        # has paused their delivery (``paused``). Accepted and pending -- status webhooks say how it ends.
        held = sent.get("message_status") if isinstance(sent, dict) else None
        return SentId(wamid, held) if held in HELD_STATUSES else wamid

    async def mark_read(self, phone_number_id: str, wamid: str, *, typing: bool = False) -> bool:
        """Mark an inbound message read (and optionally show a typing indicator)."""
        answer = await self.request("POST", f"{phone_number_id}/messages", json_body=read_receipt_body(wamid, typing))
        return bool(answer.get("success"))

    async def upload_media(self, phone_number_id: str, file: str | Path, mime_type: str | None = None) -> str:
        """Upload a local file (multipart) and return its media id."""
        path = Path(file)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise FatalDeliveryError(f"cannot read media file {path.name}: {exc.strerror}",
                                     code="media_file_unreadable") from None
        mime = mime_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        answer = await self.request("POST", f"{phone_number_id}/media",
                                    data={"messaging_product": "whatsapp", "type": mime},
                                    files={"file": (path.name, content, mime)})
        return str(answer["id"])

    # --- paging ---------------------------------------------------------------------------

    async def get_all(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """GET a list endpoint and follow every page (``paging.next``, else ``cursors.after``)."""
        items: list[dict[str, Any]] = []
        page_params: dict[str, Any] | None = dict(params or {})
        seen: set[str] = set()
        while True:
            answer = await self.request("GET", path, params=page_params)
            items.extend(answer.get("data") or [])
            paging = answer.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            next_url = paging.get("next")
            if not next_url or not after or after in seen:
                return items
            seen.add(after)
            if self._same_host(next_url):
                # follow Meta's own next link (it carries every parameter) -- but only to our host,
                # so the token never goes anywhere else
                path, page_params = next_url, None  # (httpx drops a URL's query when given params)
            else:
                page_params = {**(page_params or {}), "after": after}

    def _same_host(self, url: str) -> bool:
        ours, theirs = urlsplit(self.base_url), urlsplit(url)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)
