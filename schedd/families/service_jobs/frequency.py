"""Volt MX's `jobFrequencyInfo` (a service job's frequency as its admin console edits it) to a
Quartz cron expression, and back for the four shapes it describes (docs/api.md, "Service jobs")."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeGuard

from schedd.cron.expr import CronExpr
from schedd.cron.fields import DaySide
from schedd.errors import ValidationError

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
    """The Quartz cron (seconds 0, 7 fields) that a Volt MX `jobFrequencyInfo` describes."""
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


def _plain(side: DaySide | None) -> TypeGuard[DaySide]:
    return side is not None and not (side.last or side.last_weekday or side.near or side.last_weekdays or side.nth)


def cron_to_frequency(expr: CronExpr) -> dict | None:
    """The `jobFrequencyInfo` of `expr` when it has one of the four shapes, else None.

    A single second is left out, as Volt MX does (its `41 5 * * * ? *` has the info of
    minute 5, every hour): the info describes the minutes and hours, the cron stays the schedule.
    """
    if len(_members(expr.second_table)) != 1 or expr.years is not None or len(_members(expr.month_table)) != 12:
        return None
    dom, dow = expr.dom, expr.dow
    minutes = _members(expr.minute_table)
    hour_text = expr.normalized.split()[2 if expr.dialect == "quartz" else 1]
    if dom is None and dow is None:
        m = _EVERY_N_HOURS.fullmatch(hour_text)
        if hour_text == "*" or (m and 1 <= int(m.group(1)) <= 23):
            info: dict = {"frequencyType": _HOURLY, "minuteValues": minutes}
            if m and int(m.group(1)) != 1:
                info["hourValues"] = [int(m.group(1))]
            return info
        return {"frequencyType": _DAILY, "hourValues": _members(expr.hour_table), "minuteValues": minutes}
    at = {"hourValues": _members(expr.hour_table), "minuteValues": minutes}
    if dom is None and _plain(dow):
        days = sorted({(wd + 1) % 7 + 1 for wd in dow.weekdays})  # Python Monday 0 -> Quartz MON 2
        return {"frequencyType": _WEEKLY, "dayValues": days, **at}
    if dow is None and _plain(dom):
        return {"frequencyType": _MONTHLY, "dateValues": sorted(dom.days), **at}
    if dow is None and dom == DaySide(last=frozenset({0})):
        return {"frequencyType": _MONTHLY, "dateValues": ["L"], **at}
    return None
