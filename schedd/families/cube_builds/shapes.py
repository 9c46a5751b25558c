"""Cube builds on the wire (AtScale's design-center envelope and field names): the request a
build schedule is created by, which checks the request (`schedd.shapes.read`) and documents
it, and the answers, each declared once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from msgspec import UNSET, Meta, UnsetType

from schedd.families.org_maintenance.shapes import (
    CRON_REQUIRED,
    ZONE_NOT_TEXT,
    CronText,
    ErrorInformation,
    ZoneName,
)
from schedd.shapes import RFC3339, Model, NextExecution, RunStatus, extra

Flag = bool | Annotated[str, Meta(pattern="^(?i:true|false)?$")]
"""A JSON boolean, or "true"/"false" (any case) from a query string or form; "" for absent."""


class CubeScheduleInput(Model, kw_only=True):
    """POST .../aggregates-creation/scheduler: fields in the body or the query (the body wins);
    checked in this order."""

    REASONS: ClassVar[Mapping[str, str]] = {
        "path": "must be 'aggregate/create'", "full_build": "must be true or false",
        "time_expression": CRON_REQUIRED, "timezone": ZONE_NOT_TEXT}

    path: Literal["aggregate/create"]
    full_build: Annotated[Flag, Meta(extra_json_schema={"default": True})] | None | UnsetType = UNSET
    time_expression: CronText
    timezone: ZoneName | None | UnsetType = UNSET


class DesignStatus(Model, kw_only=True):
    i18n_message: Annotated[str, extra(examples=[
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
    full_build: Annotated[bool, extra(default=False)] | UnsetType = UNSET


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
