"""Next-fire computations per second: schedd.cron vs croniter alone vs cronsim alone.

    .venv/bin/python benchmarks/cron_bench.py [--starts N]

Each library answers "the first fire strictly after t" for 10 typical expressions (all in
the 5-field spelling every library reads the same way), from N seeded instants spread over
2026, in UTC and in America/New_York. Each figure is the median of 3 repetitions.
How each is driven, as an engine with many schedules would:
  schedd   parse() once per expression (cached), then next_after(t, zone)
  croniter one croniter object per expression and zone, set_current(t) then get_next()
  cronsim  CronSim(expr, datetime) then next() (it has no way to restart an iterator)
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from croniter import croniter
from cronsim import CronSim

from schedd.cron import load_zone, parse

EXPRESSIONS = [
    "*/5 * * * *",
    "0 * * * *",
    "0 0 * * *",
    "30 2 * * *",
    "0 9 * * 1-5",
    "*/15 9-17 * * 1-5",
    "0 0 1 * *",
    "0 12 * * 0",
    "15 10 L * *",
    "0 0 1 1 *",
]
ZONES = ["UTC", "America/New_York"]
REPEATS = 3


def starts(n: int) -> list[float]:
    rng = random.Random(42)
    lo = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    return [lo + rng.randrange(365 * 86400) for _ in range(n)]


def run_schedd(zone_name: str, instants: list[float]) -> int:
    zone = load_zone(zone_name)
    n = 0
    for expr in EXPRESSIONS:
        cron = parse(expr)
        for t in instants:
            cron.next_after(t, zone)
            n += 1
    return n


def run_croniter(zone_name: str, instants: list[float]) -> int:
    zone = ZoneInfo(zone_name)
    dts = [datetime.fromtimestamp(t, zone) for t in instants]
    n = 0
    for expr in EXPRESSIONS:
        it = croniter(expr, dts[0])
        for dt in dts:
            it.set_current(dt)
            it.get_next(float)
            n += 1
    return n


def run_cronsim(zone_name: str, instants: list[float]) -> int:
    zone = ZoneInfo(zone_name)
    dts = [datetime.fromtimestamp(t, zone) for t in instants]
    n = 0
    for expr in EXPRESSIONS:
        for dt in dts:
            next(CronSim(expr, dt))
            n += 1
    return n


def rate(fn, zone: str, instants: list[float]) -> float:
    fn(zone, instants[:10])  # warm caches (schedd's zone table, imports)
    rates = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        n = fn(zone, instants)
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=2000, help="start instants per expression (default 2000)")
    args = parser.parse_args()
    instants = starts(args.starts)
    print(f"{len(EXPRESSIONS)} expressions x {len(instants)} start instants, median of {REPEATS}; next fires per second")
    print(f"{'zone':<18} {'schedd.cron':>12} {'croniter':>12} {'cronsim':>12} {'schedd/croniter':>16}")
    for zone in ZONES:
        ours = rate(run_schedd, zone, instants)
        theirs = rate(run_croniter, zone, instants)
        sim = rate(run_cronsim, zone, instants)
        print(f"{zone:<18} {ours:>12,.0f} {theirs:>12,.0f} {sim:>12,.0f} {ours / theirs:>15.1f}x")


if __name__ == "__main__":
    main()
