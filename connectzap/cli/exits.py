"""Exit codes and the one-line error every failure becomes (``error: ...`` on stderr).

The root group (:mod:`.base`) routes every exception through :func:`describe`, so commands
-- bundled or a plugin's -- raise and never print tracebacks or pick exit codes themselves.
"""

from __future__ import annotations

import errno
import os
from enum import IntEnum

import click
from pydantic import ValidationError

from ..core.errors import ConnectzapError, InvalidPhoneError, RefusedError, RetriableError


class ExitCode(IntEnum):
    """What a script can tell from ``$?``."""

    OK = 0
    ERROR = 1
    USAGE = 2
    REFUSED = 3
    FAILED = 4
    UNAVAILABLE = 5
    INTERRUPTED = 130


MEANINGS = {
    ExitCode.OK: "ok (also when a reader such as `head` closed the pipe early)",
    ExitCode.ERROR: "error: configuration, input, not found, or unexpected",
    ExitCode.USAGE: "usage: unknown command or option, missing or malformed argument",
    ExitCode.REFUSED: "refused by the send gate (the reason is printed)",
    ExitCode.FAILED: "the message failed at the channel, or the channel could not confirm it",
    ExitCode.UNAVAILABLE: "unavailable: the database, WhatsApp or another service did not answer; try again",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}

# "\b" keeps click from re-wrapping the lines of the table.
EPILOG = "Exit codes:\n\n\b\n" + "\n".join(f"{int(code):<4} {text}" for code, text in MEANINGS.items())


class CommandFailed(click.ClickException):
    """Raise it from a command to end with ``error: MESSAGE`` and a chosen :class:`ExitCode`."""

    def __init__(self, message: str, code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(message)
        # click declares exit_code on the class; each failure carries its own, as click reads it
        self.exit_code = int(code)  # type: ignore[misc]


def describe(exc: BaseException) -> tuple[str, ExitCode]:
    """The one line (without the ``error: `` prefix) and the exit code for ``exc``."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(exc, click.UsageError):
        where = exc.ctx.command_path if exc.ctx is not None else "connectzap"
        return f"{_sentence(exc.format_message())} (see '{where} --help')", ExitCode.USAGE
    if isinstance(exc, CommandFailed):
        return exc.format_message(), ExitCode(exc.exit_code)
    if isinstance(exc, click.ClickException):
        return _sentence(exc.format_message()), ExitCode.ERROR
    if isinstance(exc, click.exceptions.Abort):
        return "aborted", ExitCode.ERROR
    if isinstance(exc, InvalidPhoneError):
        return exc.message + (_phone_hint() if exc.field == "phone" else ""), ExitCode.ERROR
    if isinstance(exc, RefusedError):
        return f"refused: {exc.code}: {exc.message}", ExitCode.REFUSED
    if isinstance(exc, RetriableError):  # e.g. WhatsApp, a shop or a CRM did not answer: try again later
        return exc.message, ExitCode.UNAVAILABLE
    if isinstance(exc, ConnectzapError):  # incl. an API's refusal (a wrong token): a human must act
        return exc.message, ExitCode.ERROR
    if isinstance(exc, ValidationError):
        from ..core.settings import describe_validation_error
        return describe_validation_error(exc), ExitCode.ERROR
    if isinstance(exc, (OperationalError, InterfaceError)):
        return _database(exc), ExitCode.UNAVAILABLE
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or os.strerror(exc.errno)}{where}", \
            ExitCode.UNAVAILABLE if exc.errno in (errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH) \
            else ExitCode.ERROR
    from ..core.phones import scrub
    return (f"unexpected {type(exc).__name__}: {scrub(str(exc)).splitlines()[0] if str(exc) else ''} "
            "(set CONNECTZAP_DEBUG=1 for details)"), ExitCode.ERROR


def _sentence(message: str) -> str:
    """Click's "No such option '--x'." as our lines read: "no such option '--x'"."""
    message = " ".join(message.split()).rstrip(".")
    if len(message) > 1 and message[0].isupper() and message[1].islower():
        message = message[0].lower() + message[1:]
    return message


def _phone_hint() -> str:
    from ..core.phones import default_region
    region = default_region()
    if region is None:
        return ": write it with its country code (+4915112345678), or give its country with --country DE " \
               "or phones.default_region in the config"
    return f" (numbers without a country code are read as {region}, from phones.default_region; --country overrides)"


def _database(exc: BaseException) -> str:
    """One line for a database that cannot be reached or used (never its password)."""
    orig = getattr(exc, "orig", None) or exc
    reason = " ".join(str(orig).split("\n")[0].split()) or type(orig).__name__
    return f"the database is not reachable: {reason} (check database.url, and that the database server is running)"
