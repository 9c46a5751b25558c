"""A fifth job family, added as docs/architecture.md walks through it, runs without a change
to the runner, the store, the executors, the metrics or the views.

*Report exports* (wire name `export`), one schedule per org and report, are declared in this
module the way a family package declares them: a `Family` object, a request shape, a
service function and its routes (`Api`). Registering the family and its API is the only
thing done outside it. Then the whole path a user takes is exercised: create a schedule
through its own route, fire it with the test clock, see its run in the store, the metrics
and the operator view, run it now and deactivate it from there.
"""

from __future__ import annotations

import re
from typing import Annotated

import pytest
from aiohttp import web
from msgspec import Meta

from schedd import app as app_module
from schedd import metrics
from schedd.core import Core
from schedd.errors import ScheddError
from schedd.executors import Outcome, RunContext
from schedd.families.base import FAMILIES, ExecutorPool, RunFields, RunTarget
from schedd.families.common import check_org, timing
from schedd.http.common import CORE, Api, current_user, json_response, read_body, with_envelope
from schedd.ids import new_uid
from schedd.runner import RunRef
from schedd.shapes import Model, read
from schedd.store.accounts import User
from schedd.store.schedules import NewSchedule, Schedule
from tests.support.web import Operator

FAMILY = "export"
MANUAL = "ManualExport"


class ExportInput(Model, kw_only=True):
    """POST /exports/{orgId}: the report to export and when."""

    report: Annotated[str, Meta(pattern="^[a-z]{1,20}$")]
    cron: str


class Recorder:
    """The family's executor: records what each run was given."""

    def __init__(self) -> None:
        self.seen: list[RunContext] = []

    async def run(self, ctx: RunContext) -> Outcome:
        self.seen.append(ctx)
        return Outcome(ok=True, response_body=f"exported {ctx.values['report']}")


class ReportExports:
    name = FAMILY
    label = "report exports"
    scheduled_trigger = "TimeBasedExport"
    gated = False
    admin_only = False
    can_reactivate = True
    run_hint = "Export this report now"

    def __init__(self) -> None:
        self.recorder = Recorder()

    def overlap_key(self, schedule: Schedule) -> str:
        return f"{FAMILY}:{schedule.org_id}/{schedule.name}"

    def row_label(self, org_id: str | None, project_id: str | None, cube_id: str | None,
                  name: str | None) -> str:
        return f"export {org_id}/{name}"

    def target(self, run: RunFields) -> RunTarget:
        report = run.schedule.name if run.schedule is not None else ""
        return RunTarget(values={"org_id": run.org_id or "", "report": report or ""})

    def executor(self, pool: ExecutorPool, ctx: RunContext) -> Recorder:
        return self.recorder

    def timeout(self, pool: ExecutorPool, target: RunTarget) -> float:
        return 60.0

    async def start_run(self, core: Core, user: User, schedule: Schedule, *, at: float) -> RunRef:
        return await core.runner.run_now(FAMILY, self.overlap_key(schedule), MANUAL, at=at, schedule=schedule)

    async def set_active(self, core: Core, user: User, schedule: Schedule, active: bool, *, at: float) -> None:
        when = timing(core, schedule.cron, schedule.timezone, at=at) if active else None
        await core.store.schedules.set_active(schedule.id, active, when.next_fire_at if when else None,
                                              by=user.name, at=at)
        if active:
            found = await core.store.schedules.get(schedule.id)
            assert found is not None
            core.runner.arm(found)
        else:
            core.runner.disarm(schedule.id)


EXPORTS = ReportExports()


async def create_export(core: Core, user: User, org_id: str, body: dict[str, object], *, at: float) -> Schedule:
    """The family's service: check the org and the request, store the schedule, arm it."""
    await check_org(core, user, org_id)
    form = read(ExportInput, body)
    when = timing(core, form.cron, None, at=at, field="cron")
    schedule = await core.store.schedules.insert(NewSchedule(
        uid=new_uid(), family=FAMILY, org_id=org_id, name=form.report, cron=when.cron.expr,
        cron_normalized=when.cron.normalized, timezone=when.timezone, next_fire_at=when.next_fire_at,
        created_by=user.name, created_at=at))
    core.runner.arm(schedule)
    return schedule


routes = web.RouteTableDef()


def render_error(request: web.Request, status: int, message: str, exc: ScheddError) -> web.Response:
    field = getattr(exc, "field", None)
    return json_response({"error": message, "field": field}, status=status)


@routes.post("/exports/{orgId}")
@with_envelope(render_error)
async def create(request: web.Request) -> web.Response:
    core = request.app[CORE]
    schedule = await create_export(core, await current_user(request), request.match_info["orgId"],
                                   await read_body(request), at=core.clock.now())
    return json_response({"id": schedule.uid}, status=201)


EXPORTS_API = Api(routes, ("/exports",), render_error)


@pytest.fixture
async def api(make_api, monkeypatch):
    monkeypatch.setattr(FAMILIES, "_families", dict(FAMILIES._families))  # put back after the test
    FAMILIES.register(EXPORTS)
    metrics.declare_family(FAMILY)
    monkeypatch.setattr(app_module, "APIS", (*app_module.APIS, EXPORTS_API))
    EXPORTS.recorder.seen.clear()
    return await make_api()


async def done_runs(api) -> float:
    """The metric's count of the family's scheduled runs that ended done."""
    _, text = await api.call("GET", "/metrics", None)
    found = re.search(r'^schedd_runs_total\{family="export",kind="scheduled",state="done"\} (\S+)$', text, re.M)
    assert found, text
    return float(found.group(1))


async def test_a_fifth_family_runs_through_its_own_api_the_runner_the_store_and_the_views(api):
    runs_before = await done_runs(api)
    response, body = await api.call("POST", "/exports/acme", "alice", json={"report": "sales", "cron": "0 * * * *"})
    assert response.status == 201, body
    uid = body["id"]

    api.clock.advance(3600)
    await api.settle()
    [ctx] = EXPORTS.recorder.seen
    assert (ctx.family, ctx.trigger, dict(ctx.values), ctx.call) == (
        FAMILY, "TimeBasedExport", {"org_id": "acme", "report": "sales"}, None)
    schedule = await api.core.store.schedules.get_by_uid(FAMILY, uid)
    assert schedule is not None
    [run] = await api.core.store.runs.list_org(FAMILY, "acme", limit=10, offset=0, state=None)
    assert (run.family, run.trigger, run.state, run.overlap_key) == (FAMILY, "TimeBasedExport", "done",
                                                                      "export:acme/sales")

    assert await done_runs(api) == runs_before + 1

    browser = Operator(api)
    response, _ = await browser.login("alice")
    assert response.status == 303
    response, page = await browser.get("/ui?family=export")
    assert response.status == 200 and "export acme/sales" in page and 'title="Export this report now"' in page
    assert '<option value="export" selected>report exports</option>' in page
    csrf = await browser.csrf()
    response, _ = await browser.post(f"/ui/schedules/{schedule.id}/run", {"csrf": csrf})
    assert response.status == 303
    await api.settle()
    assert [c.trigger for c in EXPORTS.recorder.seen] == ["TimeBasedExport", MANUAL]
    response, _ = await browser.post(f"/ui/schedules/{schedule.id}/deactivate", {"csrf": csrf})
    assert response.status == 303
    api.clock.advance(3600)
    await api.settle()
    assert len(EXPORTS.recorder.seen) == 2  # deactivated: no more fires
    found = await api.core.store.schedules.get(schedule.id)
    assert found is not None and not found.active


async def test_a_fifth_familys_errors_answer_in_its_own_envelope(api):
    response, body = await api.call("POST", "/exports/acme", "alice", json={"report": "Sales!", "cron": "0 * * * *"})
    assert (response.status, body["field"]) == (400, "report")
    response, body = await api.call("POST", "/exports/other", "alice", json={"report": "sales", "cron": "0 * * * *"})
    assert response.status == 404 and set(body) == {"error", "field"}
    response, body = await api.call("GET", "/exports/acme/nothing-here", "alice")
    assert response.status == 404 and set(body) == {"error", "field"}
    assert await api.core.store.schedules.list_family(FAMILY) == []


@pytest.mark.parametrize("name", ["", "Export", "report-exports", "9lives", "x" * 41, "export "])
def test_a_family_name_the_database_would_refuse_is_refused_at_registration(name):
    class Misnamed(ReportExports):
        pass

    misnamed = Misnamed()
    misnamed.name = name  # type: ignore[misc]
    with pytest.raises(ValueError, match="must be 1-40 of a-z and _"):
        FAMILIES.__class__().register(misnamed)
