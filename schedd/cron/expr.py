"""`parse` turns a cron expression into a `CronExpr`, which computes its fire times from a given instant."""

from __future__ import annotations

import calendar
import functools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

from schedd.cron.days import EVERY_DAY, MONTH_DAYS, NO_DAY, day_table
from schedd.cron.fields import (
    MAX_YEAR,
    MIN_YEAR,
    DaySide,
    ParsedFields,
    err,
    next_table,
)
from schedd.cron.quartz import parse_quartz
from schedd.cron.unix import parse_macro, parse_unix
from schedd.cron.zones import T_MIN, first_instant, zone_table

MAX_EXPRESSION_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class CronExpr:
    """A validated cron expression; fire times come from `next_after`/`iter_after`.

    Read-only attributes for callers that inspect the schedule: `second_table`,
    `minute_table`, `hour_table` and `month_table` map a value v to the first matching
    value >= v, or -1 when none is left; `years` holds the matching years, None when all
    do; `dom` and `dow` are what the day fields ask for, None when one restricts nothing.
    """

    expr: str
    dialect: str
    normalized: str
    second_table: tuple[int, ...] = field(repr=False, compare=False)
    minute_table: tuple[int, ...] = field(repr=False, compare=False)
    hour_table: tuple[int, ...] = field(repr=False, compare=False)
    month_table: tuple[int, ...] = field(repr=False, compare=False)
    years: tuple[int, ...] | None = field(repr=False, compare=False)
    dom: DaySide | None = field(repr=False, compare=False)
    dow: DaySide | None = field(repr=False, compare=False)
    _both: bool = field(repr=False, compare=False)
    _fixed_time: bool = field(repr=False, compare=False)

    def next_after(self, after: float, tz) -> float | None:
        """Epoch seconds of the first fire strictly after `after` in zone `tz`; None when none is left.

        Across DST changes (as cronie, which cronsim follows): when minute and hour are
        both fixed (neither starts with `*`), a wall time skipped by spring-forward fires
        once at the end of the gap, and a repeated one fires only at its first occurrence;
        otherwise the expression follows real time, so every instant whose wall clock
        matches fires, in both passes of a repeated hour and never inside a gap.
        """
        ts, offs = zone_table(tz)
        t = math.floor(after)
        t = max(t, T_MIN)
        k = bisect_right(ts, t)
        o = offs[k]
        c = self._next_wall(t + o + 1)
        if self._fixed_time:
            while c is not None:
                i = c - o if not ts else first_instant(c, ts, offs, o)
                if i > t:
                    return float(i)
                c = self._next_wall(c + 1)
            return None
        n = len(ts)
        while c is not None:
            i = c - o
            if k == n or i < ts[k]:
                return float(i)
            k += 1
            o = offs[k]
            c = self._next_wall(ts[k - 1] + o)
        return None

    def iter_after(self, after: float, tz) -> Iterator[float]:
        """Successive fires strictly after `after`, ascending, until the expression ends."""
        t = self.next_after(after, tz)
        while t is not None:
            yield t
            t = self.next_after(t, tz)

    def _next_wall(self, w: int) -> int | None:
        """The first matching wall-clock time at or after `w` (seconds of a naive epoch)."""
        days, sod = divmod(w, 86400)
        d0 = date.fromordinal(days + 719163)
        y, mo, d = d0.year, d0.month, d0.day
        h, rem = divmod(sod, 3600)
        mi, s = divmod(rem, 60)
        secs, mins, hours, months = self.second_table, self.minute_table, self.hour_table, self.month_table
        years, dom, dow, both = self.years, self.dom, self.dow, self._both
        every_day = dom is None and dow is None
        if y < MIN_YEAR:
            y, mo, d, h, mi, s = MIN_YEAR, 1, 1, 0, 0, 0
        while True:
            if y > MAX_YEAR:
                return None
            if years is not None:
                idx = bisect_left(years, y)
                if idx == len(years):
                    return None
                if years[idx] != y:
                    y, mo, d, h, mi, s = years[idx], 1, 1, 0, 0, 0
            m2 = months[mo]
            if m2 < 0:
                y, mo, d, h, mi, s = y + 1, 1, 1, 0, 0, 0
                continue
            if m2 != mo:
                mo, d, h, mi, s = m2, 1, 0, 0, 0
            if every_day:
                nd = MONTH_DAYS[mo] if mo != 2 else (29 if calendar.isleap(y) else 28)
                d2 = EVERY_DAY[nd][d]
            else:
                d2 = day_table(dom, dow, both, y, mo)[d]
            if d2 == NO_DAY:
                mo, d, h, mi, s = mo + 1, 1, 0, 0, 0
                continue
            if d2 != d:
                d, h, mi, s = d2, 0, 0, 0
            h2 = hours[h]
            if h2 < 0:
                d, h, mi, s = d + 1, 0, 0, 0
                continue
            if h2 != h:
                h, mi, s = h2, 0, 0
            m2 = mins[mi]
            if m2 < 0:
                h, mi, s = h + 1, 0, 0
                continue
            if m2 != mi:
                mi, s = m2, 0
            s2 = secs[s]
            if s2 < 0:
                mi, s = mi + 1, 0
                continue
            return (date(y, mo, d).toordinal() - 719163) * 86400 + h * 3600 + mi * 60 + s2


def _never_fires(months: set[int], dom: DaySide | None, dow: DaySide | None, both: bool) -> bool:
    """True when no date of any year matches (30 FEB); 2000-2027 holds every calendar of 1901-2099."""
    if dom is None and dow is None:
        return False
    if dom is not None and dow is None and not (dom.last or dom.last_weekday or dom.near):
        return min(dom.days, default=99) > max(calendar.monthrange(2000, m)[1] for m in months)
    return not any(
        day_table(dom, dow, both, y, m)[1] != NO_DAY for y in range(2000, 2028) for m in sorted(months)
    )


def _build(expr: str, p: ParsedFields) -> CronExpr:
    """The CronExpr of a dialect's parsed fields; rejects day fields that never match."""
    seconds, minutes, hours, months = p.sets
    if _never_fires(months, p.dom, p.dow, p.both):
        dom_text, month_text, dow_text = p.normalized[3:6] if p.dialect == "quartz" else p.normalized[2:5]
        days = dom_text if p.dow is None else f"{dom_text} with day-of-week {dow_text}"
        raise err("day-of-month", f"no date matches {days} in month {month_text}, in any year")
    years = p.years
    return CronExpr(
        expr=expr,
        dialect=p.dialect,
        normalized=" ".join(p.normalized),
        second_table=next_table(seconds, 60),
        minute_table=next_table(minutes, 60),
        hour_table=next_table(hours, 24),
        month_table=next_table(months, 13),
        years=None if years is None or years >= set(range(MIN_YEAR, MAX_YEAR + 1)) else tuple(sorted(years)),
        dom=p.dom,
        dow=p.dow,
        _both=p.both,
        _fixed_time=p.fixed_time,
    )


def parse(expr: str) -> CronExpr:
    """Validate `expr` (Quartz with 6-7 fields, Unix with 5); CronError names the field at fault.

    Results are cached, so schedules that share an expression share one CronExpr.
    """
    if not isinstance(expr, str):
        raise err("expression", "must be a string")
    return _parse(expr)


@functools.lru_cache(maxsize=65536)
def _parse(expr: str) -> CronExpr:
    if len(expr) > MAX_EXPRESSION_LENGTH:
        raise err("expression", f"longer than {MAX_EXPRESSION_LENGTH} characters")
    text = expr.strip()
    if not text:
        raise err("expression", "is empty")
    if not text.isascii() or any(ch < " " and ch != "\t" or ch == "\x7f" for ch in text):
        raise err("expression", "holds characters other than printable ASCII")
    parts = text.upper().split()
    macro = next((part for part in parts if part.startswith("@")), None)
    if macro is not None:
        if len(parts) == 1:
            return _build(text, parse_macro(macro))
        raise err("expression", _macro_misplaced(macro.lower(), len(parts)))
    if len(parts) == 5:
        return _build(text, parse_unix(parts))
    if len(parts) in (6, 7):
        return _build(text, parse_quartz(parts))
    fields = "field" if len(parts) == 1 else "fields"
    raise err("expression", f"has {len(parts)} {fields}; expected 5 (Unix) or 6-7 (Quartz: seconds first)")


# What each macro is in Quartz's fields, for the message that refuses a macro among them.
_QUARTZ_OF_MACRO = {
    "@HOURLY": "0 0 * * * ?", "@DAILY": "0 0 0 * * ?", "@MIDNIGHT": "0 0 0 * * ?", "@WEEKLY": "0 0 0 ? * SUN",
    "@MONTHLY": "0 0 0 1 * ?", "@YEARLY": "0 0 0 1 1 ?", "@ANNUALLY": "0 0 0 1 1 ?",
}


def _macro_misplaced(macro: str, count: int) -> str:
    if count in (6, 7):
        quartz = _QUARTZ_OF_MACRO.get(macro.upper())
        instead = f" (in Quartz, {macro} is {quartz!r})" if quartz else ""
        return f"macros such as {macro} are Unix-only and stand alone; a Quartz expression has no macros{instead}"
    return f"a macro such as {macro} stands alone, without other fields"
