"""The public status page, one page per maintenance, the iCalendar feed, and the stylesheet.

Nothing here needs a token and nothing internal is shown: windows are read with
`internal=False`, which leaves internal events out in the store itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from schedd.config import ServiceConfig
from schedd.errors import NotFound
from schedd.families.maintenance_windows.ical import CALENDAR_HEAD, CALENDAR_TAIL, calendar_events, calendar_lines
from schedd.families.maintenance_windows.service import Windows, format_date
from schedd.http import stream
from schedd.http.common import CORE
from schedd.store.windows import Window
from schedd.web.render import STYLESHEET, page

routes = web.RouteTableDef()

RECENT_DAYS = 14
SECTION_LIMIT = 100
# Worst first: a service under several windows at once shows the worst of them.
SEVERITY = {"up": 0, "degraded": 1, "down": 2}


@dataclass(frozen=True, slots=True)
class ServiceState:
    id: int
    service: ServiceConfig
    state: str
    windows: tuple[Window, ...]


@dataclass(frozen=True, slots=True)
class ScopeState:
    name: str
    services: tuple[ServiceState, ...]


def service_states(services: Iterable[ServiceConfig], in_progress: Iterable[Window]) -> dict[int, ServiceState]:
    """Each service's state now: the worst `service_status` of its windows in progress, else up."""
    by_service: dict[int, list[Window]] = {}
    for window in in_progress:
        by_service.setdefault(window.service_id, []).append(window)
    states = {}
    for service in services:
        if service.id is None:
            continue
        windows = tuple(by_service.get(service.id, ()))
        state = max((w.service_status for w in windows), key=SEVERITY.__getitem__, default="up")
        states[service.id] = ServiceState(service.id, service, state, windows)
    return states


def scopes_view(windows: Windows, states: dict[int, ServiceState]) -> list[ScopeState]:
    """The configured scopes in id order, each with its services; unscoped services last."""
    config = windows.core.config
    scopes = []
    for scope in sorted(config.scopes.values(), key=lambda s: s.id):
        members = sorted((s for s in states.values() if s.service.scope == scope.name), key=lambda s: s.id)
        scopes.append(ScopeState(scope.name, tuple(members)))
    loose = sorted((s for s in states.values() if s.service.scope not in config.scopes), key=lambda s: s.id)
    if loose:
        scopes.append(ScopeState("Other services", tuple(loose)))
    return scopes


async def _section(windows: Windows, **filters: str) -> list[Window]:
    """At most SECTION_LIMIT windows, without their timelines (the page shows none)."""
    found, _ = await windows.list(filters, page=1, per_page=SECTION_LIMIT, internal=False, timelines=False)
    return found


def names(windows: Windows) -> dict[str, Any]:
    """Lookups the templates use to name a window's scope and service."""
    config = windows.core.config
    return {
        "scope_name": {s.id: s.name for s in config.scopes.values()},
        "service_name": {s.id: s.name for s in config.services.values() if s.id is not None},
    }


@routes.get("/")
async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/status")


@routes.get("/status")
async def status(request: web.Request) -> web.Response:
    core = request.app[CORE]
    windows = core.windows
    now = core.clock.now()
    in_progress = await _section(windows, status="in-progress")
    upcoming = await _section(windows, status="scheduled")
    recent_since = format_date(now - RECENT_DAYS * 86400, windows.zone) or ""
    recent = [w for w in await _section(windows, end_after=recent_since)
              if w.status not in ("scheduled", "in-progress")]
    states = service_states(core.config.services.values(), in_progress)
    affected = sum(1 for s in states.values() if s.state != "up")
    return page(request, "status.html", {
        "session": None,
        "scopes": scopes_view(windows, states),
        "affected": affected,
        "down": any(s.state == "down" for s in states.values()),
        "in_progress": sorted(in_progress, key=lambda w: w.scheduled_end_date),
        "upcoming": sorted(upcoming, key=lambda w: w.scheduled_start_date),
        "recent": recent,
        "recent_days": RECENT_DAYS,
        "firing": await core.coordinator.firing_instance(),
        **names(windows),
    })


@routes.get(r"/status/maintenance/{id:[0-9]{1,18}}")
async def maintenance_page(request: web.Request) -> web.Response:
    windows = request.app[CORE].windows
    try:
        window = await windows.get(int(request.match_info["id"]), internal=False)
    except NotFound as exc:
        return page(request, "error.html", {"session": None, "status": 404, "title": "Not found",
                                            "message": str(exc)}, status=404)
    return page(request, "maintenance.html", {
        "session": None, "window": window,
        "events": [event for event in window.events if not event.internal],
        **names(windows),
    })


@routes.get("/api/maintenance/calendar")
async def calendar_feed(request: web.Request) -> web.StreamResponse:
    """Every window that has not ended yet, as one iCalendar a calendar app can subscribe to.

    Canceled ones stay in the feed (STATUS:CANCELLED) so subscribers drop the event. The
    feed is complete, read in batches and written as it is read.
    """
    core = request.app[CORE]
    now = core.clock.now()
    host = request.host.split(":")[0] or "schedd"
    return await stream.text(
        request, core.windows.coming(now), lambda windows: calendar_events(windows, at=now, host=host),
        opening=calendar_lines(CALENDAR_HEAD), closing=calendar_lines(CALENDAR_TAIL), content_type="text/calendar",
        headers={"Content-Disposition": 'inline; filename="maintenance.ics"', "Cache-Control": "no-cache"})


@routes.get("/static/schedd.css")
async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(body=STYLESHEET, content_type="text/css", charset="utf-8", headers={
        "Cache-Control": "public, max-age=86400",
        "X-Content-Type-Options": "nosniff",
    })
