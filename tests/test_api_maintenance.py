"""Org maintenance through AtScale's aggregate maintenance API: envelopes as AtScale answers them, org
access, bad input."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from schedd.timefmt import rfc3339
from tests.support.api import PASSWORD, T0
from tests.support import sql

SCHEDULES = "/aggregates/maintenance/scheduler/jobs/orgId/{org}"
ATSCALE_DELETE = "/api/1.0/aggregates/maintenance-schedule/jobs/orgId/{org}/jobId/{job}"
ALIAS_DELETE = "/aggregates/maintenance/scheduler/jobs/orgId/{org}/jobId/{job}"
RUN_NOW = "/api/1.0/aggregates/maintenance/orgId/{org}/run-immediately"
CURRENT = "/aggregates/maintenance/orgId/{org}"
HISTORY = "/aggregates/maintenance/orgId/{org}/history"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def create(api, org="acme", who="alice", **body):
    body = {"time_expression": "0 0 4 ? * * *", "scheduler_type": "time-based", **body}
    return await api.call("POST", SCHEDULES.format(org=org), who, json=body)


async def count_schedules(api) -> int:
    return (await sql.fetchone(api.core.store, "SELECT count(*) FROM schedules"))[0]


async def test_create_answers_atscales_envelope_and_object(api):
    response, body = await create(api, time_expression="0 0 0 ? * MON")
    assert response.status == 200
    assert body["status"] == {"code": 200, "message": "Time-based schedule successfully created."}
    assert RFC3339.match(body["responseCreated"])
    created = body["response"]
    assert UUID.match(created["job_id"])
    assert created["time_expression"] == "0 0 0 ? * MON"
    assert created["scheduler_type"] == "time-based/maintenance"
    assert created["created_by_user"] == "alice"
    assert RFC3339.match(created["created_at"])
    assert created["next_execution"] == "2026-01-05T00:00:00.000000Z"  # the first Monday


async def test_create_takes_its_fields_from_the_query_string_too(api):
    response, body = await api.call(
        "POST", SCHEDULES.format(org="acme") + "?time_expression=0+30+2+*+*+?&scheduler_type=time-based",
        "alice")
    assert response.status == 200, body
    assert body["response"]["time_expression"] == "0 30 2 * * ?"


async def test_body_wins_over_the_query_string(api):
    response, body = await api.call(
        "POST", SCHEDULES.format(org="acme") + "?time_expression=bad", "alice",
        json={"time_expression": "0 15 10 ? * 6L", "scheduler_type": "time-based"})
    assert response.status == 200, body
    assert body["response"]["time_expression"] == "0 15 10 ? * 6L"


async def test_list_shows_atscales_fields_with_zero_latest_execution(api):
    _, created = await create(api)
    response, body = await api.call("GET", SCHEDULES.format(org="acme"), "alice")
    assert response.status == 200
    assert body["status"] == {"code": 200, "message": "success"}
    (item,) = body["response"]
    assert item["job_id"] == created["response"]["job_id"]
    assert item["organization_id"] == "acme"
    assert item["full_build"] is False
    assert item["time_expression"] == "0 0 4 ? * * *"
    assert item["path"] == "time-based"
    assert item["latest_execution"] == {"id": "", "jobId": "", "executedAt": "0001-01-01T00:00:00Z"}
    assert item["active"] is True
    assert item["timezone"] == "UTC"


async def test_every_path_answers_bare_and_under_api_1_0(api):
    for prefix in ("", "/api/1.0"):
        response, body = await api.call("GET", prefix + SCHEDULES.format(org="acme"), "alice")
        assert response.status == 200, prefix
        response, body = await api.call("GET", prefix + HISTORY.format(org="acme"), "alice")
        assert response.status == 200, prefix
        response, body = await api.call("GET", prefix + CURRENT.format(org="acme"), "alice")
        assert response.status == 200, prefix


@pytest.mark.parametrize("path", [ATSCALE_DELETE, ALIAS_DELETE, "/api/1.0" + ALIAS_DELETE,
                                  ATSCALE_DELETE.removeprefix("/api/1.0")])
async def test_delete_deactivates_and_keeps_the_schedule_listed_as_inactive(api, path):
    _, created = await create(api)
    job = created["response"]["job_id"]
    response, body = await api.call("DELETE", path.format(org="acme", job=job), "alice")
    assert response.status == 200
    assert body["status"] == {"code": 200, "message": "success"}
    assert body["response"] == f"successfully deleted job with Id: [{job}]"
    _, active = await api.call("GET", SCHEDULES.format(org="acme") + "?active=true", "alice")
    _, inactive = await api.call("GET", SCHEDULES.format(org="acme") + "?active=false", "alice")
    assert active["response"] == []
    assert [s["job_id"] for s in inactive["response"]] == [job]
    response, body = await api.call("DELETE", path.format(org="acme", job=job), "alice")
    assert response.status == 404
    assert body["status"]["code"] == 404 and body["response"] is None


async def test_a_deleted_schedule_stops_firing_at_once(api):
    _, created = await create(api, time_expression="0 * * * * ?")
    await api.call("DELETE", ATSCALE_DELETE.format(org="acme", job=created["response"]["job_id"]), "alice")
    api.clock.set(T0 + 3600)
    await api.settle()
    _, body = await api.call("GET", HISTORY.format(org="acme"), "alice")
    assert body["response"]["data"] == []


async def test_a_schedule_fire_runs_time_based_maintenance_and_shows_in_history(api):
    _, created = await create(api, time_expression="0 * * * * ?")
    api.clock.set(T0 + 60)
    await api.settle()
    response, body = await api.call("GET", HISTORY.format(org="acme"), "alice")
    assert body["status"] == {"code": 0, "message": "200 OK"}
    page = body["response"]
    assert (page["limit"], page["offset"], page["force_pull"]) == (10, 0, False)
    (run,) = page["data"]
    assert run["organizationId"] == "acme"
    assert run["triggerType"] == "TimeBasedMaintenance"
    assert run["status"] == "done"
    assert run["errorInformation"] == {}
    assert set(run) >= {"id", "creationTime", "startTime", "endTime"}
    _, listed = await api.call("GET", SCHEDULES.format(org="acme"), "alice")
    latest = listed["response"][0]["latest_execution"]
    assert latest["id"] == run["id"] and latest["jobId"] == created["response"]["job_id"]
    assert RFC3339.match(latest["executedAt"])


async def test_run_immediately_starts_manual_maintenance(api):
    response, body = await api.call("POST", RUN_NOW.format(org="acme"), "alice")
    assert response.status == 200
    assert body == {"status": {"code": 200, "message": "Maintenance successfully started for acme"},
                    "responseCreated": body["responseCreated"], "response": None}
    await api.settle()
    _, history = await api.call("GET", HISTORY.format(org="acme"), "alice")
    (run,) = history["response"]["data"]
    assert (run["triggerType"], run["status"]) == ("ManualMaintenance", "done")
    assert run["id"] == response.headers["X-Run-Id"]


async def test_run_immediately_conflicts_while_the_org_maintenance_runs(api, monkeypatch):
    import asyncio

    from schedd.executors import Outcome

    release = asyncio.Event()

    class Slow:
        async def run(self, ctx):
            await release.wait()
            return Outcome(ok=True)

    monkeypatch.setattr(api.core.executors, "get", lambda ctx: Slow())
    first, _ = await api.call("POST", RUN_NOW.format(org="acme"), "alice")
    second, body = await api.call("POST", RUN_NOW.format(org="acme"), "alice")
    assert (first.status, second.status) == (200, 409)
    assert body["status"]["code"] == 409 and body["response"] is None
    _, current = await api.call("GET", CURRENT.format(org="acme"), "alice")
    assert current["status"] == {"code": 0, "message": "200 OK"}
    assert current["response"]["status"] == "inprogress"
    assert current["response"]["triggerType"] == "ManualMaintenance"
    release.set()
    await api.settle()
    _, current = await api.call("GET", CURRENT.format(org="acme"), "alice")
    assert current["response"] is None
    _, history = await api.call("GET", HISTORY.format(org="acme"), "alice")
    assert len(history["response"]["data"]) == 1  # the refused run left no record


async def test_run_immediately_is_503_when_maintenance_is_disabled(make_api):
    api = await make_api(executors={"maintenance": {"enabled": False}})
    response, body = await api.call("POST", RUN_NOW.format(org="acme"), "alice")
    assert response.status == 503
    assert "maintenance is disabled" in body["status"]["message"]


async def test_a_failed_run_shows_its_error_and_exit_code(make_api):
    import sys
    api = await make_api(executors={"maintenance": {
        "command": [sys.executable, "-c", "import sys; print('vacuum failed'); sys.exit(4)"]}})
    await api.call("POST", RUN_NOW.format(org="acme"), "alice")
    await api.settle()
    _, body = await api.call("GET", HISTORY.format(org="acme") + "?status=failed", "alice")
    (run,) = body["response"]["data"]
    assert run["status"] == "failed"
    assert run["errorInformation"]["exitCode"] == 4
    assert "vacuum failed" in run["errorInformation"]["message"]


async def test_history_pages_newest_first_and_filters_by_status(api):
    for _ in range(3):
        await api.call("POST", RUN_NOW.format(org="acme"), "alice")
        await api.settle()
    _, body = await api.call("GET", HISTORY.format(org="acme") + "?limit=2", "alice")
    first_page = body["response"]["data"]
    _, body = await api.call("GET", HISTORY.format(org="acme") + "?limit=2&offset=2", "alice")
    second_page = body["response"]["data"]
    assert len(first_page) == 2 and len(second_page) == 1
    assert first_page[0]["creationTime"] >= first_page[1]["creationTime"] >= second_page[0]["creationTime"]
    _, body = await api.call("GET", HISTORY.format(org="acme") + "?status=failed", "alice")
    assert body["response"]["data"] == []


async def test_login_issues_a_token_the_maintenance_api_accepts(api):
    response, body = await api.call(
        "POST", "/authService/accounts/login", None, data={"userid": "alice", "password": PASSWORD})
    assert response.status == 200
    assert body["profile"]["userid"] == "alice"
    assert body["claims_token"]["integrity_check_required"] is False
    assert body["claims_token"]["exp"] == int((T0 + 12 * 3600) * 1000)
    token = body["claims_token"]["value"]
    for header in ({"X-VoltMX-Authorization": token}, {"Authorization": f"Bearer {token}"}):
        response, _ = await api.call("GET", SCHEDULES.format(org="acme"), None, headers=header)
        assert response.status == 200


@pytest.mark.parametrize(("userid", "password"), [("alice", "wrong password"), ("nobody", PASSWORD)])
async def test_login_refuses_wrong_credentials_alike(api, userid, password):
    response, body = await api.call(
        "POST", "/authService/accounts/login", None, json={"userid": userid, "password": password})
    assert response.status == 401
    assert body["status"] == "FAIL"
    assert body["message"] == "invalid userid or password"


BAD_CREATES = [
    ({"time_expression": "0 0 0 ? * 9", "scheduler_type": "time-based"}, "time_expression", "day-of-week"),
    ({"time_expression": "0 0 0 1 * MON", "scheduler_type": "time-based"}, "time_expression", ""),
    ({"time_expression": "0 0 0 30 FEB ?", "scheduler_type": "time-based"}, "time_expression", ""),
    ({"time_expression": "not a cron", "scheduler_type": "time-based"}, "time_expression", ""),
    ({"scheduler_type": "time-based"}, "time_expression", "required"),
    ({"time_expression": 5, "scheduler_type": "time-based"}, "time_expression", ""),
    ({"time_expression": "0 0 4 ? * * *", "scheduler_type": "event-based"}, "scheduler_type", "time-based"),
    ({"time_expression": "0 0 4 ? * * *", "timezone": "Mars/Olympus"}, "timezone", "Mars/Olympus"),
    ({"time_expression": "@reboot", "scheduler_type": "time-based"}, "time_expression", "no boot to attach it to"),
    ({"time_expression": "0 0 0 @daily * ?", "scheduler_type": "time-based"}, "time_expression", "Unix-only"),
]


@pytest.mark.parametrize(("body", "field", "reason"), BAD_CREATES, ids=[str(b) for b, _, _ in BAD_CREATES])
async def test_bad_create_is_400_naming_the_field_and_creates_nothing(api, body, field, reason):
    response, answer = await api.call("POST", SCHEDULES.format(org="acme"), "alice", json=body)
    assert response.status == 400, answer
    assert answer["status"]["code"] == 400 and answer["response"] is None
    assert answer["status"]["message"].startswith(f"{field}:"), answer
    assert reason in answer["status"]["message"]
    assert await count_schedules(api) == 0


async def test_cronie_macros_and_sunday_ranges_make_schedules(api):
    response, body = await create(api, time_expression="@weekly")
    assert response.status == 200, body
    assert body["response"]["time_expression"] == "@weekly"
    assert body["response"]["next_execution"] == "2026-01-04T00:00:00.000000Z"  # the first Sunday
    response, body = await create(api, time_expression="0 6 * * SAT-SUN")
    assert response.status == 200, body
    assert body["response"]["next_execution"] == "2026-01-03T06:00:00.000000Z"


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b"[" * 100_000])
async def test_malformed_bodies_are_400(api, raw):
    response, body = await api.call("POST", SCHEDULES.format(org="acme"), "alice", data=raw,
                                    headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert body["status"]["message"].startswith("body:")
    assert await count_schedules(api) == 0


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "offset=-1", "status=bogus"])
async def test_bad_history_parameters_are_400_naming_them(api, query):
    response, body = await api.call("GET", HISTORY.format(org="acme") + "?" + query, "alice")
    assert response.status == 400
    assert body["status"]["message"].startswith(query.split("=")[0] + ":")


async def test_bad_active_filter_is_400(api):
    response, body = await api.call("GET", SCHEDULES.format(org="acme") + "?active=maybe", "alice")
    assert response.status == 400 and body["status"]["message"].startswith("active:")


ORG_ROUTES = [
    ("GET", SCHEDULES), ("POST", SCHEDULES), ("POST", RUN_NOW), ("GET", CURRENT), ("GET", HISTORY),
    ("DELETE", ATSCALE_DELETE),
]


@pytest.mark.parametrize(("method", "path"), ORG_ROUTES)
@pytest.mark.parametrize("org", ["other", "does-not-exist"])
async def test_an_org_the_caller_may_not_see_is_404_like_one_that_does_not_exist(api, method, path, org):
    response, body = await api.call(
        method, path.format(org=org, job="00000000-0000-4000-8000-000000000000"), "alice",
        json={"time_expression": "0 0 4 ? * * *", "scheduler_type": "time-based"})
    assert response.status == 404
    assert body["status"] == {"code": 404, "message": f"organization {org} not found"}
    assert await count_schedules(api) == 0


@pytest.mark.parametrize(("method", "path"), ORG_ROUTES)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sd_not-a-token"},
                                     {"X-VoltMX-Authorization": "garbage"}])
async def test_no_or_bad_token_is_401_and_changes_nothing(api, method, path, headers):
    response, body = await api.call(
        method, path.format(org="acme", job="00000000-0000-4000-8000-000000000000"), None,
        headers=headers, json={"time_expression": "0 0 4 ? * * *", "scheduler_type": "time-based"})
    assert response.status == 401
    assert body["status"]["code"] == 401 and body["response"] is None
    assert await count_schedules(api) == 0
    assert (await sql.fetchone(api.core.store, "SELECT count(*) FROM runs"))[0] == 0


async def test_an_expired_token_is_401(api):
    api.clock.set(T0 + 13 * 3600)
    response, body = await api.call("GET", SCHEDULES.format(org="acme"), "alice")
    assert response.status == 401


async def test_an_admin_sees_every_org(api):
    await create(api, org="other", who="bob")
    response, body = await api.call("GET", SCHEDULES.format(org="other"), "admin")
    assert response.status == 200 and len(body["response"]) == 1
    response, _ = await api.call("GET", SCHEDULES.format(org="other"), "alice")
    assert response.status == 404


@pytest.mark.parametrize("org", ["-lead", "a b", "x" * 129, "a%2Fb", "..%2F..%2Fetc"])
async def test_a_malformed_org_id_is_400_naming_it(api, org):
    response, body = await api.call("GET", SCHEDULES.format(org=org), "admin")
    assert response.status in (400, 404)
    if response.status == 400:
        assert body["status"]["message"].startswith("orgId:")


async def test_oversized_body_is_413(api):
    response, body = await api.call("POST", SCHEDULES.format(org="acme"), "alice",
                                    data=b"{" + b" " * (1024 * 1024 + 10) + b"}",
                                    headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert await count_schedules(api) == 0


async def test_repeated_failed_logins_are_throttled_with_retry_after(api):
    for _ in range(5):
        response, _ = await api.call("POST", "/authService/accounts/login", None,
                                     data={"userid": "alice", "password": "wrong password"})
        assert response.status == 401
    response, body = await api.call("POST", "/authService/accounts/login", None,
                                    data={"userid": "alice", "password": PASSWORD})
    assert response.status == 429
    assert int(response.headers["Retry-After"]) > 0
    assert body["status"] == "FAIL"
    api.clock.set(T0 + 61)
    response, _ = await api.call("POST", "/authService/accounts/login", None,
                                 data={"userid": "alice", "password": PASSWORD})
    assert response.status == 200


@given(st.floats(min_value=0, max_value=2**35, allow_nan=False, allow_infinity=False))
@example(0.0)
@example(T0)
@example(1_767_225_599.9999996)  # rounds up into the next second, minute, hour, day and year
@example(1_767_225_599.9999995)
@example(951_782_400.25)  # 2000-02-29
@example(4_102_444_799.000001)
def test_times_are_formatted_exactly_as_datetime_formats_them(at):
    assert rfc3339(at) == datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
