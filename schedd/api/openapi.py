"""The OpenAPI 3.1 document of every route, built from one declarative table per family.

Each `Op` says method, path, summary, parameters, request body, answers per status and
whether a token is needed. The bodies and answers name the models schedd/api/models.py collects,
whose generated schemas are the document's components. tests/test_openapi.py checks that every route the app serves
is in the table (except the browser pages of `BROWSER_PAGES`), so a route added without
documentation fails the tests.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from schedd import __version__, shapes
from schedd.api import models
from schedd.families.maintenance_windows import shapes as window_shapes

BROWSER_PAGES = re.compile(r"^/(?:$|status(?:/|$)|static/|ui(?:/|$))")
"""Paths of the server-rendered pages (schedd/web): for browsers, not scripts, so not here."""

Schema = dict[str, Any]
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def holding(key: str, schema: Schema) -> Schema:
    """What one route's answer holds under an envelope's generic `key` (`response`, `result`)."""
    return {"type": "object", "properties": {key: schema}}


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
IDENT: Schema = shapes.schema_of(shapes.Ident)
RUN_STATES = shapes.RUN_STATES
WINDOW_STATUSES = window_shapes.WINDOW_STATUSES
SERVICE_STATUSES = window_shapes.SERVICE_STATUSES_LIST
PROD_TIME: Schema = shapes.schema_of(window_shapes.ProdTime)


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" or "query"
    schema: Schema
    description: str = ""

    def render(self) -> Schema:
        out: Schema = {"name": self.name, "in": self.where, "required": self.where == "path",
                       "schema": self.schema}
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class Answer:
    description: str
    schema: Schema | None = None
    media: str = JSON
    headers: Mapping[str, str] = field(default_factory=dict)
    """Header name -> description."""

    def render(self) -> Schema:
        out: Schema = {"description": self.description}
        if self.schema is not None:
            out["content"] = {self.media: {"schema": self.schema}}
        if self.headers:
            out["headers"] = {name: {"description": text, "schema": STRING} for name, text in self.headers.items()}
        return out


@dataclass(frozen=True)
class Body:
    schema: Schema
    media: tuple[str, ...] = (JSON,)
    required: bool = True

    def render(self) -> Schema:
        return {"required": self.required, "content": {m: {"schema": self.schema} for m in self.media}}


@dataclass(frozen=True)
class Op:
    """One documented route."""

    method: str
    path: str
    op_id: str
    summary: str
    tag: str
    answers: Mapping[int, Answer]
    params: tuple[Param, ...] = ()
    body: Body | None = None
    auth: bool = True
    description: str = ""

    def render(self) -> Schema:
        out: Schema = {"operationId": self.op_id, "summary": self.summary, "tags": [self.tag]}
        if self.description:
            out["description"] = self.description
        if self.params:
            out["parameters"] = [p.render() for p in self.params]
        if self.body is not None:
            out["requestBody"] = self.body.render()
        out["responses"] = {str(code): answer.render() for code, answer in sorted(self.answers.items())}
        if not self.auth:
            out["security"] = []
        return out


def path_params(path: str, schemas: Mapping[str, Schema]) -> tuple[Param, ...]:
    return tuple(Param(name, "path", schemas[name]) for name in re.findall(r"\{(\w+)\}", path))


def served_under_api_1_0(ops: list[Op]) -> list[Op]:
    """Every path of AtScale's APIs is served bare and under /api/1.0."""
    return ops + [replace(op, path="/api/1.0" + op.path, op_id=op.op_id + "V1") for op in ops]


# -- shared schemas: generated from the models schedd/api/models.py collects ---------------

SCHEMAS: dict[str, Schema] = models.components()


def engine(response: Schema) -> Schema:
    return {"allOf": [ref("EngineEnvelope"), holding("response", response)]}


def design(response: Schema) -> Schema:
    return {"allOf": [ref("DesignEnvelope"), holding("response", response)]}


def volt(result: Schema) -> Schema:
    return {"allOf": [ref("VoltResult"), holding("result", result)]}


ERROR_TEXT = {400: "Invalid input; the message names the parameter", 401: "Missing, invalid or expired token",
              403: "Refused: the token's user may not change this maintenance window (only an admin, or a"
                   " user granted the window's scope with `schedd user grant NAME --scope S`); nothing was changed",
              404: "Unknown, or not visible to the caller",
              409: "A run is already queued or in progress, or its org's line of runs waiting for a slot"
                   " is full ([quotas] max_queued_runs)",
              413: "Body larger than [server] max_body", 429: "Too many failed logins",
              500: "Internal error; the message carries the request id",
              503: "Not now: the executor is disabled in the config, or the database cannot be written"
                   " (disk full); nothing was changed"}


def errors(envelope: Schema, *codes: int) -> dict[int, Answer]:
    return {code: Answer(ERROR_TEXT[code], envelope) for code in (*codes, 500)}


QUOTA_FULL = ("The org holds as many active maintenance and build schedules as [quotas] max_schedules"
              " allows (administrators are exempt); nothing was created")


ENGINE_ERROR = engine({"type": "null"})
DESIGN_ERROR = design({"type": "null"})
VOLT_ERROR = volt({"anyOf": [ref("FieldFault"), {"type": "null"}]})
OFFSET = Param("offset", "query", {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0},
               "rows to skip")


def limit_offset(default: int, maximum: int) -> tuple[Param, Param]:
    """A page of a history: `limit` rows (default and maximum stated) from `offset`, newest first."""
    return (Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
                  f"rows per page, {default} unless given, at most {maximum}"), OFFSET)


def streamed_limit_offset(maximum: int) -> tuple[Param, Param]:
    """The complete lists: every row unless `limit` asks for a page."""
    return (Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": maximum},
                  f"rows per page, at most {maximum}; absent: every row (the answer is streamed)"), OFFSET)


PAGE = limit_offset(10, 1000)
STREAMED = streamed_limit_offset(10_000)
STATUS_FILTER = Param("status", "query", {"enum": RUN_STATES})

# -- ops ----------------------------------------------------------------------------------

OPS = [
    Op("GET", "/healthz", "healthz", "Liveness: the process answers", "ops",
       {200: Answer("Alive", ref("Health"))}, auth=False),
    Op("GET", "/readyz", "readyz", "Readiness: database open, heap loaded, engine loop turning", "ops",
       {200: Answer("Ready", ref("Readiness")), 503: Answer("Not ready", ref("Readiness"))}, auth=False),
    Op("GET", "/metrics", "metrics", "Prometheus metrics", "ops",
       {200: Answer("Prometheus text exposition format", STRING, media="text/plain")}, auth=False),
    Op("GET", "/api/openapi.json", "openapi", "This document", "ops",
       {200: Answer("OpenAPI 3.1", {"type": "object"})}, auth=False),
    Op("POST", "/authService/accounts/login", "login", "Log in for a token (Volt MX accounts login)", "auth",
       {200: Answer("Tokens and profile", ref("LoginAnswer")),
        **errors(VOLT_ERROR, 400, 401),
        429: Answer(ERROR_TEXT[429], VOLT_ERROR, headers={"Retry-After": "seconds to wait"})},
       body=Body(ref("Login"), (FORM, JSON)), auth=False,
       description="Failed logins are counted per source address and user id: after `[auth] login_max_failures` "
                   "that address gets 429 for that user id for `login_lockout`, while other addresses are not "
                   "affected. Once the shared budget of failed logins is spent, addresses whose logins failed "
                   "wait up to `login_max_delay` before the password is checked; none is refused for it."),
    Op("POST", "/authService/accounts/logout", "logout", "Log out: revoke the token sent (Volt MX accounts logout)",
       "auth",
       {200: Answer("The tokens revoked (0 when the refresh token was not this user's)",
                    volt(ref("Revoked"))),
        **errors(VOLT_ERROR, 400, 401)},
       body=Body(ref("Logout"), (FORM, JSON), required=False),
       description="The access token in X-VoltMX-Authorization (or Authorization: Bearer) stops working at "
                   "once, in this daemon and everywhere else; a second logout with it answers 401."),
]

# -- org maintenance: AtScale's aggregate maintenance API -----------------------------------

_MAINT_IDS = {"orgId": IDENT, "jobId": {"type": "string", "format": "uuid"}}
_SCHEDULES = "/aggregates/maintenance/scheduler/jobs/orgId/{orgId}"
_RUNS = "/aggregates/maintenance/orgId/{orgId}"


def _maint(method: str, path: str, op_id: str, summary: str, answers: dict[int, Answer],
           *, params: tuple[Param, ...] = (), body: Body | None = None) -> Op:
    return Op(method, path, op_id, summary, "aggregate maintenance", answers,
              path_params(path, _MAINT_IDS) + params, body)


MAINTENANCE = served_under_api_1_0([
    _maint("GET", _SCHEDULES, "listMaintenanceSchedules", "The org's maintenance schedules",
           {200: Answer("`200`/`success`", engine(array(ref("MaintenanceSchedule")))),
            **errors(ENGINE_ERROR, 400, 401, 404)},
           params=(Param("active", "query", {"type": "boolean"},
                         "true: live schedules, false: deleted ones, absent: all"), *STREAMED)),
    _maint("POST", _SCHEDULES, "createMaintenanceSchedule",
           "Create a time-based maintenance schedule (fields in the body or the query; the body wins)",
           {200: Answer("`200`/`Time-based schedule successfully created.`",
                        engine(ref("MaintenanceScheduleCreated"))),
            **errors(ENGINE_ERROR, 400, 401, 404, 413), 409: Answer(QUOTA_FULL, ENGINE_ERROR)},
           params=(Param("time_expression", "query", STRING), Param("scheduler_type", "query", STRING),
                   Param("timezone", "query", STRING)),
           body=Body(ref("MaintenanceScheduleInput"), required=False)),
    _maint("DELETE", "/aggregates/maintenance-schedule/jobs/orgId/{orgId}/jobId/{jobId}",
           "deleteMaintenanceSchedule", "Deactivate a maintenance schedule (AtScale's path)",
           {200: Answer("`successfully deleted job with Id: [ID]`", engine(STRING)),
            **errors(ENGINE_ERROR, 400, 401, 404)}),
    _maint("DELETE", _SCHEDULES + "/jobId/{jobId}", "deleteMaintenanceScheduleAlias",
           "Deactivate a maintenance schedule (same as AtScale's path)",
           {200: Answer("`successfully deleted job with Id: [ID]`", engine(STRING)),
            **errors(ENGINE_ERROR, 400, 401, 404)}),
    _maint("POST", _RUNS + "/run-immediately", "runMaintenanceNow", "Start a maintenance run of the org now",
           {200: Answer("`Maintenance successfully started for {orgId}`", engine({"type": "null"}),
                        headers={"X-Run-Id": "id of the run started"}),
            **errors(ENGINE_ERROR, 400, 401, 404, 409, 503)}),
    _maint("GET", _RUNS, "currentMaintenanceRun", "The org's queued or in-progress run (null when none)",
           {200: Answer("`0`/`200 OK`", engine({"oneOf": [ref("MaintenanceRun"), {"type": "null"}]})),
            **errors(ENGINE_ERROR, 400, 401, 404)}),
    _maint("GET", _RUNS + "/history", "maintenanceHistory", "The org's maintenance runs, newest first",
           {200: Answer("`0`/`200 OK`", engine(ref("MaintenanceRunPage"))),
            **errors(ENGINE_ERROR, 400, 401, 404)},
           params=(*PAGE, STATUS_FILTER)),
])

# -- cube builds: AtScale's aggregate creation API ------------------------------------------

_CUBE_IDS = {"orgId": IDENT, "projectId": IDENT, "cubeId": IDENT, "jobId": {"type": "string", "format": "uuid"}}
_CUBE = "/org/{orgId}/project/{projectId}/cube/{cubeId}/aggregates-creation"


def _cube(method: str, path: str, op_id: str, summary: str, answers: dict[int, Answer],
          *, params: tuple[Param, ...] = (), body: Body | None = None) -> Op:
    return Op(method, path, op_id, summary, "aggregate creation", answers,
              path_params(path, _CUBE_IDS) + params, body)


AGGREGATE = served_under_api_1_0([
    _cube("GET", "/org/{orgId}/aggregates-creation/builds/history", "buildsHistory",
          "The org's aggregate builds, newest first",
          {200: Answer("Builds", design(ref("BuildPage"))), **errors(DESIGN_ERROR, 400, 401, 404)},
          params=(*PAGE, Param("projectId", "query", IDENT), Param("cubeId", "query", IDENT), STATUS_FILTER)),
    _cube("GET", _CUBE + "/scheduler", "listCubeSchedules", "The cube's build schedules",
          {200: Answer("Schedules", design(array(ref("CubeSchedule")))), **errors(DESIGN_ERROR, 400, 401, 404)},
          params=STREAMED),
    _cube("POST", _CUBE + "/scheduler", "createCubeSchedule",
          "Create a build schedule (fields in the body or the query; the body wins)",
          {200: Answer("The schedule", design(ref("CubeSchedule"))),
           **errors(DESIGN_ERROR, 400, 401, 404, 413), 409: Answer(QUOTA_FULL, DESIGN_ERROR)},
          params=(Param("time_expression", "query", STRING), Param("path", "query", STRING),
                  Param("full_build", "query", BOOLEAN), Param("timezone", "query", STRING)),
          body=Body(ref("CubeScheduleInput"), required=False)),
    _cube("POST", _CUBE + "/execute", "executeBuild", "Start a build of the cube now",
          {200: Answer("Started", design(ref("Executed"))), **errors(DESIGN_ERROR, 400, 401, 404, 409, 413)},
          params=(Param("full_build", "query", BOOLEAN),),
          body=Body(ref("ExecuteInput"), required=False)),
    _cube("DELETE", _CUBE + "/scheduler/jobId/{jobId}", "deleteCubeSchedule", "Delete a build schedule",
          {200: Answer("`successfully deleted jobId: [ID]`", design(STRING)),
           **errors(DESIGN_ERROR, 400, 401, 404)}),
    _cube("GET", _CUBE + "/scheduler/history/jobId/{jobId}", "cubeScheduleHistory",
          "The builds a schedule started, newest first",
          {200: Answer("History", design(ref("ScheduleHistory"))), **errors(DESIGN_ERROR, 400, 401, 404)},
          params=limit_offset(1000, 1000)),
])

# -- service jobs: Volt MX's admin-console jobs API -----------------------------------------

_JOB_ID = {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999}
_JOB_IDS = {"jobId": _JOB_ID, "jobRunId": _JOB_ID}
_JOBS = "/admin/api/jobs"


def _job(method: str, path: str, op_id: str, summary: str, answers: dict[int, Answer],
         *, params: tuple[Param, ...] = (), body: Body | None = None, description: str = "") -> Op:
    return Op(method, path, op_id, summary, "jobs", answers, path_params(path, _JOB_IDS) + params, body,
              description=description or "Needs an administrator's token.")


_GLUED = "Volt MX's own spelling, digits glued to `job` (`/admin/api/jobs/job1`)."
_ONE_JOB = {200: Answer("The job", ref("Job")), **errors(VOLT_ERROR, 400, 401, 404)}
_DELETED = {200: Answer("SUCCESS", volt({"type": "null"})), **errors(VOLT_ERROR, 400, 401, 404)}

JOBS = [
    _job("GET", _JOBS + "/job", "listJobs", "All jobs",
         {200: Answer("Job summaries", array(ref("JobSummary"))), **errors(VOLT_ERROR, 400, 401)},
         params=STREAMED),
    _job("GET", _JOBS + "/job/{jobId}", "getJob", "One job", _ONE_JOB),
    _job("GET", _JOBS + "/job{jobId}", "getJobGlued", "One job", _ONE_JOB, description=_GLUED),
    _job("POST", _JOBS + "/job", "createJob", "Create a job (a jobId in the body is ignored)",
         {200: Answer("SUCCESS; `Location` names the new job", volt({"type": "null"}),
                      headers={"Location": "/admin/api/jobs/job/{jobId}"}),
          **errors(VOLT_ERROR, 400, 401, 409, 413)},
         body=Body(ref("Job"))),
    _job("PUT", _JOBS + "/job", "updateJob", "Replace the job named by jobId in the body",
         {200: Answer("SUCCESS", volt({"type": "null"})), **errors(VOLT_ERROR, 400, 401, 404, 409, 413)},
         body=Body({"allOf": [ref("Job"), {"required": ["jobId"]}]})),
    _job("DELETE", _JOBS + "/job/{jobId}", "deleteJob", "Delete a job and its history", _DELETED),
    _job("DELETE", _JOBS + "/job{jobId}", "deleteJobGlued", "Delete a job and its history", _DELETED,
         description=_GLUED),
    _job("POST", _JOBS + "/job/run/{jobId}", "runJobNow", "Run a job now (also an Inactive one)",
         {200: Answer("SUCCESS; `Location` names the run's history entry (absent for a skip that the job's "
                      "history strategy OFF does not keep)", volt({"type": "null"}),
                      headers={"Location": "/admin/api/jobs/history/{jobId}/{jobRunId}"}),
          **errors(VOLT_ERROR, 400, 401, 404, 409)}),
    _job("GET", _JOBS + "/history/{jobId}", "jobHistory", "The job's runs, newest first",
         {200: Answer("Runs", array(ref("JobRun"))), **errors(VOLT_ERROR, 400, 401, 404)},
         params=limit_offset(100, 1000)),
    _job("GET", _JOBS + "/history/{jobId}/{jobRunId}", "jobRun",
         "One run; under FULL with its request and response (each cut at 64 KiB)",
         {200: Answer("The run", ref("JobRunDetail")), **errors(VOLT_ERROR, 400, 401, 404)}),
]

# -- maintenance windows: Prod-Manager's maintenance API ------------------------------------

_WINDOW_IDS = {"id": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999}}
PROD_ERROR = ref("ProdError")
_MOVED = "Found: `Location` names the maintenance"
_PAGING = {name: text for name, text in (
    ("X-Page", "this page"), ("X-Per-Page", "items per page"), ("X-Total", "matching items"),
    ("X-Total-Pages", "pages"), ("X-Prev-Page", "previous page, when there is one"),
    ("X-Next-Page", "next page, when there is one"))}
PROD_PAGING = (
    Param("page", "query", {"type": "integer", "minimum": 1, "maximum": 10_000_000, "default": 1},
          "page number, 1 unless given, at most 10,000,000"),
    Param("per_page", "query", {"type": "integer", "minimum": 0, "maximum": 50, "default": 20},
          "items per page, 20 unless given, at most 50; 0 answers only the paging headers"),
)
_WINDOW_FILTERS = (
    *(Param(name, "query", schema) for name, schema in shapes.query_schemas(window_shapes.MaintenanceFilters)),
    *PROD_PAGING,
)


def _window(method: str, path: str, op_id: str, summary: str, answers: dict[int, Answer], *,
            auth: bool = True, params: tuple[Param, ...] = (), body: Body | None = None,
            description: str = "") -> Op:
    return Op(method, path, op_id, summary, "maintenance windows", answers,
              path_params(path, _WINDOW_IDS) + params, body, auth=auth, description=description)


def _prod_errors(*codes: int) -> dict[int, Answer]:
    return {code: Answer(ERROR_TEXT.get(code, "Invalid input; `reasons` names each field"), PROD_ERROR)
            for code in (*codes, 500)}


_PUBLIC = ("Public. Internal events, and the author of each event, are shown only to a caller who may "
           "change the maintenance (an admin, or a user granted its scope); everyone else reads what the "
           "public reads.")
_WRITERS = ("Needs a token (401 without one) whose user may change the maintenance: an admin, or a user "
            "granted its scope (`schedd user grant NAME --scope S`); anyone else gets 403 and nothing changes.")
_ICS = Answer("An iCalendar (RFC 5545) document", STRING, media="text/calendar")
WINDOWS = [
    _window("GET", "/api/maintenance", "listMaintenances", "Maintenances, newest scheduled start first",
            {200: Answer("A page", ref("MaintenancePage"), headers=_PAGING), **_prod_errors(400, 401)},
            auth=False, params=_WINDOW_FILTERS, description=_PUBLIC),
    _window("GET", "/api/maintenance/calendar", "maintenanceCalendarFeed",
            "Every maintenance that has not ended, as an iCalendar feed to subscribe to",
            {200: _ICS, **_prod_errors()}, auth=False),
    _window("GET", "/api/maintenance/{id}", "getMaintenance", "One maintenance with its timeline",
            {200: Answer("The maintenance", ref("Maintenance")), **_prod_errors(401, 404)},
            auth=False, description=_PUBLIC),
    _window("POST", "/api/maintenance/create", "createMaintenance", "Create a maintenance",
            {302: Answer(_MOVED, headers={"Location": "/api/maintenance/{id}"}),
             **_prod_errors(400, 401, 403, 413)},
            body=Body(ref("MaintenanceInput"), (FORM, JSON)), description=_WRITERS),
    _window("POST", "/api/maintenance/{id}/update", "updateMaintenance",
            "Replace a maintenance (status may be set by hand, e.g. canceled)",
            {302: Answer(_MOVED, headers={"Location": "/api/maintenance/{id}"}),
             **_prod_errors(400, 401, 403, 404, 413)},
            body=Body({"allOf": [ref("MaintenanceInput"), {"required": ["status"]}]}, (FORM, JSON)),
            description=_WRITERS + " Moving it to another scope needs that scope too."),
    _window("POST", "/api/maintenance/{id}/delete", "deleteMaintenance", "Delete a maintenance",
            {302: Answer("Found: `Location` is /api/maintenance", headers={"Location": "/api/maintenance"}),
             **_prod_errors(401, 403, 404)}, description=_WRITERS),
    _window("POST", "/api/maintenance/{id}/comment", "commentMaintenance", "Add a comment (internal 0/1)",
            {302: Answer(_MOVED, headers={"Location": "/api/maintenance/{id}"}),
             **_prod_errors(400, 401, 403, 404, 413)},
            body=Body(ref("Comment"), (FORM, JSON)), description=_WRITERS),
    _window("GET", "/api/maintenance/{id}/calendar", "maintenanceCalendar", "One maintenance as an iCalendar event",
            {200: _ICS, **_prod_errors(404)}, auth=False),
    _window("GET", "/api/scope", "listScopes", "The scopes of the config",
            {200: Answer("A page of scopes", ref("ScopePage"), headers=_PAGING), **_prod_errors(400)}, auth=False,
            params=PROD_PAGING),
    _window("GET", "/api/scope/{id}", "getScope", "One scope",
            {200: Answer("The scope", ref("Scope")), **_prod_errors(404)}, auth=False),
    _window("GET", "/api/service", "listServices", "The services of the config that have an id",
            {200: Answer("A page of services", ref("ServicePage"), headers=_PAGING), **_prod_errors(400)},
            auth=False, params=PROD_PAGING),
    _window("GET", "/api/service/{id}", "getService", "One service",
            {200: Answer("The service", ref("Service")), **_prod_errors(404)}, auth=False),
]

TABLES: tuple[list[Op], ...] = (OPS, MAINTENANCE, AGGREGATE, JOBS, WINDOWS)


def operations() -> list[Op]:
    return [_may_be_refused(_may_be_unavailable(op)) for table in TABLES for op in table]


INPUT_RULE = ("The path, query string or form is not UTF-8 text without NUL, or a form does not parse "
              "(every route's input rule)")
PLAIN_ERROR = ref("PlainError")


def _may_be_refused(op: Op) -> Op:
    """Every route refuses input that breaks the input rule: a 400 in its envelope (plain JSON for ops)."""
    if 400 in op.answers:
        return op
    error = op.answers[500].schema if 500 in op.answers else PLAIN_ERROR
    return replace(op, answers={**op.answers, 400: Answer(INPUT_RULE, error)})


def _may_be_unavailable(op: Op) -> Op:
    """Every write can meet a full disk: a 503 in the envelope of the operation's 500."""
    if op.method == "GET" or 503 in op.answers or 500 not in op.answers:
        return op
    return replace(op, answers={**op.answers, 503: Answer(ERROR_TEXT[503], op.answers[500].schema)})


@functools.cache
def document_bytes() -> bytes:
    """The document as the JSON its route answers, encoded once."""
    return json.dumps(document(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once; the tables do not change at run time)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations():
        paths.setdefault(op.path, {})[op.method.lower()] = op.render()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "schedd",
            "version": __version__,
            "description": "A scheduler daemon for one host. Paths and payloads follow the APIs of "
                           "AtScale (aggregate maintenance and aggregate creation), Volt MX (admin-console "
                           "jobs) and Prod-Manager (maintenance windows).",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": name} for name in dict.fromkeys(op.tag for op in operations())],
        "security": [{"voltmx": []}, {"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "voltmx": {"type": "apiKey", "in": "header", "name": "X-VoltMX-Authorization",
                           "description": "A token from POST /authService/accounts/login or `schedd token create`"},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "The same token as `Authorization: Bearer T`"},
            },
        },
    }
