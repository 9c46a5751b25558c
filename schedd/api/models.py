"""The daemon's own wire shapes (ops, login), and the OpenAPI components of every shape.

Each family declares its shapes in its own package (`schedd/families/*/shapes.py`); the
field types they share and the encoding of an answer are in `schedd.shapes`. `MODELS`
lists every model the OpenAPI document describes, and `components()` generates their
schemas from the declarations (schedd/api/openapi.py keeps only its route table).

Adding a field: add it to the model, at its place in the wire order; fill it where the
route builds the model (a response) or read it where the family validates (a request).
The OpenAPI document follows by itself.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from schedd.families.cube_builds.shapes import (
    Build,
    BuildPage,
    CubeSchedule,
    CubeScheduleInput,
    DesignEnvelope,
    Executed,
    ExecuteInput,
    Execution,
    ScheduleHistory,
)
from schedd.families.maintenance_windows.shapes import (
    Comment,
    Maintenance,
    MaintenanceEvent,
    MaintenanceInput,
    MaintenancePage,
    ProdError,
    Scope,
    ScopePage,
    Service,
    ServicePage,
)
from schedd.families.org_maintenance.shapes import (
    EngineEnvelope,
    ErrorInformation,
    LatestExecution,
    MaintenanceRun,
    MaintenanceRunPage,
    MaintenanceSchedule,
    MaintenanceScheduleCreated,
    MaintenanceScheduleInput,
)
from schedd.families.service_jobs.shapes import (
    FieldFault,
    Job,
    JobFrequencyInfo,
    JobRun,
    JobRunDetail,
    JobServiceInfo,
    JobSummary,
    VoltResult,
)
from schedd.shapes import REF, Model

# -- ops and login ------------------------------------------------------------------------

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


class Revoked(Model, kw_only=True):
    userid: str
    revoked: int


MODELS: tuple[type[Model], ...] = (
    PlainError, Health, Readiness, EngineEnvelope, LatestExecution, MaintenanceSchedule, MaintenanceScheduleCreated,
    MaintenanceScheduleInput, ErrorInformation, MaintenanceRun, MaintenanceRunPage, DesignEnvelope, Execution,
    CubeSchedule, CubeScheduleInput, ExecuteInput, Build, BuildPage, Executed, ScheduleHistory, VoltResult,
    FieldFault, Revoked, Login, Logout, LoginAnswer, JobSummary, JobServiceInfo, JobFrequencyInfo, Job, JobRun,
    JobRunDetail, ProdError, MaintenanceEvent, Maintenance, MaintenancePage, MaintenanceInput, Comment, Scope,
    Service, ScopePage, ServicePage,
)
"""Every model; `components()` documents them all (and the models they hold)."""

# Request models whose documented required fields are not those they declare (none: a request
# model declares what it requires, and `schedd.shapes.check` reads it so).
REQUIRED_IN_REQUEST: dict[type[Model], tuple[str, ...]] = {}


@functools.cache
def components() -> dict[str, Any]:
    """The OpenAPI `components.schemas` of every model, generated from the declarations."""
    _, schemas = msgspec.json.schema_components(MODELS, ref_template=REF)
    for model, required in REQUIRED_IN_REQUEST.items():
        schemas[model.__name__]["required"] = list(required)
    return schemas

