"""Every list is bounded: complete lists are streamed byte for byte as before, and every
paging parameter has a default and a maximum, checked with a 400 naming it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp
import pytest

from schedd.families.cube_builds import routes as aggregate_api
from schedd.families.service_jobs import routes as jobs_api
from schedd.families.org_maintenance import routes as maintenance_api
from schedd.api import openapi
from schedd.http import stream
from schedd.shapes import to_builtins
from schedd.families.maintenance_windows.ical import calendar
from schedd.families.maintenance_windows.service import Access
from schedd.families.service_jobs import service as jobs
from schedd.store import runs as run_store
from schedd.store import schedules as schedule_store
from schedd.store import windows as window_store
from schedd.store.accounts import User
from schedd.store.runs import NewRun
from schedd.timefmt import rfc3339
from tests.support.api import T0
from tests.support.jobs import SAMPLE_JOB

ROWS = 300
SCHEDULES = "/aggregates/maintenance/scheduler/jobs/orgId/acme"
CUBE = "/org/acme/project/sales/cube/orders/aggregates-creation"
SERVICES = {"jsonservices": {"base_url": "http://127.0.0.1:9/api", "id": 10, "scope": "platform"}}
SCOPES = {"platform": {"id": 1}, **{f"s{n}": {"id": 100 + n} for n in range(7)}}


def old_serializer(value: Any) -> bytes:
    """How every list was answered before it was streamed: one json.dumps of the whole answer."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@pytest.fixture
def small_batches(monkeypatch):
    """Reads of 7 rows and pieces of 5: a few hundred rows cross many batch and piece edges."""
    monkeypatch.setattr(schedule_store, "BATCH", 7)
    monkeypatch.setattr(window_store, "BATCH", 7)
    monkeypatch.setattr(stream, "ITEMS_PER_PIECE", 5)


@pytest.fixture
async def api(make_api):
    return await make_api(scopes=SCOPES, services=SERVICES)


async def add_schedules(api, family: str, count: int, **fields: Any) -> None:
    for n in range(count):
        await api.core.store.schedules.insert(schedule_store.NewSchedule(
            uid=str(uuid.uuid4()), family=family, cron="0 0 4 ? * * *", cron_normalized="0 0 4 ? * * *",
            timezone="Europe/Berlin" if n % 2 else "UTC", next_fire_at=T0 + 3600 + n, created_at=T0 + n,
            created_by="ålice", active=n % 5 != 0, **fields))


async def add_run(api, new: NewRun) -> None:
    await api.core.store.runs.insert(new)


async def test_the_maintenance_schedule_list_streams_exactly_the_json_it_answered_whole(api, small_batches):
    await add_schedules(api, "maintenance", ROWS, org_id="acme", full_build=False)
    await add_schedules(api, "maintenance", 3, org_id="other", full_build=False)
    response = await api.client.get(SCHEDULES, headers=api.auth())
    body = await response.read()
    assert response.status == 200 and response.headers["Transfer-Encoding"] == "chunked"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["X-Request-Id"]
    found = await api.core.store.schedules.list_scope("maintenance", "acme")
    assert len(found) == ROWS
    assert body == old_serializer({
        "status": {"code": 200, "message": "success"}, "responseCreated": rfc3339(api.clock.now()),
        "response": [to_builtins(maintenance_api.schedule_object(s)) for s in found]})
    for active in ("true", "false"):
        response = await api.client.get(f"{SCHEDULES}?active={active}", headers=api.auth())
        shown = json.loads(await response.read())["response"]
        assert [s["active"] for s in shown] == [active == "true"] * len(shown)
        assert len(shown) == (240 if active == "true" else 60)


async def test_the_cube_schedule_list_streams_exactly_the_json_it_answered_whole(api, small_batches):
    await add_schedules(api, "aggregate", ROWS, org_id="acme", project_id="sales", cube_id="orders",
                        full_build=True)
    await add_schedules(api, "aggregate", 3, org_id="acme", project_id="sales", cube_id="other", full_build=True)
    response = await api.client.get(CUBE + "/scheduler", headers=api.auth())
    found = await api.core.store.schedules.list_scope("aggregate", "acme", project_id="sales",
                                            cube_id="orders", active=True)
    assert len(found) == 240
    assert await response.read() == old_serializer(
        {"response": [to_builtins(aggregate_api.schedule_object(s)) for s in found],
         "status": {"i18n_message": "response.ok", "message": "OK"}})


async def test_the_job_list_streams_exactly_the_json_it_answered_whole(api, small_batches):
    admin = User(1, "admin", None, "-", True, T0)
    made = []
    for n in range(ROWS):
        body = {**SAMPLE_JOB, "jobName": f"job {n} ü", "jobStatus": "Active" if n % 3 else "Inactive"}
        made.append(await jobs.create_job(api.core, admin, body, at=T0 + n))
    for n, schedule in enumerate(made[:20]):  # some jobs have kept runs
        for k in range(n % 4):
            await add_run(api, NewRun(
                uid=str(uuid.uuid4()), family="service", overlap_key=schedule.overlap_key, trigger="RunNow",
                state="done", created_at=T0 + k, schedule_id=schedule.id, started_at=T0 + k, ended_at=T0 + k + 1))
    response = await api.client.get("/admin/api/jobs/job", headers=api.auth())
    found = await api.core.store.schedules.list_family("service")
    expected = [to_builtins(jobs_api.job_summary(api.core, jobs.Job(s, await api.core.store.runs.count_schedule(s.id))))
                for s in found]
    assert await response.read() == old_serializer(expected)
    assert sum(job["jobHistoryTotal"] for job in expected) == sum(n % 4 for n in range(20))


async def test_the_calendar_feed_streams_exactly_the_calendar_it_answered_whole(api, small_batches):
    alice = Access(User(2, "alice", None, "-", True, T0))
    for n in range(60):
        day = 2 + n % 20
        await api.core.windows.create(alice, {
            "scope": "1", "service": "10", "name": f"Upgrade {n}, step; \\ {n % 3}",
            "description": "line one\nline two" if n % 2 else "", "service_status": "down",
            "scheduled_start_date": f"2026-01-{day:02d}T0{n % 9}:00", "scheduled_end_date": f"2026-01-{day:02d}T10:00",
        }, at=T0)
    await api.core.windows.create(alice, {  # ended already: not in the feed
        "scope": "1", "service": "10", "name": "Past", "service_status": "up",
        "scheduled_start_date": "2025-12-01T00:00", "scheduled_end_date": "2025-12-01T01:00"}, at=T0)
    response = await api.client.get("/api/maintenance/calendar")
    assert response.headers["Transfer-Encoding"] == "chunked"
    windows, _ = await api.core.windows.list({"end_after": "2026-01-01T00:00"}, page=1, per_page=100,
                                             internal=False)
    windows.sort(key=lambda w: (w.scheduled_start_date, w.id))
    assert len(windows) == 60
    expected = calendar(windows, at=api.clock.now(), host="127.0.0.1")
    assert (await response.read()).decode("utf-8") == expected


async def test_head_of_a_streamed_list_has_the_headers_and_no_body(api):
    await add_schedules(api, "maintenance", 3, org_id="acme", full_build=False)
    response = await api.client.head(SCHEDULES, headers=api.auth())
    assert response.status == 200 and response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert await response.read() == b""
    response, body = await api.call("GET", SCHEDULES)  # the connection is still in step
    assert response.status == 200 and len(body["response"]) == 3


async def test_streamed_lists_answer_a_page_when_one_is_asked_for(api, small_batches):
    await add_schedules(api, "maintenance", 40, org_id="acme", full_build=False)
    found = await api.core.store.schedules.list_scope("maintenance", "acme")
    response = await api.client.get(f"{SCHEDULES}?limit=10&offset=5", headers=api.auth())
    shown = json.loads(await response.read())["response"]
    assert [s["job_id"] for s in shown] == [s.uid for s in found[5:15]]
    response = await api.client.get(f"{SCHEDULES}?offset=38", headers=api.auth())
    assert [s["job_id"] for s in json.loads(await response.read())["response"]] == [s.uid for s in found[38:]]
    response = await api.client.get(f"{SCHEDULES}?offset=1000", headers=api.auth())
    assert json.loads(await response.read())["response"] == []


async def test_a_list_of_nothing_is_an_empty_array_and_an_unknown_org_still_404(api):
    response, body = await api.call("GET", SCHEDULES)
    assert response.status == 200 and body["response"] == []
    response, body = await api.call("GET", "/aggregates/maintenance/scheduler/jobs/orgId/nowhere")
    assert response.status == 404 and body["status"]["code"] == 404
    response, body = await api.call("GET", SCHEDULES, "bob")  # bob may not see acme
    assert response.status == 404
    response, body = await api.call("GET", "/admin/api/jobs/job")
    assert response.status == 200 and body == []


PAGED = [
    # (path, maximum limit, how the family's envelope names the field)
    (SCHEDULES, 10_000, lambda body: body["status"]["message"]),
    ("/aggregates/maintenance/orgId/acme/history", 1000, lambda body: body["status"]["message"]),
    ("/api/1.0/aggregates/maintenance/orgId/acme/history", 1000, lambda body: body["status"]["message"]),
    (CUBE + "/scheduler", 10_000, lambda body: body["status"]["message"]),
    ("/org/acme/aggregates-creation/builds/history", 1000, lambda body: body["status"]["message"]),
    ("/admin/api/jobs/job", 10_000, lambda body: f"{body['result']['field']}: {body['message']}"),
]


@pytest.mark.parametrize(("path", "maximum", "message"), PAGED)
@pytest.mark.parametrize("query", ["limit=0", "limit=x", "limit=-3", "limit=MAX+1", "offset=-1", "offset=x",
                                   "offset=1000000001"])
async def test_paging_parameters_out_of_range_are_400_naming_the_field(api, path, maximum, message, query):
    query = query.replace("MAX+1", str(maximum + 1))
    response, body = await api.call("GET", f"{path}?{query}")
    assert response.status == 400, body
    assert message(body).startswith(query.split("=")[0] + ":")
    response, body = await api.call("GET", f"{path}?limit={maximum}&offset=0")
    assert response.status == 200, body


async def test_job_and_cube_schedule_histories_page_with_their_limits(api):
    admin = User(1, "admin", None, "-", True, T0)
    job = await jobs.create_job(api.core, admin, SAMPLE_JOB, at=T0)
    for query, status in (("limit=1000", 200), ("limit=1001", 400), ("offset=-1", 400)):
        response, body = await api.call("GET", f"/admin/api/jobs/history/{job.id}?{query}")
        assert response.status == status, (query, body)
    await add_schedules(api, "aggregate", 2, org_id="acme", project_id="sales", cube_id="orders", full_build=True)
    schedule = [s for s in await api.core.store.schedules.list_family("aggregate") if s.active][0]
    for query, status in (("limit=1000", 200), ("limit=1001", 400), ("limit=0", 400), ("offset=5", 200)):
        response, body = await api.call("GET", f"{CUBE}/scheduler/history/jobId/{schedule.uid}?{query}")
        assert response.status == status, (query, body)
        if status == 400:
            assert body["status"]["message"].startswith(query.split("=")[0])


async def test_prod_manager_lists_page_alike_and_per_page_0_answers_only_the_headers(api):
    alice = Access(User(2, "alice", None, "-", True, T0))
    for n in range(7):
        await api.core.windows.create(alice, {
            "scope": "1", "service": "10", "name": f"w{n}", "service_status": "up",
            "scheduled_start_date": "2026-02-01T00:00", "scheduled_end_date": "2026-02-01T01:00"}, at=T0)
    for path, total in (("/api/maintenance", 7), ("/api/scope", len(SCOPES)), ("/api/service", 1)):
        response, body = await api.call("GET", f"{path}?per_page=0", None)
        assert response.status == 200 and body == {"items": []}, path
        assert response.headers["X-Total"] == str(total) and response.headers["X-Per-Page"] == "0"
        assert response.headers["X-Total-Pages"] == "0" and "X-Next-Page" not in response.headers
        response, body = await api.call("GET", f"{path}?per_page=3&page=2", None)
        assert response.status == 200, path
        assert len(body["items"]) == min(3, max(0, total - 3))
        assert response.headers["X-Page"] == "2" and response.headers["X-Total"] == str(total)
        assert response.headers["X-Total-Pages"] == str(max(1, -(-total // 3)))
        assert response.headers["X-Prev-Page"] == "1"
        assert ("X-Next-Page" in response.headers) == (total > 6)
        for bad in ("per_page=51", "page=0", "per_page=x"):
            response, body = await api.call("GET", f"{path}?{bad}", None)
            assert response.status == 400 and bad.split("=")[0] in body["reasons"], (path, bad)
    response, body = await api.call("GET", "/api/scope?per_page=50", None)
    assert [item["id"] for item in body["items"]] == sorted(s["id"] for s in SCOPES.values())


def test_openapi_states_every_paging_parameter_with_its_default_and_maximum():
    document = openapi.document()
    paged = {}
    for path, methods in document["paths"].items():
        for _method, op in methods.items():
            for param in op.get("parameters", []):
                if param["name"] in ("limit", "offset", "page", "per_page"):
                    assert "maximum" in param["schema"], (path, param)
                    assert "default" in param["schema"] or param["name"] == "limit", (path, param)
                    assert param.get("description"), (path, param)
                    paged.setdefault(op["operationId"], set()).add(param["name"])
    lists = {"listMaintenanceSchedules", "maintenanceHistory", "listCubeSchedules", "buildsHistory",
             "cubeScheduleHistory", "listJobs", "jobHistory"}
    for op_id in lists:
        assert paged.get(op_id) == {"limit", "offset"} and paged.get(op_id + "V1", {"limit", "offset"}) == {
            "limit", "offset"}, op_id
    for op_id in ("listMaintenances", "listScopes", "listServices"):
        assert paged.get(op_id) == {"page", "per_page"}, op_id


async def test_the_openapi_document_is_encoded_once(api):
    first = await (await api.client.get("/api/openapi.json")).read()
    second = await (await api.client.get("/api/openapi.json")).read()
    assert first == second == old_serializer(openapi.document())
    assert openapi.document_bytes() is openapi.document_bytes()


async def test_a_failure_after_the_first_rows_cuts_the_answer_short_and_is_logged(api, small_batches, monkeypatch,
                                                                                  caplog):
    await add_schedules(api, "maintenance", 30, org_id="acme", full_build=False)
    shown = maintenance_api.schedule_object
    calls = []

    def failing(schedule):
        calls.append(schedule)
        if len(calls) == 12:
            raise RuntimeError("disk went away")
        return shown(schedule)

    monkeypatch.setattr(maintenance_api, "schedule_object", failing)
    response = await api.client.get(SCHEDULES, headers=api.auth())
    assert response.status == 200  # the status line went out with the first rows
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()  # never a complete-looking body
    assert "action=stream_failed" in caplog.text and "disk went away" in caplog.text
    response, body = await api.call("GET", "/healthz", None)
    assert response.status == 200
