"""The service jobs family: jobs that POST to a configured service, gated by maintenance windows."""

from __future__ import annotations

import json

from schedd.core import Core
from schedd.executors import Executor, RunContext, ServiceCall
from schedd.families.base import ExecutorPool, RunFields, RunTarget
from schedd.families.service_jobs import service
from schedd.runner import RunRef
from schedd.store.accounts import User
from schedd.store.schedules import Schedule

DEFAULT_TIMEOUT = 30.0  # a job whose service is not configured (its runs fail at once)


class ServiceJobs:
    name = service.FAMILY
    label = "service jobs"
    scheduled_trigger = "Scheduled"
    gated = True
    admin_only = True
    can_reactivate = True
    run_hint = "Run this job now"

    def overlap_key(self, schedule: Schedule) -> str:
        return f"{service.FAMILY}:{schedule.id}"

    def row_label(self, org_id: str | None, project_id: str | None, cube_id: str | None,
                  name: str | None) -> str:
        return name or "service job"

    def target(self, run: RunFields) -> RunTarget:
        """The job's call (`jobServiceInfo`): its service, operation, body and headers."""
        info = (run.schedule.spec.get(service.SERVICE) or {}) if run.schedule else {}
        post_data = info.get("postData")
        if post_data is not None and not isinstance(post_data, str):
            post_data = json.dumps(post_data, separators=(",", ":"))
        return RunTarget(call=ServiceCall(
            service=info.get("serviceName") or "", operation=info.get("operationName"),
            body=post_data, headers=dict(info.get("requestheaderMap") or {})))

    def executor(self, pool: ExecutorPool, ctx: RunContext) -> Executor:
        return pool.service(ctx.call.service if ctx.call is not None else "")

    def timeout(self, pool: ExecutorPool, target: RunTarget) -> float:
        configured = pool.service_timeout(target.call.service) if target.call is not None else None
        return DEFAULT_TIMEOUT if configured is None else configured

    async def start_run(self, core: Core, user: User, schedule: Schedule, *, at: float) -> RunRef:
        return await service.run_now(core, schedule.id, at=at)

    async def set_active(self, core: Core, user: User, schedule: Schedule, active: bool, *, at: float) -> None:
        await service.set_status(core, user, schedule.id, active, at=at)


FAMILY = ServiceJobs()
