"""A local stand-in for Twilio's Programmable Messaging REST API (create a Message), and the
settings and signed webhook requests the SMS tests share.

Built from Twilio's public API reference (twilio.com/docs/messaging/api/message-resource and the
error dictionary, twilio.com/docs/api/errors): the request is a form POST with HTTP basic auth; a
created message is answered 201 with the Message resource; an error is answered with
``{"code", "message", "more_info", "status"}``. The recipients that fail are Twilio's documented
test ("magic") numbers, which answer with the same errors under test credentials.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

from connectzap.connectors.sms.signatures import sign_twilio
from connectzap.testing.signing import webhook_request

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "sms-test-auth-token-0f3a"
FROM = "+15017122661"
PUBLIC_URL = "https://connectzap.example.com/webhooks/sms"

MAGIC = {
    "+15005550001": (400, 21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (400, 21612, "The 'To' phone number: +15005550002, is not currently reachable via SMS."),
    "+15005550003": (400, 21408, "Permission to send an SMS has not been enabled for the region indicated by "
                                 "the 'To' number: +15005550003."),
    "+15005550004": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (400, 21614, "'To' number +15005550009 is not a valid mobile number"),
}
"""Twilio's test numbers and the error each answers with (messages quote the number, as Twilio's do)."""


def settings(**extra: Any) -> dict[str, Any]:
    return {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": FROM, **extra}


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


@dataclass(frozen=True)
class Call:
    path: str
    auth: tuple[str, str] | None
    form: dict[str, str]


@dataclass
class Answer:
    """A scripted answer for the next request: a status and JSON body, or ``drop`` (the connection
    is closed once the request was read: the message may or may not be out)."""

    status: int = 201
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    drop: bool = False


class TwilioStandIn:
    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.calls: list[Call] = []
        self.script: list[Answer] = []
        self.created: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> TwilioStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, call: Call) -> Answer:
        if self.script:
            return self.script.pop(0)
        if call.auth != (self.account_sid, self.auth_token):
            return Answer(401, twilio_error(401, 20003, "Authenticate"))
        if call.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return Answer(404, twilio_error(404, 20404, "The requested resource was not found"))
        to = call.form.get("To", "")
        if to in MAGIC:
            status, code, message = MAGIC[to]
            return Answer(status, twilio_error(status, code, message))
        if not call.form.get("Body"):
            return Answer(400, twilio_error(400, 21602, "Message body is required."))
        message = {"sid": "SM" + secrets.token_hex(16), "account_sid": self.account_sid, "to": to,
                   "from": call.form.get("From"), "messaging_service_sid": call.form.get("MessagingServiceSid"),
                   "body": call.form["Body"], "status": "queued", "direction": "outbound-api", "num_segments": "1",
                   "api_version": "2010-04-01", "error_code": None, "error_message": None}
        self.created.append(message)
        return Answer(201, message)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                auth = None
                header = self.headers.get("Authorization") or ""
                if header.startswith("Basic "):
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    auth = (user, password)
                call = Call(self.path, auth, dict(parse_qsl(raw.decode())))
                stand_in.calls.append(call)
                answer = stand_in.answer(call)
                if answer.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                data = json.dumps(answer.body or {}).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (answer.headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def callback(params: dict[str, str], *, url: str = PUBLIC_URL, outbox: str | None = None,
             token: str | None = AUTH_TOKEN) -> Any:
    """A webhook request as Twilio posts it to ``url`` (``?outbox=`` added), signed with ``token``."""
    full = f"{url}?{urlencode({'outbox': outbox})}" if outbox else url
    body = urlencode(params).encode()
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if token is not None:
        headers["x-twilio-signature"] = sign_twilio(full, parse_qsl(body.decode()), token)
    request = webhook_request("/webhooks/sms", body, headers=headers, content_type=None,
                              query={"outbox": outbox} if outbox else None,
                              host=url.removesuffix("/webhooks/sms"))
    return request


def status_params(sid: str, status: str, *, to: str = "+14155550100", error_code: str | None = None) -> dict[str, str]:
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT_SID, "From": FROM, "To": to,
              "MessageStatus": status, "SmsStatus": status, "ApiVersion": "2010-04-01"}
    if error_code:
        params["ErrorCode"] = error_code
    return params


def inbound_params(text: str, *, sender: str = "+14155550100", sid: str = "SM" + "1" * 32,
                   **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": ACCOUNT_SID, "From": sender,
            "To": FROM, "Body": text, "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received",
            "ApiVersion": "2010-04-01", **extra}
