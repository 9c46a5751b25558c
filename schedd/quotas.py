"""What one org may create ([quotas]), and the one place a reached limit is counted and logged.

Creating a schedule or a service job checks, for a caller who is not an administrator:
how often its expression fires (`min_interval`: 400 naming the field, as any bad value)
and how many its org already holds (`max_schedules` per org for maintenance and build
schedules, `max_jobs` for service jobs, which belong to no org). A full org answers 409:
the request conflicts with what the org holds now, and succeeds once one is deleted or
the limit raised; it is not a permission (403) nor a rate that passes with time (429).
The count and the insert happen in one write, so concurrent creates cannot overshoot.

Every limit reached, here or in the runner, goes through `reached()`: counted in
`schedd_limit_reached_total{limit}` and logged at most once per `LOG_EVERY` per limit,
with how many times it was reached since the last line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from schedd import metrics
from schedd.config import Config, OrgLimits
from schedd.cron import CronExpr
from schedd.cron.interval import closer_than
from schedd.errors import Conflict, ValidationError
from schedd.store.accounts import User
from schedd.store.schedules import Cap

log = logging.getLogger("schedd.quotas")

LOG_EVERY = 60.0
"""Seconds between two log lines about the same limit."""


class QuotaExceeded(Conflict):
    """An org holds as many of something as its quota allows; `limit` is the config key."""

    def __init__(self, limit: str, message: str) -> None:
        self.limit = limit
        super().__init__(message)


@dataclass
class _Seen:
    logged_at: float
    since: int = 0


_seen: dict[str, _Seen] = {}


def reached(limit: str, at: float, detail: str) -> None:
    """Count that `limit` (its config key) was reached; log it unless it was logged lately."""
    metrics.LIMITS.labels(limit).inc()
    seen = _seen.get(limit)
    if seen is not None and at - seen.logged_at < LOG_EVERY:
        seen.since += 1
        return
    earlier = seen.since if seen is not None else 0
    _seen[limit] = _Seen(at)
    log.warning("action=limit_reached limit=%s times_since_last_line=%d detail=%r", limit, earlier + 1, detail)


def limits(config: Config, org_id: str | None) -> OrgLimits:
    return config.quotas.for_org(org_id)


def check_interval(
    config: Config, user: User, org_id: str | None, cron: CronExpr, zone, *, field: str, at: float
) -> None:
    """400 naming `field` when a non-admin's expression fires more often than min_interval allows."""
    if user.is_admin:
        return
    limit = limits(config, org_id).min_interval
    if limit <= 0:
        return
    gap = closer_than(cron, zone, at, limit)
    if gap is None:
        return
    reached("quotas.min_interval", at, f"{field} {cron.expr!r} fires {gap:g} s apart")
    raise ValidationError(
        field, f"fires {_seconds(gap)} apart at its closest; the shortest interval allowed is "
               f"{_seconds(limit)} ([quotas] min_interval)")


def schedule_cap(config: Config, user: User, org_id: str) -> Cap | None:
    """The most active maintenance and build schedules the org may hold; None for an admin."""
    if user.is_admin:
        return None
    return Cap(limits(config, org_id).max_schedules, org_id)


def job_cap(config: Config, user: User) -> Cap | None:
    """The most service jobs there may be; None for an admin."""
    if user.is_admin:
        return None
    return Cap(config.quotas.max_jobs, None)


def cap_exceeded(cap: Cap, at: float) -> QuotaExceeded:
    """The error for a create refused by `cap`, counted and logged."""
    if cap.org_id is None:
        limit = "quotas.max_jobs"
        message = f"there are {cap.limit} service jobs, the most [quotas] max_jobs allows"
    else:
        limit = "quotas.max_schedules"
        message = (f"organization {cap.org_id} holds {cap.limit} active schedules, the most its quota"
                   " allows (max_schedules); delete one or ask an administrator to raise it")
    reached(limit, at, message)
    return QuotaExceeded(limit, message)


def _seconds(value: float) -> str:
    if value >= 3600 and value % 3600 == 0:
        return f"{value / 3600:g} h"
    if value >= 60 and value % 60 == 0:
        return f"{value / 60:g} min"
    return f"{value:g} s"
