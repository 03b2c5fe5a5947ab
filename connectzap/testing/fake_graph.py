"""A small local stand-in for the Graph API endpoints connectzap calls.

Point ``[connectors.whatsapp] api_base_url`` at :attr:`FakeGraph.url`. It answers sends with
wamids, uploads with media ids, keeps templates (paged like Meta: ``paging.cursors`` +
``paging.next``), a business profile and the number's messaging limit (:attr:`FakeGraph.messaging_limit`,
under the field name of the fake's API version), checks the Bearer token (code 190 otherwise), and
can be told to fail or stall particular requests. Response shapes follow Meta's reference as
summarised in ``shared/research/whatsapp.md``; this is a test double, not an emulator.

In tests::

    with FakeGraph(token="t") as fake:
        fake.fail(131047, to="4915112345678", type="text")
        ...

For a benchmark run it as its own process: ``python -m connectzap.testing.fake_graph --port 8089``.
``latency_ms`` (``--latency-ms 150``) makes every answer wait that long first, as a round trip to
Meta does; requests wait side by side, so throughput is then bounded by how many are in flight.
``sends_log`` (``--sends-log FILE``) appends a line per accepted message send -- its time (Unix
seconds), a tab, the recipient -- so another process can see what arrived (the process keeps no
record otherwise).

Several business accounts: :meth:`FakeGraph.add_account` gives a WABA its own token, numbers,
templates and app secret. A request for one of its numbers (or the WABA) then needs that
account's token, as Meta refuses a token without access to the object; status webhooks for its
numbers name its WABA and are signed with its app secret.

Like Meta, it can report back: after :meth:`report_statuses`, every accepted send is followed by
signed status webhooks (``sent``, ``delivered`` by default) posted to the given URL, batched,
and retried until the receiver answers 200 (a receiver that is down gets them once it is back).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web


@dataclass
class Rule:
    """Answer matching requests with an error (or stall them) ``times`` times (None = always)."""

    code: int | None
    http_status: int = 400
    to: str | None = None
    type: str | None = None
    path: str | None = None
    times: int | None = 1
    delay: float = 0.0
    details: str | None = None
    is_transient: bool | None = None

    def matches(self, path: str, body: dict[str, Any]) -> bool:
        return ((self.to is None or body.get("to") == self.to)
                and (self.type is None or body.get("type") == self.type)
                and (self.path is None or path.endswith(self.path)))


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    headers: dict[str, str]
    at: float = field(default_factory=time.time)


@dataclass
class FakeAccount:
    """A business account the fake knows: its token, numbers, app secret and templates."""

    waba_id: str
    token: str = field(repr=False)
    numbers: tuple[str, ...]
    app_secret: str = field(default="", repr=False)
    templates: list[dict[str, Any]] = field(default_factory=list)


class FakeGraph:
    def __init__(self, *, token: str = "test-token", version: str = "v27.0", record: bool = True,
                 page_size: int = 25, host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0.0,
                 sends_log: str | None = None) -> None:
        self.token = token
        self._sends_log = open(sends_log, "a", buffering=1) if sends_log else None  # closed by stop()
        """Where each accepted send is appended as ``time<TAB>to`` (a line, written at once)."""
        self.latency_ms = latency_ms
        """How long every answer waits before it is sent (may be changed while running)."""
        self.version = version
        self.record = record
        self.page_size = page_size
        self.host, self.port = host, port
        self.requests: list[Recorded] = []
        self.send_times: list[float] = []
        self.rules: list[Rule] = []
        self.templates: list[dict[str, Any]] = []
        self.profile: dict[str, Any] = {"about": "", "address": "", "description": "", "email": "",
                                        "websites": [], "vertical": "UNDEFINED", "messaging_product": "whatsapp"}
        self.app_callback_url: str | None = "https://app.example/webhooks/whatsapp"
        """The app's default callback URL, as ``webhook_configuration.application`` reports it."""
        self.number_overrides: dict[str, dict[str, str]] = {}
        """Per phone number id: the ``webhook_configuration`` last set (``override_callback_uri``, ``verify_token``)."""
        self.waba_overrides: dict[str, dict[str, str]] = {}
        """Per business account id: ``override_callback_uri``/``verify_token`` last posted to ``subscribed_apps``."""
        self.messaging_limit: str | None = "TIER_250"
        """What ``GET /{phone-number-id}`` reports as the messaging limit (None: the field is absent)."""
        self.display_phone_number = "+1 555-078-3881"
        """What ``GET /{phone-number-id}?fields=display_phone_number`` answers (Meta's own spelling)."""
        self.accounts: list[FakeAccount] = []
        """Business accounts with their own tokens (:meth:`add_account`); without any, one token serves all."""
        self._ids = itertools.count(1)
        self._accepted: Counter[str] = Counter()
        self._accepted_lock = threading.Lock()
        self.webhook_url: str | None = None
        self._webhook_secret = ""
        self._report: tuple[str, ...] = ()
        self._unreported: list[tuple[str, dict[str, Any]]] = []  # (phone_number_id, status item)
        self.reported = 0
        """How many status webhooks items the receiver has acknowledged."""
        self.message_status: str | None = None
        """When set (``held_for_quality_assessment``, ``paused``), accepted sends answer with it as
        ``messages[0].message_status``, as Meta does while it paces a template."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # --- scripting ----------------------------------------------------------------------------

    def fail(self, code: int | None, *, http_status: int = 400, to: str | None = None, type: str | None = None,
             path: str | None = None, times: int | None = 1, details: str | None = None,
             is_transient: bool | None = None) -> Rule:
        rule = Rule(code, http_status, to=to.lstrip("+") if to else None, type=type, path=path, times=times,
                    details=details, is_transient=is_transient)
        self.rules.append(rule)
        return rule

    def stall(self, seconds: float, *, to: str | None = None, times: int | None = 1) -> Rule:
        """Answer matching sends only after ``seconds`` (longer than the client timeout = a timeout)."""
        rule = Rule(None, 200, to=to.lstrip("+") if to else None, times=times, delay=seconds)
        self.rules.append(rule)
        return rule

    def add_account(self, waba_id: str, *, token: str, numbers: list[str] | tuple[str, ...],
                    app_secret: str = "") -> FakeAccount:
        """Know one more business account: its numbers and WABA answer only to ``token``, its
        templates are its own, its status webhooks are signed with ``app_secret``."""
        account = FakeAccount(waba_id, token, tuple(numbers), app_secret)
        self.accounts.append(account)
        return account

    def owner(self, object_id: str) -> FakeAccount | None:
        """The account a phone number id or WABA id belongs to, if the fake knows one."""
        return next((a for a in self.accounts if object_id == a.waba_id or object_id in a.numbers), None)

    def sends_from(self, number: str) -> list[Recorded]:
        """Every recorded message send from ``number`` (with its headers, the token left out)."""
        return [r for r in self.requests if r.path.endswith((f"/{number}/messages", f"/{number}/marketing_messages"))
                and isinstance(r.body, dict) and "type" in r.body]

    def sends(self) -> list[dict[str, Any]]:
        """Bodies of every message send (messages and marketing_messages), oldest first."""
        return [r.body for r in self.requests if r.path.endswith(("/messages", "/marketing_messages"))
                and isinstance(r.body, dict) and "type" in r.body]

    def read_receipts(self) -> list[dict[str, Any]]:
        """Bodies of every read receipt (``status: read``, maybe with ``typing_indicator``), oldest first."""
        return [r.body for r in self.requests if r.path.endswith("/messages") and isinstance(r.body, dict)
                and r.body.get("status") == "read"]

    def report_statuses(self, url: str, app_secret: str, statuses: tuple[str, ...] = ("sent", "delivered")) -> None:
        """From now on, follow every accepted send with signed status webhooks to ``url`` (change
        :attr:`webhook_url` when the receiver moves, e.g. restarts on another port)."""
        self.webhook_url, self._webhook_secret, self._report = url, app_secret, statuses

    def accepted(self) -> Counter[str]:
        """How many times each ``biz_opaque_callback_data`` was accepted (a copy; kept even when
        ``record`` is off): a crash test's proof that nothing was sent twice or lost."""
        with self._accepted_lock:
            return Counter(self._accepted)

    @property
    def unreported(self) -> int:
        """Status items accepted sends produced that the receiver has not acknowledged yet."""
        return len(self._unreported)

    # --- the server ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=200 * 1024 * 1024, middlewares=[self._latency])
        v = f"/{self.version}"
        app.router.add_post(v + "/{number}/messages", self._send)
        app.router.add_post(v + "/{number}/marketing_messages", self._send)
        app.router.add_post(v + "/{number}/media", self._media)
        app.router.add_get(v + "/{number}", self._phone_number)
        app.router.add_post(v + "/{number}", self._phone_number_set)
        app.router.add_post(v + "/{waba}/subscribed_apps", self._subscribe_app)
        app.router.add_get(v + "/{number}/whatsapp_business_profile", self._profile_get)
        app.router.add_post(v + "/{number}/whatsapp_business_profile", self._profile_set)
        app.router.add_get(v + "/{waba}/message_templates", self._templates_list)
        app.router.add_post(v + "/{waba}/message_templates", self._templates_create)
        app.router.add_delete(v + "/{waba}/message_templates", self._templates_delete)
        return app

    def start(self) -> FakeGraph:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            # A stalled answer (see :meth:`stall`) is dropped at stop, not waited for (aiohttp: 60 s).
            self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            self._loop.run_until_complete(site.start())
            self.port = self._runner.addresses[0][1]  # the port the OS chose when asked for 0
            reporter = self._loop.create_task(self._deliver_statuses())
            ready.set()
            self._loop.run_forever()
            reporter.cancel()
            self._loop.run_until_complete(asyncio.gather(reporter, return_exceptions=True))
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="fake-graph", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None
        if self._sends_log is not None:
            self._sends_log.close()
            self._sends_log = None

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    def error(code: int, message: str, *, http_status: int = 400, details: str | None = None,
              is_transient: bool | None = None) -> web.Response:
        error: dict[str, Any] = {"message": f"(#{code}) {message}", "type": "OAuthException", "code": code,
                                 "fbtrace_id": "AfakeTrace" + str(code)}
        if details:
            error["error_data"] = {"messaging_product": "whatsapp", "details": details}
        if is_transient is not None:
            error["is_transient"] = is_transient
        return web.json_response({"error": error}, status=http_status)

    @web.middleware
    async def _latency(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)
        answer: web.StreamResponse = await handler(request)
        return answer

    def _authorised(self, request: web.Request) -> bool:
        """The Bearer token may act on the request's number or WABA: its account's token when an
        account owns it, else the fake's token (or any account's)."""
        given = request.headers.get("Authorization")
        target = request.match_info.get("number") or request.match_info.get("waba") or ""
        owner = self.owner(target)
        if owner is not None:
            return given == f"Bearer {owner.token}"
        return given in {f"Bearer {t}" for t in (self.token, *(a.token for a in self.accounts))}

    def _templates(self, waba: str) -> list[dict[str, Any]]:
        owner = self.owner(waba)
        return owner.templates if owner is not None else self.templates

    async def _read(self, request: web.Request) -> Any:
        if request.content_type == "application/json":
            return await request.json()
        return None

    def _note(self, request: web.Request, body: Any) -> None:
        if self.record:
            headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
            self.requests.append(Recorded(request.method, request.path, body, headers))

    def _rule_for(self, path: str, body: dict[str, Any]) -> Rule | None:
        for rule in self.rules:
            if (rule.times is None or rule.times > 0) and rule.matches(path, body):
                if rule.times is not None:
                    rule.times -= 1
                return rule
        return None

    # --- endpoints ----------------------------------------------------------------------------

    async def _send(self, request: web.Request) -> web.Response:
        body = await self._read(request)
        self._note(request, body)
        if not self._authorised(request):
            return self.error(190, "Error validating access token: Session has expired", http_status=401)
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            return self.error(100, "Invalid parameter", details="messaging_product must be whatsapp")
        if body.get("status") == "read":
            return self._read_receipt(body)
        rule = self._rule_for(request.path, body) if self.rules else None
        if rule is not None:
            if rule.delay:
                await asyncio.sleep(rule.delay)
            if rule.code is not None:
                return self.error(rule.code, "scripted error", http_status=rule.http_status, details=rule.details,
                                  is_transient=rule.is_transient)
        self.send_times.append(time.time())
        to = str(body.get("to", ""))
        if self._sends_log is not None:
            self._sends_log.write(f"{self.send_times[-1]:.6f}\t{to}\n")
        wamid = f"wamid.fake.{next(self._ids)}"
        if body.get("biz_opaque_callback_data"):
            with self._accepted_lock:
                self._accepted[str(body["biz_opaque_callback_data"])] += 1
        for status in self._report:
            item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(time.time())),
                                    "recipient_id": to}
            if body.get("biz_opaque_callback_data"):
                item["biz_opaque_callback_data"] = body["biz_opaque_callback_data"]
            if status != "read":
                item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility"}
            self._unreported.append((request.match_info.get("number", ""), item))
        sent: dict[str, Any] = {"id": wamid}
        if self.message_status:
            sent["message_status"] = self.message_status
        return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                                  "messages": [sent]})

    def _read_receipt(self, body: dict[str, Any]) -> web.Response:
        # As Meta's typing-indicators reference: the received message's id; a typing indicator of type text.
        if not str(body.get("message_id", "")).startswith("wamid."):
            return self.error(100, "Invalid parameter", details="message_id must be the id of a received message")
        typing = body.get("typing_indicator")
        if typing is not None and typing != {"type": "text"}:
            return self.error(100, "Invalid parameter", details="typing_indicator.type must be text")
        return web.json_response({"success": True})

    async def _deliver_statuses(self) -> None:
        """Post what :meth:`_send` queued, up to 100 statuses a webhook, until each is acknowledged."""
        from ..connectors.whatsapp.signatures import sign_meta
        async with ClientSession() as session:
            while True:
                batch = self._unreported[:100]
                if not batch or not self.webhook_url:
                    await asyncio.sleep(0.05)
                    continue
                number = batch[0][0]  # one webhook speaks for one of the business's numbers
                same = next((n for n, queued in enumerate(batch) if queued[0] != number), len(batch))
                batch = batch[:same]
                owner = self.owner(number)
                secret = owner.app_secret if owner is not None and owner.app_secret else self._webhook_secret
                value = {"messaging_product": "whatsapp",
                         "metadata": {"display_phone_number": "15550783881", "phone_number_id": number},
                         "statuses": [item for _, item in batch]}
                entry = {"id": owner.waba_id if owner else "0", "changes": [{"field": "messages", "value": value}]}
                body = json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()
                headers = {"X-Hub-Signature-256": sign_meta(body, secret),
                           "Content-Type": "application/json"}
                try:
                    async with session.post(self.webhook_url, data=body, headers=headers,
                                            timeout=ClientTimeout(total=30)) as answer:
                        ok = answer.status == 200
                except (ClientError, OSError, TimeoutError):
                    ok = False
                if ok:
                    del self._unreported[:len(batch)]
                    self.reported += len(batch)
                else:  # the receiver is down or refused: Meta retries too
                    await asyncio.sleep(0.2)

    async def _media(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        record = {"messaging_product": form.get("messaging_product"), "type": form.get("type"),
                  "filename": getattr(upload, "filename", None),
                  "size": len(upload.file.read()) if isinstance(upload, web.FileField) else None}
        self._note(request, record)
        if not self._authorised(request):
            return self.error(190, "Error validating access token", http_status=401)
        if record["messaging_product"] != "whatsapp" or upload is None:
            return self.error(100, "Invalid parameter", details="file and messaging_product are required")
        return web.json_response({"id": f"media.fake.{next(self._ids)}"})

    async def _phone_number(self, request: web.Request) -> web.Response:
        """The number's fields; only the messaging limit, named as the API version names it (Meta:
        ``whatsapp_business_manager_messaging_limit`` from v24.0, ``messaging_limit_tier`` before)."""
        self._note(request, dict(request.query))
        if not self._authorised(request):
            return self.error(190, "Error validating access token", http_status=401)
        from ..connectors.whatsapp.limits import limit_field
        known = limit_field(self.version)
        number = request.match_info["number"]
        answer: dict[str, Any] = {"id": number}
        for name in filter(None, request.query.get("fields", "").split(",")):
            if name == "webhook_configuration":
                answer[name] = self._webhook_configuration(number)
                continue
            if name == "display_phone_number":  # written as Meta shows it, not in E.164
                answer[name] = self.display_phone_number
                continue
            if name != known:  # as Graph answers a field the version does not have
                return self.error(100, f"Tried accessing nonexisting field ({name}) on node type "
                                       "(WhatsAppBusinessPhoneNumber)")
            if self.messaging_limit is not None:
                answer[name] = self.messaging_limit
        return web.json_response(answer)

    def _webhook_configuration(self, number: str) -> dict[str, str]:
        """Each level's callback URL, never a verify token. A number of a known account (:meth:`add_account`)
        sees its account's override; any other number the first account with an override."""
        configured: dict[str, str] = {}
        if number in self.number_overrides:
            configured["phone_number"] = self.number_overrides[number]["override_callback_uri"]
        owner = self.owner(number)
        waba = owner.waba_id if owner is not None else next(iter(self.waba_overrides), None)
        if waba in self.waba_overrides:
            configured["whatsapp_business_account"] = self.waba_overrides[waba]["override_callback_uri"]
        if self.app_callback_url:
            configured["application"] = self.app_callback_url
        return configured

    @staticmethod
    def _override_error(body: Any) -> web.Response | None:
        if not isinstance(body, dict) or not body.get("override_callback_uri") or not body.get("verify_token"):
            return FakeGraph.error(100, "Invalid parameter",
                                   details="override_callback_uri and verify_token are required")
        if len(str(body["override_callback_uri"])) > 200:
            return FakeGraph.error(100, "Invalid parameter", details="override_callback_uri: at most 200 characters")
        return None

    async def _phone_number_set(self, request: web.Request) -> web.Response:
        """``POST /{phone-number-id}``: only ``webhook_configuration`` is understood; ``POST
        /{template-id}`` (the same route): only ``message_send_ttl_seconds``, within Meta's bounds."""
        body = await self._read(request)
        self._note(request, body)
        if not self._authorised(request):
            return self.error(190, "Error validating access token", http_status=401)
        template = next((t for t in [*self.templates, *(t for a in self.accounts for t in a.templates)]
                         if t.get("id") == request.match_info["number"]), None)
        if template is not None:
            return self._template_ttl(template, body)
        unknown = set(body or {}) - {"webhook_configuration"} if isinstance(body, dict) else {"body"}
        if unknown:
            return self.error(100, "Invalid parameter", details=f"unexpected fields: {sorted(unknown)}")
        refused = self._override_error(body.get("webhook_configuration"))
        if refused is not None:
            return refused
        self.number_overrides[request.match_info["number"]] = dict(body["webhook_configuration"])
        return web.json_response({"success": True})

    TTL_BOUNDS = {"MARKETING": (43_200, 2_592_000), "UTILITY": (30, 43_200), "AUTHENTICATION": (30, 900)}
    """Meta's ``message_send_ttl_seconds`` bounds per category ("Configure message time-to-live")."""

    def _template_ttl(self, template: dict[str, Any], body: Any) -> web.Response:
        ttl = body.get("message_send_ttl_seconds") if isinstance(body, dict) else None
        low, high = self.TTL_BOUNDS.get(str(template.get("category")).upper(), (30, 2_592_000))
        if set(body or {}) != {"message_send_ttl_seconds"} or not isinstance(ttl, int) or not low <= ttl <= high:
            return self.error(100, "Invalid parameter",
                              details=f"message_send_ttl_seconds must be {low} to {high} for this template")
        template["message_send_ttl_seconds"] = ttl
        return web.json_response({"success": True})

    async def _subscribe_app(self, request: web.Request) -> web.Response:
        """``POST /{waba-id}/subscribed_apps``: subscribes the app; with an override, sets it."""
        body = await self._read(request)
        self._note(request, body)
        if not self._authorised(request):
            return self.error(190, "Error validating access token", http_status=401)
        if body:
            refused = self._override_error(body)
            if refused is not None:
                return refused
            self.waba_overrides[request.match_info["waba"]] = dict(body)
        return web.json_response({"success": True})

    async def _profile_get(self, request: web.Request) -> web.Response:
        self._note(request, dict(request.query))
        if not self._authorised(request):
            return self.error(190, "Error validating access token", http_status=401)
        return web.json_response({"data": [self.profile]})

    async def _profile_set(self, request: web.Request) -> web.Response:
        body = await self._read(request)
        self._note(request, body)
        if not self._authorised(request):
            return self.error(190, "Error validating access token", http_status=401)
        allowed = {"about", "address", "description", "email", "websites", "vertical", "profile_picture_handle"}
        unknown = set(body or {}) - allowed - {"messaging_product"}
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp" or unknown:
            return self.error(100, "Invalid parameter", details=f"unexpected fields: {sorted(unknown)}")
        self.profile.update({k: v for k, v in body.items() if k in allowed})
        return web.json_response({"success": True})

    async def _templates_list(self, request: web.Request) -> web.Response:
        self._note(request, dict(request.query))
        if not self._authorised(request):
            return self.error(190, "Error validating access token", http_status=401)
        wanted = request.query.get("name")
        items = [t for t in self._templates(request.match_info["waba"]) if wanted is None or t["name"] == wanted]
        size = min(int(request.query.get("limit", self.page_size)), self.page_size)  # a server-side cap, like Meta
        start = int(request.query.get("after", "0") or 0)
        page: dict[str, Any] = {"data": items[start:start + size]}
        if items:
            page["paging"] = {"cursors": {"before": str(start), "after": str(start + size)}}
            if start + size < len(items):
                query = {**request.query, "after": str(start + size)}
                page["paging"]["next"] = str(request.url.with_query(query))
        return web.json_response(page)

    async def _templates_create(self, request: web.Request) -> web.Response:
        body = await self._read(request)
        self._note(request, body)
        if not self._authorised(request):
            return self.error(190, "Error validating access token", http_status=401)
        missing = [k for k in ("name", "language", "category", "components") if not (body or {}).get(k)]
        if missing:
            return self.error(100, "Invalid parameter", details=f"missing {', '.join(missing)}")
        stored = self._templates(request.match_info["waba"])
        if any(t["name"] == body["name"] and t["language"] == body["language"] for t in stored):
            return self.error(2388024, "Content in this language already exists",
                              details="a template with this name and language exists")
        template_id = str(next(self._ids) + 10**15)
        stored.append({**body, "id": template_id, "status": "PENDING",
                               "parameter_format": body.get("parameter_format", "POSITIONAL")})
        return web.json_response({"id": template_id, "status": "PENDING", "category": body["category"]})

    async def _templates_delete(self, request: web.Request) -> web.Response:
        self._note(request, dict(request.query))
        if not self._authorised(request):
            return self.error(190, "Error validating access token", http_status=401)
        name = request.query.get("name")
        stored = self._templates(request.match_info["waba"])
        keep = [t for t in stored if t["name"] != name]
        if not name or len(keep) == len(stored):
            return self.error(100, "Invalid parameter", details=f"template {name!r} not found")
        stored[:] = keep
        return web.json_response({"success": True})


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a local fake of the WhatsApp Graph API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--version", default="v27.0")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="Wait this long before every answer, like a round trip to Meta (default 0).")
    parser.add_argument("--sends-log", metavar="FILE",
                        help="Append a line per accepted message send: its time (Unix seconds), a tab, the recipient.")
    args = parser.parse_args()
    fake = FakeGraph(token=args.token, version=args.version, record=False, host=args.host, port=args.port,
                     latency_ms=args.latency_ms, sends_log=args.sends_log)
    print(json.dumps({"url": f"http://{args.host}:{args.port}"}), flush=True)
    web.run_app(fake.app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
