"""Org maintenance over AtScale's aggregate maintenance API: schedules and runs, in AtScale's
engine envelope.

Every path is served bare and under /api/1.0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from schedd import shapes
from schedd.errors import ScheddError, ValidationError
from schedd.families.org_maintenance import service as maintenance
from schedd.families.org_maintenance import shapes as org_shapes
from schedd.http import paging, stream
from schedd.http.common import (
    CORE,
    PAGE_SLOT,
    Api,
    Handler,
    bare_and_v1,
    current_user,
    ident,
    json_around,
    json_response,
    read_body,
    with_envelope,
)
from schedd.store.runs import Run
from schedd.store.schedules import Schedule
from schedd.timefmt import rfc3339

routes = web.RouteTableDef()


def envelope_object(request: web.Request, response: Any, *, code: int = 200,
                    message: str = "success") -> org_shapes.EngineEnvelope:
    """{"status": {"code", "message"}, "responseCreated", "response"}."""
    return org_shapes.EngineEnvelope(status=org_shapes.EngineStatus(code=code, message=message),
                                 responseCreated=rfc3339(request.app[CORE].clock.now()), response=response)


def envelope(request: web.Request, response: Any, *, code: int = 200, message: str = "success",
             status: int = 200) -> web.Response:
    return json_response(envelope_object(request, response, code=code, message=message), status=status)


def render_error(request: web.Request, status: int, message: str, exc: ScheddError) -> web.Response:
    return envelope(request, None, code=status, message=message, status=status)


handler = with_envelope(render_error)


def schedule_object(schedule: Schedule) -> org_shapes.MaintenanceSchedule:
    return org_shapes.MaintenanceSchedule(
        job_id=schedule.uid,
        organization_id=schedule.org_id,
        full_build=bool(schedule.full_build),
        time_expression=schedule.cron,
        created_by_user=schedule.created_by,
        created_at=rfc3339(schedule.created_at),
        latest_execution=org_shapes.LatestExecution(
            id=schedule.last_run_uid or "",
            jobId=schedule.uid if schedule.last_run_uid else "",
            executedAt=rfc3339(schedule.last_run_at),
        ),
        active=schedule.active,
        timezone=schedule.timezone,
        next_execution=rfc3339(schedule.next_fire_at) if schedule.active else None,
    )


_NO_ERROR = org_shapes.ErrorInformation()


def error_information(run: Run) -> org_shapes.ErrorInformation:
    if run.state in ("done", "queued", "inprogress") or not run.error:
        return _NO_ERROR
    return org_shapes.ErrorInformation(
        message=run.error,
        exitCode=msgspec.UNSET if run.exit_code is None else run.exit_code,
        timeout=True if run.timed_out else msgspec.UNSET)


def run_object(run: Run) -> org_shapes.MaintenanceRun:
    return org_shapes.MaintenanceRun(
        id=run.uid,
        organizationId=run.org_id,
        triggerType=run.trigger,
        creationTime=rfc3339(run.created_at),
        startTime=rfc3339(run.started_at),
        endTime=rfc3339(run.ended_at),
        status=run.state,
        errorInformation=error_information(run),
    )


def _active_filter(request: web.Request) -> bool | None:
    raw = request.query.get("active")
    if raw is None:
        return None
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise ValidationError("active", "must be true or false")


def _routes(method: str, path: str) -> Callable[[Handler], Handler]:
    return bare_and_v1(routes, method, path)


@_routes("GET", "/aggregates/maintenance/scheduler/jobs/orgId/{orgId}")
@handler
async def list_schedules(request: web.Request) -> web.StreamResponse:
    """Every schedule of the org (AtScale's list has no paging), streamed; `limit`/`offset` ask for a page."""
    user = await current_user(request)
    core = request.app[CORE]
    org_id, active = ident(request, "orgId"), _active_filter(request)
    limit, offset = paging.SCHEDULE_LIST.parse(request)
    batches = await maintenance.list_schedules(core, user, org_id, active, offset=offset, limit=limit)
    head, tail = stream.envelope_parts(shapes.to_builtins(envelope_object(request, None)), "response")
    return await stream.json_list(request, batches, lambda item: schedule_object(item[0]), head=head, tail=tail)


@_routes("POST", "/aggregates/maintenance/scheduler/jobs/orgId/{orgId}")
@handler
async def create_schedule(request: web.Request) -> web.Response:
    user = await current_user(request)
    core = request.app[CORE]
    org_id = ident(request, "orgId")
    params: dict[str, Any] = {**request.query, **await read_body(request)}
    schedule = await maintenance.create_schedule(
        core, user, org_id, time_expression=params.get("time_expression"),
        scheduler_type=params.get("scheduler_type"), timezone=params.get("timezone"),
        at=core.clock.now())
    return envelope(request, org_shapes.MaintenanceScheduleCreated(
        job_id=schedule.uid,
        time_expression=schedule.cron,
        created_at=rfc3339(schedule.created_at),
        created_by_user=schedule.created_by,
        timezone=schedule.timezone,
        next_execution=rfc3339(schedule.next_fire_at),
    ), message="Time-based schedule successfully created.")


@_routes("DELETE", "/aggregates/maintenance-schedule/jobs/orgId/{orgId}/jobId/{jobId}")
@_routes("DELETE", "/aggregates/maintenance/scheduler/jobs/orgId/{orgId}/jobId/{jobId}")
@handler
async def delete_schedule(request: web.Request) -> web.Response:
    user = await current_user(request)
    core = request.app[CORE]
    job_id = request.match_info["jobId"]
    await maintenance.delete_schedule(core, user, ident(request, "orgId"), job_id, at=core.clock.now())
    return envelope(request, f"successfully deleted job with Id: [{job_id}]")


@_routes("POST", "/aggregates/maintenance/orgId/{orgId}/run-immediately")
@handler
async def run_immediately(request: web.Request) -> web.Response:
    user = await current_user(request)
    core = request.app[CORE]
    org_id = ident(request, "orgId")
    ref = await maintenance.run_now(core, user, org_id, at=core.clock.now())
    response = envelope(request, None, message=f"Maintenance successfully started for {org_id}")
    response.headers["X-Run-Id"] = ref.uid
    return response


@_routes("GET", "/aggregates/maintenance/orgId/{orgId}")
@handler
async def current_job(request: web.Request) -> web.Response:
    user = await current_user(request)
    run = await maintenance.current_run(request.app[CORE], user, ident(request, "orgId"))
    return envelope(request, None if run is None else run_object(run), code=0, message="200 OK")


@_routes("GET", "/aggregates/maintenance/orgId/{orgId}/history")
@handler
async def history(request: web.Request) -> web.Response:
    user = await current_user(request)
    limit, offset = paging.MAINTENANCE_HISTORY.page(request)
    page = await maintenance.history_page(
        request.app[CORE], user, ident(request, "orgId"), limit=limit, offset=offset,
        status=request.query.get("status"), encode=lambda found: shapes.encode([run_object(r) for r in found]))
    slot: Any = PAGE_SLOT  # the kept page's JSON goes in its place
    body = json_around(envelope_object(request, org_shapes.MaintenanceRunPage(data=slot, limit=limit, offset=offset),
                                       code=0, message="200 OK"), page)
    return web.Response(body=body, content_type="application/json")


API = Api(routes, ("/aggregates", "/api/1.0/aggregates"), render_error)
