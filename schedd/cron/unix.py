"""The Unix dialect (5 fields, minute first, day-of-week 0-7): its fields and grammar, as cronsim reads them,
with what cronie adds: a day-of-week range may end on Sunday as 0 (`5-0`, `MON-SUN`), and the
macros `@hourly` to `@yearly` stand for their five fields."""

from __future__ import annotations

import re

from schedd.cron.fields import (
    MONTHS,
    DaySide,
    Field,
    ParsedFields,
    err,
    in_range,
    number,
)

_DAYS = {n: i for i, n in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}

_FIELDS = (
    Field("minute", 0, 59),
    Field("hour", 0, 23),
    Field("day-of-month", 1, 31),
    Field("month", 1, 12, MONTHS),
    Field("day-of-week", 0, 7, _DAYS),
)
_DOM, _MONTH, _DOW = _FIELDS[2:]

# Python weekday (Monday 0) of each Unix day-of-week number.
_WEEKDAY = {d: (d + 6) % 7 for d in range(8)}

# Unix terms follow cronsim's reading, which is what the Unix dialect promises.
_LAST = -1
_LAST_WEEKDAY = -2

# cronie's macros and the fields each one sets (its entry.c).
MACROS = {
    "@HOURLY": "0 * * * *",
    "@DAILY": "0 0 * * *",
    "@MIDNIGHT": "0 0 * * *",
    "@WEEKLY": "0 0 * * 0",
    "@MONTHLY": "0 0 1 * *",
    "@YEARLY": "0 0 1 1 *",
    "@ANNUALLY": "0 0 1 1 *",
}
REBOOT_REFUSED = (
    "@reboot is not a time: cron runs such a job when the cron daemon starts, and a schedd "
    "schedule has no boot to attach it to (schedules outlive restarts, and a restart is not a boot); "
    "give a time such as @daily instead"
)


def _int(tok: str, f: Field) -> int:
    if f.names is not None and tok in f.names:
        return f.names[tok]
    return in_range(number(tok, f), f)


def _parse(s: str, f: Field) -> set:
    """cronsim's grammar: lists, ranges, steps, names; `L`/`LW` in day-of-month, `nL`/`n#k` in day-of-week."""
    if s == "*":
        return set(range(f.lo, f.hi + 1))
    if "," in s:
        out: set = set()
        for term in s.split(","):
            out |= _parse(term, f)
        return out
    if f is _DOW and "L" in s:
        if not (s[:-1].isascii() and s[:-1].isdigit()):
            raise err(f, f"cannot read {s!r} (use 5L for the last Friday)")
        return {("L", _int(s[:-1], f))}
    if f is _DOW and "#" in s:
        term, nth_txt = s.split("#", 1)
        nth = number(nth_txt, f)
        if not 1 <= nth <= 5:
            raise err(f, f"'#' must be followed by 1-5, not {nth}")
        return {("#", _int(term, f), nth)}
    if "/" in s:
        term, step_txt = s.split("/", 1)
        step = number(step_txt, f)
        if step == 0:
            raise err(f, "a step must be at least 1")
        items = _parse(term, f)
        if items in ({_LAST}, {_LAST_WEEKDAY}):
            return items
        if len(items) == 1:
            (start,) = items
            return set(range(start, f.hi + 1)[::step])
        return set(sorted(items)[::step])
    if "-" in s:
        a_txt, b_txt = s.split("-", 1)
        a, b = _int(a_txt, f), _int(b_txt, f)
        if f is _DOW and b == 0 < a:
            b = 7  # cronie: a range may end on Sunday written as 0 (5-0, MON-SUN)
        if b < a:
            raise err(f, f"the range {a}-{b} ends before it starts")
        return set(range(a, b + 1))
    if f is _DOM and s == "LW":
        return {_LAST_WEEKDAY}
    if f is _DOM and s == "L":
        return {_LAST}
    return {_int(s, f)}


def _normalize(text: str, f: Field) -> str:
    names = f.names
    if names is not None:
        text = re.sub(r"[A-Z]{3}", lambda m: str(names.get(m.group(), m.group())), text)
    return re.sub(r"[0-9]+", lambda m: str(int(m.group())), text)


def parse_unix(parts: list[str]) -> ParsedFields:
    """The fields of a 5-field expression, upper-cased and split; CronError names the field at fault."""
    sets = []
    for text, f in zip(parts[:2], _FIELDS[:2], strict=True):
        sets.append(_parse(text, f))
    dom_items = _parse(parts[2], _DOM)
    months = _parse(parts[3], _MONTH)
    dow_items = _parse(parts[4], _DOW)
    dom: DaySide | None = DaySide(
        days=frozenset(v for v in dom_items if v > 0),
        last=frozenset({0}) if _LAST in dom_items else frozenset(),
        last_weekday=frozenset({0}) if _LAST_WEEKDAY in dom_items else frozenset(),
    )
    dow: DaySide | None = DaySide(
        weekdays=frozenset(_WEEKDAY[v] for v in dow_items if isinstance(v, int)),
        last_weekdays=frozenset(_WEEKDAY[v[1]] for v in dow_items if isinstance(v, tuple) and v[0] == "L"),
        nth=frozenset((_WEEKDAY[v[1]], v[2]) for v in dow_items if isinstance(v, tuple) and v[0] == "#"),
    )
    # Debian cron (and cronsim): when either day field starts with `*` both must match,
    # otherwise a date matching either one fires (the OR rule).
    both = parts[2].startswith("*") or parts[4].startswith("*")
    if parts[2] == "*":
        dom = None
    if parts[4] == "*":
        dow = None
    norm = [_normalize(p, f) for p, f in zip(parts, _FIELDS, strict=True)]
    fixed = not parts[0].startswith("*") and not parts[1].startswith("*")
    sets = [{0}, *sets, months]
    return ParsedFields("unix", norm, sets, None, dom, dow, both=both, fixed_time=fixed)


def parse_macro(word: str) -> ParsedFields:
    """The fields of a cronie macro (`@daily`, upper-cased); `@reboot` and unknown ones are refused."""
    if word == "@REBOOT":
        raise err("expression", REBOOT_REFUSED)
    fields = MACROS.get(word)
    if fields is None:
        known = ", ".join(m.lower() for m in MACROS)
        raise err("expression", f"unknown macro {word.lower()!r}; the macros are {known}")
    return parse_unix(fields.split())
