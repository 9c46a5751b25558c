"""The org maintenance family: one maintenance run per org at a time, by a configured command."""

from __future__ import annotations

from schedd.core import Core
from schedd.errors import ValidationError
from schedd.families.base import CommandRuns, RunFields, RunTarget
from schedd.families.org_maintenance import service
from schedd.runner import RunRef
from schedd.store.accounts import User
from schedd.store.schedules import Schedule

EXECUTOR_SECTION = "maintenance"  # [executors.maintenance]


class OrgMaintenance(CommandRuns):
    executor_section = EXECUTOR_SECTION
    name = service.FAMILY
    label = "org maintenance"
    scheduled_trigger = "TimeBasedMaintenance"
    gated = False
    admin_only = False
    can_reactivate = False
    run_hint = "Start a maintenance run of this org now (ManualMaintenance)"

    def overlap_key(self, schedule: Schedule) -> str:
        return service.maintenance_key(schedule.org_id or "")

    def target(self, run: RunFields) -> RunTarget:
        """The org to maintain, when the run has one."""
        return RunTarget(values={} if run.org_id is None else {"org_id": run.org_id})

    def row_label(self, org_id: str | None, project_id: str | None, cube_id: str | None,
                  name: str | None) -> str:
        return f"maintenance of {org_id}"

    async def start_run(self, core: Core, user: User, schedule: Schedule, *, at: float) -> RunRef:
        return await service.run_now(core, user, schedule.org_id or "", at=at)

    async def set_active(self, core: Core, user: User, schedule: Schedule, active: bool, *, at: float) -> None:
        if active:
            raise ValidationError("active", "a maintenance or build schedule cannot be reactivated; create a new one")
        await service.delete_schedule(core, user, schedule.org_id or "", schedule.uid, at=at)


FAMILY = OrgMaintenance()
