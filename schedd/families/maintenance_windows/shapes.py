"""Maintenance windows on the wire (Prod-Manager's maintenance API): windows, their events,
scopes and services, the form a window is written by, each declared once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from msgspec import UNSET, Meta, UnsetType, field

from schedd.shapes import END, Fault, Model, Reason, digits, extra, one_of
from schedd.states import WindowState, values

SERVICE_STATUSES = ("up", "degraded", "down")
WINDOW_STATUSES = list(values(WindowState))
SERVICE_STATUSES_LIST = list(SERVICE_STATUSES)
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")
DATE_RULE = "must be a date as YYYY-MM-DDTHH:MM (no seconds, no offset)"
LIMITS = {"name": 255, "description": 10_000, "external_reference": 255, "external_link": 2048}
MAX_COMMENT = 10_000

ProdTime = Annotated[str, Meta(pattern=f"^{DATE_RE.pattern}{END}",
                               description="YYYY-MM-DDTHH:MM in the daemon's time zone")]
NullableProdTime = ProdTime | None
WindowStatus = Annotated[str, one_of(WINDOW_STATUSES)]
ServiceStatus = Annotated[str, one_of(SERVICE_STATUSES)]


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


REQUIRED = "This field is required."


def _one_of_reason(options: list[str]) -> Mapping[str, str]:
    return {"required": REQUIRED, "type": f"Value must be one of: {', '.join(options)}.",
            "pattern": f"Value must be one of: {', '.join(options)}."}


def _text_reason(limit: int) -> Mapping[str, str]:
    return {"required": REQUIRED, "type": "Must be a string.", "length": f"Must be at most {limit} characters."}


def _comment_length(fault: Fault) -> str:
    return REQUIRED if not str(fault.value).strip() else f"Must be at most {MAX_COMMENT} characters."


Id = Annotated[int, Meta(description="scope or service id")] | Annotated[str, digits(18)]
_ID = "This field is required and must be an integer id."
_DATE = {"required": REQUIRED, "type": DATE_RULE, "pattern": DATE_RULE}


class MaintenanceInput(Model, kw_only=True):
    """A form or JSON body of create and update (update needs `status`): every field's faults
    are answered at once, in this order. The family parses the dates, checks the link is an
    http(s) URL and looks the scope and service up in the config."""

    REASONS: ClassVar[Mapping[str, Reason]] = {
        "scope": _ID, "service": _ID,
        **{name: _text_reason(limit) for name, limit in LIMITS.items()},
        "service_status": _one_of_reason(SERVICE_STATUSES_LIST), "status": _one_of_reason(WINDOW_STATUSES),
        "scheduled_start_date": _DATE, "scheduled_end_date": _DATE, "start_date": _DATE, "end_date": _DATE,
    }
    CHECK_ORDER: ClassVar[tuple[str, ...]] = (
        "name", "description", "external_reference", "external_link", "scope", "service", "service_status",
        "status", "scheduled_start_date", "scheduled_end_date", "start_date", "end_date")
    BLANK: ClassVar[frozenset[str]] = frozenset(CHECK_ORDER) - {"scope", "service"}

    scope: Annotated[Id, Meta(description="scope id")]
    service: Annotated[Id, Meta(description="service id, of that scope")]
    name: Annotated[str, Meta(min_length=1, max_length=LIMITS["name"])]
    description: Annotated[str, Meta(max_length=LIMITS["description"])] | UnsetType = UNSET
    external_reference: Annotated[str, Meta(max_length=LIMITS["external_reference"])] | UnsetType = UNSET
    external_link: Annotated[str, Meta(max_length=LIMITS["external_link"],
                                       description="an http(s) URL")] | UnsetType = UNSET
    service_status: ServiceStatus
    status: WindowStatus | UnsetType = UNSET
    scheduled_start_date: ProdTime
    scheduled_end_date: ProdTime
    start_date: ProdTime | UnsetType = UNSET
    end_date: ProdTime | UnsetType = UNSET


class Comment(Model, kw_only=True):
    """A form or JSON body of a comment: `internal` is 0 or 1 (or true, false), as a number or text.
    The first field that fails is answered; the family applies the input rule first."""

    REASONS: ClassVar[Mapping[str, Reason]] = {
        "comment": {"required": REQUIRED, "type": REQUIRED, "pattern": REQUIRED, "length": _comment_length},
        "internal": "Must be 0 or 1.",
    }
    BLANK: ClassVar[frozenset[str]] = frozenset({"comment", "internal"})

    comment: Annotated[str, Meta(max_length=MAX_COMMENT, pattern=r"\S")]
    internal: bool | Annotated[float, Meta(ge=0, le=1, multiple_of=1)] | Literal["0", "1", "true", "false"] \
        | None | UnsetType = UNSET


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


FILTER_DATES = ("start_before", "start_after", "end_before", "end_after")
FilterId = Annotated[int, Meta(ge=0, le=10**18 - 1, description="a scope or service id")] \
    | Annotated[str, Meta(pattern=rf"^[0-9]{{1,18}}{END}")]
"""An id in a query string: up to 18 ASCII digits."""


class MaintenanceFilters(Model, kw_only=True):
    """The query of GET /api/maintenance: each filter narrows the list, an empty one is absent.
    The first fault is answered, in this order; the family parses the dates."""

    REASONS: ClassVar[Mapping[str, Reason]] = {
        "status": _one_of_reason(WINDOW_STATUSES), "service_status": _one_of_reason(SERVICE_STATUSES_LIST),
        "scope": "Must be an integer id.", "service": "Must be an integer id.",
        **{name: _DATE for name in FILTER_DATES},
    }
    CHECK_ORDER: ClassVar[tuple[str, ...]] = (
        "status", "service_status", "scope", "service", "external_reference", *FILTER_DATES)
    BLANK: ClassVar[frozenset[str]] = frozenset(CHECK_ORDER)

    status: WindowStatus | UnsetType = UNSET
    scope: FilterId | UnsetType = UNSET
    service: FilterId | UnsetType = UNSET
    service_status: ServiceStatus | UnsetType = UNSET
    external_reference: Annotated[str, Meta(description="matched exactly, by its first 255 characters")] \
        | UnsetType = UNSET
    start_before: ProdTime | UnsetType = UNSET
    start_after: ProdTime | UnsetType = UNSET
    end_before: ProdTime | UnsetType = UNSET
    end_after: ProdTime | UnsetType = UNSET
