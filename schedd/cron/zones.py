"""Time zones: IANA names to zones, and each zone's UTC offset changes as a searchable table."""

from __future__ import annotations

import re
from bisect import bisect_right
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schedd.errors import ValidationError

T_MIN = -31_536_000  # 1969-01-01T00:00:00Z: zone tables start here, and so do searches
_T_MAX = 4_133_980_800  # 2101-01-01T00:00:00Z
_ZONES: dict[object, tuple[list[int], list[int]]] = {}


def _offset(tz, t: int) -> int:
    offset = datetime.fromtimestamp(t, tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def zone_table(tz) -> tuple[list[int], list[int]]:
    """UTC offset changes of `tz` over 1969-2100: (instants, offsets), offsets[k] holds before instants[k].

    zoneinfo keeps its transitions private, so they are found once per zone by a daily
    scan refined to the second (about 20 ms); a pair of changes within one day is missed.
    """
    table = _ZONES.get(tz)
    if table is not None:
        return table
    instants: list[int] = []
    offsets = [_offset(tz, T_MIN)]
    for t in range(T_MIN + 86400, _T_MAX + 1, 86400):
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


def first_instant(c: int, ts: list[int], offs: list[int], guess: int) -> int:
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
