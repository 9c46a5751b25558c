"""Which dates of a month the day fields match, as per-month lookup tables."""

from __future__ import annotations

import calendar
import functools

from schedd.cron.fields import DaySide, next_table


def _nearest_weekday(day: int, first_wd: int, ndays: int) -> int:
    """Quartz's `W`: Saturday moves back, Sunday forward, never across the month's ends."""
    wd = (first_wd + day - 1) % 7
    if wd == 5:
        return day + 2 if day == 1 else day - 1
    if wd == 6:
        return day - 2 if day == ndays else day + 1
    return day


def _dom_matches(side: DaySide, year: int, month: int) -> set[int]:
    first_wd, ndays = calendar.monthrange(year, month)
    out = {d for d in side.days if d <= ndays}
    out.update(ndays - n for n in side.last if ndays - n >= 1)
    for n in side.last_weekday:
        if ndays - n >= 1:
            out.add(_nearest_weekday(ndays - n, first_wd, ndays))
    for n in side.near:
        # A month without the n-th has no fire: Quartz's answer there depends on where
        # its search started, so no single rule reproduces it (see tests/reference).
        if n <= ndays:
            out.add(_nearest_weekday(n, first_wd, ndays))
    return out


def _dow_matches(side: DaySide, year: int, month: int) -> set[int]:
    first_wd, ndays = calendar.monthrange(year, month)
    out = set()
    for d in range(1, ndays + 1):
        wd = (first_wd + d - 1) % 7
        if (
            wd in side.weekdays
            or (wd in side.last_weekdays and d + 7 > ndays)
            or (wd, (d + 6) // 7) in side.nth
        ):
            out.add(d)
    return out


NO_DAY = 0  # in a day table: no matching day from here to the month's end


@functools.lru_cache(maxsize=65536)
def day_table(dom: DaySide | None, dow: DaySide | None, both: bool, year: int, month: int) -> tuple[int, ...]:
    """The next matching day (>= index) of one month, 0 when none; index 32 is a sentinel."""
    ndays = calendar.monthrange(year, month)[1]
    if dom is not None and dow is not None:
        a, b = _dom_matches(dom, year, month), _dow_matches(dow, year, month)
        matches = (a & b) if both else (a | b)
    elif dom is not None:
        matches = _dom_matches(dom, year, month)
    elif dow is not None:
        matches = _dow_matches(dow, year, month)
    else:
        matches = set(range(1, ndays + 1))
    return tuple(max(v, NO_DAY) for v in next_table(matches, 32))


EVERY_DAY = {n: tuple(max(v, NO_DAY) for v in next_table(set(range(1, n + 1)), 32)) for n in (28, 29, 30, 31)}
MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
