"""Cube builds through AtScale's aggregate creation API: schedules, builds, histories, the first-build
maintenance trigger."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest

from schedd.executors import Outcome
from tests.support.api import T0
from tests.support import sql

PROJECT = "7051865d-74a8-4aad-4904-ebf88d56880c"
CUBE = "dea39a20-9920-4a79-51f3-1ff3a399fbd3"
BASE = "/org/{org}/project/{project}/cube/{cube}/aggregates-creation"
SCHEDULER = BASE + "/scheduler"
EXECUTE = BASE + "/execute"
DELETE = BASE + "/scheduler/jobId/{job}"
SCHEDULE_HISTORY = BASE + "/scheduler/history/jobId/{job}"
BUILDS = "/org/{org}/aggregates-creation/builds/history"
OK = {"i18n_message": "response.ok", "message": "OK"}
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SAMPLE_BODY = {"time_expression": "0 25 06 ? * *", "path": "aggregate/create"}


def url(template: str, org="acme", project=PROJECT, cube=CUBE, **kw) -> str:
    return template.format(org=org, project=project, cube=cube, **kw)


async def count(api, table: str) -> int:
    return (await sql.fetchone(api.core.store, f"SELECT count(*) FROM {table}"))[0]


async def test_create_with_atscales_sample_body_answers_atscales_object(api):
    response, body = await api.call("POST", url(SCHEDULER), "alice", json=SAMPLE_BODY)
    assert response.status == 200, body
    assert body["status"] == OK
    created = body["response"]
    assert created["organization_Id"] == "acme"
    assert (created["project_id"], created["cube_id"]) == (PROJECT, CUBE)
    assert created["full_build"] is True  # AtScale's default
    assert created["path"] == "aggregate/create"
    assert created["time_expression"] == "0 25 06 ? * *"
    assert created["created_by_user"] == "alice"
    assert RFC3339.match(created["created_at"])
    assert created["latest_execution"] == {"executedAt": "0001-01-01T00:00:00Z", "id": "", "jobId": ""}
    assert created["next_execution"] == "2026-01-01T06:25:00.000000Z"


async def test_list_shows_the_cubes_schedules_only(api):
    await api.call("POST", url(SCHEDULER), "alice", json=SAMPLE_BODY)
    await api.call("POST", url(SCHEDULER, cube="other-cube"), "alice", json=SAMPLE_BODY)
    response, body = await api.call("GET", url(SCHEDULER), "alice")
    assert response.status == 200 and body["status"] == OK
    assert [s["cube_id"] for s in body["response"]] == [CUBE]
    response, body = await api.call("GET", "/api/1.0" + url(SCHEDULER), "alice")
    assert response.status == 200 and len(body["response"]) == 1


async def test_delete_answers_atscales_message_and_the_schedule_stops_firing(api):
    _, created = await api.call("POST", url(SCHEDULER), "alice",
                                json={**SAMPLE_BODY, "time_expression": "0 * * * * ?"})
    job = created["response"]["job_id"]
    response, body = await api.call("DELETE", url(DELETE, job=job), "alice")
    assert response.status == 200
    assert body == {"response": f"successfully deleted jobId: [{job}]", "status": OK}
    _, listed = await api.call("GET", url(SCHEDULER), "alice")
    assert listed["response"] == []
    api.clock.set(T0 + 3600)
    await api.settle()
    assert await count(api, "runs") == 0
    response, body = await api.call("DELETE", url(DELETE, job=job), "alice")
    assert response.status == 404
    assert body["status"] == {"i18n_message": "response.not_found", "message": f"schedule {job} not found"}


async def test_a_scheduled_fire_builds_the_cube_and_shows_in_both_histories(api):
    _, created = await api.call("POST", url(SCHEDULER), "alice",
                                json={**SAMPLE_BODY, "time_expression": "0 * * * * ?"})
    job = created["response"]["job_id"]
    api.clock.set(T0 + 60)
    await api.settle()
    _, body = await api.call("GET", url(SCHEDULE_HISTORY, job=job), "alice")
    assert body["status"] == OK
    (entry,) = body["response"]["history"]
    assert body["response"]["job_id"] == job
    assert entry["jobId"] == job and RFC3339.match(entry["executedAt"])
    _, builds = await api.call("GET", url(BUILDS), "alice")
    page = builds["response"]
    assert (page["limit"], page["offset"], page["force_pull"]) == (10, 0, False)
    build = next(b for b in page["data"] if b["id"] == entry["id"])
    assert build["batchType"] == "full-build"
    assert (build["status"], build["triggerType"]) == ("done", "TimeBasedBuild")
    assert (build["cubeId"], build["projectId"], build["organizationId"]) == (CUBE, PROJECT, "acme")
    assert build["errorInformation"] == {}
    _, listed = await api.call("GET", url(SCHEDULER), "alice")
    assert listed["response"][0]["latest_execution"]["id"] == entry["id"]


async def test_execute_starts_an_incremental_build_by_default(api):
    response, body = await api.call("POST", url(EXECUTE), "alice")
    assert response.status == 200
    assert body["status"] == OK
    assert body["response"]["success"] is True
    build_id = body["response"]["id"]
    await api.settle()
    _, builds = await api.call("GET", url(BUILDS), "alice")
    build = next(b for b in builds["response"]["data"] if b["id"] == build_id)
    assert build["batchType"] == "materialize-pending-instances"
    assert build["triggerType"] == "ManualBuild"
    _, body = await api.call("POST", url(EXECUTE), "alice", json={"full_build": True})
    await api.settle()
    _, builds = await api.call("GET", url(BUILDS), "alice")
    build = next(b for b in builds["response"]["data"] if b["id"] == body["response"]["id"])
    assert build["batchType"] == "full-build"


async def test_the_build_command_gets_the_cube_as_whole_arguments(make_api, tmp_path):
    out = tmp_path / "argv.txt"
    script = f"import sys, json; open({str(out)!r}, 'w').write(json.dumps(sys.argv[1:]))"
    api = await make_api(executors={"aggregate": {"command": [
        sys.executable, "-c", script, "{org_id}", "{project_id}", "{cube_id}", "{full_build}", "{run_id}"]}})
    _, body = await api.call("POST", url(EXECUTE), "alice", json={"full_build": True})
    await api.settle()
    import json
    assert json.loads(out.read_text()) == ["acme", PROJECT, CUBE, "true", body["response"]["id"]]


async def test_one_build_per_cube_at_a_time(api, monkeypatch):
    release = asyncio.Event()

    class Slow:
        async def run(self, ctx):
            await release.wait()
            return Outcome(ok=True)

    monkeypatch.setattr(api.core.executors, "get", lambda ctx: Slow())
    first, _ = await api.call("POST", url(EXECUTE), "alice")
    second, body = await api.call("POST", url(EXECUTE), "alice")
    other_cube, _ = await api.call("POST", url(EXECUTE, cube="cube-2"), "alice")
    assert (first.status, second.status, other_cube.status) == (200, 409, 200)
    assert body["status"]["i18n_message"] == "response.conflict" and body["response"] is None
    # A scheduled fire while the build runs follows the overlap policy (forbid) and is recorded.
    _, created = await api.call("POST", url(SCHEDULER), "alice",
                                json={**SAMPLE_BODY, "time_expression": "0 * * * * ?"})
    api.clock.set(T0 + 60)
    await api.core.engine.run_until_idle()
    _, builds = await api.call("GET", url(BUILDS) + "?status=skipped", "alice")
    (skipped,) = builds["response"]["data"]
    assert skipped["triggerType"] == "TimeBasedBuild"
    assert "in progress" in skipped["errorInformation"]["message"]
    release.set()
    await api.settle()


async def test_first_successful_build_of_a_cube_starts_org_maintenance_once(api):
    for _ in range(2):
        await api.call("POST", url(EXECUTE), "alice")
        await api.settle()
    _, history = await api.call("GET", f"/aggregates/maintenance/orgId/acme/history", "alice")
    triggers = [r["triggerType"] for r in history["response"]["data"]]
    assert triggers == ["CubeUpdateMaintenance(FirstTimeCubeProcessed)"]
    await api.call("POST", url(EXECUTE, cube="second-cube"), "alice")
    await api.settle()
    _, history = await api.call("GET", f"/aggregates/maintenance/orgId/acme/history", "alice")
    assert len(history["response"]["data"]) == 2


async def test_first_build_trigger_can_be_turned_off(make_api):
    api = await make_api(executors={"maintenance": {"after_first_build": False}})
    await api.call("POST", url(EXECUTE), "alice")
    await api.settle()
    _, history = await api.call("GET", f"/aggregates/maintenance/orgId/acme/history", "alice")
    assert history["response"]["data"] == []


async def test_a_failed_build_does_not_count_as_the_first_build(make_api):
    api = await make_api(executors={"aggregate": {"command": [sys.executable, "-c", "raise SystemExit(2)"]}})
    await api.call("POST", url(EXECUTE), "alice")
    await api.settle()
    _, history = await api.call("GET", f"/aggregates/maintenance/orgId/acme/history", "alice")
    assert history["response"]["data"] == []
    _, builds = await api.call("GET", url(BUILDS), "alice")
    assert builds["response"]["data"][0]["errorInformation"]["exitCode"] == 2


async def test_estimate_time_is_the_median_of_the_cubes_successful_builds(api):
    from schedd.store import runs as run_store

    for i, seconds in enumerate([10, 30, 20, 1000]):
        await api.core.store.runs.insert(run_store.NewRun(
            uid=f"b{i}", family="aggregate", overlap_key="k", trigger="ManualBuild",
            state="done" if seconds != 1000 else "failed", created_at=T0 - 100 + i,
            org_id="acme", project_id=PROJECT, cube_id=CUBE, started_at=T0, ended_at=T0 + seconds))
    _, builds = await api.call("GET", url(BUILDS), "alice")
    assert {b["estimateTime"] for b in builds["response"]["data"]} == {20}


async def test_builds_history_filters_and_pages(api):
    for cube in ("c1", "c2", "c2"):
        await api.call("POST", url(EXECUTE, cube=cube), "alice")
        await api.settle()
    _, body = await api.call("GET", url(BUILDS) + "?cubeId=c2", "alice")
    assert [b["cubeId"] for b in body["response"]["data"]] == ["c2", "c2"]
    _, body = await api.call("GET", url(BUILDS) + f"?projectId={PROJECT}&limit=1&offset=1", "alice")
    assert len(body["response"]["data"]) == 1 and body["response"]["limit"] == 1
    _, body = await api.call("GET", url(BUILDS) + "?projectId=nope", "alice")
    assert body["response"]["data"] == []


BAD_CREATES = [
    ({"time_expression": "0 25 06 ? * 8", "path": "aggregate/create"}, "time_expression"),
    ({"time_expression": "0 25 06 1 * MON", "path": "aggregate/create"}, "time_expression"),
    ({"path": "aggregate/create"}, "time_expression"),
    ({"time_expression": "0 25 06 ? * *", "path": "aggregate/delete"}, "path"),
    ({"time_expression": "0 25 06 ? * *"}, "path"),
    ({**SAMPLE_BODY, "full_build": "yes"}, "full_build"),
    ({**SAMPLE_BODY, "timezone": "Nowhere/City"}, "timezone"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CREATES, ids=[str(b) for b, _ in BAD_CREATES])
async def test_bad_create_is_400_naming_the_field_and_changes_nothing(api, body, field):
    response, answer = await api.call("POST", url(SCHEDULER), "alice", json=body)
    assert response.status == 400, answer
    assert answer["status"]["i18n_message"] == "response.bad_request"
    assert answer["status"]["message"].startswith(f"{field}:")
    assert answer["response"] is None
    assert await count(api, "schedules") == 0


@pytest.mark.parametrize(("param", "project", "cube"), [
    ("projectId", "-bad", CUBE), ("cubeId", PROJECT, "bad cube"), ("cubeId", PROJECT, "x" * 129)])
async def test_malformed_project_or_cube_id_is_400_naming_it(api, param, project, cube):
    response, body = await api.call("POST", url(SCHEDULER, project=project, cube=cube), "alice", json=SAMPLE_BODY)
    assert response.status == 400
    assert body["status"]["message"].startswith(f"{param}:")
    response, body = await api.call("GET", url(BUILDS) + f"?{param}=-bad", "alice")
    assert response.status == 400 and body["status"]["message"].startswith(f"{param}:")


@pytest.mark.parametrize(("method", "template"), [
    ("GET", SCHEDULER), ("POST", SCHEDULER), ("POST", EXECUTE), ("DELETE", DELETE),
    ("GET", SCHEDULE_HISTORY), ("GET", BUILDS)])
async def test_other_orgs_are_404_and_no_token_is_401(api, method, template):
    job = "00000000-0000-4000-8000-000000000000"
    response, body = await api.call(method, url(template, org="other", job=job), "alice", json=SAMPLE_BODY)
    assert response.status == 404
    assert body["status"]["i18n_message"] == "response.not_found"
    response, body = await api.call(method, url(template, job=job), None, json=SAMPLE_BODY)
    assert response.status == 401
    assert body["status"]["i18n_message"] == "response.unauthorized"
    assert await count(api, "schedules") == 0 and await count(api, "runs") == 0
