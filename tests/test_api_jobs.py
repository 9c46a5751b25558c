"""Service jobs through Volt MX's jobs API: job CRUD, run now, history strategies, retention, against a
real service."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from schedd.cron import load_zone
from schedd.executors import PAYLOAD_LIMIT
from schedd.store import runs as run_store
from schedd.timefmt import local_seconds
from tests.support.api import T0
from tests.support.jobs import DROP, JOBS, SAMPLE_JOB, job, services
from tests.support import sql

DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
DAY = 86400.0

SUMMARY_FIELDS = {
    "jobId", "jobName", "description", "cronExpression", "updatedUser", "updatedDate", "jobStatus",
    "jobHistoryTotal", "jobHistorySuccessCount", "jobHistoryFailCount", "jobHistorySucPercentage",
    "jobHistoryFailPercentage", "jobLastRunStatus", "jobNextRunTime",
}
DETAIL_FIELDS = {
    "jobId", "jobName", "jobFrequency", "jobServiceInfo", "jobStatus", "historyStrategy",
    "retentionPeriod", "jobFrequencyInfo",
}
RUN_FIELDS = {
    "jobRunId", "jobStartTime", "jobEndTime", "jobDuration", "executionFrequency",
    "executionStatus", "completeHistory",
}
@pytest.fixture
async def api(make_api, service):
    return await make_api(services=services(service, headers={"X-Service-Key": "k1"}))


async def create(api, body: dict[str, Any] | None = None, **changes: Any) -> int:
    response, answer = await api.call("POST", JOBS, json=body if body is not None else job(**changes))
    assert response.status == 200, answer
    return located(response, f"{JOBS}/")


def located(response, prefix: str) -> int:
    """The id at the end of the `Location` header, which must start with `prefix`."""
    location = response.headers["Location"]
    assert location.startswith(prefix), location
    return int(location.removeprefix(prefix))


async def run_now(api, job_id: int) -> dict[str, Any]:
    """The answer of run-now, with the run's id (from `Location`) under `jobRunId`."""
    response, answer = await api.call("POST", f"{JOBS}/run/{job_id}")
    assert response.status == 200, answer
    assert answer == {"status": "SUCCESS", "result": None, "message": None, "token": None}
    await api.settle()
    location = response.headers.get("Location")
    return {**answer, "jobRunId": located(response, f"/admin/api/jobs/history/{job_id}/") if location else None}


async def get(api, path: str) -> Any:
    response, answer = await api.call("GET", path)
    assert response.status == 200, answer
    return answer


async def summary(api, job_id: int) -> dict[str, Any]:
    (item,) = [j for j in await get(api, JOBS) if j["jobId"] == job_id]
    return item


async def history(api, job_id: int) -> list[dict[str, Any]]:
    return await get(api, f"/admin/api/jobs/history/{job_id}")


# -- create, read, list ----------------------------------------------------------------


async def test_create_answers_volt_mx_success_and_names_the_job_in_location(api):
    response, body = await api.call("POST", JOBS, json=job())
    assert response.status == 200
    assert body == {"status": "SUCCESS", "result": None, "message": None, "token": None}
    job_id = located(response, f"{JOBS}/")
    assert (await get(api, response.headers["Location"]))["jobId"] == job_id


async def test_get_returns_what_was_sent_in_volt_mxs_shape(api):
    job_id = await create(api)
    detail = await get(api, f"{JOBS}/{job_id}")
    assert DETAIL_FIELDS <= set(detail)
    assert detail["jobId"] == job_id
    assert detail["jobName"] == "testjob1"
    assert detail["jobFrequency"] == "19 0 * * * ? *"
    assert detail["jobServiceInfo"] == SAMPLE_JOB["jobServiceInfo"]
    assert detail["jobStatus"] == "Active"
    assert detail["historyStrategy"] == "OFF"
    assert detail["retentionPeriod"] == "30"
    assert detail["jobFrequencyInfo"] == SAMPLE_JOB["jobFrequencyInfo"]
    assert detail["description"] == "Job for testjob2"


async def test_volt_mxs_glued_path_serves_get_and_delete(api):
    job_id = await create(api)
    detail = await get(api, f"{JOBS}{job_id}")
    assert detail["jobId"] == job_id
    response, body = await api.call("DELETE", f"{JOBS}{job_id}")
    assert response.status == 200 and body["status"] == "SUCCESS"
    assert await get(api, JOBS) == []


async def test_list_has_volt_mxs_summary_fields_before_any_run(api):
    job_id = await create(api)
    (item,) = await get(api, JOBS)
    assert set(item) == SUMMARY_FIELDS
    assert item["jobId"] == job_id
    assert item["cronExpression"] == "19 0 * * * ? *"
    assert item["updatedUser"] == "admin"
    assert DATE.match(item["updatedDate"])
    assert item["updatedDate"] == "2026-01-01 00:00:00"
    assert item["jobStatus"] == "Active"
    assert item["jobHistoryTotal"] == 0
    assert item["jobHistorySuccessCount"] == item["jobHistoryFailCount"] == 0
    assert item["jobHistorySucPercentage"] == item["jobHistoryFailPercentage"] == 0
    assert item["jobLastRunStatus"] is None
    assert item["jobNextRunTime"] == "2026-01-01 00:00:19"


async def test_dates_are_in_the_configured_time_zone(make_api, service):
    api = await make_api(services=services(service), scheduler={"timezone": "Asia/Kolkata"})
    job_id = await create(api, jobFrequency="0 30 9 * * ?")
    item = await summary(api, job_id)
    assert item["updatedDate"] == "2026-01-01 05:30:00"
    assert item["jobNextRunTime"] == "2026-01-01 09:30:00"


async def test_frequency_info_alone_derives_the_cron(api):
    job_id = await create(api, jobFrequency=DROP, jobFrequencyInfo={
        "frequencyType": 3, "dayValues": [2, 6], "hourValues": [8], "minuteValues": [15]})
    detail = await get(api, f"{JOBS}/{job_id}")
    assert detail["jobFrequency"] == "0 15 8 ? * 2,6 *"
    assert detail["jobFrequencyInfo"]["dayValues"] == [2, 6]
    assert (await summary(api, job_id))["jobNextRunTime"] == "2026-01-02 08:15:00"  # a Friday


async def test_frequency_alone_derives_the_frequency_info_or_null(api):
    daily = await create(api, jobName="daily", jobFrequencyInfo=DROP, jobFrequency="0 30 4 * * ?")
    odd = await create(api, jobName="odd", jobFrequencyInfo=DROP, jobFrequency="0 0 12 ? * 6L")
    assert (await get(api, f"{JOBS}/{daily}"))["jobFrequencyInfo"] == {
        "frequencyType": 2, "hourValues": [4], "minuteValues": [30]}
    assert (await get(api, f"{JOBS}/{odd}"))["jobFrequencyInfo"] is None


async def test_defaults_for_status_strategy_and_retention(api):
    job_id = await create(api, jobStatus=DROP, historyStrategy=DROP, retentionPeriod=DROP)
    detail = await get(api, f"{JOBS}/{job_id}")
    assert (detail["jobStatus"], detail["historyStrategy"], detail["retentionPeriod"]) == ("Active", "MINIMAL", "30")


async def test_retention_period_may_be_an_integer(api):
    job_id = await create(api, retentionPeriod=7)
    assert (await get(api, f"{JOBS}/{job_id}"))["retentionPeriod"] == "7"


async def test_unknown_job_is_404_fail(api):
    for method, path in (("GET", f"{JOBS}/99"), ("GET", f"{JOBS}99"), ("DELETE", f"{JOBS}/99"),
                         ("POST", f"{JOBS}/run/99"), ("GET", "/admin/api/jobs/history/99"),
                         ("GET", "/admin/api/jobs/history/99/1")):
        response, body = await api.call(method, path)
        assert response.status == 404, (method, path)
        assert body["status"] == "FAIL" and body["token"] is None, (method, path)
        assert "not found" in body["message"]


async def test_a_job_id_that_is_not_a_number_is_400_naming_it(api):
    response, body = await api.call("GET", f"{JOBS}/abc")
    assert response.status == 400
    assert body["result"]["field"] == "jobId"


# -- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("GET", JOBS), ("POST", JOBS), ("PUT", JOBS), ("GET", f"{JOBS}/1"), ("GET", f"{JOBS}1"),
    ("DELETE", f"{JOBS}/1"), ("POST", f"{JOBS}/run/1"), ("GET", "/admin/api/jobs/history/1"),
    ("GET", "/admin/api/jobs/history/1/1"),
])
async def test_every_endpoint_needs_an_admin_token(api, method, path):
    for who in (None, "alice"):
        response, body = await api.call(method, path, who, json=job())
        assert response.status == 401, (who, body)
        assert body["status"] == "FAIL" and body["result"] is None, who
    assert await get(api, JOBS) == []


async def test_the_voltmx_header_carries_the_token(api):
    response, _ = await api.call("GET", JOBS, headers={"X-VoltMX-Authorization": api.tokens["admin"]}, who=None)
    assert response.status == 200


# -- validation --------------------------------------------------------------------------

SVC = "jobServiceInfo"
BAD_JOBS = [
    ("jobName missing", {"jobName": DROP}, "jobName"),
    ("jobName empty", {"jobName": ""}, "jobName"),
    ("jobName blank", {"jobName": "   "}, "jobName"),
    ("jobName too long", {"jobName": "x" * 101}, "jobName"),
    ("jobName not a string", {"jobName": 7}, "jobName"),
    ("jobName with a newline", {"jobName": "a\nb"}, "jobName"),
    ("description not a string", {"description": ["x"]}, "description"),
    ("jobFrequency out of range", {"jobFrequency": "61 0 * * * ? *"}, "jobFrequency"),
    ("jobFrequency unreadable", {"jobFrequency": "every hour"}, "jobFrequency"),
    ("jobFrequency day-of-week 8", {"jobFrequency": "0 0 4 ? * 8"}, "jobFrequency"),
    ("jobFrequency not a string", {"jobFrequency": 5}, "jobFrequency"),
    ("jobFrequency never fires again", {"jobFrequency": "0 0 0 1 1 ? 2020"}, "jobFrequency"),
    ("both frequencies missing", {"jobFrequency": DROP, "jobFrequencyInfo": DROP}, "jobFrequency"),
    ("frequency info not an object", {"jobFrequency": DROP, "jobFrequencyInfo": "hourly"}, "jobFrequencyInfo"),
    ("frequencyType unknown", {"jobFrequency": DROP, "jobFrequencyInfo__frequencyType": 9},
     "jobFrequencyInfo.frequencyType"),
    ("minuteValues 60", {"jobFrequency": DROP, "jobFrequencyInfo__minuteValues": [60]},
     "jobFrequencyInfo.minuteValues"),
    ("minuteValues empty", {"jobFrequency": DROP, "jobFrequencyInfo__minuteValues": []},
     "jobFrequencyInfo.minuteValues"),
    ("minuteValues missing", {"jobFrequency": DROP, "jobFrequencyInfo__minuteValues": DROP},
     "jobFrequencyInfo.minuteValues"),
    ("minuteValues not numbers", {"jobFrequency": DROP, "jobFrequencyInfo__minuteValues": ["5"]},
     "jobFrequencyInfo.minuteValues"),
    ("every 0 hours", {"jobFrequency": DROP, "jobFrequencyInfo__hourValues": [0]},
     "jobFrequencyInfo.hourValues"),
    ("daily hour 24", {"jobFrequency": DROP, "jobFrequencyInfo": {
        "frequencyType": 2, "hourValues": [24], "minuteValues": [0]}}, "jobFrequencyInfo.hourValues"),
    ("weekly day 8", {"jobFrequency": DROP, "jobFrequencyInfo": {
        "frequencyType": 3, "dayValues": [8], "hourValues": [1], "minuteValues": [0]}},
     "jobFrequencyInfo.dayValues"),
    ("weekly without days", {"jobFrequency": DROP, "jobFrequencyInfo": {
        "frequencyType": 3, "hourValues": [1], "minuteValues": [0]}}, "jobFrequencyInfo.dayValues"),
    ("monthly date 32", {"jobFrequency": DROP, "jobFrequencyInfo": {
        "frequencyType": 4, "dateValues": [32], "hourValues": [1], "minuteValues": [0]}},
     "jobFrequencyInfo.dateValues"),
    ("jobServiceInfo missing", {SVC: DROP}, SVC),
    ("jobServiceInfo not an object", {SVC: "jsonservices"}, SVC),
    ("serviceName unknown", {f"{SVC}__serviceName": "nosuch"}, f"{SVC}.serviceName"),
    ("serviceName missing", {f"{SVC}__serviceName": DROP}, f"{SVC}.serviceName"),
    ("serviceExecutionType wrong", {f"{SVC}__serviceExecutionType": "CLIENT"}, f"{SVC}.serviceExecutionType"),
    ("serviceExecutionType missing", {f"{SVC}__serviceExecutionType": DROP}, f"{SVC}.serviceExecutionType"),
    ("serviceType wrong", {f"{SVC}__serviceType": "fooSer"}, f"{SVC}.serviceType"),
    ("operationName dot-dot", {f"{SVC}__operationName": "../x"}, f"{SVC}.operationName"),
    ("operationName dot-dot inside", {f"{SVC}__operationName": "a/../../b"}, f"{SVC}.operationName"),
    ("operationName URL", {f"{SVC}__operationName": "http://evil/x"}, f"{SVC}.operationName"),
    ("operationName network path", {f"{SVC}__operationName": "//evil"}, f"{SVC}.operationName"),
    ("operationName userinfo", {f"{SVC}__operationName": "a@b"}, f"{SVC}.operationName"),
    ("operationName query", {f"{SVC}__operationName": "a?b=1"}, f"{SVC}.operationName"),
    ("operationName empty", {f"{SVC}__operationName": ""}, f"{SVC}.operationName"),
    ("operationName missing", {f"{SVC}__operationName": DROP}, f"{SVC}.operationName"),
    ("operationName too long", {f"{SVC}__operationName": "a" * 201}, f"{SVC}.operationName"),
    ("header value with CRLF", {f"{SVC}__requestheaderMap": {"X-A": "1\r\nX-Injected: 2"}},
     f"{SVC}.requestheaderMap"),
    ("header name with CRLF", {f"{SVC}__requestheaderMap": {"X-A\r\nX-B": "1"}}, f"{SVC}.requestheaderMap"),
    ("Host header", {f"{SVC}__requestheaderMap": {"Host": "evil.example"}}, f"{SVC}.requestheaderMap"),
    ("Connection header", {f"{SVC}__requestheaderMap": {"Connection": "close"}}, f"{SVC}.requestheaderMap"),
    ("Content-Length header", {f"{SVC}__requestheaderMap": {"content-length": "9"}}, f"{SVC}.requestheaderMap"),
    ("Transfer-Encoding header", {f"{SVC}__requestheaderMap": {"Transfer-Encoding": "chunked"}},
     f"{SVC}.requestheaderMap"),
    ("header value a number", {f"{SVC}__requestheaderMap": {"X-N": 5}}, f"{SVC}.requestheaderMap"),
    ("header value null", {f"{SVC}__requestheaderMap": {"X-N": None}}, f"{SVC}.requestheaderMap"),
    ("header map a string", {f"{SVC}__requestheaderMap": "X-A: 1"}, f"{SVC}.requestheaderMap"),
    ("postData not JSON", {f"{SVC}__postData": "{cityName:"}, f"{SVC}.postData"),
    ("postData nested too deeply", {f"{SVC}__postData": "[" * 100_000 + "]" * 100_000}, f"{SVC}.postData"),
    ("postData a number", {f"{SVC}__postData": 5}, f"{SVC}.postData"),
    ("version a list", {f"{SVC}__version": [1]}, f"{SVC}.version"),
    ("jobStatus unknown", {"jobStatus": "Paused"}, "jobStatus"),
    ("jobStatus wrong case", {"jobStatus": "active"}, "jobStatus"),
    ("historyStrategy unknown", {"historyStrategy": "ALL"}, "historyStrategy"),
    ("retentionPeriod 0", {"retentionPeriod": 0}, "retentionPeriod"),
    ("retentionPeriod '0'", {"retentionPeriod": "0"}, "retentionPeriod"),
    ("retentionPeriod 3651", {"retentionPeriod": 3651}, "retentionPeriod"),
    ("retentionPeriod '3651'", {"retentionPeriod": "3651"}, "retentionPeriod"),
    ("retentionPeriod 'x'", {"retentionPeriod": "x"}, "retentionPeriod"),
    ("retentionPeriod -1", {"retentionPeriod": "-1"}, "retentionPeriod"),
    ("retentionPeriod 1.5", {"retentionPeriod": 1.5}, "retentionPeriod"),
    ("retentionPeriod true", {"retentionPeriod": True}, "retentionPeriod"),
]


@pytest.mark.parametrize("changes,field", [(c, f) for _, c, f in BAD_JOBS], ids=[n for n, _, _ in BAD_JOBS])
async def test_each_bad_field_is_400_naming_it_and_creates_nothing(api, changes, field):
    response, body = await api.call("POST", JOBS, json=job(**changes))
    assert response.status == 400, body
    assert body["status"] == "FAIL" and body["token"] is None
    assert body["result"]["field"] == field, body
    assert body["result"]["reason"]
    assert field in body["message"]
    assert await get(api, JOBS) == []


@pytest.mark.parametrize("changes,field", [(c, f) for _, c, f in BAD_JOBS[::6]], ids=[n for n, _, _ in BAD_JOBS[::6]])
async def test_update_validates_as_create_does_and_changes_nothing(api, changes, field):
    job_id = await create(api)
    before = await get(api, f"{JOBS}/{job_id}")
    response, body = await api.call("PUT", JOBS, json={**job(**changes), "jobId": job_id})
    assert response.status == 400, body
    assert body["result"]["field"] == field
    assert await get(api, f"{JOBS}/{job_id}") == before


async def test_a_missing_field_says_it_is_required(api):
    response, body = await api.call("POST", JOBS, json=job(jobName=DROP))
    assert body["message"] == "jobName is required"
    assert body["result"] == {"field": "jobName", "reason": "is required"}


async def test_a_duplicate_job_name_is_400_naming_jobname(api):
    await create(api)
    response, body = await api.call("POST", JOBS, json=job())
    assert response.status == 400
    assert body["result"]["field"] == "jobName"
    assert "already exists" in body["result"]["reason"]
    assert len(await get(api, JOBS)) == 1


async def test_malformed_json_is_400_fail(api):
    response, body = await api.call("POST", JOBS, data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert body["status"] == "FAIL" and body["result"]["field"] == "body"


async def test_a_jobid_sent_on_create_is_ignored(api):
    first = await create(api, jobName="a", jobId=500)
    second = await create(api, jobName="b", jobId=first)
    assert first != 500 and second != first


async def test_frequency_info_beside_a_cron_is_kept_as_sent(api):
    info = {"frequencyType": 7, "custom": True}
    job_id = await create(api, jobFrequencyInfo=info)
    assert (await get(api, f"{JOBS}/{job_id}"))["jobFrequencyInfo"] == info


# -- the service call ----------------------------------------------------------------------


async def test_run_now_posts_postdata_to_the_operation_with_the_job_headers(api, service):
    job_id = await create(api, historyStrategy="FULL", jobServiceInfo__operationName="v1/weather.get",
                          jobServiceInfo__postData='{"cityName":"Paris"}',
                          jobServiceInfo__requestheaderMap={"X-Tenant": "t1", "X-Service-Key": "job"})
    answer = await run_now(api, job_id)
    assert answer["status"] == "SUCCESS"
    (call,) = service.calls
    assert call["method"] == "POST"
    assert call["path"] == "/api/v1/weather.get"
    assert call["body"] == '{"cityName":"Paris"}'
    assert call["headers"]["X-Tenant"] == "t1"
    assert call["headers"]["X-Service-Key"] == "job"  # the job's header wins over the service's
    assert call["headers"]["Content-Type"] == "application/json"
    (run,) = await history(api, job_id)
    assert run["jobRunId"] == answer["jobRunId"]
    assert run["executionStatus"] == "Success"


async def test_the_service_default_headers_are_sent(api, service):
    job_id = await create(api)
    await run_now(api, job_id)
    assert service.calls[0]["headers"]["X-Service-Key"] == "k1"


async def test_postdata_given_as_an_object_is_sent_as_json(api, service):
    job_id = await create(api, jobServiceInfo__postData={"cityName": "Oslo", "n": 1})
    await run_now(api, job_id)
    assert json.loads(service.calls[0]["body"]) == {"cityName": "Oslo", "n": 1}


async def test_a_500_from_the_service_fails_the_run_with_the_reason(api, service):
    service.status = 500
    job_id = await create(api, historyStrategy="MINIMAL")
    await run_now(api, job_id)
    (run,) = await history(api, job_id)
    assert run["executionStatus"] == "Fail"
    detail = await get(api, f"/admin/api/jobs/history/{job_id}/{run['jobRunId']}")
    assert detail["errorMessage"] == "HTTP 500 Internal Server Error"
    item = await summary(api, job_id)
    assert item["jobLastRunStatus"] == "Fail"
    assert (item["jobHistorySuccessCount"], item["jobHistoryFailCount"]) == (0, 1)


async def test_a_service_that_times_out_fails_the_run(make_api, service):
    api = await make_api(services=services(service, timeout=0.2))
    service.hold = True  # the service never answers on its own: only the timeout ends the run
    job_id = await create(api, historyStrategy="MINIMAL")
    await run_now(api, job_id)
    assert (len(service.calls), service.answered) == (1, 0)
    (run,) = await history(api, job_id)
    assert run["executionStatus"] == "Fail"
    detail = await get(api, f"/admin/api/jobs/history/{job_id}/{run['jobRunId']}")
    assert detail["errorMessage"] == "timeout after 0.2 s"


async def test_run_now_while_a_run_is_in_progress_is_409(make_api, service):
    api = await make_api(services=services(service, timeout=5))
    service.hold = True
    job_id = await create(api)
    response, _ = await api.call("POST", f"{JOBS}/run/{job_id}")
    assert response.status == 200
    response, body = await api.call("POST", f"{JOBS}/run/{job_id}")
    assert response.status == 409
    assert body["status"] == "FAIL"
    assert (await summary(api, job_id))["jobLastRunStatus"] == "Running"
    service.released.set()
    await api.settle()
    assert len(service.calls) == 1


async def test_run_now_works_for_an_inactive_job(api, service):
    job_id = await create(api, jobStatus="Inactive", historyStrategy="MINIMAL")
    await run_now(api, job_id)
    assert len(service.calls) == 1
    (run,) = await history(api, job_id)
    assert run["executionStatus"] == "Success"


# -- history strategies -------------------------------------------------------------------


async def run_twice(api, service, strategy: str) -> int:
    """One successful and one failed run of a new job under `strategy`."""
    job_id = await create(api, historyStrategy=strategy)
    await run_now(api, job_id)
    service.status = 502
    await run_now(api, job_id)
    return job_id


async def test_off_keeps_no_history_but_counts_every_run(api, service):
    job_id = await run_twice(api, service, "OFF")
    assert await history(api, job_id) == []
    item = await summary(api, job_id)
    assert item["jobHistoryTotal"] == 0
    assert (item["jobHistorySuccessCount"], item["jobHistoryFailCount"]) == (1, 1)
    assert (item["jobHistorySucPercentage"], item["jobHistoryFailPercentage"]) == (50, 50)
    assert item["jobLastRunStatus"] == "Fail"


async def test_error_keeps_only_failed_runs(api, service):
    job_id = await run_twice(api, service, "ERROR")
    (run,) = await history(api, job_id)
    assert run["executionStatus"] == "Fail"
    assert run["completeHistory"] is False
    item = await summary(api, job_id)
    assert (item["jobHistoryTotal"], item["jobHistorySuccessCount"], item["jobHistoryFailCount"]) == (1, 1, 1)


async def test_minimal_keeps_every_run_without_payloads(api, service):
    job_id = await run_twice(api, service, "MINIMAL")
    runs = await history(api, job_id)
    assert [r["executionStatus"] for r in runs] == ["Fail", "Success"]  # newest first
    for run in runs:
        assert set(run) == RUN_FIELDS
        assert run["completeHistory"] is False
        assert run["executionFrequency"] == "19 0 * * * ? *"
        assert DATE.match(run["jobStartTime"]) and DATE.match(run["jobEndTime"])
        assert isinstance(run["jobDuration"], int)
        detail = await get(api, f"/admin/api/jobs/history/{job_id}/{run['jobRunId']}")
        assert detail["requestPayload"] is None and detail["responseBody"] is None
    failed = await get(api, f"/admin/api/jobs/history/{job_id}/{runs[0]['jobRunId']}")
    assert failed["errorMessage"] == "HTTP 502 Bad Gateway"
    assert (await summary(api, job_id))["jobHistoryTotal"] == 2


async def test_full_keeps_payloads_readable_at_the_run_detail(api, service):
    service.body = '{"temp": 21}'
    job_id = await create(api, historyStrategy="FULL", jobServiceInfo__postData='{"cityName":"Rome"}')
    await run_now(api, job_id)
    (run,) = await history(api, job_id)
    assert run["completeHistory"] is True
    detail = await get(api, f"/admin/api/jobs/history/{job_id}/{run['jobRunId']}")
    assert RUN_FIELDS <= set(detail)
    assert detail["requestPayload"] == '{"cityName":"Rome"}'
    assert detail["responseStatus"] == 200
    assert detail["responseBody"] == '{"temp": 21}'
    assert detail["errorMessage"] is None and detail["skipReason"] is None and detail["windowId"] is None
    assert detail["triggerType"] == "RunNow"


async def test_full_cuts_payloads_at_64_kib_with_a_mark(api, service):
    big = json.dumps({"blob": "x" * 100_000})
    service.body = "y" * 100_000
    job_id = await create(api, historyStrategy="FULL", jobServiceInfo__postData=big)
    await run_now(api, job_id)
    assert service.calls[0]["body"] == big  # the service gets it whole
    (run,) = await history(api, job_id)
    detail = await get(api, f"/admin/api/jobs/history/{job_id}/{run['jobRunId']}")
    request, response = detail["requestPayload"], detail["responseBody"]
    assert request == big[:PAYLOAD_LIMIT] + f"…[truncated {len(big) - PAYLOAD_LIMIT} bytes]"
    assert response == "y" * PAYLOAD_LIMIT + f"…[truncated {100_000 - PAYLOAD_LIMIT} bytes]"


async def test_percentages_are_rounded_integers(api, service):
    job_id = await create(api)
    for status in (200, 200, 500):
        service.status = status
        await run_now(api, job_id)
    item = await summary(api, job_id)
    assert (item["jobHistorySucPercentage"], item["jobHistoryFailPercentage"]) == (67, 33)


# -- retention -----------------------------------------------------------------------------


async def test_retention_deletes_old_runs_and_keeps_the_counters(api, service):
    job_id = await create(api, historyStrategy="MINIMAL", retentionPeriod="7")
    await run_now(api, job_id)
    schedule = (await sql.fetchone(api.core.store, "SELECT id FROM schedules WHERE id = ?", (job_id,)))
    assert schedule is not None
    now = api.clock.now()

    for age_days in (30, 8, 6):
        at = now - age_days * DAY
        await api.core.store.runs.insert(run_store.NewRun(
            uid=f"old-{age_days}", family="service", overlap_key=f"service:{job_id}",
            trigger="Scheduled", state="done", created_at=at, schedule_id=job_id,
            cron="19 0 * * * ? *", started_at=at, ended_at=at + 1))
    assert (await summary(api, job_id))["jobHistoryTotal"] == 4
    deleted = await api.core.retention.sweep(now)
    assert deleted == 2
    runs = await history(api, job_id)
    assert len(runs) == 2
    item = await summary(api, job_id)
    assert item["jobHistoryTotal"] == 2
    assert item["jobHistorySuccessCount"] == 1  # counters are the job's, not the history's


# -- scheduling: update, deactivate, delete ------------------------------------------------


async def test_inactive_stops_firing_at_once_and_active_resumes(api, service):
    job_id = await create(api, jobFrequency="0 */5 * * * ?", historyStrategy="MINIMAL")
    api.clock.set(T0 + 300)
    await api.settle()
    assert len(service.calls) == 1

    response, _ = await api.call("PUT", JOBS, json=job(jobId=job_id, jobFrequency="0 */5 * * * ?",
                                                       historyStrategy="MINIMAL", jobStatus="Inactive"))
    assert response.status == 200
    item = await summary(api, job_id)
    assert item["jobStatus"] == "Inactive" and item["jobNextRunTime"] is None
    api.clock.set(T0 + 900)
    await api.settle()
    assert len(service.calls) == 1

    await api.call("PUT", JOBS, json=job(jobId=job_id, jobFrequency="0 */5 * * * ?",
                                         historyStrategy="MINIMAL", jobStatus="Active"))
    assert (await summary(api, job_id))["jobNextRunTime"] == "2026-01-01 00:20:00"
    api.clock.set(T0 + 1200)
    await api.settle()
    assert len(service.calls) == 2
    assert [r["executionStatus"] for r in await history(api, job_id)] == ["Success", "Success"]


async def test_put_changes_the_schedule_and_keeps_history_and_counters(api, service):
    job_id = await create(api, historyStrategy="MINIMAL")
    await run_now(api, job_id)
    changed = job(jobId=job_id, jobName="renamed", jobFrequency="0 0 6 * * ?", description="new",
                  jobFrequencyInfo=DROP, historyStrategy="FULL", retentionPeriod=90,
                  jobServiceInfo__operationName="other")
    response, body = await api.call("PUT", JOBS, json=changed)
    assert response.status == 200
    assert body == {"status": "SUCCESS", "result": None, "message": None, "token": None}
    detail = await get(api, f"{JOBS}/{job_id}")
    assert detail["jobName"] == "renamed"
    assert detail["jobFrequency"] == "0 0 6 * * ?"
    assert detail["jobFrequencyInfo"] == {"frequencyType": 2, "hourValues": [6], "minuteValues": [0]}
    assert detail["historyStrategy"] == "FULL" and detail["retentionPeriod"] == "90"
    assert detail["jobNextRunTime"] == "2026-01-01 06:00:00"
    item = await summary(api, job_id)
    assert (item["jobHistoryTotal"], item["jobHistorySuccessCount"]) == (1, 1)
    api.clock.set(T0 + 3600)
    await api.settle()
    assert len(service.calls) == 1  # the old hourly schedule no longer fires
    api.clock.set(T0 + 6 * 3600)
    await api.settle()
    assert service.calls[-1]["path"] == "/api/other"


async def test_put_needs_a_known_job_id(api):
    response, body = await api.call("PUT", JOBS, json=job(jobId=DROP))
    assert response.status == 400 and body["result"]["field"] == "jobId"
    response, body = await api.call("PUT", JOBS, json=job(jobId=42))
    assert response.status == 404 and body["status"] == "FAIL"


async def test_put_may_not_take_another_jobs_name(api):
    await create(api, jobName="first")
    second = await create(api, jobName="second")
    response, body = await api.call("PUT", JOBS, json=job(jobId=second, jobName="first"))
    assert response.status == 400 and body["result"]["field"] == "jobName"


async def test_delete_removes_the_job_and_its_history(api, service):
    job_id = await create(api, historyStrategy="MINIMAL", jobFrequency="0 */5 * * * ?")
    await run_now(api, job_id)
    response, body = await api.call("DELETE", f"{JOBS}/{job_id}")
    assert response.status == 200
    assert body == {"status": "SUCCESS", "result": None, "message": None, "token": None}
    assert await get(api, JOBS) == []
    assert (await sql.fetchone(api.core.store, "SELECT count(*) FROM runs"))[0] == 0
    response, _ = await api.call("GET", f"/admin/api/jobs/history/{job_id}")
    assert response.status == 404
    api.clock.set(T0 + 300)
    await api.settle()
    assert len(service.calls) == 1
    response, _ = await api.call("DELETE", f"{JOBS}/{job_id}")
    assert response.status == 404


async def test_a_deleted_jobs_name_can_be_used_again(api):
    job_id = await create(api)
    await api.call("DELETE", f"{JOBS}/{job_id}")
    again = await create(api)
    assert (await get(api, f"{JOBS}/{again}"))["jobName"] == SAMPLE_JOB["jobName"]


# -- history paging ----------------------------------------------------------------------


async def test_history_is_newest_first_with_limit_and_offset(api, service):
    job_id = await create(api, historyStrategy="MINIMAL")
    for _ in range(3):
        await run_now(api, job_id)
    runs = await history(api, job_id)
    ids = [r["jobRunId"] for r in runs]
    assert ids == sorted(ids, reverse=True) and len(ids) == 3
    page = await get(api, f"/admin/api/jobs/history/{job_id}?limit=1&offset=1")
    assert [r["jobRunId"] for r in page] == ids[1:2]
    response, body = await api.call("GET", f"/admin/api/jobs/history/{job_id}?limit=0")
    assert response.status == 400 and body["result"]["field"] == "limit"


async def test_a_run_of_another_job_is_not_found(api, service):
    first = await create(api, jobName="a", historyStrategy="MINIMAL")
    second = await create(api, jobName="b", historyStrategy="MINIMAL")
    await run_now(api, first)
    (run,) = await history(api, first)
    response, body = await api.call("GET", f"/admin/api/jobs/history/{second}/{run['jobRunId']}")
    assert response.status == 404 and body["status"] == "FAIL"


ZONES = ("UTC", "America/New_York", "Europe/Berlin", "Europe/London", "Australia/Lord_Howe", "Pacific/Chatham",
         "Asia/Kathmandu", "America/St_Johns", "Africa/Casablanca", "Africa/Monrovia", "Asia/Tehran")


@given(st.sampled_from(ZONES), st.floats(min_value=0, max_value=2**33, allow_nan=False, allow_infinity=False))
@example("Europe/Berlin", 1_774_746_000.0)  # 2026-03-29 01:00 UTC: clocks jump from 02:00 to 03:00
@example("Europe/Berlin", 1_774_745_999.9999996)  # rounds up onto the jump
@example("Europe/Berlin", 1_792_890_000.0)  # 2026-10-25 01:00 UTC: 03:00 back to 02:00
@example("America/New_York", 1_793_599_199.5)
@example("Australia/Lord_Howe", 1_775_316_600.0)  # a 30-minute shift
@example("Africa/Monrovia", 63_593_069.5)  # 1972-01-07: -00:44:30 to UTC, in the middle of a quarter hour
@example("Africa/Monrovia", 63_593_070.0)
def test_local_times_are_formatted_exactly_as_datetime_formats_them(zone, at):
    tz = load_zone(zone)
    assert local_seconds(at, tz) == datetime.fromtimestamp(at, tz).strftime("%Y-%m-%d %H:%M:%S")
