"""Checks shared by the families: org access, cron and time zone of a new schedule."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from schedd.core import Core
from schedd.cron import CronError, CronExpr, load_zone, parse
from schedd.errors import NotFound, ValidationError
from schedd.inputs import check_text
from schedd.states import RunState, values
from schedd.store.accounts import User

RUN_STATES = values(RunState)


async def check_org(core: Core, user: User, org_id: str) -> None:
    """404 alike for an org that does not exist and one the caller may not see."""
    if not user.can_see(org_id):
        raise NotFound("organization", org_id)
    if org_id in core.known_orgs:
        return
    if not await core.store.accounts.org_exists(org_id):
        raise NotFound("organization", org_id)
    core.known_orgs.add(org_id)


@dataclass(frozen=True, slots=True)
class Timing:
    cron: CronExpr
    timezone: str
    zone: ZoneInfo
    next_fire_at: float


def timing(core: Core, expression: object, timezone: object, *, at: float,
           field: str = "time_expression", after: float | None = None) -> Timing:
    """Validate a schedule's cron and zone; the first fire (after `after`, default `at`) must exist."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValidationError(field, "is required (a cron expression such as '0 0 4 ? * * *')")
    check_text(expression, field)
    if timezone is None or timezone == "":
        timezone = core.config.scheduler.timezone
    if not isinstance(timezone, str):
        raise ValidationError("timezone", "must be a string naming an IANA time zone")
    check_text(timezone, "timezone")
    zone = load_zone(timezone)
    try:
        cron = parse(expression)
    except CronError as exc:
        raise exc.under(field) from exc
    next_fire_at = cron.next_after(at if after is None else max(at, after), zone)
    if next_fire_at is None:
        raise ValidationError(field, "has no fire time in the future")
    return Timing(cron, timezone, zone, next_fire_at)


def run_state(value: str | None, field: str = "status") -> str | None:
    if value is None or value == "":
        return None
    if value not in RUN_STATES:
        raise ValidationError(field, f"must be one of {', '.join(RUN_STATES)}")
    return value
