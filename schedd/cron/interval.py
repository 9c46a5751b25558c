"""How close together an expression's fires come: for a limit on how often a schedule may fire.

`closer_than(cron, tz, after, limit)` answers the gap between two fires that is shorter
than `limit`, or None. It is exact for the wall clock, and cheap:

- within a day: the second, minute and hour fields are the same on every day that fires,
  so the closest fires of a day follow from their value sets alone (two seconds of one
  minute, the last second of a minute and the first of the next listed minute, the same
  across listed hours): O(60) however the day fields read;
- across midnight: the last fire of a day and the first of the next, when two
  consecutive days fire (L, W, # and the like are looked up with the evaluator over the
  next firing days, only when that gap would be short enough to matter);
- then the next `SAMPLES` fires in the schedule's zone, which also sees what a DST change
  close to `after` does. Further ahead, a DST change may bring two fires closer once a
  year, as it does for any schedule; that is not counted against it.

Both dialects: a Unix expression has the one second 0.
"""

from __future__ import annotations

from datetime import timezone

from schedd.cron.expr import CronExpr

DAY = 86400
SAMPLES = 16
DAY_PROBES = 400
"""Firing days looked at for two consecutive ones (about a year of a weekly schedule)."""

_UTC = timezone.utc


def _members(table: tuple[int, ...], size: int) -> list[int]:
    return [v for v in range(size) if table[v] == v]


def within_day(cron: CronExpr) -> float | None:
    """The shortest gap between two fires of one day (wall clock); None when a day fires once."""
    seconds = _members(cron.second_table, 60)
    minutes = _members(cron.minute_table, 60)
    hours = _members(cron.hour_table, 24)
    gaps = [b - a for a, b in zip(seconds, seconds[1:], strict=False)]
    second_span = seconds[-1] - seconds[0]
    gaps += [(b - a) * 60 - second_span for a, b in zip(minutes, minutes[1:], strict=False)]
    minute_span = (minutes[-1] - minutes[0]) * 60 + second_span
    gaps += [(b - a) * 3600 - minute_span for a, b in zip(hours, hours[1:], strict=False)]
    return float(min(gaps)) if gaps else None


def across_midnight(cron: CronExpr) -> float:
    """The gap from the last fire of a day to the first of the next day (wall clock)."""
    first = _members(cron.hour_table, 24)[0] * 3600 + _members(cron.minute_table, 60)[0] * 60 \
        + _members(cron.second_table, 60)[0]
    last = _members(cron.hour_table, 24)[-1] * 3600 + _members(cron.minute_table, 60)[-1] * 60 \
        + _members(cron.second_table, 60)[-1]
    return float(DAY - (last - first))


def fires_on_consecutive_days(cron: CronExpr, after: float) -> bool:
    """Whether two days in a row fire, among the next DAY_PROBES firing days after `after`."""
    if cron.dom is None and cron.dow is None and cron.years is None:
        return True
    fire = cron.next_after(after, _UTC)
    for _ in range(DAY_PROBES):
        if fire is None:
            return False
        day = int(fire // DAY)
        fire = cron.next_after((day + 1) * DAY - 1, _UTC)
        if fire is not None and int(fire // DAY) == day + 1:
            return True
    return False


def closer_than(cron: CronExpr, tz, after: float, limit: float) -> float | None:
    """The shortest gap between two fires after `after` when it is shorter than `limit` seconds; else None."""
    found = [gap for gap in (within_day(cron),) if gap is not None and gap < limit]
    midnight = across_midnight(cron)
    if midnight < limit and fires_on_consecutive_days(cron, after):
        found.append(midnight)
    if found:
        return min(found)
    shortest = None
    previous = cron.next_after(after, tz)
    for _ in range(SAMPLES):
        if previous is None:
            break
        fire = cron.next_after(previous, tz)
        if fire is None:
            break
        if fire - previous < limit and (shortest is None or fire - previous < shortest):
            shortest = fire - previous
        previous = fire
    return shortest
