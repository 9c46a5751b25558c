"""Service jobs: jobs that POST to a configured service (family "service"), as Volt MX's
admin-console jobs define them.

A job is one schedule row: its name, cron, status, history strategy and retention are
columns; the Volt MX document (`jobServiceInfo`, `jobFrequencyInfo`) is kept in `spec`,
from which the runner builds the service call. Every rule is checked here, before
anything is stored, with the same checks the HTTP executor applies at run time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from msgspec import UNSET

from schedd import quotas, shapes
from schedd.core import Core
from schedd.cron import CronExpr, load_zone, parse
from schedd.errors import Conflict, NotFound, ValidationError
from schedd.executors.http import merge_headers, service_url
from schedd.families.common import timing
from schedd.families.service_jobs.frequency import cron_to_frequency, frequency_to_cron
from schedd.families.service_jobs.shapes import JOB_STATUSES
from schedd.families.service_jobs.shapes import Job as JobShape
from schedd.families.service_jobs.shapes import JobServiceInfo as ServiceShape
from schedd.ids import new_uid
from schedd.inputs import check_tree
from schedd.pages import cached_page, job_history
from schedd.policy import fire_floor
from schedd.runner import RunRef
from schedd.store import schedules as schedule_store
from schedd.store.accounts import User
from schedd.store.runs import Run, RunSummary
from schedd.store.schedules import NewSchedule, Schedule

FAMILY = "service"
RUN_NOW = "RunNow"
SERVICE = "jobServiceInfo"
FREQUENCY_INFO = "jobFrequencyInfo"
# Stored as sent beside a cron; a real one is a few lists of at most 60 small numbers.
MAX_FREQUENCY_INFO = 2048
DEFAULT_RETENTION = 30
DEFAULT_STRATEGY = "MINIMAL"
# The keys of `jobServiceInfo` Volt MX documents; GET shows each of them, others are dropped.
SERVICE_KEYS = (
    "version", "serviceType", "serviceName", "objectName", "operationName", "requestheaderMap",
    "serviceExecutionType", "postData", "operationSecurityLevel",
)
# Checks the operation name's shape when the service has no base URL to check it against.
_PLACEHOLDER_BASE = "http://service.invalid"


@dataclass(frozen=True, slots=True)
class JobDefinition:
    """A validated job document, ready to be stored."""

    name: str
    description: str | None
    cron: CronExpr
    timezone: str
    next_fire_at: float
    frequency_info: dict[str, Any] | None
    service_info: dict[str, Any]
    active: bool
    history_strategy: str
    retention_days: int

    def new_schedule(self, *, user: User, at: float, like: Schedule | None = None) -> NewSchedule:
        """The row to store; `like` carries over the policies of the job being replaced."""
        extra: dict[str, Any] = {} if like is None else {
            "misfire_policy": like.misfire_policy, "overlap_policy": like.overlap_policy,
            "timeout": like.timeout, "retries": like.retries,
        }
        return NewSchedule(
            uid=like.uid if like else new_uid(), family=FAMILY, name=self.name,
            description=self.description, cron=self.cron.expr, cron_normalized=self.cron.normalized,
            timezone=self.timezone, spec={SERVICE: self.service_info, FREQUENCY_INFO: self.frequency_info},
            active=self.active, next_fire_at=self.next_fire_at if self.active else None,
            history_strategy=self.history_strategy, retention_days=self.retention_days,
            created_by=user.name, created_at=at, **extra)


@dataclass(frozen=True, slots=True)
class Job:
    """A job with the number of runs its history keeps (`jobHistoryTotal`)."""

    schedule: Schedule
    kept: int


# -- validation ----------------------------------------------------------------------


def validate(core: Core, body: Mapping[str, Any], *, at: float, after: float | None = None) -> JobDefinition:
    """Check a whole job document (create and update alike); the first fault is raised.

    Every string in it passes the input rule first, nested ones too (`requestheaderMap`
    values, `jobFrequencyInfo`), so nothing stored can break a later read. Then field by
    field in Volt MX's order: what the `Job` model declares (type, required, bounds), and
    at its place what only this family knows (the cron, the config's services). The next
    fire is the first after `after` (default `at`).
    """
    check_tree(body)
    form, found = shapes.check(JobShape, body)
    shapes.first(found, "jobName", "description", "jobFrequency", FREQUENCY_INFO)
    expression, info = _frequency(None if form.jobFrequency is UNSET else form.jobFrequency,
                                  None if form.jobFrequencyInfo is UNSET else form.jobFrequencyInfo)
    when = timing(core, expression, None, at=at, field="jobFrequency", after=after)
    if info is None:
        info = cron_to_frequency(when.cron)
    shapes.first(found, SERVICE)
    service_info = _service_info(core, form.jobServiceInfo)
    shapes.first(found)
    return JobDefinition(
        name=form.jobName, description=None if form.description is UNSET else form.description,
        cron=when.cron, timezone=when.timezone, next_fire_at=when.next_fire_at, frequency_info=info,
        service_info=service_info, active=(form.jobStatus or "Active") == "Active",
        history_strategy=form.historyStrategy or DEFAULT_STRATEGY,
        retention_days=DEFAULT_RETENTION if form.retentionPeriod is UNSET else int(form.retentionPeriod))


def _given(value: object) -> bool:
    return value is not None and value != ""


def _frequency_info(info: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(info)) > MAX_FREQUENCY_INFO:
        raise ValidationError(FREQUENCY_INFO, f"must be at most {MAX_FREQUENCY_INFO} characters as JSON")
    return info


def _frequency(expression: str | None, info: dict[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
    """The cron to schedule by, and the frequency info to store (None: derive it).

    A given `jobFrequency` is the schedule and a `jobFrequencyInfo` beside it is kept as
    sent; without one, the cron comes from `jobFrequencyInfo` (seconds 0).
    """
    if expression is not None:
        kept = None if info is None else _frequency_info(info)
        try:
            parse(expression)
        except ValidationError as exc:
            raise exc.under("jobFrequency") from exc
        return expression, kept
    if info is None:
        raise ValidationError(
            "jobFrequency", f"jobFrequency (a cron expression) or {FREQUENCY_INFO} is required")
    checked = _frequency_info(info)
    return frequency_to_cron(checked), dict(checked)


def _service_info(core: Core, value: dict[str, Any]) -> dict[str, Any]:
    """`jobServiceInfo` as stored: checked by its model in Volt MX's order, with this family's
    own checks at their place (the config's service, the URL, the header names, the JSON text)."""

    def field(key: str) -> str:
        return f"{SERVICE}.{key}"

    form, found = shapes.check(ServiceShape, value, prefix=field(""))
    if found.get(field("serviceName")) == "is required":
        shapes.first(found, field("serviceName"))
    service = core.config.services.get(form.serviceName) if isinstance(form.serviceName, str) else None
    if service is None:  # a name that is not text names no service either
        known = ", ".join(sorted(core.config.services)) or "none is configured"
        raise ValidationError(field("serviceName"), f"must name a [services.NAME] of the config ({known})")
    shapes.first(found, field("serviceExecutionType"), field("serviceType"), field("operationName"))
    try:
        service_url(service.base_url or _PLACEHOLDER_BASE, form.operationName)
    except ValueError as exc:
        raise ValidationError(field("operationName"), str(exc)) from exc
    shapes.first(found, field("requestheaderMap"))
    headers = form.requestheaderMap or {}
    try:
        merge_headers((), headers.items())
    except ValueError as exc:
        raise ValidationError(field("requestheaderMap"), str(exc)) from exc
    shapes.first(found, field("postData"))
    if isinstance(form.postData, str):
        try:
            posted = json.loads(form.postData)
        except (ValueError, RecursionError) as exc:
            raise ValidationError(field("postData"), f"is not valid JSON: {exc}") from exc
        check_tree(posted, field("postData"))  # a "\ud800" escape in the JSON text
    shapes.first(found)
    return {**{key: value.get(key) for key in SERVICE_KEYS}, "requestheaderMap": headers}


def job_id(value: object, field: str = "jobId") -> int:
    """A job or run id from a path or a body: a positive integer (digits in a string too)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**18:
        return value
    if value is None or value == "":
        raise ValidationError(field, "is required")
    raise ValidationError(field, "must be a positive integer")


# -- actions -------------------------------------------------------------------------


def list_jobs(core: Core, *, offset: int = 0, limit: int | None = None) -> AsyncIterator[list[tuple[Schedule, int]]]:
    """Every job in id order with the runs it has kept, in batches read as they are needed."""
    return core.store.schedules.scope_batches(schedule_store.Scope(FAMILY), offset=offset, limit=limit, with_kept=True)


async def _schedule(core: Core, ident: int) -> Schedule:
    schedule = await core.store.schedules.get(ident)
    if schedule is None or schedule.family != FAMILY:
        raise NotFound("job", ident)
    return schedule


async def get_job(core: Core, ident: int) -> Job:
    schedule = await _schedule(core, ident)
    return Job(schedule, await core.store.runs.count_schedule(schedule.id))


def _check_interval(core: Core, user: User, body: Mapping[str, Any], job: JobDefinition, *, at: float) -> None:
    field = "jobFrequency" if _given(body.get("jobFrequency")) else FREQUENCY_INFO
    quotas.check_interval(core.config, user, None, job.cron, load_zone(job.timezone), field=field, at=at)


async def create_job(core: Core, user: User, body: Mapping[str, Any], *, at: float) -> Schedule:
    """Create a job (a `jobId` in the body is ignored); an Active one is armed at once."""
    job = validate(core, body, at=at)
    _check_interval(core, user, body, job, at=at)
    cap = quotas.job_cap(core.config, user)
    try:
        schedule = await core.store.schedules.insert(job.new_schedule(user=user, at=at), cap=cap)
    except schedule_store.CapReached as exc:
        raise quotas.cap_exceeded(exc.cap, at) from None
    except Conflict as exc:
        raise ValidationError("jobName", str(exc)) from exc
    core.runner.arm(schedule)
    return schedule


async def update_job(core: Core, user: User, body: Mapping[str, Any], *, at: float) -> Schedule:
    """Replace the job named by the body's `jobId`; its counters and history stay."""
    current = await _schedule(core, job_id(body.get("jobId")))
    # A clock that stepped back must not bring back a fire this job already had.
    job = validate(core, body, at=at, after=fire_floor(at, core.engine.handled_until, current.last_run_at))
    _check_interval(core, user, body, job, at=at)
    try:
        schedule = await core.store.schedules.replace(
            current.id, job.new_schedule(user=user, at=at, like=current), by=user.name, at=at)
    except Conflict as exc:
        raise ValidationError("jobName", str(exc)) from exc
    if schedule.active:
        core.runner.arm(schedule)
    else:
        core.runner.disarm(schedule.id)
    return schedule


def definition(schedule: Schedule) -> dict[str, Any]:
    """The job's definition as an update takes it (what it was created or last updated with)."""
    return {
        "jobId": schedule.id, "jobName": schedule.name, "jobFrequency": schedule.cron,
        "jobServiceInfo": schedule.spec.get(SERVICE) or {},
        "jobStatus": JOB_STATUSES[0] if schedule.active else JOB_STATUSES[1],
        "historyStrategy": schedule.history_strategy, "retentionPeriod": str(schedule.retention_days),
        "jobFrequencyInfo": schedule.spec.get(FREQUENCY_INFO), "description": schedule.description,
    }


async def set_status(core: Core, user: User, ident: int, active: bool, *, at: float) -> Schedule:
    """(De)activate a job: a whole-job update that changes only its status."""
    body = definition(await _schedule(core, ident))
    body["jobStatus"] = JOB_STATUSES[0] if active else JOB_STATUSES[1]
    return await update_job(core, user, body, at=at)


async def delete_job(core: Core, ident: int) -> None:
    """Delete the job and its history; a run in progress finishes unrecorded."""
    schedule = await _schedule(core, ident)
    core.runner.disarm(schedule.id)
    try:
        if not await core.store.schedules.delete(schedule.id):
            raise NotFound("job", ident)
    finally:
        core.pages.changed(job_history(schedule.id))  # its history went with it: no page outlives it


async def run_now(core: Core, ident: int, *, at: float) -> RunRef:
    """Run the job now, Inactive or not; Conflict while a run of it is in progress."""
    schedule = await _schedule(core, ident)
    return await core.runner.run_now(FAMILY, schedule.overlap_key, RUN_NOW, at=at, schedule=schedule)


async def history(core: Core, ident: int, *, limit: int, offset: int) -> list[RunSummary]:
    schedule = await _schedule(core, ident)
    return await core.store.runs.list_schedule_summaries(schedule.id, limit=limit, offset=offset)


async def history_page(core: Core, ident: int, *, limit: int, offset: int, page: Hashable,
                       encode: Callable[[list[RunSummary]], bytes]) -> bytes:
    """A page of the job's history as `encode` writes it, kept until a run of the job changes.

    A kept page answers without reading the job: pages are kept only for a job that exists,
    and deleting it drops them (`Runner.disarm`)."""

    async def build() -> bytes:
        schedule = await _schedule(core, ident)
        return encode(await core.store.runs.list_schedule_summaries(schedule.id, limit=limit, offset=offset))

    return await cached_page(core.pages, job_history(ident), page, build)


async def run_detail(core: Core, ident: int, run_id: int) -> Run:
    schedule = await _schedule(core, ident)
    run = await core.store.runs.get_of_schedule(schedule.id, run_id)
    if run is None:
        raise NotFound("job run", run_id)
    return run
