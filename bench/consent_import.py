"""How long `connectzap consent import` takes for a file of N rows, run by hand (not a test):

    .venv/bin/python bench/consent_import.py [--rows 20000] [--database-url postgresql+psycopg://...]

Writes a CSV of N distinct German mobile numbers (marketing grants with proof and time), then runs
the CLI as a user would -- import, the same import again (nothing added), export, and re-import of
the export -- and prints the wall time of each. The default database is a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONNECTZAP = Path(sys.executable).with_name("connectzap")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = args.database_url or f"sqlite:///{root / 'bench.db'}"
        config = root / "connectzap.toml"
        config.write_text(f'data_dir = "{root / "data"}"\n[database]\nurl = "{url}"\n[sandbox]\nquiet = true\n')
        source = root / "optins.csv"
        with source.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["phone", "category", "granted", "source", "proof", "at"])
            for i in range(args.rows):
                writer.writerow([f"+49151{10_000_000 + i}", "marketing", "yes", "newsletter-2025",
                                 "Newsletter sign-up form, box 'WhatsApp offers' ticked", "2025-06-01T10:00:00Z"])
        export = root / "export.csv"

        def timed(label: str, *command: str) -> None:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run([str(CONNECTZAP), "--config", str(config), *command], capture_output=True,
                                  text=True, check=False)
            elapsed = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            if done.returncode != 0:
                sys.exit(f"{label} failed: {done.stderr.strip()}")
            print(f"{label:20} {elapsed:6.2f} s wall {cpu:6.2f} s CPU  {done.stdout.strip()}")

        # On a shared machine wall time grows with the load; CPU time is what the import itself costs.
        print(f"{args.rows} rows on {url.split(':', 1)[0]}, load average {os.getloadavg()[0]:.1f}")
        timed("import", "consent", "import", str(source))
        timed("import again", "consent", "import", str(source))
        timed("export", "consent", "export", "-o", str(export))
        timed("import the export", "consent", "import", str(export))


if __name__ == "__main__":
    main()
