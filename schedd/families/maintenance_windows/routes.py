"""Maintenance windows over Prod-Manager's maintenance API (`/api/maintenance`), its scopes and services.

Reads are public; internal events, and who wrote each event, are shown only to those who
may write the window. Writes need a token (401) and a caller who may write the window: an
admin, or a user granted its scope (403 otherwise); they answer 302 to the resource, as
Prod-Manager does. Bodies are forms or JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from zoneinfo import ZoneInfo

import msgspec
from aiohttp import web

from schedd import shapes
from schedd.config import ScopeConfig, ServiceConfig
from schedd.errors import NotFound, ScheddError, ValidationError
from schedd.families.maintenance_windows import shapes as window_shapes
from schedd.families.maintenance_windows.ical import calendar
from schedd.families.maintenance_windows.service import Access, Invalid, Windows, format_date
from schedd.http import paging
from schedd.http.common import CORE, Api, current_user, json_response, optional_user, read_body, with_envelope
from schedd.store.windows import Event, Window

routes = web.RouteTableDef()
T = TypeVar("T")
ID = r"{id:[0-9]{1,18}}"


def render_error(request: web.Request, status: int, message: str, exc: ScheddError) -> web.Response:
    if isinstance(exc, Invalid):
        return json_response(window_shapes.ProdError(message="Invalid request", reasons=exc.reasons), status=status)
    if isinstance(exc, ValidationError):
        return json_response(window_shapes.ProdError(message="Invalid request", reasons={exc.field: [exc.reason]}),
                             status=status)
    return json_response(window_shapes.ProdError(message=message, reasons={}), status=status)


handler = with_envelope(render_error)


def _windows(request: web.Request) -> Windows:
    return request.app[CORE].windows


def _event_object(event: Event, zone: ZoneInfo, authors: bool) -> window_shapes.MaintenanceEvent:
    return window_shapes.MaintenanceEvent(
        creation_date=format_date(event.creation_date, zone),
        content=event.content,
        internal=int(event.internal),
        type=event.type,
        author=event.author if authors else msgspec.UNSET,
    )


def window_object(window: Window, zone: ZoneInfo, *, authors: bool = False) -> window_shapes.Maintenance:
    """Prod-Manager's maintenance object; with `authors`, each event names the user who wrote it."""
    path = f"/api/maintenance/{window.id}"
    return window_shapes.Maintenance(
        id=window.id,
        name=window.name,
        description=window.description,
        external_reference=window.external_reference,
        external_link=window.external_link,
        status=window.status,
        scope=window.scope_id,
        service=window.service_id,
        service_status=window.service_status,
        creation_date=format_date(window.creation_date, zone),
        scheduled_start_date=format_date(window.scheduled_start_date, zone),
        scheduled_end_date=format_date(window.scheduled_end_date, zone),
        start_date=format_date(window.start_date, zone),
        end_date=format_date(window.end_date, zone),
        events=[_event_object(event, zone, authors) for event in window.events],
        links=window_shapes.MaintenanceLinks(
            self_=path,
            scope=f"/api/scope/{window.scope_id}",
            service=f"/api/service/{window.service_id}",
            calendar=f"{path}/calendar",
        ),
    )


async def _access(request: web.Request, *, write: bool) -> Access:
    """What the caller may write. A write without a token is 401, and 403 before its body is
    read when the caller may write no window at all."""
    windows = _windows(request)
    if not write:
        return await windows.access(await optional_user(request))
    access = await windows.access(await current_user(request))
    windows.check(access)
    return access


def _path_id(request: web.Request) -> int:
    """The `{id}` of the path: a maintenance window's, a scope's or a service's (ID allows only digits)."""
    return int(request.match_info["id"])


@routes.get("/api/maintenance")
@handler
async def list_windows(request: web.Request) -> web.Response:
    access = await _access(request, write=False)
    page = paging.page_per_page(request)
    windows = _windows(request)
    found, total = await windows.list(request.query, page=page.page, per_page=page.per_page,
                                      internal=access.writes_any)
    zone = windows.zone
    items = [window_object(windows.shown(access, w), zone, authors=windows.may_write(access, w)) for w in found]
    return json_response(window_shapes.MaintenancePage(items=items), headers=page.headers(total))


@routes.get(f"/api/maintenance/{ID}")
@handler
async def get_window(request: web.Request) -> web.Response:
    access = await _access(request, write=False)
    windows = _windows(request)
    window = await windows.read(access, _path_id(request))
    return json_response(window_object(window, windows.zone, authors=windows.may_write(access, window)))


@routes.post("/api/maintenance/create")
@handler
async def create_window(request: web.Request) -> web.Response:
    access = await _access(request, write=True)
    core = request.app[CORE]
    window = await core.windows.create(access, await read_body(request), at=core.clock.now())
    raise web.HTTPFound(f"/api/maintenance/{window.id}")


@routes.post(f"/api/maintenance/{ID}/update")
@handler
async def update_window(request: web.Request) -> web.Response:
    access = await _access(request, write=True)
    core = request.app[CORE]
    window_id = _path_id(request)
    await core.windows.update(access, window_id, await read_body(request), at=core.clock.now())
    raise web.HTTPFound(f"/api/maintenance/{window_id}")


@routes.post(f"/api/maintenance/{ID}/delete")
@handler
async def delete_window(request: web.Request) -> web.Response:
    access = await _access(request, write=True)
    await _windows(request).delete(access, _path_id(request))
    raise web.HTTPFound("/api/maintenance")


@routes.post(f"/api/maintenance/{ID}/comment")
@handler
async def comment_window(request: web.Request) -> web.Response:
    access = await _access(request, write=True)
    core = request.app[CORE]
    window_id = _path_id(request)
    await core.windows.comment(access, window_id, await read_body(request), at=core.clock.now())
    raise web.HTTPFound(f"/api/maintenance/{window_id}")


@routes.get(f"/api/maintenance/{ID}/calendar")
@handler
async def window_calendar(request: web.Request) -> web.Response:
    core = request.app[CORE]
    window = await core.windows.get(_path_id(request), internal=False)
    body = calendar([window], at=core.clock.now(), host=request.host.split(":")[0] or "schedd")
    return web.Response(body=body.encode("utf-8"), content_type="text/calendar", charset="utf-8",
                        headers={"Content-Disposition": f'inline; filename="maintenance-{window.id}.ics"'})


def _scope_object(scope: ScopeConfig) -> window_shapes.Scope:
    links = window_shapes.ScopeLinks(self_=f"/api/scope/{scope.id}")
    return window_shapes.Scope(id=scope.id, name=scope.name, links=links)


def _service_object(request: web.Request, service: ServiceConfig) -> window_shapes.Service:
    scope = request.app[CORE].config.scopes.get(service.scope or "")
    return window_shapes.Service(id=service.id or 0, name=service.name, scope=scope.id if scope else None,
                          links=window_shapes.ServiceLinks(self_=f"/api/service/{service.id}",
                                                    scope=f"/api/scope/{scope.id}" if scope else None))


def _paged(request: web.Request, page_of: Callable[[list[T]], shapes.Model], items: list[T]) -> web.Response:
    """One page of a list held in memory (the config's scopes or services), paged as maintenances are."""
    page = paging.page_per_page(request)
    shown = items[page.offset:page.offset + page.limit]
    return json_response(page_of(shown), headers=page.headers(len(items)))


@routes.get("/api/scope")
@handler
async def list_scopes(request: web.Request) -> web.Response:
    scopes = sorted(request.app[CORE].config.scopes.values(), key=lambda s: s.id)
    return _paged(request, lambda items: window_shapes.ScopePage(items=items), [_scope_object(s) for s in scopes])


@routes.get(f"/api/scope/{ID}")
@handler
async def get_scope(request: web.Request) -> web.Response:
    scope = _windows(request).scope_by_id(_path_id(request))
    if scope is None:
        raise NotFound("scope", _path_id(request))
    return json_response(_scope_object(scope))


@routes.get("/api/service")
@handler
async def list_services(request: web.Request) -> web.Response:
    services = sorted((s for s in request.app[CORE].config.services.values() if s.id is not None),
                      key=lambda s: s.id or 0)
    return _paged(request, lambda items: window_shapes.ServicePage(items=items),
                  [_service_object(request, s) for s in services])


@routes.get(f"/api/service/{ID}")
@handler
async def get_service(request: web.Request) -> web.Response:
    service = _windows(request).service_by_id(_path_id(request))
    if service is None:
        raise NotFound("service", _path_id(request))
    return json_response(_service_object(request, service))


API = Api(routes, ("/api/maintenance", "/api/scope", "/api/service"), render_error)
