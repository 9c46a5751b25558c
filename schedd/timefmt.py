"""Every way schedd writes a time as text, each written once.

| function | text | where |
| --- | --- | --- |
| `rfc3339` | `2026-03-08T07:00:00.000000Z` (the zero time when None) | AtScale's APIs |
| `local_seconds` | `2026-03-08 03:00:00` in a zone | Volt MX's job API |
| `local_minutes` | `2026-03-08T03:00` in a zone | Prod-Manager's maintenance API |
| `shown` | `2026-03-08 03:00 EDT` (with `seconds`: `03:00:00 EDT`), a dash when None | the operator view |
| `clock` | `03:00` in a zone | chart axes |
| `utc_seconds` | `2026-03-08T07:00:00Z` | log lines, the CLI |
| `utc_precise` | `2026-03-08T07:00:00.250000Z` (seconds only when whole), "-" when None | skip reasons |
| `utc_compact` | `20260308T070000Z` | iCalendar, backup file names |
| `utc_millis` | `2026-03-08T07:00:00.250Z` | log lines' `ts` |
| `iso` | `2026-03-08T03:00:00-04:00` in a zone (`seconds`: no fraction) | `schedd next`, the lock file |

The two the hot routes write per row (`rfc3339`, `local_seconds`) are computed by
arithmetic with cached dates instead of `datetime`, and give the same text (tests check
them against `datetime`).
"""

from __future__ import annotations

import functools
import math
import time
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

ZERO_TIME = "0001-01-01T00:00:00Z"
NOT_YET = "\u2014"


def rfc3339(at: float | None) -> str:
    """AtScale's time format: UTC with microseconds and Z; the zero time for what has not happened.

    The same text as `datetime.fromtimestamp(at, timezone.utc)` with `%Y-%m-%dT%H:%M:%S.%fZ`
    (microseconds rounded half to even), at a third of the cost: history pages format
    several times per row, and the date of a day is looked up once.
    """
    if at is None:
        return ZERO_TIME
    whole = math.floor(at)
    micro = round((at - whole) * 1e6)  # at - floor(at) is exact: the same rounding as datetime's
    if micro == 1_000_000:
        whole, micro = whole + 1, 0
    day, second = divmod(whole, 86400)
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    return f"{_utc_date(day)}T{hour:02d}:{minute:02d}:{second:02d}.{micro:06d}Z"


def local_seconds(at: float, zone: ZoneInfo) -> str:
    """`YYYY-MM-DD HH:MM:SS` of `at` in `zone`: the text of `datetime.fromtimestamp(at, zone)`
    with `%Y-%m-%d %H:%M:%S`, at a third of the cost (a page of job history shows two per row)."""
    whole = math.floor(at)
    if round((at - whole) * 1e6) == 1_000_000:  # datetime rounds to microseconds first
        whole += 1
    offset = _steady_offset(zone, whole // _OFFSET_SPAN)
    if offset is None:  # the zone changes its offset within this quarter hour
        return datetime.fromtimestamp(whole, zone).strftime("%Y-%m-%d %H:%M:%S")
    day, second = divmod(whole + offset, 86400)
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    return f"{_utc_date(day)} {hour:02d}:{minute:02d}:{second:02d}"


_OFFSET_SPAN = 900


@functools.lru_cache(maxsize=4096)
def _steady_offset(zone: ZoneInfo, span: int) -> int | None:
    """The UTC offset (s) of `zone` through the quarter hour `span`, or None if it changes in it."""
    first = datetime.fromtimestamp(span * _OFFSET_SPAN, zone).utcoffset()
    last = datetime.fromtimestamp(span * _OFFSET_SPAN + _OFFSET_SPAN - 1, zone).utcoffset()
    if first is None or first != last:
        return None
    return int(first.total_seconds())


@functools.lru_cache(maxsize=1024)
def _utc_date(day: int) -> str:
    """`YYYY-MM-DD` of the UTC day `day` days after 1970-01-01."""
    return (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")


_EPOCH = datetime(1970, 1, 1)

LOCAL_MINUTES = "%Y-%m-%dT%H:%M"


def local_minutes(at: float, zone: ZoneInfo) -> str:
    """Prod-Manager's date: `YYYY-MM-DDTHH:MM` in `zone`."""
    return datetime.fromtimestamp(at, zone).strftime(LOCAL_MINUTES)


def shown(at: float | None, zone: ZoneInfo, *, seconds: bool = False) -> str:
    """`2026-03-08 03:00 EDT` (with `seconds`, `03:00:00 EDT`); an em dash for a time that has not happened."""
    if at is None:
        return NOT_YET
    return datetime.fromtimestamp(at, zone).strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def clock(at: float, zone: ZoneInfo) -> str:
    """`HH:MM` in `zone`."""
    return datetime.fromtimestamp(at, zone).strftime("%H:%M")


def utc_seconds(at: float) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ`."""
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_precise(at: float | None) -> str:
    """ISO 8601 UTC with Z, microseconds when `at` has any; "-" for None."""
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, timezone.utc).isoformat().replace("+00:00", "Z")


def utc_millis(at: float) -> str:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ`, milliseconds cut (not rounded), as logging's `msecs` are."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int((at - int(at)) * 1000):03d}Z"


def iso(at: float, zone: tzinfo, *, seconds: bool = False) -> str:
    """ISO 8601 with the zone's offset (`+00:00` for UTC); with `seconds`, no fraction."""
    moment = datetime.fromtimestamp(at, zone)
    return moment.isoformat(timespec="seconds") if seconds else moment.isoformat()


def utc_compact(at: float) -> str:
    """`YYYYMMDDTHHMMSSZ` (iCalendar's UTC form)."""
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
