"""Cron expressions: parse and validate, then compute fire times from a given instant.

Two dialects, told apart by the number of fields: Quartz (6 or 7, seconds first,
day-of-week 1-7 = SUN-SAT, `?` `L` `W` `#`) answers what Quartz 2.3.2 answers, and Unix
(5, minute first, day-of-week 0-7) what cronsim answers, with cronie's additions (a
day-of-week range ending on Sunday as 0, and the macros `@hourly` to `@yearly`, alone;
`@reboot` is refused). Fields are wall-clock fields;
DST changes are resolved as cronie does (see `CronExpr.next_after`).

schedd owns the evaluation (per-field lookup tables and a per-month day table, no croniter):
croniter numbers day-of-week differently, lacks `L-n`, `LW`, `nL`, and fires a fixed-hour
job twice at fall back; this is also >10x faster (benchmarks/cron_bench.py). Pure: no
clock, no I/O.

Modules, each importing only those before it: `fields` (what both dialects share),
`days` (day tables), `quartz` and `unix` (the dialects' grammars), `zones` (offset
tables, `load_zone`), `expr` (`parse`, `CronExpr`).
Volt MX's `jobFrequencyInfo` shapes belong to the service jobs family
(`schedd.families.service_jobs.frequency`).
"""

from schedd.cron.expr import MAX_EXPRESSION_LENGTH, CronExpr, parse
from schedd.cron.fields import MAX_YEAR, MIN_YEAR, CronError
from schedd.cron.zones import load_zone

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "MAX_YEAR",
    "MIN_YEAR",
    "CronError",
    "CronExpr",
    "load_zone",
    "parse",
]
