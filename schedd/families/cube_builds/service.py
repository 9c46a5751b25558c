"""Cube builds: aggregate build schedules per org/project/cube, builds, and their history."""

from __future__ import annotations

import logging
import statistics
from collections.abc import AsyncIterator

from schedd import quotas
from schedd.core import Core
from schedd.errors import Conflict, NotFound, Unavailable, ValidationError
from schedd.families.common import check_org, run_state, timing
from schedd.families.cube_builds.shapes import CubeScheduleInput
from schedd.families.org_maintenance import service as maintenance
from schedd.ids import new_uid
from schedd.runner import Active, RunRef
from schedd.shapes import read
from schedd.store import schedules as schedule_store
from schedd.store.accounts import User
from schedd.store.runs import Run
from schedd.store.schedules import Schedule

log = logging.getLogger("schedd.aggregate")

FAMILY = "aggregate"
MANUAL = "ManualBuild"
ESTIMATE_SAMPLE = 10


def aggregate_key(org_id: str, project_id: str, cube_id: str) -> str:
    """The overlap key of a cube's builds: one build per cube at a time."""
    return f"{FAMILY}:{org_id}/{project_id}/{cube_id}"


def parse_bool(value: object, field: str, default: bool) -> bool:
    """A JSON boolean, or "true"/"false" from a query string or form."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValidationError(field, "must be true or false")


async def list_schedules(
    core: Core, user: User, org_id: str, project_id: str, cube_id: str, *, offset: int = 0,
    limit: int | None = None,
) -> AsyncIterator[list[tuple[Schedule, int]]]:
    """The cube's live schedules in creation order, in batches (checked before the first is read)."""
    await check_org(core, user, org_id)
    return core.store.schedules.scope_batches(
        schedule_store.Scope(FAMILY, org_id, project_id, cube_id, active=True), offset=offset, limit=limit)


async def create_schedule(
    core: Core, user: User, org_id: str, project_id: str, cube_id: str, *,
    time_expression: object, path: object, full_build: object, timezone: object, at: float,
) -> Schedule:
    await check_org(core, user, org_id)
    form = read(CubeScheduleInput, {
        "path": path, "full_build": full_build, "time_expression": time_expression, "timezone": timezone})
    full = parse_bool(form.full_build if isinstance(form.full_build, bool | str) else None, "full_build", True)
    when = timing(core, form.time_expression, form.timezone or None, at=at)
    quotas.check_interval(core.config, user, org_id, when.cron, when.zone, field="time_expression", at=at)
    cap = quotas.schedule_cap(core.config, user, org_id)
    try:
        schedule = await core.store.schedules.insert(schedule_store.NewSchedule(
            uid=new_uid(), family=FAMILY, org_id=org_id, project_id=project_id, cube_id=cube_id,
            cron=when.cron.expr, cron_normalized=when.cron.normalized, timezone=when.timezone,
            full_build=full, next_fire_at=when.next_fire_at, retention_days=0, created_by=user.name,
            created_at=at), cap=cap)
    except schedule_store.CapReached as exc:
        raise quotas.cap_exceeded(exc.cap, at) from None
    core.runner.arm(schedule)
    return schedule


async def _schedule(core: Core, org_id: str, project_id: str, cube_id: str, job_id: str) -> Schedule:
    schedule = await core.store.schedules.get_by_uid(FAMILY, job_id)
    if (schedule is None or not schedule.active or
            (schedule.org_id, schedule.project_id, schedule.cube_id) != (org_id, project_id, cube_id)):
        raise NotFound("schedule", job_id)
    return schedule


async def delete_schedule(
    core: Core, user: User, org_id: str, project_id: str, cube_id: str, job_id: str, *, at: float
) -> None:
    """Deactivate: the schedule stops firing at once; its builds stay in the history."""
    await check_org(core, user, org_id)
    schedule = await _schedule(core, org_id, project_id, cube_id, job_id)
    await core.store.schedules.set_active(schedule.id, False, None, by=user.name, at=at)
    core.runner.disarm(schedule.id)


async def schedule_history(
    core: Core, user: User, org_id: str, project_id: str, cube_id: str, job_id: str, *, limit: int, offset: int,
) -> tuple[Schedule, list[Run]]:
    await check_org(core, user, org_id)
    schedule = await _schedule(core, org_id, project_id, cube_id, job_id)
    return schedule, await core.store.runs.list_schedule(schedule.id, limit=limit, offset=offset)


async def execute(
    core: Core, user: User, org_id: str, project_id: str, cube_id: str, *, full_build: object, at: float
) -> RunRef:
    """Start a build of the cube now; Conflict while one is queued or in progress."""
    await check_org(core, user, org_id)
    if not core.config.executors.aggregate.enabled:
        raise Unavailable("aggregate builds are disabled: set [executors.aggregate] enabled = true")
    full = parse_bool(full_build, "full_build", False)
    return await core.runner.run_now(
        FAMILY, aggregate_key(org_id, project_id, cube_id), MANUAL, at=at, org_id=org_id,
        project_id=project_id, cube_id=cube_id, full_build=full)


async def builds(
    core: Core, user: User, org_id: str, *, limit: int, offset: int, project_id: str | None,
    cube_id: str | None, status: str | None,
) -> list[Run]:
    await check_org(core, user, org_id)
    return await core.store.runs.list_org(FAMILY, org_id, limit=limit, offset=offset, state=run_state(status),
        project_id=project_id, cube_id=cube_id)


async def estimate_seconds(core: Core, org_id: str, project_id: str, cube_id: str) -> int:
    """Median duration of the cube's last successful builds; 0 when it has none."""
    durations = await core.store.runs.recent_durations(FAMILY, org_id, project_id, cube_id, ESTIMATE_SAMPLE)
    return round(statistics.median(durations)) if durations else 0


def install(core: Core) -> None:
    """Start the org's maintenance after the first successful build of a cube."""

    async def after_build(active: Active, state: str) -> None:
        if active.family != FAMILY or state != "done":
            return
        config = core.config.executors.maintenance
        if not (config.after_first_build and config.enabled):
            return
        org, project, cube = active.org_id or "", active.project_id or "", active.cube_id or ""
        if await core.store.runs.cube_has_built(FAMILY, org, project, cube, other_than=active.run_id):
            return
        try:
            await maintenance.start(core, org, trigger=maintenance.AFTER_FIRST_BUILD, at=core.clock.now())
        except (Conflict, Unavailable) as exc:
            log.info("action=first_build_maintenance_not_started org=%s cube=%s reason=%r", org, cube, str(exc))

    core.runner.after_run.append(after_build)
