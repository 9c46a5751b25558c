"""Every request and response shape of the HTTP APIs, declared once as a typed model.

A model is a `msgspec.Struct` whose field names are the wire names (a product's mixed
casing is spelt as the product spells it; `msgspec.field(name=...)` where Python cannot),
in the order the wire shows them. One declaration gives three things:

- the answer: a route builds the model and `encode` turns it into JSON (fields in
  declaration order; `UNSET` fields left out);
- the request: `read(Model, data)` checks a body's types against the model (a wrong type
  is a 400 naming the field, worded as the family's validators word it) and hands the
  family a typed object;
- the document: `components()` is the OpenAPI `components.schemas` of every model,
  generated from these declarations (schedd/api/openapi.py keeps only its route table).

Adding a field: add it to the model here, at its place in the wire order; fill it where
the route builds the model (a response) or read it where the family validates (a request).
The OpenAPI document follows by itself.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType, field

from schedd.families.cube_builds.shapes import CubeScheduleInput
from schedd.families.maintenance_windows.service import DATE_RE, LIMITS, SERVICE_STATUSES
from schedd.families.org_maintenance.shapes import MaintenanceScheduleInput
from schedd.families.service_jobs.service import (
    EXECUTION_TYPE,
    JOB_STATUSES,
    MAX_DESCRIPTION,
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    MAX_NAME,
    MAX_TEXT,
    SERVICE_TYPES,
)
from schedd.shapes import Model, Verbatim
from schedd.shapes import read as read  # the request reader, for the routes
from schedd.states import HistoryStrategy, RunState, WindowState, values
from schedd.values import IDENT_PATTERN

REF = "#/components/schemas/{name}"


def _schema(**extra: Any) -> Meta:
    return Meta(extra_json_schema=extra)


# -- field types: each wire format once --------------------------------------------------

RFC3339 = Annotated[str, _schema(format="date-time", description="UTC with microseconds; "
                                 "0001-01-01T00:00:00Z when it has not happened yet")]
NextExecution = Annotated[str | None, _schema(description="RFC 3339 UTC; null for an inactive schedule")]
LocalTime = Annotated[str, Meta(pattern=r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$",
                                description="YYYY-MM-DD HH:MM:SS in the daemon's time zone")] | None
ProdTime = Annotated[str, Meta(pattern=f"^{DATE_RE.pattern}$",
                               description="YYYY-MM-DDTHH:MM in the daemon's time zone")]
NullableProdTime = ProdTime | None
Ident = Annotated[str, Meta(pattern=f"^{IDENT_PATTERN}$")]
ShortText = Annotated[str, Meta(max_length=MAX_TEXT)] | None
RUN_STATES = list(values(RunState))
WINDOW_STATUSES = list(values(WindowState))
RunStatus = Annotated[str, _schema(enum=RUN_STATES)]
WindowStatus = Annotated[str, _schema(enum=WINDOW_STATUSES)]
SERVICE_STATUSES_LIST = list(SERVICE_STATUSES)
ServiceStatus = Annotated[str, _schema(enum=SERVICE_STATUSES_LIST)]
JobStatus = Annotated[str, _schema(enum=list(JOB_STATUSES))]
Strategy = Annotated[str, _schema(enum=list(values(HistoryStrategy)))]


# -- ops and auth -------------------------------------------------------------------------

class PlainError(Model, kw_only=True):
    """An error of a route outside the four APIs (ops, unknown paths)."""

    message: str


class Health(Model, kw_only=True):
    status: Literal["ok"]


class Checks(Model, kw_only=True):
    database: bool
    heap_loaded: bool
    loop: bool


class Readiness(Model, kw_only=True):
    ready: bool
    checks: Checks
    instance: Annotated[str, Meta(description="this daemon's name (name:pid:tag)")]
    fires: Annotated[bool, Meta(description="whether this instance holds the firing lease")]


class Login(Model, kw_only=True):
    REASONS: ClassVar[Mapping[str, str]] = {"userid": "is required", "password": "is required"}

    userid: Annotated[str, Meta(min_length=1)]
    password: Annotated[str, Meta(min_length=1, extra_json_schema={"format": "password"})]


class Logout(Model, kw_only=True):
    REASONS: ClassVar[Mapping[str, str]] = {"refresh_token": "must be a string"}

    refresh_token: Annotated[str, Meta(description="The login's refresh token, revoked along with the access "
                                                   "token")] | None | UnsetType = UNSET


class UserAttributes(Model, kw_only=True):
    user_id: str


class ProfileAttributes(Model, kw_only=True):
    firstname: str
    userid: str
    email: str
    lastname: str


class Profile(Model, kw_only=True):
    userid: str
    email: str
    firstname: str
    lastname: str
    user_attributes: UserAttributes
    profile_attributes: ProfileAttributes


class ClaimsToken(Model, kw_only=True):
    value: str
    exp: Annotated[int, Meta(description="expiry, ms since the epoch")]
    integrity_check_required: bool


class LoginAnswer(Model, kw_only=True):
    profile: Profile
    claims_token: ClaimsToken
    refresh_token: str


class VoltResult(Model, kw_only=True):
    """Volt MX's envelope of mutations and errors."""

    status: Literal["SUCCESS", "FAIL"]
    result: Any
    message: str | None
    token: None = None


class FieldFault(Model, kw_only=True):
    field: str
    reason: str


class Revoked(Model, kw_only=True):
    userid: str
    revoked: int


# -- org maintenance: AtScale's engine envelope -------------------------------------------

class EngineStatus(Model, kw_only=True):
    code: int
    message: str


class EngineEnvelope(Model, kw_only=True):
    status: EngineStatus
    responseCreated: RFC3339
    response: Any


class LatestExecution(Model, kw_only=True):
    id: str
    jobId: str
    executedAt: RFC3339


class MaintenanceSchedule(Model, kw_only=True):
    job_id: str
    organization_id: str | None
    full_build: bool
    time_expression: str
    created_by_user: str | None
    created_at: RFC3339
    latest_execution: LatestExecution
    path: Literal["time-based"] = "time-based"
    active: bool
    timezone: str
    next_execution: NextExecution


class MaintenanceScheduleCreated(Model, kw_only=True):
    job_id: str
    time_expression: str
    scheduler_type: Literal["time-based/maintenance"] = "time-based/maintenance"
    created_at: RFC3339
    created_by_user: str | None
    timezone: str
    next_execution: RFC3339


class ErrorInformation(Model, kw_only=True):
    message: str | UnsetType = UNSET
    exitCode: int | UnsetType = UNSET
    timeout: bool | UnsetType = UNSET


class MaintenanceRun(Model, kw_only=True):
    id: str
    organizationId: str | None
    triggerType: Annotated[str, _schema(examples=[
        "TimeBasedMaintenance", "ManualMaintenance", "CubeUpdateMaintenance(FirstTimeCubeProcessed)"])]
    creationTime: RFC3339
    startTime: RFC3339
    endTime: RFC3339
    status: RunStatus
    errorInformation: ErrorInformation


class MaintenanceRunPage(Model, kw_only=True):
    data: list[MaintenanceRun]
    limit: int
    offset: int
    force_pull: bool = False


# -- cube builds: AtScale's design-center envelope ----------------------------------------

class DesignStatus(Model, kw_only=True):
    i18n_message: Annotated[str, _schema(examples=[
        "response.ok", "response.bad_request", "response.unauthorized", "response.not_found",
        "response.conflict", "response.error"])]
    message: str


class DesignEnvelope(Model, kw_only=True):
    response: Any
    status: DesignStatus


class Execution(Model, kw_only=True):
    """One run a schedule started (a cube schedule's latest, a line of its history)."""

    executedAt: RFC3339
    id: str
    jobId: str


class CubeSchedule(Model, kw_only=True):
    created_at: RFC3339
    created_by_user: str | None
    cube_id: str | None
    full_build: bool
    job_id: str
    latest_execution: Execution
    organization_Id: str | None
    path: Literal["aggregate/create"] = "aggregate/create"
    project_id: str | None
    time_expression: str
    timezone: str
    active: bool
    next_execution: NextExecution


class ExecuteInput(Model, kw_only=True):
    full_build: Annotated[bool, _schema(default=False)] | UnsetType = UNSET


class Build(Model, kw_only=True):
    batchType: Literal["full-build", "materialize-pending-instances"]
    createDate: RFC3339
    cubeId: str | None
    endTime: RFC3339
    estimateTime: Annotated[int, Meta(description="seconds")]
    id: str
    organizationId: str | None
    projectId: str | None
    startTime: RFC3339
    status: RunStatus
    errorInformation: ErrorInformation
    triggerType: str


class BuildPage(Model, kw_only=True):
    data: list[Build]
    force_pull: bool = False
    limit: int
    offset: int


class Executed(Model, kw_only=True):
    success: bool
    id: Annotated[str, Meta(description="the build id")]


class ScheduleHistory(Model, kw_only=True):
    history: list[Execution]
    job_id: str


# -- service jobs: Volt MX's admin-console jobs -------------------------------------------

class JobSummary(Model, kw_only=True):
    jobId: int
    jobName: str
    description: str | None
    cronExpression: str | None
    updatedUser: str | None
    updatedDate: LocalTime
    jobStatus: JobStatus
    jobHistoryTotal: int
    jobHistorySuccessCount: int
    jobHistoryFailCount: int
    jobHistorySucPercentage: int
    jobHistoryFailPercentage: int
    jobLastRunStatus: str | None
    jobNextRunTime: LocalTime


class JobServiceInfo(Verbatim, kw_only=True):
    """`jobServiceInfo`: GET shows every key, null where the job was created without it."""

    version: ShortText | UnsetType = UNSET
    serviceType: Annotated[str, _schema(enum=list(SERVICE_TYPES))] | UnsetType = UNSET
    serviceName: Annotated[str, Meta(description="a [services.NAME] of the config")]
    objectName: ShortText | UnsetType = UNSET
    operationName: Annotated[str, Meta(pattern=r"^[A-Za-z0-9._~/-]{1,200}$")]
    requestheaderMap: Annotated[dict[str, Annotated[str, Meta(max_length=MAX_HEADER_VALUE)]],
                                Meta(max_length=MAX_HEADERS)] | UnsetType = UNSET
    serviceExecutionType: Annotated[str, _schema(enum=[EXECUTION_TYPE])]
    postData: Annotated[str | dict[str, Any] | None,
                        Meta(description="JSON text or object, POSTed to the service")] | UnsetType = UNSET
    operationSecurityLevel: ShortText | UnsetType = UNSET


class JobFrequencyInfo(Verbatim, kw_only=True):
    frequencyType: Annotated[Literal[1, 2, 3, 4], Meta(description="1 hour-, 2 day-, 3 week-, 4 month-based")]
    minuteValues: list[int] | UnsetType = UNSET
    hourValues: list[int] | UnsetType = UNSET
    dayValues: list[int] | UnsetType = UNSET
    dateValues: list[int | str] | UnsetType = UNSET


class Job(Verbatim, kw_only=True):
    """A job as GET answers it and as POST and PUT take it (PUT needs `jobId`)."""

    jobId: int | UnsetType = UNSET
    jobName: Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]
    jobFrequency: Annotated[str | None, Meta(description="cron")] | UnsetType = UNSET
    # As stored: the keys of JobServiceInfo, values as the client sent them.
    jobServiceInfo: Annotated[dict[str, Any], _schema(**{"$ref": REF.format(name="JobServiceInfo")})]
    jobStatus: JobStatus | UnsetType = UNSET
    historyStrategy: Strategy | UnsetType = UNSET
    retentionPeriod: Annotated[str | int, Meta(description="days, 1-3650")] | UnsetType = UNSET
    # Kept as sent beside a cron, or derived from it.
    jobFrequencyInfo: Annotated[dict[str, Any] | None, _schema(oneOf=[
        {"$ref": REF.format(name="JobFrequencyInfo")}, {"type": "null"}])] | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=MAX_DESCRIPTION)] | None | UnsetType = UNSET
    jobNextRunTime: LocalTime | UnsetType = UNSET
    updatedUser: str | None | UnsetType = UNSET
    updatedDate: LocalTime | UnsetType = UNSET


class JobRun(Model, kw_only=True):
    jobRunId: int
    jobStartTime: LocalTime
    jobEndTime: LocalTime
    jobDuration: Annotated[int, Meta(description="milliseconds")]
    executionFrequency: str | None
    executionStatus: Annotated[str, _schema(enum=["Success", "Fail", "Running", "Skipped", "Interrupted",
                                                  "Canceled"])]
    completeHistory: bool


class JobRunDetail(JobRun, kw_only=True):
    triggerType: str
    requestPayload: str | None
    responseStatus: int | None
    responseBody: str | None
    errorMessage: str | None
    skipReason: str | None
    windowId: int | None


# -- maintenance windows: Prod-Manager's maintenance API ----------------------------------

class ProdError(Model, kw_only=True):
    message: str
    reasons: dict[str, list[str]]


class MaintenanceEvent(Model, kw_only=True):
    creation_date: ProdTime
    content: str
    internal: Annotated[int, _schema(enum=[0, 1])]
    type: Annotated[str, _schema(enum=["create", "update", "comment"])]
    author: Annotated[str | None, Meta(description="Who wrote the event (null for the window's own moves); "
                                                   "present only for a caller who may change the window")] \
        | UnsetType = UNSET


class MaintenanceLinks(Model, kw_only=True):
    self_: str = field(name="self")
    scope: str
    service: str
    calendar: str


class Maintenance(Model, kw_only=True):
    id: int
    name: str
    description: str | None
    external_reference: str | None
    external_link: str | None
    status: WindowStatus
    scope: int
    service: int
    service_status: ServiceStatus
    creation_date: ProdTime
    scheduled_start_date: ProdTime
    scheduled_end_date: ProdTime
    start_date: NullableProdTime
    end_date: NullableProdTime
    events: list[MaintenanceEvent]
    links: MaintenanceLinks


class MaintenancePage(Model, kw_only=True):
    items: list[Maintenance]


IdOrText = int | str


class MaintenanceInput(Model, kw_only=True):
    """A form or JSON body of create and update (update needs `status`)."""

    scope: Annotated[IdOrText, Meta(description="scope id")] | UnsetType = UNSET
    service: Annotated[IdOrText, Meta(description="service id, of that scope")] | UnsetType = UNSET
    name: Annotated[str, Meta(min_length=1, max_length=LIMITS["name"])] | UnsetType = UNSET
    description: str | UnsetType = UNSET
    external_reference: str | UnsetType = UNSET
    external_link: Annotated[str, Meta(description="an http(s) URL")] | UnsetType = UNSET
    service_status: ServiceStatus | UnsetType = UNSET
    status: WindowStatus | UnsetType = UNSET
    scheduled_start_date: ProdTime | UnsetType = UNSET
    scheduled_end_date: ProdTime | UnsetType = UNSET
    start_date: ProdTime | UnsetType = UNSET
    end_date: ProdTime | UnsetType = UNSET

    REQUIRED: ClassVar[tuple[str, ...]] = (
        "scope", "service", "name", "service_status", "scheduled_start_date", "scheduled_end_date")


class Comment(Model, kw_only=True):
    comment: Annotated[str, Meta(min_length=1)]
    internal: Literal[0, 1, "0", "1"] | UnsetType = UNSET


class ScopeLinks(Model, kw_only=True):
    self_: str = field(name="self")


class Scope(Model, kw_only=True):
    id: int
    name: str
    links: ScopeLinks


class ServiceLinks(Model, kw_only=True):
    self_: str = field(name="self")
    scope: str | None


class Service(Model, kw_only=True):
    id: int
    name: str
    scope: int | None
    links: ServiceLinks


class ScopePage(Model, kw_only=True):
    items: list[Scope]


class ServicePage(Model, kw_only=True):
    items: list[Service]


MODELS: tuple[type[Model], ...] = (
    PlainError, Health, Readiness, EngineEnvelope, LatestExecution, MaintenanceSchedule, MaintenanceScheduleCreated,
    MaintenanceScheduleInput, ErrorInformation, MaintenanceRun, MaintenanceRunPage, DesignEnvelope, Execution,
    CubeSchedule, CubeScheduleInput, ExecuteInput, Build, BuildPage, Executed, ScheduleHistory, VoltResult,
    FieldFault, Revoked, Login, Logout, LoginAnswer, JobSummary, JobServiceInfo, JobFrequencyInfo, Job, JobRun,
    JobRunDetail, ProdError, MaintenanceEvent, Maintenance, MaintenancePage, MaintenanceInput, Comment, Scope,
    Service, ScopePage, ServicePage,
)
"""Every model; `components()` documents them all (and the models they hold)."""

# Which models document a request body, with the body fields they require (the rest may be left out).
REQUIRED_IN_REQUEST: dict[type[Model], tuple[str, ...]] = {
    MaintenanceInput: MaintenanceInput.REQUIRED,
}


@functools.cache
def components() -> dict[str, Any]:
    """The OpenAPI `components.schemas` of every model, generated from the declarations."""
    _, schemas = msgspec.json.schema_components(MODELS, ref_template=REF)
    for model, required in REQUIRED_IN_REQUEST.items():
        schemas[model.__name__]["required"] = list(required)
    return schemas


def schema_of(kind: Any) -> dict[str, Any]:
    """The JSON Schema of one declared field type (a path or query parameter's: `Ident`, `ProdTime`)."""
    return msgspec.json.schema(kind)


# -- answers ------------------------------------------------------------------------------

_ENCODER = msgspec.json.Encoder()


def fields_of(model: Model) -> dict[str, Any]:
    """A model's fields by attribute name (to build a model that extends it)."""
    return msgspec.structs.asdict(model)


def to_builtins(value: Any) -> Any:
    """A model (or anything holding models) as dicts and lists, keys in wire order."""
    return msgspec.to_builtins(value)


def encode(value: Any) -> bytes:
    """The JSON of an answer: compact, UTF-8 as is.

    Byte for byte what `json.dumps(value, separators=(",", ":"), ensure_ascii=False)` writes
    for the same dicts. A model (or a list of models) is encoded by msgspec; a VERBATIM one,
    and plain dicts and lists, by the json module. A lone surrogate stored before the input
    rule existed is escaped, never a 500.
    """
    first = value[0] if isinstance(value, list) and value else value
    if not isinstance(first, Model) or first.VERBATIM:
        return _dumps(msgspec.to_builtins(value))
    try:
        return _ENCODER.encode(value)
    except UnicodeEncodeError:
        return json.dumps(msgspec.to_builtins(value), separators=(",", ":")).encode("ascii")


def _dumps(data: Any) -> bytes:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, separators=(",", ":")).encode("ascii")
