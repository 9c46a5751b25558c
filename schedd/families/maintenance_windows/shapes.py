"""Maintenance windows on the wire (Prod-Manager's maintenance API): windows, their events,
scopes and services, the form a window is written by, each declared once."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from msgspec import UNSET, Meta, UnsetType, field

from schedd.shapes import Model, extra
from schedd.states import WindowState, values

SERVICE_STATUSES = ("up", "degraded", "down")
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")
LIMITS = {"name": 255, "description": 10_000, "external_reference": 255, "external_link": 2048}

ProdTime = Annotated[str, Meta(pattern=f"^{DATE_RE.pattern}$",
                               description="YYYY-MM-DDTHH:MM in the daemon's time zone")]
NullableProdTime = ProdTime | None
WINDOW_STATUSES = list(values(WindowState))
WindowStatus = Annotated[str, extra(enum=WINDOW_STATUSES)]
SERVICE_STATUSES_LIST = list(SERVICE_STATUSES)
ServiceStatus = Annotated[str, extra(enum=SERVICE_STATUSES_LIST)]


class ProdError(Model, kw_only=True):
    message: str
    reasons: dict[str, list[str]]


class MaintenanceEvent(Model, kw_only=True):
    creation_date: ProdTime
    content: str
    internal: Annotated[int, extra(enum=[0, 1])]
    type: Annotated[str, extra(enum=["create", "update", "comment"])]
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
