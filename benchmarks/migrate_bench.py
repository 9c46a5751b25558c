"""How long an upgrade's migrations hold a daemon's start: an SQLite file at schema version 5
with `--runs` runs (and one schedule per 100 runs) opened by this schedd.

    .venv/bin/python benchmarks/migrate_bench.py --runs 100000,1000000 --repeat 3

Migration 0007 rebuilds the schedules and runs tables (SQLite cannot change a CHECK in
place), so its time grows with the history kept. Each figure is the median of `--repeat`
opens, each of a fresh copy of the old file; the file is made once per size.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schedd.store import db as sqlite_db  # noqa: E402
from schedd.store.db import Database  # noqa: E402

FAMILIES = ("maintenance", "aggregate", "service")


async def make_old(path: Path, runs: int) -> None:
    every = sqlite_db.migrations()
    sqlite_db.migrations = lambda: [m for m in every if m.version <= 5]  # type: ignore[assignment]
    try:
        db = Database(path)
        await db.open()
        await db.close()
    finally:
        sqlite_db.migrations = lambda: every  # type: ignore[assignment]
    schedules = max(1, runs // 100)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO orgs (id, created_at) VALUES ('acme', 0)")
        conn.executemany(
            "INSERT INTO schedules (uid, family, org_id, cron, cron_normalized, timezone, created_at, updated_at)"
            " VALUES (?, ?, 'acme', '0 * * * *', '0 * * * *', 'UTC', 0, 0)",
            ((f"s{n}", FAMILIES[n % 3]) for n in range(1, schedules + 1)))
        conn.executemany(
            "INSERT INTO runs (uid, family, schedule_id, overlap_key, org_id, trigger, state, created_at, started_at,"
            " ended_at, error) VALUES (?, ?, ?, ?, 'acme', 'Scheduled', 'done', ?, ?, ?, NULL)",
            ((f"00000000-0000-4000-8000-{n:012d}", FAMILIES[(n % schedules + 1) % 3], n % schedules + 1,
              f"k{n % schedules + 1}", float(n), n + 0.1, n + 1.0) for n in range(runs)))
    conn.close()


async def open_once(path: Path) -> tuple[float, list[int]]:
    started = time.perf_counter()
    db = Database(path)
    await db.open()
    elapsed = time.perf_counter() - started
    applied = db.applied
    await db.close()
    return elapsed, applied


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="100000,1000000", help="comma-separated run counts")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="schedd-migrate-") as tmp:
        for runs in (int(n) for n in args.runs.split(",")):
            old = Path(tmp) / f"old-{runs}.db"
            await make_old(old, runs)
            size = old.stat().st_size / 1e6
            times = []
            for i in range(args.repeat):
                copy = Path(tmp) / f"copy-{runs}-{i}.db"
                shutil.copyfile(old, copy)
                elapsed, applied = await open_once(copy)
                assert applied == [6, 7], applied
                times.append(elapsed)
                copy.unlink()
            print(f"runs={runs} file={size:.0f} MB upgrade to 7: median {statistics.median(times):.2f} s "
                  f"(runs: {', '.join(f'{t:.2f}' for t in times)})", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
