"""Org maintenance on the wire (AtScale's engine envelope and field names): the request a
schedule is created by, which checks the request (`schedd.shapes.read`) and documents it,
and the answers, each declared once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from msgspec import UNSET, Meta, UnsetType

from schedd.shapes import RFC3339, Model, NextExecution, RunStatus, extra

CRON_REQUIRED = "is required (a cron expression such as '0 0 4 ? * * *')"
"""How a missing or blank cron of a new schedule is refused (both AtScale families)."""
ZONE_NOT_TEXT = "must be a string naming an IANA time zone"

CronText = Annotated[str, Meta(pattern=r"\S", description="Quartz (seconds first) or 5-field Unix cron")]
ZoneName = Annotated[str, Meta(description="IANA zone; the daemon's when absent")]


class MaintenanceScheduleInput(Model, kw_only=True):
    """POST .../scheduler/jobs/orgId/{orgId}: fields in the body or the query (the body wins);
    checked in this order."""

    REASONS: ClassVar[Mapping[str, str]] = {
        "scheduler_type": "must be 'time-based'", "time_expression": CRON_REQUIRED, "timezone": ZONE_NOT_TEXT}

    scheduler_type: Literal["time-based", ""] | None | UnsetType = UNSET
    time_expression: CronText
    timezone: ZoneName | None | UnsetType = UNSET


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
    triggerType: Annotated[str, extra(examples=[
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
