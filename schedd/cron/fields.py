"""What both dialects share: the year range, field definitions, parsed field values, errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schedd.errors import ValidationError

MIN_YEAR = 1970
MAX_YEAR = 2099  # Quartz's documented year range; fire times stop after it in both dialects


class CronError(ValidationError):
    """A cron expression was rejected; `field` names the cron field at fault."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    lo: int
    hi: int
    names: Mapping[str, int] | None = None
    step_max: int | None = None  # Quartz refuses larger steps after `*` or a single value
    wrap: int = 0  # Quartz: a range whose end is below its start wraps modulo this


MONTHS = {
    n: i
    for i, n in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)
}


def err(f: Field | str, reason: str) -> CronError:
    return CronError(f if isinstance(f, str) else f.name, reason)


def number(tok: str, f: Field) -> int:
    if not tok.isascii() or not tok.isdigit():
        raise err(f, f"{tok!r} is not a number" if tok else "a value is missing")
    return int(tok)


def in_range(v: int, f: Field) -> int:
    if not f.lo <= v <= f.hi:
        raise err(f, f"{v} is out of range {f.lo}-{f.hi}")
    return v


@dataclass(frozen=True, slots=True)
class DaySide:
    """What one day field asks for (dates of the month or days of the week); hashable."""

    days: frozenset[int] = frozenset()  # day-of-month numbers
    last: frozenset[int] = frozenset()  # L-n: n days before the last day
    last_weekday: frozenset[int] = frozenset()  # L-nW: the weekday nearest to L-n
    near: frozenset[int] = frozenset()  # nW: the weekday nearest to the n-th
    weekdays: frozenset[int] = frozenset()  # Python weekday numbers, Monday 0
    last_weekdays: frozenset[int] = frozenset()  # the last such weekday of the month
    nth: frozenset[tuple[int, int]] = frozenset()  # (weekday, k): the k-th such weekday


@dataclass(frozen=True, slots=True)
class ParsedFields:
    """One expression as its dialect reads it, before `expr` checks its days and builds the CronExpr."""

    dialect: str
    normalized: list[str]  # each field's text, in the dialect's order
    sets: list[set[int]]  # second, minute, hour and month values
    years: set[int] | None
    dom: DaySide | None  # None: the day-of-month field restricts nothing
    dow: DaySide | None  # None: the day-of-week field restricts nothing
    both: bool  # a date must match both day fields, not either
    fixed_time: bool  # minute and hour are fixed, which decides how DST changes resolve


def next_table(values: set[int] | range, size: int) -> tuple[int, ...]:
    """next[v] = the smallest member >= v, or -1 past the last (index `size` is a sentinel)."""
    out = []
    nxt = -1
    for v in range(size, -1, -1):
        if v in values:
            nxt = v
        out.append(nxt)
    return tuple(reversed(out))
