"""Every route of the compatible APIs answers the shape of the sample answer its vendor documents.

AtScale's aggregate maintenance and aggregate creation APIs and Volt MX's admin-console
jobs each document a sample answer per route; the shapes below are written from them.
For each route a real request goes through HTTP and the answer is compared: every
documented field is present, with the documented type or null-ness, and the status code
is the documented one. Field order does not matter. Fields schedd adds to a documented
object are listed per route (`added`), so an extra field cannot appear unnoticed either.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from aiohttp import web

STR, INT, BOOL, NULL = "string", "integer", "boolean", "null"
ANY_OBJECT = "object"


def nullable(shape: Any) -> tuple[Any, str]:
    return (shape, NULL)


def check(value: Any, shape: Any, path: str = "$") -> set[str]:
    """Assert that `value` has `shape`; return the paths of fields `shape` does not name.

    A shape is a type name, a tuple of alternatives, a dict of fields, or a one-item list
    (every item has that shape; the list must not be empty so that the items are checked).
    """
    if isinstance(shape, tuple):
        errors = []
        for option in shape:
            try:
                return check(value, option, path)
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{path}: {value!r} matches none of {shape}: {errors}")
    if isinstance(shape, dict):
        assert isinstance(value, dict), f"{path}: expected an object, got {value!r}"
        extra = {f"{path}.{key}" for key in value if key not in shape}
        for key, sub in shape.items():
            assert key in value, f"{path}: {key!r} is missing from {sorted(value)}"
            extra |= check(value[key], sub, f"{path}.{key}")
        return extra
    if isinstance(shape, list):
        assert isinstance(value, list) and value, f"{path}: expected a non-empty array, got {value!r}"
        extra = set()
        for n, item in enumerate(value):
            extra |= check(item, shape[0], f"{path}[{n}]")
        return {re_index(p) for p in extra}
    kinds = {
        STR: lambda v: isinstance(v, str),
        INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
        BOOL: lambda v: isinstance(v, bool),
        NULL: lambda v: v is None,
        ANY_OBJECT: lambda v: isinstance(v, dict),
    }
    assert kinds[shape](value), f"{path}: expected {shape}, got {value!r}"
    return set()


def re_index(path: str) -> str:
    import re

    return re.sub(r"\[\d+\]", "[]", path)


def conforms(answer: Any, shape: Any, added: set[str] = frozenset()) -> None:
    """`answer` has `shape`, and the fields it has beyond it are exactly `added`."""
    assert check(answer, shape) == set(added)


# -- AtScale aggregate maintenance ----------------------------------------------------------------

ENGINE = {"status": {"code": INT, "message": STR}, "responseCreated": STR}
M_SCHEDULE = {
    "job_id": STR, "organization_id": STR, "full_build": BOOL, "time_expression": STR, "created_by_user": STR,
    "created_at": STR, "latest_execution": {"id": STR, "jobId": STR, "executedAt": STR}, "path": STR,
}
M_SCHEDULE_ADDED = {"active", "timezone", "next_execution"}
M_RUN = {
    "id": STR, "organizationId": STR, "triggerType": STR, "creationTime": STR, "startTime": STR, "endTime": STR,
    "status": STR, "errorInformation": ANY_OBJECT,
}
SCHEDULES = "/aggregates/maintenance/scheduler/jobs/orgId/acme"


async def maintenance_schedule(api) -> str:
    response, body = await api.call("POST", SCHEDULES, "alice",
                                    json={"time_expression": "0 0 0 ? * MON", "scheduler_type": "time-based"})
    assert response.status == 200, body
    return body["response"]["job_id"]


async def test_maintenance_list_schedules(api):
    await maintenance_schedule(api)
    response, body = await api.call("GET", SCHEDULES, "alice")
    assert response.status == 200
    conforms(body, {**ENGINE, "response": [M_SCHEDULE]}, {f"$.response[].{k}" for k in M_SCHEDULE_ADDED})
    assert body["status"] == {"code": 200, "message": "success"}


async def test_maintenance_create_schedule(api):
    response, body = await api.call("POST", SCHEDULES, "alice",
                                    json={"time_expression": "0 0 0 ? * MON", "scheduler_type": "time-based"})
    assert response.status == 200
    shape = {**ENGINE, "response": {"job_id": STR, "time_expression": STR, "scheduler_type": STR,
                                    "created_at": STR, "created_by_user": STR}}
    conforms(body, shape, {"$.response.timezone", "$.response.next_execution"})
    assert body["status"] == {"code": 200, "message": "Time-based schedule successfully created."}
    assert body["response"]["scheduler_type"] == "time-based/maintenance"


async def test_maintenance_delete_schedule(api):
    job = await maintenance_schedule(api)
    response, body = await api.call(
        "DELETE", f"/api/1.0/aggregates/maintenance-schedule/jobs/orgId/acme/jobId/{job}", "alice")
    assert response.status == 200
    conforms(body, {**ENGINE, "response": STR})
    assert body["status"] == {"code": 200, "message": "success"}
    assert body["response"] == f"successfully deleted job with Id: [{job}]"


async def test_maintenance_run_immediately(api):
    response, body = await api.call("POST", "/api/1.0/aggregates/maintenance/orgId/acme/run-immediately", "alice")
    assert response.status == 200
    conforms(body, {**ENGINE, "response": NULL})
    assert body["status"] == {"code": 200, "message": "Maintenance successfully started for acme"}
    await api.settle()


async def test_maintenance_current_job(make_api):
    api = await make_api(executors={"maintenance": {"command": [sys.executable, "-c", "import time; time.sleep(30)"]}},
                         scheduler={"shutdown_grace": "0.1s"})
    await api.call("POST", "/api/1.0/aggregates/maintenance/orgId/acme/run-immediately", "alice")
    response, body = await api.call("GET", "/aggregates/maintenance/orgId/acme", "alice")
    assert response.status == 200
    conforms(body, {**ENGINE, "response": M_RUN})
    assert body["status"] == {"code": 0, "message": "200 OK"}
    assert body["response"]["status"] == "inprogress" and body["response"]["errorInformation"] == {}


async def test_maintenance_history(api):
    await api.call("POST", "/api/1.0/aggregates/maintenance/orgId/acme/run-immediately", "alice")
    await api.settle()
    response, body = await api.call("GET", "/aggregates/maintenance/orgId/acme/history", "alice")
    assert response.status == 200
    conforms(body, {**ENGINE, "response": {"data": [M_RUN], "limit": INT, "offset": INT, "force_pull": BOOL}})
    assert body["status"] == {"code": 0, "message": "200 OK"}
    assert body["response"]["data"][0]["status"] == "done"


# -- AtScale aggregate creation ---------------------------------------------------------------------

DESIGN = {"status": {"i18n_message": STR, "message": STR}}
CUBE = "/org/acme/project/sales/cube/orders/aggregates-creation"
A_SCHEDULE = {
    "created_at": STR, "created_by_user": STR, "cube_id": STR, "full_build": BOOL, "job_id": STR,
    "latest_execution": {"executedAt": STR, "id": STR, "jobId": STR}, "organization_Id": STR, "path": STR,
    "project_id": STR, "time_expression": STR,
}
A_SCHEDULE_ADDED = {"timezone", "active", "next_execution"}


async def cube_schedule(api) -> str:
    response, body = await api.call("POST", CUBE + "/scheduler", "alice",
                                    json={"time_expression": "0 25 06 ? * *", "path": "aggregate/create"})
    assert response.status == 200, body
    return body["response"]["job_id"]


async def test_builds_history(api):
    response, _ = await api.call("POST", CUBE + "/execute", "alice", json={"full_build": False})
    assert response.status == 200
    await api.settle()
    response, body = await api.call("GET", "/org/acme/aggregates-creation/builds/history", "alice")
    assert response.status == 200
    build = {"batchType": STR, "createDate": STR, "cubeId": STR, "endTime": STR, "estimateTime": INT, "id": STR,
             "organizationId": STR, "projectId": STR, "startTime": STR, "status": STR}
    conforms(body, {**DESIGN, "response": {"data": [build], "force_pull": BOOL, "limit": INT, "offset": INT}},
             {"$.response.data[].errorInformation", "$.response.data[].triggerType"})
    assert body["status"] == {"i18n_message": "response.ok", "message": "OK"}


async def test_cube_list_schedules(api):
    await cube_schedule(api)
    response, body = await api.call("GET", CUBE + "/scheduler", "alice")
    assert response.status == 200
    conforms(body, {**DESIGN, "response": [A_SCHEDULE]}, {f"$.response[].{k}" for k in A_SCHEDULE_ADDED})


async def test_cube_create_schedule(api):
    response, body = await api.call("POST", CUBE + "/scheduler", "alice",
                                    json={"time_expression": "0 25 06 ? * *", "path": "aggregate/create"})
    assert response.status == 200
    conforms(body, {**DESIGN, "response": A_SCHEDULE}, {f"$.response.{k}" for k in A_SCHEDULE_ADDED})
    assert body["response"]["path"] == "aggregate/create"


async def test_cube_execute(api):
    response, body = await api.call("POST", CUBE + "/execute", "alice", json={"full_build": True})
    assert response.status == 200
    conforms(body, {**DESIGN, "response": {"success": BOOL}}, {"$.response.id"})
    assert body["response"]["success"] is True
    await api.settle()


async def test_cube_delete_schedule(api):
    job = await cube_schedule(api)
    response, body = await api.call("DELETE", f"{CUBE}/scheduler/jobId/{job}", "alice")
    assert response.status == 200
    conforms(body, {**DESIGN, "response": STR})
    assert body["response"] == f"successfully deleted jobId: [{job}]"


async def test_cube_schedule_history(api):
    job = await cube_schedule(api)
    api.clock.advance(7 * 3600)  # past 06:25
    await api.settle()
    response, body = await api.call("GET", f"{CUBE}/scheduler/history/jobId/{job}", "alice")
    assert response.status == 200
    conforms(body, {**DESIGN, "response": {"history": [{"executedAt": STR, "id": STR, "jobId": STR}],
                                           "job_id": STR}})


# -- Volt MX admin-console jobs -------------------------------------------------------------------

JOBS = "/admin/api/jobs"
VOLT_OK = {"status": "SUCCESS", "result": None, "message": None, "token": None}
JOB = {
    "jobName": "testjob1", "jobFrequency": "19 0 * * * ? *", "description": "Job for testjob1",
    "jobServiceInfo": {"version": "1.0", "serviceType": "intSer", "serviceName": "jsonservices", "objectName": "",
                       "operationName": "metadatajson", "requestheaderMap": {},
                       "serviceExecutionType": "SERVER_URL", "postData": "{}", "operationSecurityLevel": "public"},
    "jobStatus": "Active", "historyStrategy": "FULL", "retentionPeriod": "30",
}
SUMMARY = {
    "jobId": INT, "jobName": STR, "description": nullable(STR), "cronExpression": nullable(STR),
    "updatedUser": STR, "updatedDate": STR, "jobStatus": STR, "jobHistoryTotal": INT, "jobHistorySuccessCount": INT,
    "jobHistoryFailCount": INT, "jobHistorySucPercentage": INT, "jobHistoryFailPercentage": INT,
    "jobLastRunStatus": nullable(STR), "jobNextRunTime": nullable(STR),
}
DETAIL = {
    "jobId": INT, "jobName": STR, "jobFrequency": STR,
    "jobServiceInfo": {"version": STR, "serviceType": STR, "serviceName": STR, "objectName": STR,
                       "operationName": STR, "requestheaderMap": ANY_OBJECT, "serviceExecutionType": STR,
                       "postData": STR, "operationSecurityLevel": STR},
    "jobStatus": STR, "historyStrategy": STR, "retentionPeriod": STR,
    "jobFrequencyInfo": {"frequencyType": INT, "minuteValues": [INT]},
}
RUN = {"jobRunId": INT, "jobStartTime": STR, "jobEndTime": STR, "jobDuration": INT, "executionFrequency": STR,
       "executionStatus": STR, "completeHistory": BOOL}


@pytest.fixture
async def service(aiohttp_server):
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/services/{tail:.*}", answer)
    return await aiohttp_server(app)


@pytest.fixture
async def jobs_api(make_api, service):
    return await make_api(services={"jsonservices": {"base_url": str(service.make_url("/services"))}})


async def create_job(api) -> int:
    response, body = await api.call("POST", JOBS + "/job", "admin", json=JOB)
    assert response.status == 200, body
    return int(response.headers["Location"].rsplit("/", 1)[1])


async def test_jobs_list(jobs_api):
    await create_job(jobs_api)
    response, body = await jobs_api.call("GET", JOBS + "/job", "admin")
    assert response.status == 200
    conforms(body, [SUMMARY])


async def test_jobs_get_one_in_both_spellings(jobs_api):
    job = await create_job(jobs_api)
    for path in (f"{JOBS}/job/{job}", f"{JOBS}/job{job}"):
        response, body = await jobs_api.call("GET", path, "admin")
        assert response.status == 200
        conforms(body, DETAIL, {"$.description", "$.jobNextRunTime", "$.updatedUser", "$.updatedDate"})
        assert body["jobFrequencyInfo"] == {"frequencyType": 1, "minuteValues": [0]}


async def test_jobs_create_answers_null_result_and_a_location(jobs_api):
    response, body = await jobs_api.call("POST", JOBS + "/job", "admin", json=JOB)
    assert response.status == 200
    assert body == VOLT_OK
    response, body = await jobs_api.call("GET", response.headers["Location"], "admin")
    assert response.status == 200 and body["jobName"] == "testjob1"


async def test_jobs_update(jobs_api):
    job = await create_job(jobs_api)
    response, body = await jobs_api.call("PUT", JOBS + "/job", "admin",
                                         json={**JOB, "jobId": job, "description": "Job for testjob 1"})
    assert response.status == 200
    assert body == VOLT_OK


async def test_jobs_delete_in_both_spellings(jobs_api):
    for spelling in ("{base}/job/{job}", "{base}/job{job}"):
        job = await create_job(jobs_api)
        response, body = await jobs_api.call("DELETE", spelling.format(base=JOBS, job=job), "admin")
        assert response.status == 200
        assert body == VOLT_OK


async def test_jobs_run_now_answers_null_result_and_locates_the_run(jobs_api):
    """The documented answer exactly; the run is found where `Location` points."""
    job = await create_job(jobs_api)
    response, body = await jobs_api.call("POST", f"{JOBS}/job/run/{job}", "admin")
    assert response.status == 200
    assert body == VOLT_OK
    location = response.headers["Location"]
    assert location.startswith(f"{JOBS}/history/{job}/")
    await jobs_api.settle()
    response, run = await jobs_api.call("GET", location, "admin")
    assert response.status == 200
    assert run["jobRunId"] == int(location.rsplit("/", 1)[1]) and run["executionStatus"] == "Success"


async def test_jobs_history(jobs_api):
    job = await create_job(jobs_api)
    await jobs_api.call("POST", f"{JOBS}/job/run/{job}", "admin")
    await jobs_api.settle()
    response, body = await jobs_api.call("GET", f"{JOBS}/history/{job}", "admin")
    assert response.status == 200
    conforms(body, [RUN])


async def test_jobs_errors_are_the_fail_envelope(jobs_api):
    response, body = await jobs_api.call("GET", f"{JOBS}/job/999", "admin")
    assert response.status == 404
    conforms(body, {"status": STR, "result": nullable(ANY_OBJECT), "message": STR, "token": NULL})
    assert body["status"] == "FAIL"


async def test_login(jobs_api):
    response, body = await jobs_api.call("POST", "/authService/accounts/login", None,
                                         data={"userid": "alice", "password": "correct horse battery"})
    assert response.status == 200
    conforms(body, {
        "profile": {"userid": STR, "email": STR, "firstname": STR, "lastname": STR,
                    "user_attributes": {"user_id": STR},
                    "profile_attributes": {"firstname": STR, "userid": STR, "email": STR, "lastname": STR}},
        "claims_token": {"value": STR, "exp": INT, "integrity_check_required": BOOL},
        "refresh_token": STR,
    })


# -- the checker itself ----------------------------------------------------------------------------


@pytest.mark.parametrize("value, shape", [
    ({"status": "SUCCESS", "result": {"jobRunId": 3}, "message": None, "token": None},
     {"status": STR, "result": NULL, "message": NULL, "token": NULL}),
    ({"a": 1}, {"a": STR}),
    ({"a": True}, {"a": INT}),
    ({}, {"a": nullable(STR)}),
    ([], [STR]),
    ({"data": [{"x": 1}, {"x": None}]}, {"data": [{"x": INT}]}),
])
def test_the_checker_catches_type_null_and_presence_differences(value, shape):
    with pytest.raises(AssertionError):
        check(value, shape)


def test_the_checker_reports_added_fields_by_path():
    assert check({"a": 1, "b": [{"c": 1, "d": 2}]}, {"a": INT, "b": [{"c": INT}]}) == {"$.b[].d"}
