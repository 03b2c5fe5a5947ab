"""`connectzap consent import/export`: every bad row is named by its line and a bad file changes
nothing; a grant needs proof exactly as `consent grant` demands it; importing a file twice leaves
one history; an export imports back (where the same contact hash key is configured); 20,000 rows
show a progress bar on a terminal and nothing when piped."""

from __future__ import annotations

import csv
import json
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from connectzap import ConsentChange, hookimpl
from connectzap.core.consent_files import ImportRow

from connectzap.core.app import Connectzap
from connectzap.core.store.schema import consents, events

CONNECTZAP = Path(sys.executable).with_name("connectzap")
HEADER = "phone,category,granted,source,proof,at\n"
ANA, BEN = "+4915112345678", "+4915112345679"


def write_config(path: Path, secret: str = "the-shops-contact-hash-key") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    config = path / "connectzap.toml"
    config.write_text(f'data_dir = "{path / "data"}"\n[privacy]\nhash_secret = "{secret}"\n'
                      '[sandbox]\nquiet = true\n')
    return config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "shop")


def cz(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CONNECTZAP), "--config", str(config), *args], capture_output=True, text=True,
                          timeout=300, check=False)


def history(config: Path, phone: str) -> list[dict[str, object]]:
    shown = cz(config, "consent", "show", phone, "--history", "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def exported(config: Path) -> list[list[str]]:
    done = cz(config, "consent", "export")
    assert done.returncode == 0, done.stderr
    return list(csv.reader(done.stdout.splitlines()))


def test_bad_rows_are_named_by_line_and_a_bad_file_changes_nothing(config: Path, tmp_path: Path):
    source = tmp_path / "optins.csv"
    source.write_text(HEADER
                      + f"{ANA},marketing,yes,shop,newsletter box,2026-01-05T10:00:00Z\n"    # line 2: good
                      + f"{BEN},marketing,maybe,shop,newsletter box,\n"                     # 3: granted?
                      + f"{BEN},marketing,,shop,newsletter box,\n"                          # 4: granted empty
                      + f"{ANA},spam,true,shop,x,\n"                                         # 5: category
                      + "12,utility,false,shop,,\n"                                          # 6: phone
                      + f"{ANA},utility,true,shop,x,yesterday\n"                             # 7: time
                      + f"{ANA},utility,true,shop,x,2999-01-01\n"                            # 8: future
                      + f"{BEN},utility,false,shop\n")                                       # 9: short row
    done = cz(config, "consent", "import", str(source))
    assert done.returncode == 1, done.stdout
    lines = done.stderr.splitlines()
    assert [line.split(": ")[1] for line in lines[:-1]] == [f"line {n}" for n in range(3, 10)]
    assert "granted 'maybe' is not true or false" in lines[0] and "granted '' is not" in lines[1]
    assert lines[-1] == f"error: {source}: 7 bad lines, nothing imported; fix them " \
                        "(or import the other rows with --skip-invalid)"
    assert "+49" not in done.stderr  # the bad lines name the line, not the number
    assert history(config, ANA) == [] and history(config, BEN) == []  # not even the good row
    assert exported(config)[1:] == []

    kept = cz(config, "consent", "import", "--skip-invalid", str(source))
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.strip() == "imported 1, already recorded 0, skipped 7 bad lines"
    assert [(r["category"], r["granted"]) for r in history(config, ANA)] == [("marketing", True)]
    assert history(config, BEN) == []  # 'maybe' was never read as a revocation


def test_one_bad_line_is_counted_as_one(config: Path, tmp_path: Path):
    source = tmp_path / "one-bad.csv"
    source.write_text(HEADER + f"{ANA},marketing,true,shop,box,\n" + f"{BEN},marketing,perhaps,shop,box,\n")
    refused = cz(config, "consent", "import", str(source))
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1].startswith(f"error: {source}: 1 bad line, nothing imported;")
    kept = cz(config, "consent", "import", "--skip-invalid", str(source))
    assert kept.stdout.strip() == "imported 1, already recorded 0, skipped 1 bad line"


def test_one_bad_line_beyond_the_first_twenty_is_one_more(config: Path, tmp_path: Path):
    source = tmp_path / "bad.csv"
    source.write_text(HEADER + "".join(f"{ANA},marketing,perhaps,shop,box,\n" for _ in range(21)))
    lines = cz(config, "consent", "import", str(source)).stderr.splitlines()
    assert lines[20] == f"{source}: ... and 1 more bad line" and "21 bad lines," in lines[21]


def test_many_bad_lines_are_counted_after_the_first_twenty(config: Path, tmp_path: Path):
    source = tmp_path / "bad.csv"
    source.write_text(HEADER + "".join(f"{ANA},marketing,perhaps,shop,box,\n" for _ in range(25)))
    done = cz(config, "consent", "import", str(source))
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and len(lines) == 22
    assert lines[19].startswith(f"{source}: line 21: ") and lines[20] == f"{source}: ... and 5 more bad lines"
    assert "25 bad lines," in lines[21]


@pytest.mark.parametrize("header", ["phone,category\n", "phone,category,granted,proff\n", ""])
def test_a_file_without_the_columns_is_refused_whole(config: Path, tmp_path: Path, header: str):
    source = tmp_path / "wrong.csv"
    source.write_text(header + (f"{ANA},marketing,true,x\n" if header else ""))
    done = cz(config, "consent", "import", str(source))
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"error: {source}: ")
    assert ("granted" if header == "phone,category\n" else "proff" if header else "empty") in done.stderr


def test_a_grant_without_proof_is_refused_as_consent_grant_refuses_it(config: Path, tmp_path: Path):
    grant = cz(config, "consent", "grant", ANA, "marketing")
    assert grant.returncode == 2
    rule = grant.stderr.split("missing --proof: ", 1)[1].split(" (see", 1)[0]
    source = tmp_path / "optins.csv"
    source.write_text(HEADER + f"{ANA},marketing,true,shop,,\n{ANA},marketing,true,shop,   ,\n"
                      f"{BEN},marketing,false,shop,,\n")
    done = cz(config, "consent", "import", str(source))
    assert done.returncode == 1
    assert done.stderr.splitlines()[:2] == [f"{source}: line 2: {rule} (the proof column is empty)",
                                            f"{source}: line 3: {rule} (the proof column is empty)"]
    assert history(config, ANA) == [] and history(config, BEN) == []
    # A revocation needs no proof.
    source.write_text(HEADER + f"{BEN},marketing,false,shop,,\n")
    assert cz(config, "consent", "import", str(source)).returncode == 0
    assert [r["granted"] for r in history(config, BEN)] == [False]


def test_importing_the_same_file_again_adds_nothing(config: Path, tmp_path: Path):
    source = tmp_path / "optins.csv"
    source.write_text(HEADER
                      + f"{ANA},marketing,true,shop,box A,2026-01-05T10:00:00Z\n"
                      + f"{ANA},marketing,false,shop,,2026-02-05T10:00:00Z\n"
                      + f"{ANA},marketing,true,shop,box B,2026-03-05T10:00:00+00:00\n"
                      + f"{BEN},utility,true,checkout,tick box,\n"
                      + f"{BEN},utility,false,checkout,,\n")
    first = cz(config, "consent", "import", str(source))
    assert first.returncode == 0 and first.stdout.strip() == "imported 5, already recorded 0", first.stderr
    before = exported(config)
    again = cz(config, "consent", "import", str(source))
    assert again.returncode == 0 and again.stdout.strip() == "imported 0, already recorded 5"
    assert exported(config) == before
    assert [r["granted"] for r in history(config, ANA)] == [True, False, True]
    assert [r["granted"] for r in history(config, BEN)] == [True, False]  # the file's last word stands


def test_an_export_imports_back_where_the_same_hash_key_is_configured(config: Path, tmp_path: Path):
    source = tmp_path / "optins.csv"
    source.write_text(HEADER
                      + f"{ANA},marketing,true,shop,\"box, with a comma\",2026-01-05T10:00:00Z\n"
                      + f"{ANA},marketing,false,whatsapp:keyword,customer wrote 'baja',2026-02-05T10:00:00.123456Z\n"
                      + f"{BEN},utility,true,checkout,tick box,2026-01-06\n")
    assert cz(config, "consent", "import", str(source)).returncode == 0
    dump = tmp_path / "ledger.csv"
    assert cz(config, "consent", "export", "-o", str(dump)).returncode == 0
    rows = list(csv.DictReader(dump.open()))
    assert [r["granted"] for r in rows] == ["true", "true", "false"]  # oldest first
    assert all(ANA.lstrip("+") not in ",".join(r.values()) for r in rows)  # keyed hashes, never numbers

    same_key = write_config(tmp_path / "restored")
    restored = cz(same_key, "consent", "import", str(dump))
    assert restored.returncode == 0 and restored.stdout.strip() == "imported 3, already recorded 0"
    assert exported(same_key) == exported(config)
    assert history(same_key, ANA) == history(config, ANA)
    assert cz(same_key, "consent", "import", str(dump)).stdout.strip() == "imported 0, already recorded 3"
    assert cz(config, "consent", "import", str(dump)).stdout.strip() == "imported 0, already recorded 3"

    other_key = write_config(tmp_path / "elsewhere", secret="another-installations-key")
    refused = cz(other_key, "consent", "import", str(dump))
    assert refused.returncode == 1
    assert [line.split(": ")[1] for line in refused.stderr.splitlines()[:-1]] == ["line 2", "line 3", "line 4"]
    assert "made with another contact hash key" in refused.stderr
    assert exported(other_key)[1:] == []


def test_twenty_thousand_rows_show_progress_on_a_terminal_only(config: Path, tmp_path: Path):
    source = tmp_path / "big.csv"
    with source.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone", "category", "granted", "source", "proof", "at"])
        for i in range(20_000):
            writer.writerow([f"+49151{10_000_000 + i}", "marketing", "yes", "newsletter", "sign-up box",
                             "2025-06-01T10:00:00Z"])
    piped = cz(config, "consent", "import", str(source))
    assert piped.returncode == 0 and piped.stdout.strip() == "imported 20000, already recorded 0"
    assert piped.stderr == ""

    # stderr on a terminal (stdout still piped): the bar is drawn there.
    leader, follower = pty.openpty()
    process = subprocess.Popen([str(CONNECTZAP), "--config", str(config), "consent", "import", str(source)],
                               stdout=subprocess.PIPE, stderr=follower, text=True,
                               env={**os.environ, "COLUMNS": "100", "TERM": "xterm"})
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        drawn += chunk
    out, _ = process.communicate(timeout=300)
    os.close(leader)
    assert process.returncode == 0 and out.strip() == "imported 0, already recorded 20000"
    assert b"importing" in drawn and b"20000/20000" in drawn.replace(b"\x1b", b" ").replace(b" ", b"")


# --- the ledger an import leaves, for any file ------------------------------------------------------

PHONES = [ANA, BEN, "+34612345678"]
ROW = st.fixed_dictionaries({
    "phone": st.sampled_from(PHONES), "category": st.sampled_from(["marketing", "utility"]),
    "granted": st.booleans(), "source": st.sampled_from(["shop", "crm"]),
    "proof": st.sampled_from(["box A", "box B"]),
    "at": st.one_of(st.none(), st.integers(0, 3).map(lambda d: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=d))),
})


def as_records(rows: list[dict[str, object]]) -> list[tuple[int, dict[str, str | None]]]:
    return [(line, {"phone": str(r["phone"]), "category": str(r["category"]),
                    "granted": "true" if r["granted"] else "false", "source": str(r["source"]),
                    "proof": str(r["proof"]), "at": r["at"].isoformat() if r["at"] else ""})  # type: ignore[attr-defined]
            for line, r in enumerate(rows, start=2)]


def _row(granted: bool, day: int | None) -> dict[str, object]:
    return {"phone": ANA, "category": "marketing", "granted": granted, "source": "shop", "proof": "box A",
            "at": None if day is None else datetime(2026, 1, 1 + day, tzinfo=UTC)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROW, max_size=12))
# An undated repeat of the current state is still "now": a later-dated row of the file must not outrank it.
@example(rows=[_row(False, 1), _row(False, None), _row(True, 2)])
def test_an_import_leaves_the_files_last_word_and_a_second_import_adds_nothing(app: Connectzap, rows):
    with app.db.begin() as conn:
        conn.execute(delete(consents))
        conn.execute(delete(events))
    checked = app.check_consent_rows(as_records(rows))
    assert not checked.bad
    first = app.import_consent(checked.rows)
    assert first.added + first.unchanged == len(rows)
    ledger = app.consent_ledger()
    assert len(ledger) == first.added
    # The deciding record per contact and category is the file's last row for it by time (rows
    # without a time are "now", after every dated one), file order breaking ties; a dated row
    # repeating an earlier one exactly is that row.
    latest: dict[tuple[str, str], tuple[datetime, int, bool]] = {}
    for order, (row, checked_row) in enumerate(zip(rows, checked.rows, strict=True)):
        if row["at"] is not None and row in rows[:order]:
            continue
        key = (str(row["phone"]), str(row["category"]))
        candidate = (checked_row.at, order, bool(row["granted"]))
        latest[key] = max(latest.get(key, candidate), candidate)
    for (phone, category), (_, _, granted) in latest.items():
        assert app.consent(phone)[category].granted is granted  # type: ignore[index]
    again = app.import_consent(app.check_consent_rows(as_records(rows)).rows)
    assert again.added == 0 and app.consent_ledger() == ledger


class ConsentListener:
    @hookimpl
    def on_consent_changed(self, change: ConsentChange, ctx: Any) -> None:
        pass


def test_imported_changes_reach_listeners_in_the_contacts_order(app: Connectzap):
    """With nothing listening, an import journals nothing (no number waits in the journal), as
    ``set_consent``; with a listener, each change is journaled with the ordering key the engine
    gives that contact's events, so it is applied in order with the customer's other events."""
    from connectzap.core import ordering
    from connectzap.testing import registered_plugin

    def row(category: str) -> list[ImportRow]:
        return app.check_consent_rows(as_records([{"phone": "0034 612 345 678", "category": category,
                                                   "granted": True, "source": "shop", "proof": "box",
                                                   "at": None}])).rows
    assert app.import_consent(row("marketing")).added == 1
    with registered_plugin(ConsentListener(), "import_consent_listener"):
        assert app.import_consent(row("utility")).added == 1
    with app.db.read() as conn:
        stored = conn.execute(select(events.c.kind, events.c.ordering_key)).all()
    customer = ordering.contact(app.contact_key("+34612345678"))
    assert stored == [("consent_changed", ordering.hashed(customer, app.secret))]


def records_of(text: str) -> list[tuple[int, dict[str, str | None]]]:
    from io import StringIO

    from connectzap.core.consent_files import records
    return list(records(StringIO(text)))


def test_a_medium_column_records_each_row_on_its_medium_and_an_export_keeps_it(app: Connectzap):
    """Rows name their medium (WhatsApp when the column is absent or empty, as before media
    existed); an address is a customer known only by email; the export carries the medium, so
    it imports back onto the same medium (and importing it again adds nothing)."""
    old_file = HEADER + f"{ANA},marketing,true,shop,box A,2026-01-05T10:00:00Z\n"
    with_media = ("phone,category,granted,source,proof,at,medium\n"
                  f"{ANA},marketing,false,support,,2026-01-06T10:00:00Z,email\n"
                  f"{ANA},utility,true,shop,box B,2026-01-06T10:00:00Z,\n"
                  "Ana@Example.org,marketing,true,newsletter,box C,2026-01-07T10:00:00Z,email\n")
    for text in (old_file, with_media):
        checked = app.check_consent_rows(records_of(text))
        assert checked.bad == [] and app.import_consent(checked.rows).added == len(checked.rows)
    assert app.consent(ANA)["marketing"].granted and app.consent(ANA)["utility"].granted  # WhatsApp's
    assert not app.consent(ANA, medium="email")["marketing"].granted  # email's own, apart
    assert app.consent("ana@example.org", medium="email")["marketing"].granted
    assert app.consent("ana@example.org") == {}
    exported = list(app.consent_export())
    assert exported[0][-1] == "medium" and sorted(r[-1] for r in exported[1:]) == ["email", "email", "whatsapp",
                                                                                   "whatsapp"]
    dump = "\n".join(",".join(f'"{v}"' for v in row) for row in exported) + "\n"
    again = app.check_consent_rows(records_of(dump))
    assert again.bad == [] and app.import_consent(again.rows).added == 0  # the same records, medium and all
    old_export = "\n".join(",".join(f'"{v}"' for v in row[:-1]) for row in exported) + "\n"
    as_whatsapp = app.check_consent_rows(records_of(old_export))  # an export from before media existed
    assert {row.medium for row in as_whatsapp.rows} == {"whatsapp"}


def test_the_export_writes_times_in_utc_with_z_and_imports_either_form(app: Connectzap):
    """The export writes times as the REST API does (UTC as ``Z``); a file written before, with
    ``+00:00``, still imports, and so does the export itself."""
    as_before = (HEADER + f"{ANA},marketing,true,shop,box A,2026-01-05T10:00:00+00:00\n"
                 + f"{BEN},marketing,true,shop,box A,2026-01-05T11:00:00.412000+00:00\n")
    checked = app.check_consent_rows(records_of(as_before))
    assert checked.bad == [] and app.import_consent(checked.rows).added == 2
    exported = list(app.consent_export())
    at = exported[0].index("at")
    assert [row[at] for row in exported[1:]] == ["2026-01-05T10:00:00Z", "2026-01-05T11:00:00.412000Z"]
    dump = "\n".join(",".join(f'"{v}"' for v in row) for row in exported) + "\n"
    again = app.check_consent_rows(records_of(dump))
    assert again.bad == [] and app.import_consent(again.rows).added == 0  # the same records, read back


@pytest.mark.parametrize(("phone", "medium", "reason"), [
    (ANA, "E-Mail", "is not a medium"),
    ("ana@example.org", "whatsapp", "on medium email only"),
    ("ana@@example.org", "email", "not a valid email address"),
])
def test_a_bad_medium_or_address_is_a_bad_line(app: Connectzap, phone: str, medium: str, reason: str):
    checked = app.check_consent_rows(records_of("phone,category,granted,source,proof,at,medium\n"
                                                f"{phone},marketing,true,shop,box,,{medium}\n"))
    [bad] = checked.bad
    assert checked.rows == [] and bad.line == 2 and reason in bad.reason
