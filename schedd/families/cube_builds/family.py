"""The cube builds family: one build per cube at a time, by a configured command."""

from __future__ import annotations

from schedd.core import Core
from schedd.errors import ValidationError
from schedd.families.base import CommandRuns, RunFields, RunTarget
from schedd.families.cube_builds import service
from schedd.runner import RunRef
from schedd.store.accounts import User
from schedd.store.schedules import Schedule

EXECUTOR_SECTION = "aggregate"  # [executors.aggregate]


class CubeBuilds(CommandRuns):
    executor_section = EXECUTOR_SECTION
    name = service.FAMILY
    label = "cube builds"
    scheduled_trigger = "TimeBasedBuild"
    gated = False
    admin_only = False
    can_reactivate = False
    run_hint = "Start a build of this cube now"

    def overlap_key(self, schedule: Schedule) -> str:
        return service.aggregate_key(schedule.org_id or "", schedule.project_id or "", schedule.cube_id or "")

    def target(self, run: RunFields) -> RunTarget:
        """The build's org, project, cube and kind (`full_build` "true"/"false"), each one it has."""
        full_build = None if run.full_build is None else ("true" if run.full_build else "false")
        values = {"org_id": run.org_id, "project_id": run.project_id, "cube_id": run.cube_id,
                  "full_build": full_build}
        return RunTarget(values={name: value for name, value in values.items() if value is not None})

    def row_label(self, org_id: str | None, project_id: str | None, cube_id: str | None,
                  name: str | None) -> str:
        return f"build {org_id}/{project_id}/{cube_id}"

    async def start_run(self, core: Core, user: User, schedule: Schedule, *, at: float) -> RunRef:
        return await service.execute(
            core, user, schedule.org_id or "", schedule.project_id or "", schedule.cube_id or "",
            full_build=schedule.full_build, at=at)

    async def set_active(self, core: Core, user: User, schedule: Schedule, active: bool, *, at: float) -> None:
        if active:
            raise ValidationError("active", "a maintenance or build schedule cannot be reactivated; create a new one")
        await service.delete_schedule(core, user, schedule.org_id or "", schedule.project_id or "",
                                      schedule.cube_id or "", schedule.uid, at=at)


FAMILY = CubeBuilds()
