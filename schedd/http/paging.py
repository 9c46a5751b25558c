"""Paging of every list route, parsed in one place: each route's default and maximum are here.

AtScale's and Volt MX's routes page with `limit`/`offset`, Prod-Manager's with
`page`/`per_page` (docs/api.md). The lists those APIs answer in full (a schedule list,
the job list) stay complete unless the caller asks for a page: they are streamed instead.
A bad value is a 400 naming the parameter, in the family's envelope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aiohttp import web

from schedd.errors import ValidationError
from schedd.http.common import query_int

MAX_OFFSET = 10**9


@dataclass(frozen=True, slots=True)
class Paging:
    """One route's `limit`: its default (None: every row, streamed) and its maximum."""

    default: int | None
    maximum: int

    def parse(self, request: web.Request) -> tuple[int | None, int]:
        """(limit, offset) of the request; limit None means every row from offset on."""
        raw = request.query.get("limit")
        limit = self.default if raw is None or raw == "" else query_int(request, "limit", 0, 1, self.maximum)
        return limit, query_int(request, "offset", 0, 0, MAX_OFFSET)

    def page(self, request: web.Request) -> tuple[int, int]:
        """(limit, offset) of a route that always answers a page."""
        if self.default is None:
            raise TypeError("a route without a default limit streams; use parse()")
        limit, offset = self.parse(request)
        return limit or self.default, offset


# Run histories (org maintenance, cube builds, service jobs): pages of runs, newest first.
MAINTENANCE_HISTORY = Paging(10, 1000)
BUILDS_HISTORY = Paging(10, 1000)
JOB_HISTORY = Paging(100, 1000)
CUBE_SCHEDULE_HISTORY = Paging(1000, 1000)
# Schedule and job lists (org maintenance, cube builds, service jobs): every row, streamed, unless a
# page is asked for.
SCHEDULE_LIST = Paging(None, 10_000)
JOB_LIST = Paging(None, 10_000)

# Prod-Manager's paging (maintenance windows): `page` from 1, `per_page` up to 50; 0 answers only the
# headers.
PAGE_MAX = 10_000_000
PER_PAGE_DEFAULT = 20
PER_PAGE_MAX = 50


def page_number(request: web.Request, maximum: int) -> int:
    """`page`, counted from 1: 1 unless given, at most `maximum` (the operator view's pages too)."""
    return query_int(request, "page", 1, 1, maximum)


def _positive(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """A number of Prod-Manager's paging: the one parser, with Prod-Manager's one wording of a fault."""
    try:
        return query_int(request, name, default, low, high)
    except ValidationError as exc:
        raise ValidationError(name, f"must be an integer from {low} to {high}") from exc


@dataclass(frozen=True, slots=True)
class PageHeaders:
    """A Prod-Manager page: which one, its size, and what the headers say of the whole list."""

    page: int
    per_page: int

    @property
    def limit(self) -> int:
        return self.per_page

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def headers(self, total: int) -> dict[str, str]:
        """X-Page, X-Per-Page, X-Total, X-Total-Pages, and X-Prev-Page/X-Next-Page where they exist."""
        pages = max(1, math.ceil(total / self.per_page)) if self.per_page else 0
        found = {"X-Page": str(self.page), "X-Per-Page": str(self.per_page), "X-Total": str(total),
                 "X-Total-Pages": str(pages)}
        if self.per_page and self.page > 1:
            found["X-Prev-Page"] = str(min(self.page - 1, pages))
        if self.page < pages:
            found["X-Next-Page"] = str(self.page + 1)
        return found


def page_per_page(request: web.Request) -> PageHeaders:
    """`page` (1-10,000,000, default 1) and `per_page` (0-50, default 20)."""
    return PageHeaders(_positive(request, "page", 1, 1, PAGE_MAX),
                       _positive(request, "per_page", PER_PAGE_DEFAULT, 0, PER_PAGE_MAX))
