"""``connectzap consent ...``: the consent ledger."""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING, Any

import click

from ..core.phones import mask
from ..core.wording import counted
from .base import Ctx, cli, pass_ctx
from .exits import CommandFailed
from .output import Column, emit, json_option, progress

if TYPE_CHECKING:
    from ..core.models import ConsentChange


@cli.group()
def consent() -> None:
    """Grant, revoke, show, import and export consent."""


def _change(phone: str, category: str, granted: bool, source: str, proof: str | None,
            country: str | None, medium: str) -> ConsentChange:
    from pydantic import ValidationError

    from ..core.consent import change
    try:
        return change(phone, category, granted, source, proof, country, medium)
    except ValidationError as exc:
        raise click.UsageError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None


CATEGORY = click.Choice(["marketing", "utility", "authentication"])
MEDIUM = click.option("--medium", default="whatsapp", show_default=True,
                      help="The medium the consent is for: whatsapp, email (PHONE may be the address) or sms.")


@consent.command("grant")
@click.argument("phone")
@click.argument("category", type=CATEGORY)
@click.option("--source", default="cli", show_default=True, help="Where the opt-in was collected.")
@click.option("--proof", help="The wording the customer agreed to, or a reference to it (required).")
@click.option("--country")
@MEDIUM
@pass_ctx
def consent_grant(obj: Ctx, phone: str, category: str, source: str, proof: str | None, country: str | None,
                  medium: str) -> None:
    """Record an opt-in for CATEGORY, with its proof."""
    from ..core.consent_files import PROOF_REQUIRED, proof_missing
    if proof_missing(True, proof):  # the rule `consent import` applies to each row, in the same words
        raise click.UsageError(f"missing --proof: {PROOF_REQUIRED}")
    changed = obj.app().set_consent(_change(phone, category, True, source, proof, country, medium))
    click.echo(f"{_masked(phone)} {category}{_on(medium)}: granted" + ("" if changed else " (unchanged)"))


@consent.command("revoke")
@click.argument("phone")
@click.argument("category", type=CATEGORY)
@click.option("--source", default="cli", show_default=True)
@click.option("--proof", default=None)
@click.option("--country")
@MEDIUM
@pass_ctx
def consent_revoke(obj: Ctx, phone: str, category: str, source: str, proof: str | None, country: str | None,
                   medium: str) -> None:
    """Record an opt-out for CATEGORY; it wins at once, also over queued messages."""
    changed = obj.app().set_consent(_change(phone, category, False, source, proof, country, medium))
    click.echo(f"{_masked(phone)} {category}{_on(medium)}: revoked" + ("" if changed else " (unchanged)"))


def _masked(who: str) -> str:
    from ..core.email_addresses import mask as mask_address
    return mask_address(who) if "@" in who else mask(who)


def _on(medium: str) -> str:
    return "" if medium == "whatsapp" else f" on {medium}"  # what it said before media existed


CONSENT_COLUMNS = [Column("category"), Column("medium"),
                   Column("consent", lambda r: "granted" if r.granted else "revoked"), Column("since", "at"),
                   Column("source"), Column("proof")]


@consent.command("show")
@click.argument("phone")
@click.option("--country")
@click.option("--history", is_flag=True, help="Every record, oldest first.")
@json_option
@pass_ctx
def consent_show(obj: Ctx, phone: str, country: str | None, history: bool, as_json: bool) -> None:
    """Show consent per category with its proof (--history: every record)."""
    app = obj.app()
    records = app.consent_history(phone, country) if history else [
        record for deciding in app.consent_by_medium(phone, country).values() for record in deciding.values()]
    emit(records, as_json, columns=CONSENT_COLUMNS, empty=f"{mask(phone)}: no consent on record")


SHOWN_BAD_LINES = 20


@consent.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--country", help="Country for national numbers in the file (a row's own country column wins).")
@click.option("--skip-invalid", is_flag=True,
              help="Import the good rows of a file with bad ones (default: a bad row stops the whole import).")
@pass_ctx
def consent_import(obj: Ctx, csv_file: Any, country: str | None, skip_invalid: bool) -> None:
    """Import consent from a CSV file: phone,category,granted[,source,proof,at,country], or a file
    `consent export` wrote (contact_key,hash_key_id,...).

    Every row is checked first. A bad row (a granted value that is not true/false, a grant without
    proof, a bad number or time) is named with its line, and nothing is imported unless
    --skip-invalid is given. Rows the ledger already holds are not added again, so importing the
    same file twice changes nothing the second time.
    """
    from ..core.consent_files import BadHeader, records
    app = obj.app()
    with progress("checking", None) as bar:
        try:
            rows = records(csv_file, bar.advance)
        except BadHeader as exc:
            raise CommandFailed(f"{csv_file.name}: {exc}") from None
        checked = app.check_consent_rows(rows, country)
    for bad in checked.bad[:SHOWN_BAD_LINES]:
        click.echo(f"{csv_file.name}: line {bad.line}: {bad.reason}", err=True)
    if len(checked.bad) > SHOWN_BAD_LINES:
        click.echo(f"{csv_file.name}: ... and {counted(len(checked.bad) - SHOWN_BAD_LINES, 'more bad line')}", err=True)
    if checked.bad and not skip_invalid:
        raise CommandFailed(f"{csv_file.name}: {counted(len(checked.bad), 'bad line')}, nothing imported; fix them "
                            "(or import the other rows with --skip-invalid)")
    with progress("importing", len(checked.rows)) as bar:
        result = app.import_consent(checked.rows, bar.advance)
    click.echo(f"imported {result.added}, already recorded {result.unchanged}"
               + (f", skipped {counted(len(checked.bad), 'bad line')}" if checked.bad else ""))


@consent.command("export")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-")
@pass_ctx
def consent_export(obj: Ctx, output: Any) -> None:
    """Export the whole ledger as CSV, oldest record first: every grant and revocation with its
    source, proof and time. Contacts appear as keyed hashes (the ledger keeps no numbers), with the
    id of the key that made them; `consent import` restores such a file where that key is configured.
    """
    writer = csv.writer(output)
    for row in obj.app().consent_export():
        writer.writerow(row)
