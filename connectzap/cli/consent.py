"""``connectzap consent ...``: the consent ledger."""

from __future__ import annotations

import csv
from typing import Any

import click

from ..core.errors import ConnectzapError
from ..core.phones import mask
from .base import Ctx, cli, pass_ctx
from .output import Column, emit, json_option


@cli.group()
def consent() -> None:
    """Grant, revoke, show, import and export consent."""


def _change(phone: str, category: str, granted: bool, source: str, proof: str | None, country: str | None) -> Any:
    from ..core.models import ConsentChange
    return ConsentChange(phone=phone, category=category, granted=granted, source=source, proof=proof, country=country)


CATEGORY = click.Choice(["marketing", "utility", "authentication"])


@consent.command("grant")
@click.argument("phone")
@click.argument("category", type=CATEGORY)
@click.option("--source", default="cli", show_default=True, help="Where the opt-in was collected.")
@click.option("--proof", required=True, help="The wording the customer agreed to, or a reference to it.")
@click.option("--country")
@pass_ctx
def consent_grant(obj: Ctx, phone: str, category: str, source: str, proof: str, country: str | None) -> None:
    """Record an opt-in for CATEGORY."""
    changed = obj.app().set_consent(_change(phone, category, True, source, proof, country))
    click.echo(f"{mask(phone)} {category}: granted" + ("" if changed else " (unchanged)"))


@consent.command("revoke")
@click.argument("phone")
@click.argument("category", type=CATEGORY)
@click.option("--source", default="cli", show_default=True)
@click.option("--proof", default=None)
@click.option("--country")
@pass_ctx
def consent_revoke(obj: Ctx, phone: str, category: str, source: str, proof: str | None, country: str | None) -> None:
    """Record an opt-out for CATEGORY; it wins at once, also over queued messages."""
    changed = obj.app().set_consent(_change(phone, category, False, source, proof, country))
    click.echo(f"{mask(phone)} {category}: revoked" + ("" if changed else " (unchanged)"))


CONSENT_COLUMNS = [Column("category"), Column("consent", lambda r: "granted" if r.granted else "revoked"),
                   Column("since", "at"), Column("source"), Column("proof")]


@consent.command("show")
@click.argument("phone")
@click.option("--country")
@click.option("--history", is_flag=True, help="Every record, oldest first.")
@json_option
@pass_ctx
def consent_show(obj: Ctx, phone: str, country: str | None, history: bool, as_json: bool) -> None:
    """Show consent per category with its proof (--history: every record)."""
    app = obj.app()
    records = app.consent_history(phone, country) if history else list(app.consent(phone, country).values())
    emit(records, as_json, columns=CONSENT_COLUMNS, empty=f"{mask(phone)}: no consent on record")


@consent.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8"))
@click.option("--country", help="Country for national numbers in the file.")
@pass_ctx
def consent_import(obj: Ctx, csv_file: Any, country: str | None) -> None:
    """Import consent from CSV with columns phone,category,granted[,source,proof,at].

    Bad rows are reported with their line number and skipped; good rows are imported.
    """
    from pydantic import ValidationError

    from ..core.models import ConsentChange
    app = obj.app()
    reader = csv.DictReader(csv_file)
    missing = {"phone", "category", "granted"} - set(reader.fieldnames or [])
    if missing:
        raise click.ClickException(f"CSV needs columns: {', '.join(sorted(missing))}")
    imported = skipped = 0
    for line, row in enumerate(reader, start=2):
        try:
            granted = str(row["granted"]).strip().lower() in ("1", "true", "yes", "y", "granted")
            data: dict[str, Any] = {"phone": row["phone"], "category": row["category"].strip().lower(),
                                    "granted": granted, "source": row.get("source") or "csv-import",
                                    "proof": row.get("proof") or None, "country": row.get("country") or country}
            if row.get("at"):
                data["at"] = row["at"]
            app.set_consent(ConsentChange.model_validate(data))
            imported += 1
        except (ValidationError, ConnectzapError, ValueError) as exc:
            skipped += 1
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            click.echo(f"line {line}: skipped: {reason}", err=True)
    click.echo(f"imported {imported}, skipped {skipped}")


@consent.command("export")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-")
@pass_ctx
def consent_export(obj: Ctx, output: Any) -> None:
    """Export the whole ledger as CSV. Contacts appear as keyed hashes: the ledger keeps no numbers."""
    writer = csv.writer(output)
    writer.writerow(["contact_key", "category", "granted", "source", "proof", "at"])
    for r in obj.app().consent_ledger():
        writer.writerow([r.contact_key, r.category.value, str(r.granted).lower(), r.source, r.proof or "",
                         r.at.isoformat()])

