"""Operator logging for ``serve`` and ``worker``: one line per record, as text or as JSON lines.

Records that matter to an operator carry structured fields (:func:`emit`): a webhook accepted or
refused, each send outcome, each refusal by the gate, each dead letter. Every line passes
:class:`Redact` on its way out: phone numbers are masked and configured secrets replaced, also
inside exception texts -- code that logs must still never pass a message text.

Text::

    2026-01-31T12:00:00.123Z INFO connectzap.webhooks webhook accepted source=whatsapp status=200 events=1

JSON (``--log-format json``)::

    {"time": "2026-01-31T12:00:00.123Z", "level": "info", "logger": "connectzap.webhooks",
     "message": "webhook accepted", "source": "whatsapp", "status": 200, "events": 1}
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from pydantic import BaseModel, SecretStr

from .clock import iso_utc
from .phones import scrub

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
ROOT = "connectzap"
_HANDLER_NAME = "connectzap-operator"


def emit(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Log ``message`` with structured ``fields`` (cheap when the level is off)."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={"fields": fields})


class Redact(logging.Filter):
    """Masks phone numbers and replaces known secrets in the message, the fields and the traceback."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "**********")
        return scrub(text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.clean(record.getMessage())
        record.args = None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: self.clean(v) if isinstance(v, str) else v for k, v in fields.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = self.clean(logging.Formatter().formatException(record.exc_info))
        return True


def _time(record: logging.LogRecord) -> str:
    return iso_utc(datetime.fromtimestamp(record.created, UTC), timespec="milliseconds")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname} {record.name} {record.getMessage()}"
        for key, value in (getattr(record, "fields", None) or {}).items():
            if value is None:
                continue
            shown = value if isinstance(value, (int, float)) else str(value)
            if isinstance(shown, str) and (not shown or any(c in shown for c in ' "=')):
                shown = json.dumps(shown, ensure_ascii=False)
            line += f" {key}={shown}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {"time": _time(record), "level": record.levelname.lower(), "logger": record.name,
                                "message": record.getMessage()}
        for key, value in (getattr(record, "fields", None) or {}).items():
            if value is not None:
                body.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            body["traceback"] = record.exc_text
        return json.dumps(body, ensure_ascii=False, default=str)


def configure(level: str = "info", fmt: str = "text", *, secrets: Iterable[str] = (),
              stream: TextIO | None = None) -> logging.Handler:
    """Send connectzap's (and uvicorn's) records to ``stream`` (stderr) as ``fmt`` lines at ``level``.

    Calling it again replaces the previous set-up. uvicorn's own records are kept to warnings
    unless ``level`` is ``debug``.
    """
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(Redact(secrets))
    numeric = getattr(logging, level.upper())
    for name, at in ((ROOT, numeric), ("uvicorn", numeric if numeric == logging.DEBUG else logging.WARNING)):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(at)
    return handler


def announce(message: str, **fields: Any) -> None:
    """A line the operator must see whatever the level (where the service listens), in the
    configured format; plain text on stderr when logging was not configured."""
    logger = logging.getLogger(ROOT)
    handlers = [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]
    if not handlers:
        print(message, file=sys.stderr, flush=True)
        return
    for handler in handlers:
        # Text lines say it all in the message; JSON lines also carry the parts as fields.
        extra = {"fields": fields if isinstance(handler.formatter, JsonFormatter) else {}}
        handler.handle(logger.makeRecord(ROOT, logging.INFO, __file__, 0, message, (), None, extra=extra))


def secret_values(*sources: Any) -> set[str]:
    """Every secret in ``sources`` (settings, config sections, plain values): SecretStr values and
    values under secret-sounding keys (token, secret, password, key...)."""
    from .settings import _is_secret_key
    found: set[str] = set()

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, BaseModel):
            walk({name: getattr(value, name) for name in type(value).model_fields}, key)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, (list, tuple, set)):
            for v in value:
                walk(v, key)
        elif isinstance(value, bytes):
            found.add(value.decode("utf-8", "replace"))
        elif isinstance(value, str) and key and _is_secret_key(key):
            found.add(value)

    for source in sources:
        walk(source)
    return {s for s in found if s}
