"""The Quartz dialect (6 or 7 fields, seconds first): its fields and grammar, as Quartz 2.3.2 reads them."""

from __future__ import annotations

import re

from schedd.cron.fields import (
    MAX_YEAR,
    MIN_YEAR,
    MONTHS,
    DaySide,
    Field,
    ParsedFields,
    err,
    in_range,
    number,
)

_DAYS = {n: i for i, n in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}

_FIELDS = (
    Field("second", 0, 59, step_max=59, wrap=60),
    Field("minute", 0, 59, step_max=59, wrap=60),
    Field("hour", 0, 23, step_max=23, wrap=24),
    Field("day-of-month", 1, 31, step_max=31, wrap=31),
    Field("month", 1, 12, MONTHS, step_max=12, wrap=12),
    Field("day-of-week", 1, 7, _DAYS, step_max=7, wrap=7),
    Field("year", MIN_YEAR, MAX_YEAR),
)
_DOM, _MONTH, _DOW, _YEAR = _FIELDS[3:]

# Python weekday (Monday 0) of each Quartz day-of-week number.
_WEEKDAY = {d: (d + 5) % 7 for d in range(1, 8)}

_TERM = re.compile(r"(?:(\*)|([0-9]+|[A-Z]+)(?:-([0-9]+|[A-Z]+))?)?(?:/([0-9]*))?")


def _value(tok: str, f: Field) -> tuple[int, bool]:
    """A number or (month, day-of-week) a three-letter name; True when it was a name."""
    if tok.isdigit():
        return in_range(int(tok), f), False
    if f.names is not None and tok in f.names:
        return f.names[tok], True
    if f.names is not None:
        raise err(f, f"unknown name {tok!r}")
    raise err(f, f"{tok!r} is not a number")


def _term(term: str, f: Field) -> tuple[set[int], str]:
    """One comma-separated Quartz term: its values and its normalized text."""
    if term == "?":
        raise err(f, "'?' is allowed only in day-of-month or day-of-week, alone")
    if not term:
        raise err(f, "a value is missing")
    m = _TERM.fullmatch(term)
    if m is None:
        raise err(f, f"cannot read {term!r}")
    star, first, last, step_txt = m.groups()
    step = 1
    if step_txt is not None:
        if not step_txt:
            raise err(f, "'/' must be followed by a step")
        step = int(step_txt)
        if step < 1:
            raise err(f, "a step must be at least 1")
        if f.step_max is not None and step > f.step_max:
            raise err(f, f"step {step} is out of range 1-{f.step_max}")
    if first is None:  # `*`, `*/n` or Quartz's bare `/n`, which it reads as `*/n`
        if star is None and step_txt is None:
            raise err(f, f"cannot read {term!r}")
        return set(range(f.lo, f.hi + 1, step)), "*" if step_txt is None else f"*/{step}"
    a, a_named = _value(first, f)
    b, b_named = (a, a_named) if last is None else _value(last, f)
    if last is not None and a_named != b_named:
        raise err(f, f"a range mixes a name and a number in {term!r}")
    if (a_named or b_named) and step_txt is not None:
        # Quartz 2.3.2 silently drops a step written after a name (MON-FRI/2 is MON-FRI).
        raise err(f, f"a step after a name is ignored by Quartz; write numbers in {term!r}")
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
        raise err(f, f"the range {a}-{b} ends before it starts")
    # Quartz wraps a reversed range (22-2, FRI-MON, NOV-FEB) past the field's end.
    values = set()
    for i in range(a, b + f.wrap + 1, step):
        v = i % f.wrap
        values.add(f.wrap if v == 0 and f.lo == 1 else v)
    return values, text


def _list(text: str, f: Field) -> tuple[set[int], str]:
    values: set[int] = set()
    parts = []
    for term in text.split(","):
        v, t = _term(term, f)
        values |= v
        parts.append(t)
    return values, ",".join(parts)


_DOM_LAST = re.compile(r"L(?:-([0-9]+))?(W)?")
_DOM_NEAR = re.compile(r"([0-9]+)W")
_DOW_SPECIAL = re.compile(r"([0-9]+|[A-Z]+)(?:(L)|#([0-9]*))")


def _dom(text: str) -> tuple[DaySide | None, str]:
    f = _DOM
    if text == "?":
        return None, "?"
    if "L" in text or "W" in text:
        if "," in text:
            raise err(f, f"'L' and 'W' cannot be combined with other days in {text!r}")
        m = _DOM_LAST.fullmatch(text)
        if m:
            offset = int(m.group(1)) if m.group(1) is not None else 0
            if offset > 30:
                raise err(f, f"the offset from the last day must be 0-30, not {offset}")
            if m.group(2) and offset > 27:
                # February would have no such day; Quartz 2.3.2 can loop forever on it.
                raise err(f, f"the offset before 'W' must be 0-27, not {offset}")
            norm = "L" + (f"-{offset}" if m.group(1) is not None else "") + ("W" if m.group(2) else "")
            if m.group(2):
                return DaySide(last_weekday=frozenset({offset})), norm
            return DaySide(last=frozenset({offset})), norm
        m = _DOM_NEAR.fullmatch(text)
        if m:
            day = in_range(number(m.group(1), f), f)
            return DaySide(near=frozenset({day})), f"{day}W"
        raise err(f, f"'W' needs a single day (15W) and 'L' stands alone (L, L-3, LW); cannot read {text!r}")
    values, norm = _list(text, f)
    return DaySide(days=frozenset(values)), norm


def _dow(text: str) -> tuple[DaySide | None, str]:
    f = _DOW
    if text == "?":
        return None, "?"
    if text == "L":  # alone, Quartz reads it as 7 (SAT)
        return DaySide(weekdays=frozenset({_WEEKDAY[7]})), "L"
    if "L" in text or "#" in text:
        if "," in text:
            raise err(f, f"'L' and '#' cannot be combined with other days in {text!r}")
        m = _DOW_SPECIAL.fullmatch(text)
        if m is None:
            raise err(f, f"cannot read {text!r} (use 6L for the last Friday, 6#3 for the third)")
        d, _ = _value(m.group(1), f)
        if m.group(2):
            return DaySide(last_weekdays=frozenset({_WEEKDAY[d]})), f"{d}L"
        nth = number(m.group(3), f)
        if not 1 <= nth <= 5:
            raise err(f, f"'#' must be followed by 1-5, not {nth}")
        return DaySide(nth=frozenset({(_WEEKDAY[d], nth)})), f"{d}#{nth}"
    values, norm = _list(text, f)
    return DaySide(weekdays=frozenset(_WEEKDAY[d] for d in values)), norm


def parse_quartz(parts: list[str]) -> ParsedFields:
    """The fields of a 6- or 7-field expression, upper-cased and split; CronError names the field at fault."""
    if len(parts) == 6:
        parts = [*parts, "*"]
    norm: list[str] = []
    sets: list[set[int]] = []
    for text, f in zip(parts[:3], _FIELDS[:3], strict=True):
        values, t = _list(text, f)
        sets.append(values)
        norm.append(t)
    dom, dom_norm = _dom(parts[3])
    months, month_norm = _list(parts[4], _MONTH)
    dow, dow_norm = _dow(parts[5])
    years, year_norm = _list(parts[6], _YEAR)
    if dom is None and dow is None:
        raise err(_DOW, "'?' may stand in only one of day-of-month and day-of-week")
    if dom_norm != "?" and dow_norm != "?":
        raise err(_DOW, "day-of-month and day-of-week are both given; set one of them to '?'")
    # `*` in the remaining day field restricts nothing.
    if dom_norm == "*":
        dom = None
    if dow_norm == "*":
        dow = None
    norm += [dom_norm, month_norm, dow_norm, year_norm]
    fixed = not norm[1].startswith("*") and not norm[2].startswith("*")
    sets.append(months)
    return ParsedFields("quartz", norm, sets, years, dom, dow, both=False, fixed_time=fixed)
