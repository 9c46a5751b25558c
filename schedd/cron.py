"""Cron expressions: parse and validate, then compute fire times from a given instant.

Two dialects, told apart by the number of fields: Quartz (6 or 7, seconds first,
day-of-week 1-7 = SUN-SAT, `?` `L` `W` `#`) answers what Quartz 2.3.2 answers, and Unix
(5, minute first, day-of-week 0-7) what cronsim answers. Fields are wall-clock fields;
DST changes are resolved as cronie does (see `CronExpr.next_after`).

schedd owns the evaluation (per-field lookup tables and a per-month day table, no croniter):
croniter numbers day-of-week differently, lacks `L-n`, `LW`, `nL`, and fires a fixed-hour
job twice at fall back; this is also >10x faster (benchmarks/cron_bench.py). Pure: no
clock, no I/O.
"""

from __future__ import annotations

import calendar
import functools
import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from typing import TypeGuard
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schedd.errors import ValidationError

MAX_EXPRESSION_LENGTH = 1024
MIN_YEAR = 1970
MAX_YEAR = 2099  # Quartz's documented year range; fire times stop after it in both dialects


class CronError(ValidationError):
    """A cron expression was rejected; `field` names the cron field at fault."""


# --------------------------------------------------------------------------- fields


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    lo: int
    hi: int
    names: Mapping[str, int] | None = None
    step_max: int | None = None  # Quartz refuses larger steps after `*` or a single value
    wrap: int = 0  # Quartz: a range whose end is below its start wraps modulo this


_MONTHS = {
    n: i
    for i, n in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)
}
_Q_DAYS = {n: i for i, n in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}
_U_DAYS = {n: i for i, n in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}

_Q_FIELDS = (
    _Field("second", 0, 59, step_max=59, wrap=60),
    _Field("minute", 0, 59, step_max=59, wrap=60),
    _Field("hour", 0, 23, step_max=23, wrap=24),
    _Field("day-of-month", 1, 31, step_max=31, wrap=31),
    _Field("month", 1, 12, _MONTHS, step_max=12, wrap=12),
    _Field("day-of-week", 1, 7, _Q_DAYS, step_max=7, wrap=7),
    _Field("year", MIN_YEAR, MAX_YEAR),
)
_U_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day-of-week", 0, 7, _U_DAYS),
)
_DOM, _MONTH, _DOW, _YEAR = _Q_FIELDS[3:]
_U_DOM, _U_MONTH, _U_DOW = _U_FIELDS[2:]

# Python weekday (Monday 0) of each dialect's day-of-week number.
_Q_WEEKDAY = {d: (d + 5) % 7 for d in range(1, 8)}
_U_WEEKDAY = {d: (d + 6) % 7 for d in range(8)}


def _err(f: _Field | str, reason: str) -> CronError:
    return CronError(f if isinstance(f, str) else f.name, reason)


def _number(tok: str, f: _Field) -> int:
    if not tok.isascii() or not tok.isdigit():
        raise _err(f, f"{tok!r} is not a number" if tok else "a value is missing")
    return int(tok)


def _in_range(v: int, f: _Field) -> int:
    if not f.lo <= v <= f.hi:
        raise _err(f, f"{v} is out of range {f.lo}-{f.hi}")
    return v


# --------------------------------------------------------------------------- Quartz


_Q_TERM = re.compile(r"(?:(\*)|([0-9]+|[A-Z]+)(?:-([0-9]+|[A-Z]+))?)?(?:/([0-9]*))?")


def _q_value(tok: str, f: _Field) -> tuple[int, bool]:
    """A number or (month, day-of-week) a three-letter name; True when it was a name."""
    if tok.isdigit():
        return _in_range(int(tok), f), False
    if f.names is not None and tok in f.names:
        return f.names[tok], True
    if f.names is not None:
        raise _err(f, f"unknown name {tok!r}")
    raise _err(f, f"{tok!r} is not a number")


def _q_term(term: str, f: _Field) -> tuple[set[int], str]:
    """One comma-separated Quartz term: its values and its normalized text."""
    if term == "?":
        raise _err(f, "'?' is allowed only in day-of-month or day-of-week, alone")
    if not term:
        raise _err(f, "a value is missing")
    m = _Q_TERM.fullmatch(term)
    if m is None:
        raise _err(f, f"cannot read {term!r}")
    star, first, last, step_txt = m.groups()
    step = 1
    if step_txt is not None:
        if not step_txt:
            raise _err(f, "'/' must be followed by a step")
        step = int(step_txt)
        if step < 1:
            raise _err(f, "a step must be at least 1")
        if f.step_max is not None and step > f.step_max:
            raise _err(f, f"step {step} is out of range 1-{f.step_max}")
    if first is None:  # `*`, `*/n` or Quartz's bare `/n`, which it reads as `*/n`
        if star is None and step_txt is None:
            raise _err(f, f"cannot read {term!r}")
        return set(range(f.lo, f.hi + 1, step)), "*" if step_txt is None else f"*/{step}"
    a, a_named = _q_value(first, f)
    b, b_named = (a, a_named) if last is None else _q_value(last, f)
    if last is not None and a_named != b_named:
        raise _err(f, f"a range mixes a name and a number in {term!r}")
    if (a_named or b_named) and step_txt is not None:
        # Quartz 2.3.2 silently drops a step written after a name (MON-FRI/2 is MON-FRI).
        raise _err(f, f"a step after a name is ignored by Quartz; write numbers in {term!r}")
    text = str(a) if last is None else f"{a}-{b}"
    if step_txt is not None:
        text += f"/{step}"
    if last is None:
        if step_txt is None:
            return {a}, text
        return set(range(a, f.hi + 1, step)), text
    if b >= a:
        return set(range(a, b + 1, step)), text
    if not f.wrap:
        raise _err(f, f"the range {a}-{b} ends before it starts")
    # Quartz wraps a reversed range (22-2, FRI-MON, NOV-FEB) past the field's end.
    values = set()
    for i in range(a, b + f.wrap + 1, step):
        v = i % f.wrap
        values.add(f.wrap if v == 0 and f.lo == 1 else v)
    return values, text


def _q_list(text: str, f: _Field) -> tuple[set[int], str]:
    values: set[int] = set()
    parts = []
    for term in text.split(","):
        v, t = _q_term(term, f)
        values |= v
        parts.append(t)
    return values, ",".join(parts)


_Q_DOM_LAST = re.compile(r"L(?:-([0-9]+))?(W)?")
_Q_DOM_NEAR = re.compile(r"([0-9]+)W")
_Q_DOW_SPECIAL = re.compile(r"([0-9]+|[A-Z]+)(?:(L)|#([0-9]*))")


def _q_dom(text: str) -> tuple[_DaySide | None, str]:
    f = _DOM
    if text == "?":
        return None, "?"
    if "L" in text or "W" in text:
        if "," in text:
            raise _err(f, f"'L' and 'W' cannot be combined with other days in {text!r}")
        m = _Q_DOM_LAST.fullmatch(text)
        if m:
            offset = int(m.group(1)) if m.group(1) is not None else 0
            if offset > 30:
                raise _err(f, f"the offset from the last day must be 0-30, not {offset}")
            if m.group(2) and offset > 27:
                # February would have no such day; Quartz 2.3.2 can loop forever on it.
                raise _err(f, f"the offset before 'W' must be 0-27, not {offset}")
            norm = "L" + (f"-{offset}" if m.group(1) is not None else "") + ("W" if m.group(2) else "")
            if m.group(2):
                return _DaySide(last_weekday=frozenset({offset})), norm
            return _DaySide(last=frozenset({offset})), norm
        m = _Q_DOM_NEAR.fullmatch(text)
        if m:
            day = _in_range(_number(m.group(1), f), f)
            return _DaySide(near=frozenset({day})), f"{day}W"
        raise _err(f, f"'W' needs a single day (15W) and 'L' stands alone (L, L-3, LW); cannot read {text!r}")
    values, norm = _q_list(text, f)
    return _DaySide(days=frozenset(values)), norm


def _q_dow(text: str) -> tuple[_DaySide | None, str]:
    f = _DOW
    if text == "?":
        return None, "?"
    if text == "L":  # alone, Quartz reads it as 7 (SAT)
        return _DaySide(weekdays=frozenset({_Q_WEEKDAY[7]})), "L"
    if "L" in text or "#" in text:
        if "," in text:
            raise _err(f, f"'L' and '#' cannot be combined with other days in {text!r}")
        m = _Q_DOW_SPECIAL.fullmatch(text)
        if m is None:
            raise _err(f, f"cannot read {text!r} (use 6L for the last Friday, 6#3 for the third)")
        d, _ = _q_value(m.group(1), f)
        if m.group(2):
            return _DaySide(last_weekdays=frozenset({_Q_WEEKDAY[d]})), f"{d}L"
        nth = _number(m.group(3), f)
        if not 1 <= nth <= 5:
            raise _err(f, f"'#' must be followed by 1-5, not {nth}")
        return _DaySide(nth=frozenset({(_Q_WEEKDAY[d], nth)})), f"{d}#{nth}"
    values, norm = _q_list(text, f)
    return _DaySide(weekdays=frozenset(_Q_WEEKDAY[d] for d in values)), norm


# --------------------------------------------------------------------------- Unix

# Unix terms follow cronsim's reading, which is what the Unix dialect promises.
_LAST = -1
_LAST_WEEKDAY = -2


def _u_int(tok: str, f: _Field) -> int:
    if f.names is not None and tok in f.names:
        return f.names[tok]
    return _in_range(_number(tok, f), f)


def _u_parse(s: str, f: _Field) -> set:
    """cronsim's grammar: lists, ranges, steps, names; `L`/`LW` in day-of-month, `nL`/`n#k` in day-of-week."""
    if s == "*":
        return set(range(f.lo, f.hi + 1))
    if "," in s:
        out: set = set()
        for term in s.split(","):
            out |= _u_parse(term, f)
        return out
    if f is _U_DOW and "L" in s:
        if not (s[:-1].isascii() and s[:-1].isdigit()):
            raise _err(f, f"cannot read {s!r} (use 5L for the last Friday)")
        return {("L", _u_int(s[:-1], f))}
    if f is _U_DOW and "#" in s:
        term, nth_txt = s.split("#", 1)
        nth = _number(nth_txt, f)
        if not 1 <= nth <= 5:
            raise _err(f, f"'#' must be followed by 1-5, not {nth}")
        return {("#", _u_int(term, f), nth)}
    if "/" in s:
        term, step_txt = s.split("/", 1)
        step = _number(step_txt, f)
        if step == 0:
            raise _err(f, "a step must be at least 1")
        items = _u_parse(term, f)
        if items in ({_LAST}, {_LAST_WEEKDAY}):
            return items
        if len(items) == 1:
            (start,) = items
            return set(range(start, f.hi + 1)[::step])
        return set(sorted(items)[::step])
    if "-" in s:
        a_txt, b_txt = s.split("-", 1)
        a, b = _u_int(a_txt, f), _u_int(b_txt, f)
        if b < a:
            raise _err(f, f"the range {a}-{b} ends before it starts")
        return set(range(a, b + 1))
    if f is _U_DOM and s == "LW":
        return {_LAST_WEEKDAY}
    if f is _U_DOM and s == "L":
        return {_LAST}
    return {_u_int(s, f)}


def _u_normalize(text: str, f: _Field) -> str:
    names = f.names
    if names is not None:
        text = re.sub(r"[A-Z]{3}", lambda m: str(names.get(m.group(), m.group())), text)
    return re.sub(r"[0-9]+", lambda m: str(int(m.group())), text)


# --------------------------------------------------------------------------- days


@dataclass(frozen=True, slots=True)
class _DaySide:
    """What one day field asks for (dates of the month or days of the week); hashable."""

    days: frozenset[int] = frozenset()  # day-of-month numbers
    last: frozenset[int] = frozenset()  # L-n: n days before the last day
    last_weekday: frozenset[int] = frozenset()  # L-nW: the weekday nearest to L-n
    near: frozenset[int] = frozenset()  # nW: the weekday nearest to the n-th
    weekdays: frozenset[int] = frozenset()  # Python weekday numbers, Monday 0
    last_weekdays: frozenset[int] = frozenset()  # the last such weekday of the month
    nth: frozenset[tuple[int, int]] = frozenset()  # (weekday, k): the k-th such weekday


def _nearest_weekday(day: int, first_wd: int, ndays: int) -> int:
    """Quartz's `W`: Saturday moves back, Sunday forward, never across the month's ends."""
    wd = (first_wd + day - 1) % 7
    if wd == 5:
        return day + 2 if day == 1 else day - 1
    if wd == 6:
        return day - 2 if day == ndays else day + 1
    return day


def _dom_matches(side: _DaySide, year: int, month: int) -> set[int]:
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


def _dow_matches(side: _DaySide, year: int, month: int) -> set[int]:
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


_NO_DAY = 0  # in a day table: no matching day from here to the month's end


def _table(days: set[int] | range, size: int) -> tuple[int, ...]:
    """next[v] = the smallest member >= v, or _NO_DAY/-1 past the last (index `size` is a sentinel)."""
    out = []
    nxt = -1
    for v in range(size, -1, -1):
        if v in days:
            nxt = v
        out.append(nxt)
    return tuple(reversed(out))


@functools.lru_cache(maxsize=65536)
def _day_table(dom: _DaySide | None, dow: _DaySide | None, both: bool, year: int, month: int) -> tuple[int, ...]:
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
    return tuple(max(v, _NO_DAY) for v in _table(matches, 32))


_EVERY_DAY = {n: tuple(max(v, _NO_DAY) for v in _table(set(range(1, n + 1)), 32)) for n in (28, 29, 30, 31)}
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


# --------------------------------------------------------------------------- zones

_T_MIN = -31_536_000  # 1969-01-01T00:00:00Z: zone tables start here, and so do searches
_T_MAX = 4_133_980_800  # 2101-01-01T00:00:00Z
_ZONES: dict[object, tuple[list[int], list[int]]] = {}


def _offset(tz, t: int) -> int:
    offset = datetime.fromtimestamp(t, tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _zone_table(tz) -> tuple[list[int], list[int]]:
    """UTC offset changes of `tz` over 1969-2100: (instants, offsets), offsets[k] holds before instants[k].

    zoneinfo keeps its transitions private, so they are found once per zone by a daily
    scan refined to the second (about 20 ms); a pair of changes within one day is missed.
    """
    table = _ZONES.get(tz)
    if table is not None:
        return table
    instants: list[int] = []
    offsets = [_offset(tz, _T_MIN)]
    for t in range(_T_MIN + 86400, _T_MAX + 1, 86400):
        o = _offset(tz, t)
        if o == offsets[-1]:
            continue
        lo, hi = t - 86400, t  # offset(lo) is the old one, offset(hi) the new one
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _offset(tz, mid) == offsets[-1]:
                lo = mid
            else:
                hi = mid
        instants.append(hi)
        offsets.append(o)
    table = (instants, offsets)
    _ZONES[tz] = table
    return table


def _first_instant(c: int, ts: list[int], offs: list[int], guess: int) -> int:
    """The first instant whose wall clock reads `c`, or the end of the gap that swallows it."""
    k = bisect_right(ts, c - guess)
    n = len(ts)
    for j in (k - 1, k, k + 1):
        if 0 <= j <= n:
            i = c - offs[j]
            if (j == 0 or ts[j - 1] <= i) and (j == n or i < ts[j]):
                return i
    for j in (k - 1, k):
        if 0 <= j < n and ts[j] + offs[j] <= c < ts[j] + offs[j + 1]:
            return ts[j]
    return c - offs[min(max(k, 0), n)]


# --------------------------------------------------------------------------- expression


@dataclass(frozen=True, slots=True)
class CronExpr:
    """A validated cron expression; fire times come from `next_after`/`iter_after`."""

    expr: str
    dialect: str
    normalized: str
    _seconds: tuple[int, ...] = field(repr=False, compare=False)
    _minutes: tuple[int, ...] = field(repr=False, compare=False)
    _hours: tuple[int, ...] = field(repr=False, compare=False)
    _months: tuple[int, ...] = field(repr=False, compare=False)
    _years: tuple[int, ...] | None = field(repr=False, compare=False)
    _dom: _DaySide | None = field(repr=False, compare=False)
    _dow: _DaySide | None = field(repr=False, compare=False)
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
        ts, offs = _zone_table(tz)
        t = math.floor(after)
        t = max(t, _T_MIN)
        k = bisect_right(ts, t)
        o = offs[k]
        c = self._next_wall(t + o + 1)
        if self._fixed_time:
            while c is not None:
                i = c - o if not ts else _first_instant(c, ts, offs, o)
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
        secs, mins, hours, months, years = self._seconds, self._minutes, self._hours, self._months, self._years
        dom, dow, both = self._dom, self._dow, self._both
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
                nd = _MONTH_DAYS[mo] if mo != 2 else (29 if calendar.isleap(y) else 28)
                d2 = _EVERY_DAY[nd][d]
            else:
                d2 = _day_table(dom, dow, both, y, mo)[d]
            if d2 == _NO_DAY:
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


def _never_fires(months: set[int], dom: _DaySide | None, dow: _DaySide | None, both: bool) -> bool:
    """True when no date of any year matches (30 FEB); 2000-2027 holds every calendar of 1901-2099."""
    if dom is None and dow is None:
        return False
    if dom is not None and dow is None and not (dom.last or dom.last_weekday or dom.near):
        return min(dom.days, default=99) > max(calendar.monthrange(2000, m)[1] for m in months)
    return not any(
        _day_table(dom, dow, both, y, m)[1] != _NO_DAY for y in range(2000, 2028) for m in sorted(months)
    )


def _build(expr: str, dialect: str, normalized: list[str], sets: list[set[int]], *, years: set[int] | None,
           dom: _DaySide | None, dow: _DaySide | None, both: bool, fixed_time: bool) -> CronExpr:
    """The CronExpr of parsed fields (sec, min, hour, month); rejects day fields that never match."""
    seconds, minutes, hours, months = sets
    if _never_fires(months, dom, dow, both):
        dom_text, month_text, dow_text = normalized[3:6] if dialect == "quartz" else normalized[2:5]
        days = dom_text if dow is None else f"{dom_text} with day-of-week {dow_text}"
        raise _err(_DOM, f"no date matches {days} in month {month_text}, in any year")
    return CronExpr(
        expr=expr,
        dialect=dialect,
        normalized=" ".join(normalized),
        _seconds=_table(seconds, 60),
        _minutes=_table(minutes, 60),
        _hours=_table(hours, 24),
        _months=_table(months, 13),
        _years=None if years is None or years >= set(range(MIN_YEAR, MAX_YEAR + 1)) else tuple(sorted(years)),
        _dom=dom,
        _dow=dow,
        _both=both,
        _fixed_time=fixed_time,
    )


def _parse_quartz(expr: str, parts: list[str]) -> CronExpr:
    if len(parts) == 6:
        parts = [*parts, "*"]
    norm: list[str] = []
    sets: list[set[int]] = []
    for text, f in zip(parts[:3], _Q_FIELDS[:3]):
        values, t = _q_list(text, f)
        sets.append(values)
        norm.append(t)
    dom, dom_norm = _q_dom(parts[3])
    months, month_norm = _q_list(parts[4], _MONTH)
    dow, dow_norm = _q_dow(parts[5])
    years, year_norm = _q_list(parts[6], _YEAR)
    if dom is None and dow is None:
        raise _err(_DOW, "'?' may stand in only one of day-of-month and day-of-week")
    if dom_norm != "?" and dow_norm != "?":
        raise _err(_DOW, "day-of-month and day-of-week are both given; set one of them to '?'")
    # `*` in the remaining day field restricts nothing.
    if dom_norm == "*":
        dom = None
    if dow_norm == "*":
        dow = None
    norm += [dom_norm, month_norm, dow_norm, year_norm]
    fixed = not norm[1].startswith("*") and not norm[2].startswith("*")
    sets.append(months)
    return _build(expr, "quartz", norm, sets, years=years, dom=dom, dow=dow, both=False, fixed_time=fixed)


def _parse_unix(expr: str, parts: list[str]) -> CronExpr:
    sets = []
    for text, f in zip(parts[:2], _U_FIELDS[:2]):
        sets.append(_u_parse(text, f))
    dom_items = _u_parse(parts[2], _U_DOM)
    months = _u_parse(parts[3], _U_MONTH)
    dow_items = _u_parse(parts[4], _U_DOW)
    dom: _DaySide | None = _DaySide(
        days=frozenset(v for v in dom_items if v > 0),
        last=frozenset({0}) if _LAST in dom_items else frozenset(),
        last_weekday=frozenset({0}) if _LAST_WEEKDAY in dom_items else frozenset(),
    )
    dow: _DaySide | None = _DaySide(
        weekdays=frozenset(_U_WEEKDAY[v] for v in dow_items if isinstance(v, int)),
        last_weekdays=frozenset(_U_WEEKDAY[v[1]] for v in dow_items if isinstance(v, tuple) and v[0] == "L"),
        nth=frozenset((_U_WEEKDAY[v[1]], v[2]) for v in dow_items if isinstance(v, tuple) and v[0] == "#"),
    )
    # Debian cron (and cronsim): when either day field starts with `*` both must match,
    # otherwise a date matching either one fires (the OR rule).
    both = parts[2].startswith("*") or parts[4].startswith("*")
    if parts[2] == "*":
        dom = None
    if parts[4] == "*":
        dow = None
    norm = [_u_normalize(p, f) for p, f in zip(parts, _U_FIELDS)]
    fixed = not parts[0].startswith("*") and not parts[1].startswith("*")
    sets = [{0}, *sets, months]
    return _build(expr, "unix", norm, sets, years=None, dom=dom, dow=dow, both=both, fixed_time=fixed)


def parse(expr: str) -> CronExpr:
    """Validate `expr` (Quartz with 6-7 fields, Unix with 5); CronError names the field at fault.

    Results are cached, so schedules that share an expression share one CronExpr.
    """
    if not isinstance(expr, str):
        raise _err("expression", "must be a string")
    return _parse(expr)


@functools.lru_cache(maxsize=65536)
def _parse(expr: str) -> CronExpr:
    if len(expr) > MAX_EXPRESSION_LENGTH:
        raise _err("expression", f"longer than {MAX_EXPRESSION_LENGTH} characters")
    text = expr.strip()
    if not text:
        raise _err("expression", "is empty")
    if not text.isascii() or any(ch < " " and ch != "\t" or ch == "\x7f" for ch in text):
        raise _err("expression", "holds characters other than printable ASCII")
    parts = text.upper().split()
    if len(parts) == 5:
        return _parse_unix(text, parts)
    if len(parts) in (6, 7):
        return _parse_quartz(text, parts)
    raise _err("expression", f"has {len(parts)} fields; expected 5 (Unix) or 6-7 (Quartz: seconds first)")


# --------------------------------------------------------------------------- time zones

_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValidationError on field `timezone` when there is none."""
    if not isinstance(name, str):
        raise ValidationError("timezone", "must be a string")
    shown = name if len(name) <= 64 else name[:64] + "..."
    if len(name) > 64 or not _ZONE_NAME.fullmatch(name):
        raise ValidationError("timezone", f"unknown time zone {shown!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValidationError("timezone", f"unknown time zone {shown!r}") from exc


# --------------------------------------------------------------------------- frequency info

_FREQ = "jobFrequencyInfo"
_HOURLY, _DAILY, _WEEKLY, _MONTHLY = 1, 2, 3, 4


def _int_list(info: Mapping, key: str, lo: int, hi: int, allow_last: bool = False) -> list:
    """The sorted, de-duplicated values of info[key]; ValidationError names `jobFrequencyInfo.key`."""
    name = f"{_FREQ}.{key}"
    values = info.get(key)
    if values is None:
        raise ValidationError(name, "is required")
    if not isinstance(values, list):
        raise ValidationError(name, "must be a list")
    if not values:
        raise ValidationError(name, "must not be empty")
    out: set[int | str] = set()
    for v in values:
        if allow_last and v == "L":
            out.add("L")
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValidationError(name, f"{v!r} is not an integer")
        if not lo <= v <= hi:
            raise ValidationError(name, f"{v} is out of range {lo}-{hi}")
        out.add(v)
    if "L" in out and len(out) > 1:
        raise ValidationError(name, "'L' (the last day) cannot be combined with other dates")
    return ["L"] if "L" in out else sorted(out)


def _join(values: list) -> str:
    return ",".join(str(v) for v in values)


def frequency_to_cron(info: Mapping) -> str:
    """The Quartz cron (seconds 0, 7 fields) that a seed-003 `jobFrequencyInfo` describes."""
    if not isinstance(info, Mapping):
        raise ValidationError(_FREQ, "must be an object")
    kind = info.get("frequencyType")
    if isinstance(kind, bool) or not isinstance(kind, int) or kind not in (_HOURLY, _DAILY, _WEEKLY, _MONTHLY):
        reason = f"must be 1 (hour), 2 (day), 3 (week) or 4 (month), not {kind!r}"
        raise ValidationError(f"{_FREQ}.frequencyType", reason)
    minutes = _join(_int_list(info, "minuteValues", 0, 59))
    if kind == _HOURLY:
        every = [1] if info.get("hourValues") is None else _int_list(info, "hourValues", 1, 23)
        if len(every) != 1:
            raise ValidationError(f"{_FREQ}.hourValues", "must hold one value: run every n hours")
        return f"0 {minutes} {'*' if every[0] == 1 else f'*/{every[0]}'} * * ? *"
    hours = _join(_int_list(info, "hourValues", 0, 23))
    if kind == _DAILY:
        return f"0 {minutes} {hours} * * ? *"
    if kind == _WEEKLY:
        return f"0 {minutes} {hours} ? * {_join(_int_list(info, 'dayValues', 1, 7))} *"
    return f"0 {minutes} {hours} {_join(_int_list(info, 'dateValues', 1, 31, allow_last=True))} * ? *"


_EVERY_N_HOURS = re.compile(r"(?:\*|0)/([0-9]+)")


def _members(table: tuple[int, ...]) -> list[int]:
    return sorted({v for v in table if v >= 0})


def _plain(side: _DaySide | None) -> TypeGuard[_DaySide]:
    return side is not None and not (side.last or side.last_weekday or side.near or side.last_weekdays or side.nth)


def cron_to_frequency(expr: CronExpr) -> dict | None:
    """The `jobFrequencyInfo` of `expr` when it has one of the four shapes, else None."""
    if _members(expr._seconds) != [0] or expr._years is not None or len(_members(expr._months)) != 12:
        return None
    dom, dow = expr._dom, expr._dow
    minutes = _members(expr._minutes)
    hour_text = expr.normalized.split()[2 if expr.dialect == "quartz" else 1]
    if dom is None and dow is None:
        m = _EVERY_N_HOURS.fullmatch(hour_text)
        if hour_text == "*" or (m and 1 <= int(m.group(1)) <= 23):
            info: dict = {"frequencyType": _HOURLY, "minuteValues": minutes}
            if m and int(m.group(1)) != 1:
                info["hourValues"] = [int(m.group(1))]
            return info
        return {"frequencyType": _DAILY, "hourValues": _members(expr._hours), "minuteValues": minutes}
    at = {"hourValues": _members(expr._hours), "minuteValues": minutes}
    if dom is None and _plain(dow):
        days = sorted({(wd + 1) % 7 + 1 for wd in dow.weekdays})  # Python Monday 0 -> Quartz MON 2
        return {"frequencyType": _WEEKLY, "dayValues": days, **at}
    if dow is None and _plain(dom):
        return {"frequencyType": _MONTHLY, "dateValues": sorted(dom.days), **at}
    if dow is None and dom == _DaySide(last=frozenset({0})):
        return {"frequencyType": _MONTHLY, "dateValues": ["L"], **at}
    return None
