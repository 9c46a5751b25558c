"""Org maintenance: time-based maintenance schedules and maintenance runs, per organization."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable

from schedd import quotas
from schedd.core import Core
from schedd.errors import NotFound, Unavailable
from schedd.families.common import check_org, run_state, timing
from schedd.families.org_maintenance.shapes import MaintenanceScheduleInput
from schedd.ids import new_uid
from schedd.pages import cached_page, org_history
from schedd.runner import RunRef
from schedd.shapes import read
from schedd.states import RunState
from schedd.store import schedules as schedule_store
from schedd.store.accounts import User
from schedd.store.runs import Run
from schedd.store.schedules import Schedule

FAMILY = "maintenance"
MANUAL = "ManualMaintenance"
AFTER_FIRST_BUILD = "CubeUpdateMaintenance(FirstTimeCubeProcessed)"


def maintenance_key(org_id: str) -> str:
    """The overlap key of an org's maintenance: one run per org at a time."""
    return f"{FAMILY}:{org_id}"


async def list_schedules(
    core: Core, user: User, org_id: str, active: bool | None, *, offset: int = 0, limit: int | None = None,
) -> AsyncIterator[list[tuple[Schedule, int]]]:
    """The org's schedules in creation order, in batches (checked before the first is read)."""
    await check_org(core, user, org_id)
    return core.store.schedules.scope_batches(
        schedule_store.Scope(FAMILY, org_id, active=active), offset=offset, limit=limit)


async def create_schedule(
    core: Core, user: User, org_id: str, *, time_expression: object, scheduler_type: object,
    timezone: object, at: float,
) -> Schedule:
    await check_org(core, user, org_id)
    form = read(MaintenanceScheduleInput, {
        "scheduler_type": scheduler_type, "time_expression": time_expression, "timezone": timezone})
    when = timing(core, form.time_expression, form.timezone or None, at=at)
    quotas.check_interval(core.config, user, org_id, when.cron, when.zone, field="time_expression", at=at)
    cap = quotas.schedule_cap(core.config, user, org_id)
    try:
        schedule = await core.store.schedules.insert(schedule_store.NewSchedule(
            uid=new_uid(), family=FAMILY, org_id=org_id, cron=when.cron.expr,
            cron_normalized=when.cron.normalized, timezone=when.timezone, full_build=False,
            next_fire_at=when.next_fire_at, retention_days=0, created_by=user.name, created_at=at), cap=cap)
    except schedule_store.CapReached as exc:
        raise quotas.cap_exceeded(exc.cap, at) from None
    core.runner.arm(schedule)
    return schedule


async def delete_schedule(core: Core, user: User, org_id: str, job_id: str, *, at: float) -> None:
    """Deactivate: the schedule stops firing at once and keeps its history."""
    await check_org(core, user, org_id)
    schedule = await core.store.schedules.get_by_uid(FAMILY, job_id)
    if schedule is None or schedule.org_id != org_id or not schedule.active:
        raise NotFound("maintenance schedule", job_id)
    await core.store.schedules.set_active(schedule.id, False, None, by=user.name, at=at)
    core.runner.disarm(schedule.id)


async def run_now(core: Core, user: User, org_id: str, *, at: float, trigger: str = MANUAL) -> RunRef:
    """Start a maintenance run of the org; Conflict while one is queued or in progress."""
    await check_org(core, user, org_id)
    return await start(core, org_id, trigger=trigger, at=at)


async def start(core: Core, org_id: str, *, trigger: str, at: float) -> RunRef:
    if not core.config.executors.maintenance.enabled:
        raise Unavailable("maintenance is disabled: set [executors.maintenance] enabled = true")
    return await core.runner.run_now(FAMILY, maintenance_key(org_id), trigger, at=at, org_id=org_id)


async def current_run(core: Core, user: User, org_id: str) -> Run | None:
    await check_org(core, user, org_id)
    open_runs = await core.store.runs.open_for_key(maintenance_key(org_id))
    running = [r for r in open_runs if r.state == RunState.INPROGRESS]
    return (running or open_runs)[0] if open_runs else None


async def history(
    core: Core, user: User, org_id: str, *, limit: int, offset: int, status: str | None
) -> list[Run]:
    await check_org(core, user, org_id)
    return await core.store.runs.list_org(FAMILY, org_id, limit=limit, offset=offset, state=run_state(status))


async def history_page(
    core: Core, user: User, org_id: str, *, limit: int, offset: int, status: str | None,
    encode: Callable[[list[Run]], bytes],
) -> bytes:
    """A page of the org's maintenance history as `encode` writes it, kept until a run of it changes."""
    await check_org(core, user, org_id)
    state = run_state(status)

    async def build() -> bytes:
        return encode(await core.store.runs.list_org(FAMILY, org_id, limit=limit, offset=offset, state=state))

    page: Hashable = (limit, offset, state)
    return await cached_page(core.pages, org_history(FAMILY, org_id), page, build)
