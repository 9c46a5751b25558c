"""The operator view under /ui: schedules, run history, a run's detail, run now and (de)activation.

Every action goes through the family's service function, as the API's does, with the
session's user: the org checks and policies are the API's own. A user who is not an
administrator sees the orgs it belongs to and no service job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from schedd.core import Core
from schedd.cron import load_zone, parse
from schedd.errors import NotFound, ScheddError, ValidationError
from schedd.families import overview
from schedd.families.base import FAMILIES
from schedd.families.common import RUN_STATES
from schedd.http import paging
from schedd.http.common import CORE, status_for
from schedd.runner import RunRef
from schedd.store.accounts import User
from schedd.store.runs import Run
from schedd.store.schedules import Schedule
from schedd.timefmt import shown
from schedd.values import NotAChoice, choice
from schedd.web import charts
from schedd.web.render import page, zone
from schedd.web.session import Session, operator

routes = web.RouteTableDef()

PAGE_SIZE = 50
MAX_PAGE = 100_000
NEXT_FIRES = 3
NOTICES = {
    "started": "Run started.",
    "skipped": "The run was skipped: its service is under maintenance.",
    "deactivated": "Schedule deactivated.",
    "activated": "Schedule activated.",
}


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    schedule: Schedule
    label: str
    family: str
    """The family's label (`Family.label`)."""
    next_fires: tuple[str, ...]
    can_activate: bool
    can_deactivate: bool
    run_hint: str


def label(family: str, org_id: str | None, project_id: str | None, cube_id: str | None,
          name: str | None) -> str:
    return FAMILIES.get(family).row_label(org_id, project_id, cube_id, name)


def next_fires(schedule: Schedule) -> tuple[str, ...]:
    """The next few fire times in the schedule's own zone, where its cron is read."""
    if not schedule.active or schedule.next_fire_at is None:
        return ()
    tz = load_zone(schedule.timezone)
    cron = parse(schedule.cron)
    times = [schedule.next_fire_at]
    for later in cron.iter_after(schedule.next_fire_at, tz):
        if len(times) == NEXT_FIRES:
            break
        times.append(later)
    return tuple(shown(t, tz, seconds=True) for t in times)


def row(schedule: Schedule) -> ScheduleRow:
    family = FAMILIES.get(schedule.family)
    return ScheduleRow(
        schedule=schedule,
        label=label(schedule.family, schedule.org_id, schedule.project_id, schedule.cube_id, schedule.name),
        family=family.label,
        next_fires=next_fires(schedule),
        can_activate=family.can_reactivate and not schedule.active,
        can_deactivate=schedule.active,
        run_hint=family.run_hint)


def _filter(request: web.Request, name: str, allowed: list[str] | tuple[str, ...]) -> str | None:
    """A query filter: one of `allowed`, None when absent."""
    try:
        return choice(request.query.get(name), allowed)
    except NotAChoice as exc:
        raise ValidationError(name, f"must be one of {', '.join(exc.allowed)}") from None


def _org(request: web.Request, orgs: list[str]) -> str | None:
    """An org filter: one the user may see, else 404 as the API answers."""
    value = request.query.get("org", "")
    if value == "":
        return None
    if value not in orgs:
        raise NotFound("organization", value)
    return value


def _failure(request: web.Request, session: Session, exc: ScheddError) -> web.Response:
    status = status_for(exc)
    message = str(exc) if status != 500 else "internal error"
    return page(request, "error.html", {"session": session, "status": status, "title": "Not done",
                                        "message": message}, status=status, private=True)


def _page_links(request: web.Request, number: int, more: bool) -> dict[str, str | None]:
    def link(n: int) -> str:
        return request.path + "?" + urlencode({**request.query, "page": str(n)})
    return {"prev": link(number - 1) if number > 1 else None, "next": link(number + 1) if more else None}


@routes.get("/ui")
@operator
async def dashboard(request: web.Request, session: Session) -> web.Response:
    """Schedules of every family the user may see, with the last day's charts."""
    core, user = request.app[CORE], session.user
    try:
        family = _filter(request, "family", FAMILIES.names())
        orgs = await overview.visible_orgs(core, user)
        org = _org(request, orgs)
        active = _filter(request, "active", ("yes", "no"))
        number = paging.page_number(request, MAX_PAGE)
    except ScheddError as exc:
        return _failure(request, session, exc)
    shown, total = await overview.schedules(
        core, user, family=family, org_id=org, active=None if active is None else active == "yes",
        limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
    start = charts.window_start(core.clock.now())
    tz = zone(request)
    return page(request, "dashboard.html", {
        "session": session,
        "firing": await core.coordinator.firing_instance(),
        "instance": core.coordinator.instance,
        "notice": NOTICES.get(request.query.get("notice", "")),
        "rows": [row(s) for s in shown],
        "total": total,
        "pages": max(1, math.ceil(total / PAGE_SIZE)),
        "number": number,
        "links": _page_links(request, number, number * PAGE_SIZE < total),
        "families": overview.family_names(user),
        "orgs": orgs,
        "filters": {"family": family or "", "org": org or "", "active": active or ""},
        "outcomes": charts.outcome_chart(await overview.outcomes_by_hour(core, user, since=start),
                                         start=start, zone=tz),
        "delays": charts.delay_chart(await overview.delays_by_hour(core, user, since=start),
                                     start=start, zone=tz),
    }, private=True)


@routes.get("/ui/runs")
@operator
async def runs(request: web.Request, session: Session) -> web.Response:
    """Run history of every family, newest first, by family, org and status."""
    core, user = request.app[CORE], session.user
    try:
        family = _filter(request, "family", FAMILIES.names())
        orgs = await overview.visible_orgs(core, user)
        org = _org(request, orgs)
        state = _filter(request, "status", RUN_STATES)
        number = paging.page_number(request, MAX_PAGE)
    except ScheddError as exc:
        return _failure(request, session, exc)
    found, schedules = await overview.runs(core, user, family=family, org_id=org, state=state,
                                           limit=PAGE_SIZE + 1, offset=(number - 1) * PAGE_SIZE)
    more, found = len(found) > PAGE_SIZE, found[:PAGE_SIZE]
    return page(request, "runs.html", {
        "session": session,
        "runs": [(r, run_label(r, schedules.get(r.schedule_id or 0))) for r in found],
        "families": overview.family_names(user),
        "orgs": orgs,
        "states": RUN_STATES,
        "filters": {"family": family or "", "org": org or "", "status": state or ""},
        "number": number,
        "links": _page_links(request, number, more),
    }, private=True)


def run_label(run: Run, schedule: Schedule | None) -> str:
    return label(run.family, run.org_id, run.project_id, run.cube_id, schedule.name if schedule else None)


@routes.get(r"/ui/runs/{uid:[0-9a-f-]{36}}")
@operator
async def run_page(request: web.Request, session: Session) -> web.Response:
    core = request.app[CORE]
    try:
        run, schedule = await overview.run(core, session.user, request.match_info["uid"])
    except NotFound as exc:
        return _failure(request, session, exc)
    delay = run.started_at - run.due_at if run.started_at is not None and run.due_at is not None else None
    return page(request, "run.html", {
        "session": session,
        "notice": NOTICES.get(request.query.get("notice", "")),
        "run": run,
        "schedule": schedule,
        "label": run_label(run, schedule),
        "delay": delay,
        "payloads": run.complete or any(v is not None for v in (
            run.request_payload, run.response_status, run.response_body)),
    }, private=True)


async def _schedule(request: web.Request, session: Session) -> Schedule:
    return await overview.schedule(request.app[CORE], session.user, int(request.match_info["id"]))


async def start_run(core: Core, user: User, schedule: Schedule, *, at: float) -> RunRef:
    """Run now through the family's own service function (the API's run-now)."""
    return await FAMILIES.get(schedule.family).start_run(core, user, schedule, at=at)


async def set_active(core: Core, user: User, schedule: Schedule, active: bool, *, at: float) -> None:
    """(De)activate through the family's own service function, as its API does."""
    await FAMILIES.get(schedule.family).set_active(core, user, schedule, active, at=at)


@routes.post(r"/ui/schedules/{id:[0-9]{1,18}}/run")
@operator
async def run_now(request: web.Request, session: Session) -> web.StreamResponse:
    core = request.app[CORE]
    try:
        schedule = await _schedule(request, session)
        ref = await start_run(core, session.user, schedule, at=core.clock.now())
    except ScheddError as exc:
        return _failure(request, session, exc)
    notice = "skipped" if ref.state == "skipped" else "started"
    raise web.HTTPSeeOther(f"/ui/runs/{ref.uid}?notice={notice}" if ref.id else f"/ui?notice={notice}")


@routes.post(r"/ui/schedules/{id:[0-9]{1,18}}/{action:activate|deactivate}")
@operator
async def activate(request: web.Request, session: Session) -> web.StreamResponse:
    core = request.app[CORE]
    active = request.match_info["action"] == "activate"
    try:
        schedule = await _schedule(request, session)
        await set_active(core, session.user, schedule, active, at=core.clock.now())
    except ScheddError as exc:
        return _failure(request, session, exc)
    raise web.HTTPSeeOther(f"/ui?notice={'activated' if active else 'deactivated'}")
