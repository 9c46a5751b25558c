"""Service jobs over Volt MX's admin-console jobs API under /admin/api/jobs, for administrators only.

Mutations answer exactly Volt MX's `{"status": "SUCCESS", "result": null, "message": null,
"token": null}`; what they made is named by a `Location` header (the new job, the new run's
history entry). GETs answer the bare object or array Volt MX documents; every error the FAIL
envelope. Dates are `YYYY-MM-DD HH:MM:SS` in the daemon's time zone.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from aiohttp import web

from schedd import shapes
from schedd.core import Core
from schedd.cron import load_zone
from schedd.errors import ScheddError, ValidationError
from schedd.families.service_jobs import service as jobs
from schedd.families.service_jobs import shapes as job_shapes
from schedd.http import paging, stream
from schedd.http.common import (
    CORE,
    Api,
    admin_user,
    json_response,
    read_body,
    with_envelope,
)
from schedd.store.runs import Run, RunSummary
from schedd.store.schedules import Schedule
from schedd.timefmt import local_seconds

routes = web.RouteTableDef()
BASE = "/admin/api/jobs"

EXECUTION_STATUS = {
    "done": "Success", "failed": "Fail", "skipped": "Skipped", "interrupted": "Interrupted",
    "canceled": "Canceled", "inprogress": "Running", "queued": "Running",
}


def fail(status: int, message: str, result: job_shapes.FieldFault | None = None) -> web.Response:
    """Volt MX's FAIL envelope."""
    return json_response(job_shapes.VoltResult(status="FAIL", result=result, message=message), status=status)


def volt_error(request: web.Request, status: int, message: str, exc: ScheddError) -> web.Response:
    """An error in Volt MX's FAIL envelope; a bad field is named in `result`."""
    if isinstance(exc, ValidationError):
        return fail(status, f"{exc.field} is invalid", job_shapes.FieldFault(field=exc.field, reason=exc.reason))
    return fail(status, message)


def render_error(request: web.Request, status: int, message: str, exc: ScheddError) -> web.Response:
    """`volt_error`, with Volt MX's short `jobName is required` message for a missing field."""
    if isinstance(exc, ValidationError) and exc.reason == "is required":
        return fail(status, f"{exc.field} is required", job_shapes.FieldFault(field=exc.field, reason=exc.reason))
    return volt_error(request, status, message, exc)


handler = with_envelope(render_error)


def success(headers: dict[str, str] | None = None) -> web.Response:
    return json_response(_SUCCESS, headers=headers)


_SUCCESS = job_shapes.VoltResult(status="SUCCESS", result=None, message=None)


def daemon_zone(core: Core) -> ZoneInfo:
    """The zone Volt MX's dates are shown in (the config's; a reload may change it)."""
    return load_zone(core.config.scheduler.timezone)


def job_date(at: float | None, zone: ZoneInfo) -> str | None:
    """A date of Volt MX's job API: `YYYY-MM-DD HH:MM:SS` in `zone`, None for what has not happened."""
    return None if at is None else local_seconds(at, zone)


def _percent(part: int, whole: int) -> int:
    """part/whole in whole percent, halves rounded up; 0 when nothing ran."""
    return (200 * part + whole) // (2 * whole) if whole else 0


def job_summary(core: Core, job: jobs.Job, zone: ZoneInfo | None = None) -> job_shapes.JobSummary:
    s = job.schedule
    zone = zone or daemon_zone(core)
    counted = s.success_count + s.fail_count
    success = _percent(s.success_count, counted)
    return job_shapes.JobSummary(
        jobId=s.id,
        jobName=s.name or "",
        description=s.description,
        cronExpression=s.cron,
        updatedUser=s.updated_by,
        updatedDate=job_date(s.updated_at, zone),
        jobStatus=_status(s),
        jobHistoryTotal=job.kept,
        jobHistorySuccessCount=s.success_count,
        jobHistoryFailCount=s.fail_count,
        jobHistorySucPercentage=success,
        jobHistoryFailPercentage=100 - success if counted else 0,
        jobLastRunStatus=EXECUTION_STATUS.get(s.last_run_status or ""),
        jobNextRunTime=job_date(s.next_fire_at, zone) if s.active else None,
    )


def job_detail(core: Core, job: jobs.Job) -> job_shapes.Job:
    s = job.schedule
    zone = daemon_zone(core)
    return job_shapes.Job(
        jobId=s.id,
        jobName=s.name or "",
        jobFrequency=s.cron,
        jobServiceInfo=s.spec.get(jobs.SERVICE) or {},
        jobStatus=_status(s),
        historyStrategy=s.history_strategy,
        retentionPeriod=str(s.retention_days),
        jobFrequencyInfo=s.spec.get(jobs.FREQUENCY_INFO),
        description=s.description,
        jobNextRunTime=job_date(s.next_fire_at, zone) if s.active else None,
        updatedUser=s.updated_by,
        updatedDate=job_date(s.updated_at, zone),
    )


def _status(schedule: Schedule) -> str:
    return "Active" if schedule.active else "Inactive"


def run_summary(zone: ZoneInfo, run: Run | RunSummary) -> job_shapes.JobRun:
    # A skipped fire never started: it is shown as starting and ending when it was handled.
    started = run.created_at if run.state == "skipped" and run.started_at is None else run.started_at
    ended = run.ended_at
    return job_shapes.JobRun(
        jobRunId=run.id,
        jobStartTime=job_date(started, zone),
        jobEndTime=job_date(ended, zone),
        jobDuration=round((ended - started) * 1000) if started is not None and ended is not None else 0,
        executionFrequency=run.cron,
        executionStatus=EXECUTION_STATUS.get(run.state, run.state),
        completeHistory=run.complete,
    )


def run_detail(core: Core, run: Run) -> job_shapes.JobRunDetail:
    return job_shapes.JobRunDetail(
        **shapes.fields_of(run_summary(daemon_zone(core), run)),
        triggerType=run.trigger,
        requestPayload=run.request_payload,
        responseStatus=run.response_status,
        responseBody=run.response_body,
        errorMessage=run.error,
        skipReason=run.skip_reason,
        windowId=run.window_id,
    )


def _job_id(request: web.Request) -> int:
    return jobs.job_id(request.match_info["jobId"])


@routes.get(BASE + "/job")
@handler
async def list_jobs(request: web.Request) -> web.StreamResponse:
    """Every job (Volt MX's list has no paging), streamed; `limit`/`offset` ask for a page."""
    await admin_user(request)
    core = request.app[CORE]
    limit, offset = paging.JOB_LIST.parse(request)
    zone = daemon_zone(core)
    return await stream.json_list(request, jobs.list_jobs(core, offset=offset, limit=limit),
                                  lambda item: job_summary(core, jobs.Job(*item), zone))


@routes.get(BASE + "/job/{jobId}")
@routes.get(BASE + r"/job{jobId:[0-9]{1,18}}")
@handler
async def get_job(request: web.Request) -> web.Response:
    await admin_user(request)
    core = request.app[CORE]
    return json_response(job_detail(core, await jobs.get_job(core, _job_id(request))))


@routes.post(BASE + "/job")
@handler
async def create_job(request: web.Request) -> web.Response:
    user = await admin_user(request)
    core = request.app[CORE]
    schedule = await jobs.create_job(core, user, await read_body(request), at=core.clock.now())
    return success(headers={"Location": f"{BASE}/job/{schedule.id}"})


@routes.put(BASE + "/job")
@handler
async def update_job(request: web.Request) -> web.Response:
    user = await admin_user(request)
    core = request.app[CORE]
    await jobs.update_job(core, user, await read_body(request), at=core.clock.now())
    return success()


@routes.delete(BASE + "/job/{jobId}")
@routes.delete(BASE + r"/job{jobId:[0-9]{1,18}}")
@handler
async def delete_job(request: web.Request) -> web.Response:
    await admin_user(request)
    await jobs.delete_job(request.app[CORE], _job_id(request))
    return success()


@routes.post(BASE + "/job/run/{jobId}")
@handler
async def run_job(request: web.Request) -> web.Response:
    await admin_user(request)
    core = request.app[CORE]
    job_id = _job_id(request)
    ref = await jobs.run_now(core, job_id, at=core.clock.now())
    # A run the job's history keeps has an entry to point at (a skip under OFF has none).
    return success(headers={"Location": f"{BASE}/history/{job_id}/{ref.id}"} if ref.id else None)


@routes.get(BASE + "/history/{jobId}")
@handler
async def history(request: web.Request) -> web.Response:
    await admin_user(request)
    core = request.app[CORE]
    limit, offset = paging.JOB_HISTORY.page(request)
    zone = daemon_zone(core)
    body = await jobs.history_page(
        core, _job_id(request), limit=limit, offset=offset, page=(limit, offset, zone.key),
        encode=lambda found: shapes.encode([run_summary(zone, run) for run in found]))
    return web.Response(body=body, content_type="application/json")


@routes.get(BASE + "/history/{jobId}/{jobRunId}")
@handler
async def run(request: web.Request) -> web.Response:
    await admin_user(request)
    core = request.app[CORE]
    run_id = jobs.job_id(request.match_info["jobRunId"], "jobRunId")
    return json_response(run_detail(core, await jobs.run_detail(core, _job_id(request), run_id)))


API = Api(routes, (BASE,), render_error)
