"""Regenerate cron_fixture.json from the real implementations: Quartz 2.3.2, cronsim and croniter.

Run from the repository root (needs Java 11+, Debian's libquartz2-java and libslf4j-java,
and cronsim and croniter in the venv; see README.md beside this file):

    .venv/bin/python tests/reference/generate.py
    .venv/bin/python tests/reference/generate.py --only unix_cronie   # that section alone, no Java

The output is deterministic (seeded random cases, fixed start instants), so a rerun with
the same Quartz, cronsim and tz database rewrites the same file.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from zoneinfo import ZoneInfo

from croniter import croniter
from cronsim import CronSim, CronSimError

HERE = Path(__file__).resolve().parent
OUT = HERE / "cron_fixture.json"
CLASSPATH = os.environ.get(
    "QUARTZ_CLASSPATH",
    ":".join(f"/usr/share/java/{jar}" for jar in ("quartz2.jar", "slf4j-api.jar", "slf4j-nop.jar")),
)
FIRES = 5
END = datetime(2100, 1, 1, tzinfo=UTC).timestamp()  # schedd stops at 2099 by design


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# --------------------------------------------------------------------------- oracles


def quartz(queries: list[tuple[str, str, float, int]], timeout: float = 600) -> list[tuple[str, object]]:
    """Ask QuartzOracle.java: ("OK", [epoch seconds]) or ("ERR", message) per (expr, zone, start, count)."""
    lines = [f"{i}\t{zone}\t{int(start * 1000)}\t{count}\t{expr}" for i, (expr, zone, start, count) in enumerate(queries)]
    proc = subprocess.run(
        ["java", "-cp", CLASSPATH, str(HERE / "QuartzOracle.java")],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    answers: dict[int, tuple[str, object]] = {}
    for line in proc.stdout.splitlines():
        ident, status, rest = (line.split("\t", 2) + [""])[:3]
        if status == "OK":
            answers[int(ident)] = ("OK", [int(v) / 1000 for v in rest.split(",") if v])
        else:
            answers[int(ident)] = ("ERR", rest)
    return [answers[i] for i in range(len(queries))]


def quartz_alone(expr: str, zone: str, start: float, count: int) -> tuple[str, object]:
    """One query in its own JVM: some accepted expressions (0W, L-30W) make Quartz loop forever."""
    try:
        return quartz([(expr, zone, start, count)], timeout=30)[0]
    except subprocess.TimeoutExpired:
        return ("HANG", "getNextValidTimeAfter did not return within 30 s")


def cronsim_fires(expr: str, zone: str, start: float, count: int) -> list[float] | str:
    it = CronSim(expr, datetime.fromtimestamp(start, ZoneInfo(zone)))
    out: list[float] = []
    try:
        for _ in range(count):
            out.append(next(it).timestamp())
    except StopIteration:
        pass
    return out


# --------------------------------------------------------------------------- DST helpers


def offset(zone: ZoneInfo, t: float) -> timedelta:
    return datetime.fromtimestamp(t, zone).utcoffset()


def transitions(zone_name: str, start: float, end: float) -> list[float]:
    """UTC instants where the zone's offset changes in [start, end] (daily scan, refined to the second)."""
    zone = ZoneInfo(zone_name)
    out = []
    t = start
    while t < end:
        nxt = min(t + 86400, end)
        if offset(zone, t) != offset(zone, nxt):
            lo, hi = t, nxt
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(zone, mid) == offset(zone, lo):
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        t = nxt
    return out


def dst_safe(zone: str, start: float, fires: list[float]) -> tuple[list[float], bool]:
    """Quartz is the oracle only until the zone's first offset change after `start` (docs/time.md)."""
    if not fires:
        return fires, True
    changes = transitions(zone, start, fires[-1] + 1)
    if not changes:
        return fires, True
    return [t for t in fires if t < changes[0]], False


def row(expr: str, zone: str, start: float, fires: list[float], complete: bool) -> dict:
    kept = [t for t in fires if t < END]
    return {"expr": expr, "zone": zone, "start": iso(start), "fires": [iso(t) for t in kept], "complete": complete}


# --------------------------------------------------------------------------- Quartz: hand-picked

QUARTZ_SPECIAL = [
    # plain fields, lists, ranges, steps
    "0 0 12 * * ?", "0 15 10 ? * *", "0 15 10 * * ? *", "0 0/5 14 * * ?", "0 0/5 14,18 * * ?",
    "0 0-5 14 * * ?", "0 10,44 14 ? 3 WED", "0 15 10 ? * MON-FRI", "0 15 10 15 * ?", "0 11 11 11 11 ?",
    "*/7 * * * * ?", "5/20 * * * * ?", "0 10-50/5 * * * ?", "0 0 */7 * * ?", "0 0 3/5 * * ?",
    "15,45 */10 * ? * *", "0 0 0 */10 * ?", "0 0 0 5/9 * ?", "0 0 0 1 */3 ?", "0 0 0 1 2/5 ?",
    "0 30 9 ? * */2", "0 30 9 ? * 2/3", "0 0 8-18/3 ? * 2-6", "30 20 4 1,15 * ?", "0 0 0 ? * 1",
    # names in any case
    "0 0 9 ? jan-mar mon", "0 0 9 ? Jul,aug,SEP Fri", "0 30 6 1 DEC ?", "0 0 7 ? * sat,SUN", "0 0 7 ? Feb tue-thu",
    # ranges that wrap, as Quartz reads them
    "0 0 22-2 * * ?", "0 50-10 * * * ?", "0 50-10/5 3 * * ?", "55-5 0 0 * * ?", "0 0 0 ? * FRI-MON",
    "0 0 12 ? NOV-FEB *", "0 0 0 25-5 * ?", "0 0 0 28-3/2 * ?", "0 0 0 1 11-2/2 ?", "0 0 0 ? * 6-2/2",
    # L, L-n, LW, L-nW, nW
    "0 0 0 L * ?", "0 0 12 L 2 ?", "0 0 0 L-1 * ?", "0 0 0 L-3 * ?", "0 0 0 L-28 * ?", "0 0 0 L-30 * ?",
    "0 0 18 LW * ?", "0 0 18 L-2W * ?", "0 0 18 L-5W * ?", "0 0 9 1W * ?", "0 0 9 15W * ?",
    "0 0 9 28W * ?", "0 0 9 2W * ?", "0 0 9 L-0 * ?", "0 0 9 L-27W * ?", "0 0 9 29W * ?",
    "0 0 9 30W * ?", "0 0 9 31W * ?",
    # nL, n#k, L alone (= SAT)
    "0 15 10 ? * 6L", "0 15 10 ? * 6L 2026", "0 0 0 ? * 1L", "0 0 0 ? * 7L", "0 0 12 ? * friL",
    "0 15 10 ? * 6#3", "0 0 12 ? * 2#1", "0 0 12 ? * MON#2", "0 0 0 ? * 5#5", "0 0 0 ? * 1#4",
    "0 0 0 ? 2 2#5", "0 0 0 ? * L", "0 0 0 ? 3 sat#5",
    # leap years, month ends
    "0 0 0 29 2 ?", "0 0 12 29 FEB ? 2024-2040", "0 0 0 31 * ?", "0 0 0 30 * ?", "0 0 0 31 1,3,5 ?",
    "0 0 0 30,31 * ?", "0 0 0 29-31 * ?", "59 59 23 L 12 ?", "59 59 23 31 12 ? *",
    # years: lists, ranges, steps, ranges that end
    "0 0 0 1 1 ? 2026-2027", "0 0 0 1 1 ? 2026,2028,2031", "0 0 0 1 1 ? 2030/2", "0 0 0 ? * 2#1 2026",
    "0 0 0 1 * ? 2020-2021", "0 0 0 L * ? 2026", "30 30 12 15 6 ? 2027", "0 0 0 1 1 ? */3",
    # seconds-level
    "* * * * * ?", "0/15 * * * * ?", "1-3,57-59 * * * * ?", "*/20 30 9 * * ?", "10 * 12 ? * 2",
    "/10 0 0 * * ?",
]

ZONE_STARTS = [
    ("UTC", "2026-01-01T00:00:00Z"),
    ("UTC", "2024-02-28T23:59:59Z"),
    ("UTC", "2031-07-15T12:34:56Z"),
]
# A zone per hand-picked case in turn, starting just after a DST change so Quartz's answers
# stay valid as long as possible (they are cut at the next change, see dst_safe).
ROTATING_ZONES = [
    ("Asia/Kolkata", "2026-05-01T00:00:00Z"),
    ("America/New_York", "2026-03-09T05:00:00Z"),
    ("Europe/Berlin", "2026-03-30T00:00:00Z"),
    ("Asia/Tokyo", "2025-12-31T15:00:00Z"),
    ("Australia/Sydney", "2026-04-06T00:00:00Z"),
    ("Asia/Kathmandu", "2027-02-10T07:00:00Z"),
    ("America/Sao_Paulo", "2026-01-01T03:00:00Z"),
    ("Pacific/Chatham", "2026-04-06T00:00:00Z"),
]

# (expression, field schedd names): Quartz rejects each of these too.
QUARTZ_INVALID = [
    ("0 0 0 ? * 8", "day-of-week"), ("0 0 0 ? * 0", "day-of-week"), ("60 0 0 * * ?", "second"),
    ("0 60 0 * * ?", "minute"), ("0 0 24 * * ?", "hour"), ("0 0 0 32 * ?", "day-of-month"),
    ("0 0 0 0 * ?", "day-of-month"), ("0 0 0 * 13 ?", "month"), ("0 0 0 * 0 ?", "month"),
    ("0 0 0 * * *", "day-of-week"), ("0 0 0 ? * ?", "day-of-week"), ("0 0 0 1 * MON", "day-of-week"),
    ("0 0 0 1 * 2", "day-of-week"), ("0 0", "expression"), ("0 0 0 *", "expression"),
    ("0 0 0 L,5 * ?", "day-of-month"), ("0 0 0 LW,1 * ?", "day-of-month"), ("0 0 0 ? * 5L,6", "day-of-week"),
    ("0 0 0 ? * 1,L", "day-of-week"), ("0 0 0 ? * 1#2,3#4", "day-of-week"), ("0 0 0 ? * 6#6", "day-of-week"),
    ("0 0 0 ? * 6#0", "day-of-week"), ("0 0 0 ? * 6#", "day-of-week"), ("0 0 0 L-31 * ?", "day-of-month"),
    ("0 0 0 32W * ?", "day-of-month"), ("0 0 0 ? * 8L", "day-of-week"), ("0 0 0 ? * 0L", "day-of-week"),
    ("0 0 0 15L * ?", "day-of-month"), ("0 0 0 ? * 5W", "day-of-week"), ("0 0 0 1#2 * ?", "day-of-month"),
    ("? 0 0 * * ?", "second"), ("0 ? 0 * * ?", "minute"), ("0 0 ? * * ?", "hour"), ("0 0 0 * ? *", "month"),
    ("0 0 0 * FOO ?", "month"), ("0 0 0 ? * FOO", "day-of-week"), ("0 0 0 ? * MON-5", "day-of-week"),
    ("0 0 0 ? * 1-FRI", "day-of-week"), ("0 0 0 * JAN-3 ?", "month"), ("0 0 0 * * ? 2030-2020", "year"),
    ("*/60 * * * * ?", "second"), ("0 */60 * * * ?", "minute"), ("0 0 */24 * * ?", "hour"),
    ("0 0 0 */32 * ?", "day-of-month"), ("0 0 0 * */13 ?", "month"), ("0 0 0 ? * */8", "day-of-week"),
    ("0 0 0 * * ? ?", "year"), ("0 0/ 0 * * ?", "minute"), ("0 0 0 W * ?", "day-of-month"),
    ("0 0 0 LX * ?", "day-of-month"), ("0 0 0 L- * ?", "day-of-month"), ("0 0 25 * * ?", "hour"),
    ("0 0 0 ? * 1-8", "day-of-week"), ("0 0 0 1-32 * ?", "day-of-month"), ("0 0-60 0 * * ?", "minute"),
    ("0 0 0 * 1-13 ?", "month"), ("0 0 0 ? * SUN#0", "day-of-week"), ("x 0 0 * * ?", "second"),
]

# (expression, field, why): Quartz 2.3.2 accepts these, schedd refuses them on purpose.
QUARTZ_DIVERGENT = [
    ("0 0 0 * JANUAR ?", "month", "Quartz reads the first three letters and ignores the rest"),
    ("0 0 0 ? * MONDAY", "day-of-week", "Quartz reads the first three letters and ignores the rest"),
    ("0 0 0 1-5W * ?", "day-of-month", "Quartz ignores a W after a range"),
    ("0 0 0 15W,20 * ?", "day-of-month", "Quartz uses only the first day of a list with W"),
    ("0 0 0 ? * MON/2", "day-of-week", "Quartz drops a step after a name"),
    ("0 0 0 ? * MON-FRI/2", "day-of-week", "Quartz drops a step after a name"),
    ("0 0 0 ? * 2,6#3", "day-of-week", "Quartz applies #3 to the first day of the list"),
    ("0 0 0 ? * 8#1", "day-of-week", "Quartz skips the range check before '#' and never fires"),
    ("0 0 0 0W * ?", "day-of-month", "Quartz skips the range check before 'W' and loops forever"),
    ("0 0 0 5/0 * ?", "day-of-month", "a step of 0: Quartz keeps only the start"),
    ("0 0-10/60 0 * * ?", "minute", "a step above 59: Quartz checks it only after a single value"),
    ("0 *5 0 * * ?", "minute", "Quartz reads *5 as *"),
    ("0 0 12X * * ?", "hour", "Quartz ignores trailing characters"),
    ("0 0 0 ?x * *", "day-of-month", "Quartz ignores a character after '?' at the end of a field"),
    ("0 0 0 * * ? 2026 extra", "expression", "Quartz ignores fields after the seventh"),
    ("0 0 0 * * ? 1969", "year", "years are 1970-2099; Quartz accepts any and never fires"),
    ("0 0 0 * * ? 2100", "year", "years are 1970-2099; Quartz's limit moves with the current year"),
    ("0 0 0 30 2 ?", "day-of-month", "never fires: Quartz accepts it and searches to its last year"),
    ("0 0 0 31 4,6,9,11 ?", "day-of-month", "never fires: Quartz accepts it and searches to its last year"),
    ("0 0 0 L-30W * ?", "day-of-month", "Quartz loops forever once L-n falls before the 1st (February)"),
    ("0 0 0 L-28W * ?", "day-of-month", "Quartz loops forever once L-n falls before the 1st (February)"),
]


# --------------------------------------------------------------------------- Quartz: random


def random_quartz(rng: random.Random) -> str:
    def time_field(lo: int, hi: int, fixed_bias: float) -> str:
        r = rng.random()
        if r < fixed_bias:
            return str(rng.randint(lo, hi))
        r = rng.random()
        if r < 0.15:
            return "*"
        if r < 0.3:
            return f"*/{rng.randint(1, min(hi, 30))}"
        if r < 0.45:
            return f"{rng.randint(lo, hi)}/{rng.randint(1, min(hi, 30))}"
        if r < 0.65:
            return ",".join(str(v) for v in rng.sample(range(lo, hi + 1), rng.randint(2, 4)))
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        if r < 0.8:
            return f"{a}-{b}"  # may wrap, as Quartz allows
        return f"{a}-{b}/{rng.randint(1, 6)}"

    def name(n: str) -> str:
        return rng.choice([n, n.lower(), n.capitalize()])

    months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    days = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

    sec = time_field(0, 59, 0.75)
    minute = time_field(0, 59, 0.5)
    hour = time_field(0, 23, 0.5)
    r = rng.random()
    if r < 0.5:
        month = "*"
    elif r < 0.6:
        month = str(rng.randint(1, 12))
    elif r < 0.7:
        month = name(rng.choice(months))
    elif r < 0.8:
        month = ",".join(rng.choice([str(m), name(months[m - 1])]) for m in rng.sample(range(1, 13), rng.randint(2, 4)))
    elif r < 0.9:
        a, b = rng.sample(range(12), 2)
        month = rng.choice([f"{a + 1}-{b + 1}", f"{name(months[a])}-{name(months[b])}"])
    else:
        month = f"{rng.choice(['*', str(rng.randint(1, 12))])}/{rng.randint(1, 6)}"

    if rng.random() < 0.5:
        dow = "?"
        r = rng.random()
        if r < 0.2:
            dom = "*"
        elif r < 0.35:
            dom = str(rng.randint(1, 31))
        elif r < 0.45:
            dom = ",".join(str(v) for v in rng.sample(range(1, 32), rng.randint(2, 4)))
        elif r < 0.55:
            dom = f"{rng.randint(1, 31)}-{rng.randint(1, 31)}"
        elif r < 0.62:
            dom = f"{rng.choice(['*', str(rng.randint(1, 31))])}/{rng.randint(1, 10)}"
        elif r < 0.7:
            dom = "L"
        elif r < 0.78:
            dom = f"L-{rng.randint(0, 30)}"
        elif r < 0.84:
            dom = "LW"
        elif r < 0.9:
            dom = f"L-{rng.randint(0, 27)}W"  # L-28W and up: Quartz may loop (see QUARTZ_DIVERGENT)
        else:
            dom = f"{rng.randint(1, 28)}W"  # 29W-31W: Quartz's answer depends on its start month
    else:
        dom = "?"
        r = rng.random()
        if r < 0.15:
            dow = "*"
        elif r < 0.3:
            dow = rng.choice([str(rng.randint(1, 7)), name(rng.choice(days))])
        elif r < 0.42:
            dow = ",".join(rng.choice([str(d), name(days[d - 1])]) for d in rng.sample(range(1, 8), rng.randint(2, 4)))
        elif r < 0.55:
            a, b = rng.sample(range(7), 2)
            dow = rng.choice([f"{a + 1}-{b + 1}", f"{name(days[a])}-{name(days[b])}"])
        elif r < 0.62:
            dow = f"{rng.choice(['*', str(rng.randint(1, 7))])}/{rng.randint(1, 4)}"
        elif r < 0.75:
            dow = rng.choice([f"{rng.randint(1, 7)}L", f"{name(rng.choice(days))}L"])
        elif r < 0.95:
            dow = f"{rng.choice([str(rng.randint(1, 7)), name(rng.choice(days))])}#{rng.randint(1, 5)}"
        else:
            dow = "L"
    parts = [sec, minute, hour, dom, month, dow]
    r = rng.random()
    if r < 0.15:
        parts.append("*")
    elif r < 0.25:
        a = rng.randint(2018, 2040)
        parts.append(rng.choice([f"{a}", f"{a}-{a + rng.randint(0, 5)}", f"{a}/{rng.randint(1, 4)}",
                                 ",".join(str(y) for y in sorted(rng.sample(range(2018, 2041), 3)))]))
    return " ".join(parts)


# --------------------------------------------------------------------------- Unix (cronsim)

UNIX_SPECIAL = [
    "* * * * *", "*/15 * * * *", "5 4 * * *", "0 9 * * 1-5", "0 9 * * MON-FRI", "30 8 * * sat,sun",
    "0 0 1 * *", "0 0 1 1 *", "0 12 * JAN-MAR *", "0 12 * jul *", "0 0 * * 0", "0 0 * * 7", "0 0 * * SUN",
    "0 0 * * 1/2", "0 0 * * */2", "0 0 */7 * *", "0 0 5/10 * *", "0 0 1-20/3 * *", "15 3 */2 * *",
    "0 0 L * *", "0 0 LW * *", "0 0 L 2 *", "0 0 1,L * *", "0 0 * * 5L", "0 0 * * 0L", "0 0 * * 7L",
    "0 0 * * MON#1", "0 0 * * 1#2", "0 0 * * FRI#5", "0 0 * * 1#1,5#3", "0 0 * * 1L,5L", "0 0 * * 6#5",
    "0 0 29 2 *", "0 0 31 * *", "0 0 30 * *",
    # the OR rule: both day fields restricted
    "0 0 1 * MON", "0 0 13 * 5", "0 0 1,15 * 1-5", "0 0 L * 5", "0 0 LW * 0", "0 0 1 * 1#3", "0 0 15 * 5L",
    "0 0 29 2 1", "0 0 31 * 0", "30 6 1-7 * 1",
    # ...and the AND it becomes when a day field starts with '*'
    "0 0 */2 * 1", "0 0 * * 1", "0 0 1-7 * */1", "0 0 */3 * 5L", "0 0 */1 * 1#2", "0 0 *,13 * 5",
    "0 0 1 * *,5", "0 0 */2 2 1",
    "0 0-5 * * *", "59 23 31 12 *", "0 0 1 */3 *", "0 0 1 2-11/3 *", "1,2,3 4,5,6 7,8,9 10,11,12 0,1,2",
]

# (expression, field schedd names); cronsim's message names the same field.
UNIX_INVALID = [
    "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *", "* * * 13 *", "* * * 0 *", "* * * * 8",
    "* * 30 2 *", "* * 31 4 *", "* * ? * *", "* * * * ?", "*/0 * * * *", "5-1 * * * *",
    "* * * * MON#6", "* * * * 1#0", "* * * * L", "* * L-2 * *", "* * 15W * *", "* * * * FRIL", "* * * FOO *",
    "* * * * FOO", "a * * * *", "* * 1-L * *", "1,,2 * * * *", "* * * * 8L", "* * * * 1-8",
    "1/ * * * *",
]

UNIX_ZONES = [
    ("UTC", "2026-01-01T00:00:00Z"),
    ("UTC", "2024-02-27T12:00:00Z"),
    ("Asia/Kolkata", "2026-06-15T08:10:00Z"),
    ("America/New_York", "2026-04-01T04:00:00Z"),
]


def random_unix(rng: random.Random) -> str:
    def part(lo: int, hi: int, fixed: float) -> str:
        r = rng.random()
        if r < fixed:
            return str(rng.randint(lo, hi))
        r = rng.random()
        if r < 0.25:
            return "*"
        if r < 0.4:
            return f"*/{rng.randint(1, hi)}"
        if r < 0.6:
            return ",".join(str(v) for v in rng.sample(range(lo, hi + 1), rng.randint(2, 3)))
        a = rng.randint(lo, hi)
        b = rng.randint(a, hi)
        return f"{a}-{b}" if r < 0.8 else f"{a}-{b}/{rng.randint(1, 5)}"

    minute = part(0, 59, 0.6)
    hour = part(0, 23, 0.5)
    dom = rng.choice(["*", "*", "*", part(1, 31, 0.5), "L", "LW", "1,L"])
    month = rng.choice(["*", "*", "*", part(1, 12, 0.5), "JAN-JUN"])
    dow = rng.choice(["*", "*", "*", part(0, 7, 0.5), "MON-FRI", f"{rng.randint(0, 7)}L", f"{rng.randint(0, 7)}#{rng.randint(1, 5)}"])
    return f"{minute} {hour} {dom} {month} {dow}"


# --------------------------------------------------------------------------- cronie's additions (croniter, cronsim)

# cronie's syntax that cronsim refuses, each with the spelling cronsim reads the same way:
# a day-of-week range ending on Sunday as 0 (cronie reads the 0 as 7), and the macros
# (cronie's entry.c sets the fields given here).
CRONIE_SYNTAX = [
    ("0 0 * * MON-SUN", "0 0 * * 1-7"), ("0 0 * * 5-0", "0 0 * * 5-7"), ("0 0 * * 1-0", "0 0 * * 1-7"),
    ("0 0 * * SAT-SUN", "0 0 * * 6-7"), ("15 6 * * fri-sun", "15 6 * * 5-7"), ("30 9 * * 1-0/2", "30 9 * * 1-7/2"),
    ("0 0 * * MON-SUN/3", "0 0 * * 1-7/3"), ("0 12 13 * 5-0", "0 12 13 * 5-7"), ("0 0 * * 1-3,6-0", "0 0 * * 1-3,6-7"),
    ("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"), ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"), ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@Daily", "0 0 * * *"),
]
CRONIE_ZONES = [
    ("UTC", "2026-01-01T00:00:00Z"),
    ("Asia/Kolkata", "2026-06-15T08:10:00Z"),
    ("America/New_York", "2026-03-07T12:00:00Z"),  # spring forward on 2026-03-08
    ("America/New_York", "2026-10-31T12:00:00Z"),  # fall back on 2026-11-01
]


def croniter_fires(expr: str, zone: str, start: float, count: int) -> list[float]:
    it = croniter(expr, datetime.fromtimestamp(start, ZoneInfo(zone)))
    return [it.get_next(datetime).timestamp() for _ in range(count)]


def unix_cronie() -> list[dict]:
    """Rows for cronie's additions: croniter's answers, which must equal cronsim's for the plain
    spelling; across a DST change only cronsim's (croniter fires a fixed hour twice at fall back)."""
    rows = []
    for expr, plain in CRONIE_SYNTAX:
        for zone, start in CRONIE_ZONES:
            fires = cronsim_fires(plain, zone, at(start), FIRES)
            case = row(expr, zone, at(start), fires, True)
            case["cronsim_expr"] = plain
            if transitions(zone, at(start), fires[-1] + 1):
                case["oracle"] = "cronsim"
            else:
                other = croniter_fires(expr, zone, at(start), FIRES)
                if other != fires:
                    sys.exit(f"croniter and cronsim differ on {expr!r} / {plain!r} in {zone}: {other} {fires}")
                case["oracle"] = "croniter, cronsim"
            rows.append(case)
    return rows


# --------------------------------------------------------------------------- DST (cronsim)

DST_ZONES = ["America/New_York", "Europe/Berlin", "Europe/London", "Australia/Lord_Howe", "Pacific/Chatham"]
# Fixed hour and minute (cronie: a skipped time fires once after the gap, a repeated one once),
# and with '*' in minute or hour (real time: never inside a gap, in both passes of a repeat).
DST_COMMON = [
    "0 * * * *", "30 * * * *", "*/15 * * * *", "*/20 1-3 * * *", "0 */2 * * *", "15 * * * *", "45 * * * *",
]
DST_BY_ZONE = {
    "America/New_York": ["30 2 * * *", "30 1 * * *", "0 2 * * *", "59 1 * * *", "0,30 2 * * *", "15 1,2,3 * * *", "0 1 * * *", "0 3 * * *"],
    "Europe/Berlin": ["30 2 * * *", "0 2 * * *", "30 3 * * *", "0,30 2 * * *", "15 1,2,3 * * *", "59 2 * * *"],
    "Europe/London": ["30 1 * * *", "0 1 * * *", "30 0 * * *", "0,30 1 * * *", "15 0,1,2 * * *", "59 1 * * *"],
    "Australia/Lord_Howe": ["15 2 * * *", "0 2 * * *", "45 1 * * *", "30 1 * * *", "0,15,30,45 1,2 * * *", "29 2 * * *"],
    "Pacific/Chatham": ["0 3 * * *", "50 2 * * *", "45 2 * * *", "30 3 * * *", "0 2-4 * * *", "15,45 3 * * *"],
}
DST_YEARS = range(2024, 2029)


def _hm_values(text: str, hi: int) -> set[int]:
    """Minute or hour values of the simple DST cases: lists of *, n, a-b, each with an optional /step."""
    out: set[int] = set()
    for term in text.split(","):
        base, _, step = term.partition("/")
        lo, top = (0, hi) if base == "*" else (int(base.split("-")[0]), int(base.split("-")[-1]))
        if step and "-" not in base and base != "*":
            top = hi
        out.update(range(lo, top + 1, int(step or 1)))
    return out


def rule_fires(expr: str, zone_name: str, start: float, count: int) -> list[float]:
    """The DST rule of docs/time.md by brute force, minute by minute, independent of cronsim and schedd.

    Real time (minute or hour starts with '*'): every instant whose wall clock matches.
    Fixed time: each matching wall time once, at its first occurrence, or at the end of
    the gap when it does not exist.
    """
    minute, hour, dom, month, dow = expr.split()
    assert (dom, month, dow) == ("*", "*", "*")
    minutes, hours = _hm_values(minute, 59), _hm_values(hour, 23)
    zone = ZoneInfo(zone_name)
    first = (int(start) // 60 + 1) * 60
    fires: list[float] = []
    if minute.startswith("*") or hour.startswith("*"):
        t = first
        while len(fires) < count:
            wall = datetime.fromtimestamp(t, zone)
            if wall.minute in minutes and wall.hour in hours:
                fires.append(float(t))
            t += 60
        return fires
    wall = datetime.fromtimestamp(start, zone).replace(tzinfo=None, fold=0, second=0, microsecond=0)
    found: set[float] = set()
    while len(found) < count:
        wall += timedelta(minutes=1)
        if wall.minute not in minutes or wall.hour not in hours:
            continue
        t = wall.replace(tzinfo=zone, fold=0).timestamp()
        if datetime.fromtimestamp(t, zone).replace(tzinfo=None) != wall:  # inside a gap
            t = wall.replace(tzinfo=zone, fold=1).timestamp()  # an instant before the gap
            while datetime.fromtimestamp(t, zone).replace(tzinfo=None) < wall:
                t += 60
        if t > start:
            found.add(t)
    return sorted(found)[:count]


def quartz_of(unix: str) -> str:
    """The Quartz spelling of a DST case (all of them leave both day fields `*`)."""
    minute, hour, dom, month, dow = unix.split()
    assert dom == "*" and dow == "*"
    return f"0 {minute} {hour} * {month} ?"


def dump(fixture: dict) -> str:
    """JSON with one case per line, so a regeneration reads as a line diff."""
    out = ["{"]
    items = list(fixture.items())
    for n, (key, value) in enumerate(items):
        comma = "," if n < len(items) - 1 else ""
        if isinstance(value, list):
            out.append(f"{json.dumps(key)}: [")
            out.extend(json.dumps(v, separators=(",", ":")) + ("," if i < len(value) - 1 else "") for i, v in enumerate(value))
            out.append(f"]{comma}")
        else:
            out.append(f"{json.dumps(key)}: {json.dumps(value)}{comma}")
    out.append("}")
    return "\n".join(out) + "\n"


def main() -> None:
    fixture: dict = {
        "about": "Generated by tests/reference/generate.py; do not edit by hand (see README.md).",
        "quartz": "2.3.2 (Debian libquartz2-java, org.quartz.CronExpression)",
        "cronsim": version("cronsim"),
    }

    # Quartz, hand-picked
    queries, meta = [], []
    for n, expr in enumerate(QUARTZ_SPECIAL):
        combos = [*ZONE_STARTS, ROTATING_ZONES[n % len(ROTATING_ZONES)]]
        for zone, start in combos:
            queries.append((expr, zone, at(start), FIRES))
            meta.append((expr, zone, at(start)))
    special = []
    for (expr, zone, start), (status, fires) in zip(meta, quartz(queries)):
        if status != "OK":
            sys.exit(f"Quartz rejected the hand-picked {expr!r}: {fires}")
        kept, complete = dst_safe(zone, start, fires)
        special.append(row(expr, zone, start, kept, complete))
    fixture["quartz_special"] = special

    # Quartz, invalid
    answers = quartz([(expr, "UTC", at("2026-01-01T00:00:00Z"), 1) for expr, _ in QUARTZ_INVALID])
    invalid = []
    for (expr, fld), (status, message) in zip(QUARTZ_INVALID, answers):
        if status != "ERR":
            sys.exit(f"Quartz accepted {expr!r}: move it to QUARTZ_DIVERGENT")
        invalid.append({"expr": expr, "field": fld, "quartz_message": message})
    fixture["quartz_invalid"] = invalid

    divergent = []
    for expr, fld, why in QUARTZ_DIVERGENT:
        status, fires = quartz_alone(expr, "UTC", at("2026-01-01T00:00:00Z"), 3)
        if status == "ERR":
            sys.exit(f"Quartz rejects {expr!r}: move it to QUARTZ_INVALID")
        divergent.append({
            "expr": expr, "field": fld, "why": why, "quartz": status,
            "quartz_fires": [iso(t) for t in fires] if status == "OK" else [],
        })
    fixture["quartz_divergent"] = divergent

    # Quartz, random (UTC)
    rng = random.Random(20260308)
    rows: list[dict] = []
    while len(rows) < 2500:
        batch = []
        for _ in range(600):
            start = rng.randint(int(at("2020-01-01T00:00:00Z")), int(at("2035-01-01T00:00:00Z")))
            batch.append((random_quartz(rng), "UTC", float(start), FIRES))
        for (expr, zone, start, _), (status, fires) in zip(batch, quartz(batch)):
            if status != "OK":
                sys.exit(f"Quartz rejected the generated {expr!r}: {fires}")
            if not fires:
                continue  # never fires (from here, or at all: schedd rejects the latter)
            rows.append(row(expr, zone, start, fires, True))
    fixture["quartz_random"] = rows[:2500]

    # Unix, cronsim
    unix = []
    for expr in UNIX_SPECIAL:
        for zone, start in UNIX_ZONES:
            unix.append(row(expr, zone, at(start), cronsim_fires(expr, zone, at(start), FIRES), True))
    rng = random.Random(5)
    while len(unix) < len(UNIX_SPECIAL) * len(UNIX_ZONES) + 600:
        expr = random_unix(rng)
        zone = rng.choice(["UTC", "UTC", "Europe/Paris", "America/Chicago"])
        start = float(rng.randint(int(at("2020-01-01T00:00:00Z")), int(at("2035-01-01T00:00:00Z"))))
        try:
            fires = cronsim_fires(expr, zone, start, FIRES)
        except CronSimError:
            continue
        if not fires:
            continue
        unix.append(row(expr, zone, start, fires, True))
    fixture["unix"] = unix

    unix_invalid = []
    for expr in UNIX_INVALID:
        try:
            CronSim(expr, datetime(2026, 1, 1, tzinfo=UTC))
        except CronSimError as exc:
            message = str(exc)
        else:
            sys.exit(f"cronsim accepted {expr!r}")
        fld = message.removeprefix("Bad ") if message.startswith("Bad ") else "expression"
        unix_invalid.append({"expr": expr, "field": fld, "cronsim_message": message})
    fixture["unix_invalid"] = unix_invalid

    # DST, cronsim for the Unix spelling (Quartz is wrong at these instants)
    dst = []
    for zone in DST_ZONES:
        for year in DST_YEARS:
            changes = transitions(zone, at(f"{year}-01-01T00:00:00Z"), at(f"{year + 1}-01-01T00:00:00Z"))
            for change in changes:
                before, after = offset(ZoneInfo(zone), change - 1), offset(ZoneInfo(zone), change)
                kind = "spring" if after > before else "fall"
                for expr in DST_COMMON + DST_BY_ZONE[zone]:
                    start = change - 4 * 3600 - 60
                    real_time = expr.split()[0].startswith("*") or expr.split()[1].startswith("*")
                    count = 10 if real_time else 4
                    fires = cronsim_fires(expr, zone, start, count)
                    rule = rule_fires(expr, zone, start, count)
                    case = {
                        "expr": expr, "quartz_expr": quartz_of(expr), "zone": zone, "change": kind,
                        "start": iso(start), "fires": [iso(t) for t in rule], "oracle": "cronsim",
                    }
                    if rule != fires:
                        # cronsim skips a wall time that a 30-minute change leaves in place
                        # (Lord Howe); the brute-force rules are the oracle there.
                        case["oracle"] = "rules"
                        case["cronsim_fires"] = [iso(t) for t in fires]
                    dst.append(case)
    fixture["dst"] = dst

    # The examples of docs/time.md, with what Quartz answers there (wrong, by that rule)
    wrong = []
    for unix_expr, zone, start in [
        ("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z"),
        ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z"),
        ("0 * * * *", "America/New_York", "2026-11-01T04:30:00Z"),
    ]:
        q = quartz_of(unix_expr)
        status, qfires = quartz([(q, zone, at(start), 4)])[0]
        wrong.append({
            "expr": q, "unix_expr": unix_expr, "zone": zone, "start": start,
            "fires": [iso(t) for t in rule_fires(unix_expr, zone, at(start), 4)],
            "cronsim_fires": [iso(t) for t in cronsim_fires(unix_expr, zone, at(start), 4)],
            "quartz_fires": [iso(t) for t in qfires],
        })
    fixture["quartz_dst_wrong"] = wrong
    add_unix_cronie(fixture)

    OUT.write_text(dump(fixture))
    counts = {k: len(v) for k, v in fixture.items() if isinstance(v, list)}
    counts["dst where cronsim differs from the rules"] = sum(c["oracle"] == "rules" for c in dst)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {counts}")


def add_unix_cronie(fixture: dict) -> None:
    fixture["croniter"] = version("croniter")
    fixture["unix_cronie"] = unix_cronie()


def only_unix_cronie() -> None:
    """Rewrite the cronie section of the existing fixture (needs no Java)."""
    fixture = json.loads(OUT.read_text())
    add_unix_cronie(fixture)
    OUT.write_text(dump(fixture))
    print(f"wrote {OUT}: {len(fixture['unix_cronie'])} unix_cronie rows")


if __name__ == "__main__":
    if sys.argv[1:] == ["--only", "unix_cronie"]:
        only_unix_cronie()
    elif sys.argv[1:]:
        sys.exit("usage: generate.py [--only unix_cronie]")
    else:
        main()
