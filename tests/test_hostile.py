"""Hostile input through HTTP: each gets a clear 4xx, changes nothing, and the daemon keeps serving."""

from __future__ import annotations

import json

import pytest

from schedd import grants
from tests.support.api import T0
from tests.support import sql

SCOPES = {"platform": {"id": 1}}
SERVICES = {"jsonservices": {"base_url": "http://127.0.0.1:9/api", "id": 10, "scope": "platform"}}
WINDOW = {"scope": 1, "service": 10, "name": "w", "service_status": "down",
          "scheduled_start_date": "2026-02-01T10:00", "scheduled_end_date": "2026-02-01T11:00"}

CREATE_ROUTES = [
    ("/aggregates/maintenance/scheduler/jobs/orgId/acme",
     {"time_expression": "0 0 4 ? * * *", "scheduler_type": "time-based"}),
    ("/org/acme/project/p1/cube/c1/aggregates-creation/scheduler",
     {"time_expression": "0 0 4 ? * * *", "path": "aggregate/create"}),
    ("/api/maintenance/create", WINDOW),
]
TABLES = ("schedules", "runs", "windows", "window_events")


@pytest.fixture
async def api(make_api):
    api = await make_api(scopes=SCOPES, services=SERVICES)
    for scope in SCOPES.values():  # alice maintains every scope: she writes the windows here
        await grants.grant(api.core.store, "alice", grants.Scope(scope["id"], None), at=T0)
    return api


async def snapshot(api) -> dict[str, int]:
    return {t: (await sql.fetchone(api.core.store, f"SELECT count(*) FROM {t}"))[0] for t in TABLES}


async def still_serving(api) -> None:
    response, _ = await api.call("GET", "/healthz", None)
    assert response.status == 200
    response, _ = await api.call("GET", "/aggregates/maintenance/orgId/acme/history", "alice")
    assert response.status == 200


def _cases():
    big = "x" * 200_000
    for path, good in CREATE_ROUTES:
        for field in good:
            for label, value in [("huge string", big), ("array", [1] * 10_000), ("object", {"a": {"b": 1}}),
                                 ("float", 1.5), ("null", None), ("bool", True), ("sql", "'; DROP TABLE runs;--"),
                                 ("nul byte", "a\x00b"), ("crlf", "a\r\nb"), ("huge number string", "9" * 5000),
                                 ("superscript digit", "\u00b2"), ("huge int", 10**30)]:
                yield pytest.param(path, {**good, field: value}, id=f"{path.split('/')[1]}-{field}-{label}")


@pytest.mark.parametrize(("path", "body"), list(_cases()))
async def test_wrong_types_and_absurd_values_in_every_field(api, path, body):
    before = await snapshot(api)
    response, answer = await api.call("POST", path, "alice", json=body, allow_redirects=False)
    # Either refused with a 4xx, or (a free-text field) stored as text: never a 500.
    assert response.status < 500, answer
    if response.status >= 400:
        assert await snapshot(api) == before
    await still_serving(api)


@pytest.mark.parametrize(("path", "_"), CREATE_ROUTES)
async def test_body_over_the_limit_is_413(api, path, _):
    before = await snapshot(api)
    response, _ = await api.call("POST", path, "alice", data=b"{" + b" " * (1 << 20) + b"}",
                                 headers={"Content-Type": "application/json"}, allow_redirects=False)
    assert response.status == 413
    assert await snapshot(api) == before
    await still_serving(api)


@pytest.mark.parametrize("raw", [b"\xff\xfe\xfd", b'{"a": "\xc3\x28"}', b"[" * 50_000 + b"]" * 50_000,
                                 b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"nul\x00l", b"{\"a\": 1e999999}"])
@pytest.mark.parametrize(("path", "_"), CREATE_ROUTES)
async def test_invalid_utf8_and_deeply_nested_json_are_400(api, path, _, raw):
    before = await snapshot(api)
    response, _ = await api.call("POST", path, "alice", data=raw, headers={"Content-Type": "application/json"},
                                 allow_redirects=False)
    assert 400 <= response.status < 500
    assert await snapshot(api) == before
    await still_serving(api)


TRAVERSAL = ["..", "..%2F..%2Fetc%2Fpasswd", "a%2Fb", "%2e%2e", "a%00b", "acme%0d%0aX-Evil:1",
             "'%20OR%201=1--", "%E2%80%AE", "x" * 300]


@pytest.mark.parametrize("segment", TRAVERSAL)
@pytest.mark.parametrize("template", [
    "/aggregates/maintenance/scheduler/jobs/orgId/{s}",
    "/aggregates/maintenance/orgId/{s}/history",
    "/org/{s}/aggregates-creation/builds/history",
    "/org/acme/project/{s}/cube/c1/aggregates-creation/scheduler",
    "/org/acme/project/p1/cube/{s}/aggregates-creation/scheduler",
    "/org/acme/project/p1/cube/c1/aggregates-creation/scheduler/history/jobId/{s}",
    "/api/maintenance/{s}",
])
async def test_path_traversal_and_encoded_slashes_in_path_parameters(api, template, segment):
    before = await snapshot(api)
    for method in ("GET", "POST", "DELETE"):
        response, _ = await api.call(method, template.format(s=segment), "alice", json={},
                                     allow_redirects=False)
        assert 400 <= response.status < 500, (method, response.status)
    assert await snapshot(api) == before
    await still_serving(api)


@pytest.mark.parametrize("expression", [
    "* * * * * * *" + " *" * 5000,
    "0 " + ",".join(str(i % 60) for i in range(5000)) + " * * * ?",
    "0 0 0 ? * 1#6", "0 0 0 L-40 * ?", "0 0 0 ? * 9L", "0 0 0 32W * ?", "0 0 0 * * ? 2100-2200",
    "0 0 0 ? * * 1960", "99 * * * * ?", "* * * * * ? * *", "", " ", "\u0660 * * * * ?",
])
async def test_absurd_cron_is_400(api, expression):
    before = await snapshot(api)
    response, body = await api.call("POST", CREATE_ROUTES[0][0], "alice",
                                    json={"time_expression": expression, "scheduler_type": "time-based"})
    assert response.status in (400, 413), body
    if response.status == 400:
        assert body["status"]["message"].startswith("time_expression:")
        assert len(body["status"]["message"]) < 300
    assert await snapshot(api) == before


@pytest.mark.parametrize("zone", ["Mars/Base", "../../etc/localtime", "/etc/localtime", "UTC\x00", "x" * 500,
                                  "Europe/../../../etc/passwd", 12, ["UTC"]])
async def test_unknown_or_hostile_time_zones_are_400(api, zone):
    before = await snapshot(api)
    response, body = await api.call("POST", CREATE_ROUTES[0][0], "alice",
                                    json={"time_expression": "0 0 4 ? * * *", "timezone": zone})
    assert response.status == 400
    assert body["status"]["message"].startswith("timezone:")
    assert await snapshot(api) == before


@pytest.mark.parametrize("date", ["0001-01-01T00:00", "9999-12-31T23:59", "2026-02-30T10:00", "2026-01-01T24:00",
                                  "+2026-01-01T10:00", "2026-1-1T1:0", "２０２６-01-01T10:00"])
async def test_dates_out_of_range_are_400(api, date):
    before = await snapshot(api)
    response, body = await api.call("POST", "/api/maintenance/create", "alice",
                                    json={**WINDOW, "scheduled_start_date": date}, allow_redirects=False)
    assert response.status == 400
    assert "scheduled_start_date" in body["reasons"]
    assert await snapshot(api) == before


async def test_sql_metacharacters_in_text_are_stored_literally(api):
    name = "Robert'); DROP TABLE windows;--"
    response, _ = await api.call("POST", "/api/maintenance/create", "alice", json={**WINDOW, "name": name},
                                 allow_redirects=False)
    assert response.status == 302
    _, body = await api.call("GET", response.headers["Location"], None)
    assert body["name"] == name
    response, body = await api.call("GET", "/api/maintenance?external_reference=' OR 1=1 --", None)
    assert response.status == 200 and body["items"] == []


# -- service jobs (Volt MX's jobs API) ---------------------------------------------------------

JOBS = "/admin/api/jobs/job"
JOB = {"jobName": "nightly", "jobFrequency": "0 0 4 ? * * *", "description": "d", "jobStatus": "Active",
       "historyStrategy": "FULL", "retentionPeriod": "30",
       "jobFrequencyInfo": {"frequencyType": 2, "minuteValues": [0], "hourValues": [4]},
       "jobServiceInfo": {"version": "1.0", "serviceType": "intSer", "serviceName": "jsonservices",
                          "objectName": "", "operationName": "metadatajson", "requestheaderMap": {"X-A": "1"},
                          "serviceExecutionType": "SERVER_URL", "postData": "{}",
                          "operationSecurityLevel": "public"}}
WRONG = [("huge string", "x" * 200_000), ("huge number string", "9" * 5000), ("array", [1] * 10_000),
         ("object", {"a": {"b": 1}}), ("float", 1.5), ("bool", True), ("int", 10**30), ("nul byte", "a\x00b"),
         ("crlf", "a\r\nb")]
# A value the field may legitimately hold, so the case is not "wrong" for it.
FITS = {("jobServiceInfo.postData", "object"), ("jobFrequencyInfo", "object"), ("description", "crlf")}


def _with(body: dict, field: str, value) -> dict:
    body = json.loads(json.dumps(body))
    outer, _, inner = field.partition(".")
    if inner:
        body[outer][inner] = value
    else:
        body[outer] = value
    return body


def _job_cases():
    fields = [*(k for k in JOB if k != "jobServiceInfo"), "jobServiceInfo",
              *(f"jobServiceInfo.{k}" for k in JOB["jobServiceInfo"])]
    for field in fields:
        for label, value in WRONG:
            if (field, label) in FITS:
                continue
            yield pytest.param(field, value, id=f"{field}-{label}")


async def job_snapshot(api) -> tuple:
    _, jobs = await api.call("GET", JOBS)
    details = [(await api.call("GET", f"{JOBS}/{job['jobId']}"))[1] for job in jobs]
    return await snapshot(api), details


async def still_serving_jobs(api) -> None:
    response, _ = await api.call("GET", "/healthz", None)
    assert response.status == 200
    response, body = await api.call("GET", JOBS)
    assert response.status == 200 and isinstance(body, list)


@pytest.fixture
async def job_api(api):
    response, body = await api.call("POST", JOBS, json=JOB)
    assert response.status == 200, body
    api.job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    return api


@pytest.mark.parametrize(("field", "value"), list(_job_cases()))
async def test_job_fields_with_wrong_types_or_absurd_sizes_are_400(job_api, field, value):
    api = job_api
    before = await job_snapshot(api)
    body = _with({**JOB, "jobName": "other", "jobId": api.job_id}, field, value)
    for method in ("POST", "PUT"):
        response, answer = await api.call(method, JOBS, json=body)
        assert response.status == 400, (method, answer)
        assert answer["status"] == "FAIL" and answer["result"]["field"].startswith(field.split(".")[0]), answer
        assert len(answer["message"]) < 300
    assert await job_snapshot(api) == before
    await still_serving_jobs(api)


@pytest.mark.parametrize(("headers", "why"), [
    ({"X-A\r\nX-Injected": "1"}, "CRLF in a name"), ({"X-A": "1\r\nX-Injected: 1"}, "CRLF in a value"),
    ({"X-A": "1\nX-Injected: 1"}, "LF in a value"), ({"X-A": "1\r"}, "CR in a value"),
    ({"X-A": "a\x00b"}, "NUL in a value"), ({"X-A\n": "1"}, "LF in a name"), ({"X A": "1"}, "space in a name"),
    ({"X-A:": "1"}, "colon in a name"), ({"": "1"}, "empty name"), ({"Host": "evil"}, "Host"),
    ({"content-length": "0"}, "Content-Length"), ({"Transfer-Encoding": "chunked"}, "hop-by-hop"),
    ({"Proxy-Authorization": "x"}, "proxy header"), ({"X-A": 1}, "a number as value"),
    ({f"X-{i}": "v" for i in range(1000)}, "a thousand headers"), ({"X-" + "a" * 10_000: "v"}, "huge name"),
    ({"X-A": "v" * 100_000}, "huge value"),
])
async def test_request_header_map_refuses_injection_and_forbidden_headers(job_api, headers, why):
    api = job_api
    before = await job_snapshot(api)
    for method in ("POST", "PUT"):
        body = _with({**JOB, "jobName": "other", "jobId": api.job_id}, "jobServiceInfo.requestheaderMap", headers)
        response, answer = await api.call(method, JOBS, json=body)
        assert response.status == 400, (why, method, answer)
        # The map, or the one header in it that breaks the input rule (NUL).
        assert answer["result"]["field"].startswith("jobServiceInfo.requestheaderMap")
    assert await job_snapshot(api) == before
    await still_serving_jobs(api)


@pytest.mark.parametrize("operation", [
    "http://evil/x", "https://evil", "//evil", "//evil/x", "a@b", "@evil", "..", "../x", "a/../../x", "a/..",
    "./x", "a//b", "/abs", "%2e%2e", "%2e%2e/x", "a%2f..", "..\\x", "\\\\evil\\x", "a\\b", "\u2024\u2024",
    "\uff0e\uff0e/x", "a\u3002evil", "evil.com:80", "a?x=1", "a#x", "a b", "a\r\nb", "a\x00", "", "x" * 201,
    "ftp://evil", "http:evil", "\u0430pi",
])
async def test_operation_names_that_would_leave_the_service_are_400(job_api, operation):
    api = job_api
    before = await job_snapshot(api)
    for method in ("POST", "PUT"):
        body = _with({**JOB, "jobName": "other", "jobId": api.job_id}, "jobServiceInfo.operationName", operation)
        response, answer = await api.call(method, JOBS, json=body)
        assert response.status == 400, (operation, method, answer)
        assert answer["result"]["field"] == "jobServiceInfo.operationName"
    assert await job_snapshot(api) == before
    await still_serving_jobs(api)


async def test_post_data_of_10_mb_is_413(job_api):
    api = job_api
    before = await job_snapshot(api)
    for method in ("POST", "PUT"):
        body = _with({**JOB, "jobName": "other", "jobId": api.job_id}, "jobServiceInfo.postData",
                     json.dumps({"blob": "x" * 10_000_000}))
        response, answer = await api.call(method, JOBS, json=body)
        assert response.status == 413, answer
        assert answer["status"] == "FAIL"
    assert await job_snapshot(api) == before
    await still_serving_jobs(api)


@pytest.mark.parametrize(("field", "value"), [
    ("jobFrequency", "0 " + ",".join(str(i % 60) for i in range(5000)) + " * * * ?"),
    ("jobFrequency", "0 0 " + ",".join(str(i % 24) for i in range(5000)) + " * * ?"),
    ("jobFrequencyInfo", {"frequencyType": 2, "minuteValues": [i % 60 for i in range(5000)], "hourValues": [4]}),
    ("jobFrequencyInfo", {"frequencyType": 2, "minuteValues": [0], "hourValues": [4], "x": ["y"] * 5000}),
])
async def test_a_frequency_of_5000_items_is_400(job_api, field, value):
    api = job_api
    before = await job_snapshot(api)
    body = {**JOB, "jobName": "other", "jobId": api.job_id, field: value}
    if field == "jobFrequencyInfo":
        body.pop("jobFrequency")
    for method in ("POST", "PUT"):
        response, answer = await api.call(method, JOBS, json=body)
        assert response.status == 400, answer
        assert answer["result"]["field"].startswith(field)
    assert await job_snapshot(api) == before
    await still_serving_jobs(api)


@pytest.mark.parametrize("job_id", ["9" * 19, "-1", "1.5", "0x10", "\u0661", "1 OR 1=1", True, [1], {"a": 1}, 1.5])
async def test_hostile_job_ids_in_a_put_are_400_or_404(job_api, job_id):
    api = job_api
    before = await job_snapshot(api)
    response, answer = await api.call("PUT", JOBS, json={**JOB, "jobId": job_id})
    assert response.status in (400, 404), answer
    assert await job_snapshot(api) == before
    await still_serving_jobs(api)
