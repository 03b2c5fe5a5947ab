"""The Contacts page's consent CSV import: the file ``connectzap consent import`` reads, checked whole by
the same functions (:func:`~connectzap.core.consent_files.records`,
:meth:`~connectzap.core.app.Connectzap.check_consent_rows`) and written by the same engine method
(:meth:`~connectzap.core.app.Connectzap.import_consent`, one transaction). A file with a bad line
imports nothing unless "import the other lines" is ticked.

Without JavaScript the form posts and the answer is the result page. The page's script posts the
same form with ``X-Console-Progress: 1`` and reads the answer as it comes: one JSON object a line
(lines checked, rows written of all), then the result's HTML. The import runs in a thread of its own,
so a closed tab does not stop it half-way (it is one transaction either way), and it is audited."""

from __future__ import annotations

import csv
import io
import json
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile

from ..core.app import Connectzap
from ..core.consent_files import BadHeader, BadLine, records
from ..core.errors import ConnectzapError
from ..core.wording import counted
from . import sessions
from .pages import _address, contacts, log, router, upload_action
from .rendering import HEADERS, environment

SHOWN_BAD_LINES = 100
CHECK_REPORT_EVERY = 500
"""Lines checked between two progress lines while checking (writing reports once per batch)."""
PROGRESS_HEADER = "x-console-progress"


@dataclass
class ImportOutcome:
    """What an import did, for the result: refused (``error``, with the bad lines shown) or done."""

    file: str
    error: str | None = None
    bad: list[BadLine] = field(default_factory=list)
    bad_count: int = 0
    added: int = 0
    unchanged: int = 0

    @property
    def said(self) -> str:
        if self.error:
            return self.error
        return f"imported {self.added}, already recorded {self.unchanged}" + (
            f", skipped {counted(self.bad_count, 'bad line')}" if self.bad_count else "")


def run_import(engine: Connectzap, stream: IO[bytes], name: str, country: str | None, skip_invalid: bool,
               report: Callable[[dict[str, Any]], None] = lambda _: None) -> ImportOutcome:
    """Check the whole file, then write it (or nothing), reporting progress as it goes."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    checked_lines = 0

    def seen(n: int) -> None:
        nonlocal checked_lines
        checked_lines += n
        if checked_lines % CHECK_REPORT_EVERY == 0:
            report({"phase": "checking", "lines": checked_lines})
    try:
        checked = engine.check_consent_rows(records(text, seen), country)
    except (BadHeader, UnicodeDecodeError, csv.Error) as exc:
        return ImportOutcome(name, error=f"{name}: {exc}; nothing imported")
    finally:
        text.detach()
    report({"phase": "checking", "lines": checked_lines})
    outcome = ImportOutcome(name, bad=checked.bad[:SHOWN_BAD_LINES], bad_count=len(checked.bad))
    if checked.bad and not skip_invalid:
        outcome.error = (f"{name}: {counted(len(checked.bad), 'bad line')}, nothing imported; fix them "
                         "(or tick “import the other lines”)")
        return outcome
    total, written = len(checked.rows), 0

    def advance(n: int) -> None:
        nonlocal written
        written += n
        report({"phase": "importing", "done": written, "of": total})
    report({"phase": "importing", "done": 0, "of": total})
    try:
        result = engine.import_consent(checked.rows, advance)
    except ConnectzapError as exc:
        outcome.error = f"{name}: {exc.message}; nothing imported"
        return outcome
    outcome.added, outcome.unchanged = result.added, result.unchanged
    return outcome


def _audited(request: Request, engine: Connectzap, session: sessions.Session, outcome: ImportOutcome) -> None:
    engine.operators.record(session.actor, "consent_import", outcome.file[:128], outcome.said, _address(request))


def _result_html(request: Request, outcome: ImportOutcome) -> str:
    return environment().get_template("_import_result.html").render(request=request, imported=outcome)


def import_consent(request: Request, engine: Connectzap, session: sessions.Session, form: dict[str, str],
                   files: dict[str, UploadFile]) -> Response:
    """``connectzap consent import FILE [--country] [--skip-invalid]`` from an uploaded file."""
    upload = files.get("file")
    if upload is None or not upload.filename:
        return contacts(request, engine, session, status=400, import_error="Choose the CSV file to import.")
    name = upload.filename[:200]
    country = form.get("country", "").strip().upper() or None
    skip = bool(form.get("skip_invalid"))
    if request.headers.get(PROGRESS_HEADER) != "1":
        outcome = run_import(engine, upload.file, name, country, skip)
        _audited(request, engine, session, outcome)
        return contacts(request, engine, session, status=400 if outcome.error else 200, imported=outcome)
    # The parser closes its copy of the upload once this returns: the import thread reads its own.
    own = tempfile.TemporaryFile()
    shutil.copyfileobj(upload.file, own)
    own.seek(0)
    return StreamingResponse(_streamed(request, engine, session, own, name, country, skip),
                             media_type="application/x-ndjson", headers=HEADERS)


def _streamed(request: Request, engine: Connectzap, session: sessions.Session, own: IO[bytes], name: str,
              country: str | None, skip: bool) -> Iterator[str]:
    said: queue.Queue[dict[str, Any]] = queue.Queue()

    def work() -> None:
        try:
            outcome = run_import(engine, own, name, country, skip, said.put)
            _audited(request, engine, session, outcome)
            said.put({"phase": "done", "ok": outcome.error is None, "html": _result_html(request, outcome)})
        except Exception as exc:  # noqa: BLE001 - the page must hear that it ended, whatever happened
            said.put({"phase": "done", "ok": False, "html": f"<p class=\"error\" role=\"alert\">The import failed "
                                                            f"({type(exc).__name__}); nothing was imported.</p>"})
            log.error("console consent import failed: %s", type(exc).__name__)  # its text may quote a line
        finally:
            own.close()

    threading.Thread(target=work, name="console-consent-import", daemon=True).start()
    while True:
        line = said.get()
        yield json.dumps(line) + "\n"
        if line["phase"] == "done":
            return


router.add_api_route("/contacts/import", upload_action(import_consent), methods=["POST"])
