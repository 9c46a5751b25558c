"""The request an org maintenance schedule is created by (AtScale's field names), declared once:
it checks the request (`schedd.shapes.read`) and documents it (the OpenAPI components)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from msgspec import UNSET, Meta, UnsetType

from schedd.shapes import Model

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
