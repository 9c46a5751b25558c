"""Cube builds over AtScale's aggregate creation API: build schedules and builds, in AtScale's
design-center envelope.

Every path is served bare and under /api/1.0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from schedd import shapes
from schedd.errors import ScheddError
from schedd.families.cube_builds import service as aggregate
from schedd.families.cube_builds import shapes as cube_shapes
from schedd.families.org_maintenance.routes import error_information
from schedd.http import paging, stream
from schedd.http.common import (
    CORE,
    Api,
    Handler,
    bare_and_v1,
    check_ident,
    current_user,
    ident,
    json_response,
    read_body,
    with_envelope,
)
from schedd.store.runs import Run
from schedd.store.schedules import Schedule
from schedd.timefmt import rfc3339

routes = web.RouteTableDef()
CUBE = "/org/{orgId}/project/{projectId}/cube/{cubeId}/aggregates-creation"
I18N = {400: "response.bad_request", 401: "response.unauthorized", 404: "response.not_found",
        409: "response.conflict"}


def envelope_object(response: Any, *, i18n: str = "response.ok", message: str = "OK") -> cube_shapes.DesignEnvelope:
    status = cube_shapes.DesignStatus(i18n_message=i18n, message=message)
    return cube_shapes.DesignEnvelope(response=response, status=status)


def envelope(response: Any, *, status: int = 200, i18n: str = "response.ok", message: str = "OK") -> web.Response:
    return json_response(envelope_object(response, i18n=i18n, message=message), status=status)


def render_error(request: web.Request, status: int, message: str, exc: ScheddError) -> web.Response:
    return envelope(None, status=status, i18n=I18N.get(status, "response.error"), message=message)


handler = with_envelope(render_error)


def schedule_object(schedule: Schedule) -> cube_shapes.CubeSchedule:
    return cube_shapes.CubeSchedule(
        created_at=rfc3339(schedule.created_at),
        created_by_user=schedule.created_by,
        cube_id=schedule.cube_id,
        full_build=bool(schedule.full_build),
        job_id=schedule.uid,
        latest_execution=cube_shapes.Execution(
            executedAt=rfc3339(schedule.last_run_at),
            id=schedule.last_run_uid or "",
            jobId=schedule.uid if schedule.last_run_uid else "",
        ),
        organization_Id=schedule.org_id,
        project_id=schedule.project_id,
        time_expression=schedule.cron,
        timezone=schedule.timezone,
        active=schedule.active,
        next_execution=rfc3339(schedule.next_fire_at) if schedule.active else None,
    )


def build_object(run: Run, estimate: int) -> cube_shapes.Build:
    return cube_shapes.Build(
        batchType="full-build" if run.full_build else "materialize-pending-instances",
        createDate=rfc3339(run.created_at),
        cubeId=run.cube_id,
        endTime=rfc3339(run.ended_at),
        estimateTime=estimate,
        id=run.uid,
        organizationId=run.org_id,
        projectId=run.project_id,
        startTime=rfc3339(run.started_at),
        status=run.state,
        errorInformation=error_information(run),
        triggerType=run.trigger,
    )


def _routes(method: str, path: str) -> Callable[[Handler], Handler]:
    return bare_and_v1(routes, method, path)


def _cube(request: web.Request) -> tuple[str, str, str]:
    return ident(request, "orgId"), ident(request, "projectId"), ident(request, "cubeId")


def _optional_ident(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    return check_ident(value, name) if value else None


@_routes("GET", "/org/{orgId}/aggregates-creation/builds/history")
@handler
async def builds_history(request: web.Request) -> web.Response:
    user = await current_user(request)
    core = request.app[CORE]
    org_id = ident(request, "orgId")
    limit, offset = paging.BUILDS_HISTORY.page(request)
    found = await aggregate.builds(
        core, user, org_id, limit=limit, offset=offset,
        project_id=_optional_ident(request, "projectId"), cube_id=_optional_ident(request, "cubeId"),
        status=request.query.get("status"))
    estimates: dict[tuple[str, str], int] = {}
    for run in found:
        cube = (run.project_id or "", run.cube_id or "")
        if cube not in estimates:
            estimates[cube] = await aggregate.estimate_seconds(core, org_id, *cube)
    data = [build_object(run, estimates[(run.project_id or "", run.cube_id or "")]) for run in found]
    return envelope(cube_shapes.BuildPage(data=data, limit=limit, offset=offset))


@_routes("GET", CUBE + "/scheduler")
@handler
async def list_schedules(request: web.Request) -> web.StreamResponse:
    """Every live schedule of the cube (AtScale's list has no paging), streamed; `limit`/`offset` ask for a page."""
    user = await current_user(request)
    cube = _cube(request)
    limit, offset = paging.SCHEDULE_LIST.parse(request)
    batches = await aggregate.list_schedules(request.app[CORE], user, *cube, offset=offset, limit=limit)
    head, tail = stream.envelope_parts(shapes.to_builtins(envelope_object(None)), "response")
    return await stream.json_list(request, batches, lambda item: schedule_object(item[0]), head=head, tail=tail)


@_routes("POST", CUBE + "/scheduler")
@handler
async def create_schedule(request: web.Request) -> web.Response:
    user = await current_user(request)
    core = request.app[CORE]
    params: dict[str, Any] = {**request.query, **await read_body(request)}
    schedule = await aggregate.create_schedule(
        core, user, *_cube(request), time_expression=params.get("time_expression"),
        path=params.get("path"), full_build=params.get("full_build"), timezone=params.get("timezone"),
        at=core.clock.now())
    return envelope(schedule_object(schedule))


@_routes("POST", CUBE + "/execute")
@handler
async def execute(request: web.Request) -> web.Response:
    user = await current_user(request)
    core = request.app[CORE]
    body = await read_body(request)
    ref = await aggregate.execute(
        core, user, *_cube(request), full_build=body.get("full_build", request.query.get("full_build")),
        at=core.clock.now())
    return envelope(cube_shapes.Executed(success=True, id=ref.uid))


@_routes("DELETE", CUBE + "/scheduler/jobId/{jobId}")
@handler
async def delete_schedule(request: web.Request) -> web.Response:
    user = await current_user(request)
    core = request.app[CORE]
    job_id = request.match_info["jobId"]
    await aggregate.delete_schedule(core, user, *_cube(request), job_id, at=core.clock.now())
    return envelope(f"successfully deleted jobId: [{job_id}]")


@_routes("GET", CUBE + "/scheduler/history/jobId/{jobId}")
@handler
async def schedule_history(request: web.Request) -> web.Response:
    user = await current_user(request)
    limit, offset = paging.CUBE_SCHEDULE_HISTORY.page(request)
    schedule, found = await aggregate.schedule_history(
        request.app[CORE], user, *_cube(request), request.match_info["jobId"], limit=limit, offset=offset)
    history = [cube_shapes.Execution(executedAt=rfc3339(run.started_at or run.created_at), id=run.uid,
                                     jobId=schedule.uid) for run in found]
    return envelope(cube_shapes.ScheduleHistory(history=history, job_id=schedule.uid))


API = Api(routes, ("/org", "/api/1.0/org"), render_error)
