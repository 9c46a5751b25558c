"""The request a cube's build schedule is created by (AtScale's field names), declared once:
it checks the request (`schedd.shapes.read`) and documents it (the OpenAPI components)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from msgspec import UNSET, Meta, UnsetType

from schedd.families.org_maintenance.shapes import CRON_REQUIRED, ZONE_NOT_TEXT, CronText, ZoneName
from schedd.shapes import Model

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
