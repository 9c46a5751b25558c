"""The web views through aiohttp_client: status page, calendar feed, login, CSRF, org visibility, charts."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from yarl import URL

from schedd import grants
from schedd.executors import Outcome
from schedd.store import runs as run_store
from schedd.store import schedules as schedule_store
from schedd.store.reports import HourDelay
from schedd.web import charts
from tests.support.api import PASSWORD, T0
from tests.support.web import JOB, SCOPES, SERVICES, WINDOW, Operator, create_window
from tests.support import sql

UTC = ZoneInfo("UTC")
XSS = "<script>alert(1)</script>"
SCHEDULES = "/aggregates/maintenance/scheduler/jobs/orgId/{org}"


@pytest.fixture
async def api(make_api):
    api = await make_api(scopes=SCOPES, services=SERVICES)
    for scope in SCOPES.values():  # alice maintains every scope: she writes the windows here
        await grants.grant(api.core.store, "alice", grants.Scope(scope["id"], None), at=T0)
    return api


@pytest.fixture
def browser(api) -> Operator:
    return Operator(api)


async def create_schedule(api, org: str, who: str = "admin") -> str:
    response, body = await api.call("POST", SCHEDULES.format(org=org), who,
                                    json={"time_expression": "0 0 4 ? * * *", "scheduler_type": "time-based"})
    assert response.status == 200, body
    return body["response"]["job_id"]


async def schedule_id(api, uid: str) -> int:
    for family in ("maintenance", "aggregate", "service"):
        for schedule in await api.core.store.schedules.list_family(family):
            if schedule.uid == uid:
                return schedule.id
    raise AssertionError(uid)


def cookie_header(response, name: str) -> str:
    found = [v for v in response.headers.getall("Set-Cookie", []) if v.startswith(name + "=")]
    assert found, response.headers
    return found[-1]


# -- the public status page -----------------------------------------------------------

async def test_the_root_redirects_to_the_status_page(api):
    response = await api.client.get("/", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, "/status")


async def test_status_page_shows_each_service_state_and_the_windows_by_time(api):
    now_id = await create_window(api, name="Failover test", scheduled_start_date="2025-12-31T23:00")
    await create_window(api, name="CDN purge", service="20", scope="2", service_status="degraded",
                        scheduled_start_date="2025-12-31T22:00")
    await create_window(api, name="Kernel update")
    await create_window(api, name="Last week's", scheduled_start_date="2025-12-24T01:00",
                        scheduled_end_date="2025-12-24T02:00")
    await create_window(api, name="Long ago", scheduled_start_date="2025-11-01T01:00",
                        scheduled_end_date="2025-11-01T02:00")
    response, body = await api.call("GET", "/status", None)
    assert response.status == 200
    assert response.content_type == "text/html"
    text = re.sub(r"\s+", " ", body)
    assert re.search(r"jsonservices</span> <span class=\"badge st-down\">down", text)
    assert re.search(r"orders</span> <span class=\"badge st-up\">up", text)
    assert re.search(r"cdn</span> <span class=\"badge st-degraded\">degraded", text)
    assert "2 services affected" in text
    in_progress, rest = text.split("Upcoming maintenance", 1)
    upcoming, past = rest.split("Past 14 days", 1)
    assert "Failover test" in in_progress and "CDN purge" in in_progress
    assert "Kernel update" in upcoming and "Failover test" not in upcoming
    assert "Last week&#39;s" in past and "Long ago" not in text
    assert f'href="/api/maintenance/{now_id}/calendar"' in text
    assert 'href="/api/maintenance/calendar"' in text


async def test_a_window_named_like_a_script_renders_escaped(api):
    window_id = await create_window(api, name=XSS, description=f"{XSS} & more")
    await api.call("POST", f"/api/maintenance/{window_id}/comment", "alice", data={"comment": XSS},
                   allow_redirects=False)
    for path in ("/status", f"/status/maintenance/{window_id}"):
        _, body = await api.call("GET", path, None)
        assert "<script>" not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


async def test_the_maintenance_page_shows_the_public_timeline_only(api):
    window_id = await create_window(api)
    for comment, internal in (("We start on time", "0"), ("Root password is in the vault", "1")):
        await api.call("POST", f"/api/maintenance/{window_id}/comment", "alice",
                       data={"comment": comment, "internal": internal}, allow_redirects=False)
    response, body = await api.call("GET", f"/status/maintenance/{window_id}", None)
    assert response.status == 200
    assert "Database upgrade" in body and "PostgreSQL 17" in body
    assert "We start on time" in body and "Maintenance created" in body
    assert "vault" not in body
    assert "alice" not in body  # the public page names no user
    response, _ = await api.call("GET", "/status/maintenance/999", None)
    assert response.status == 404


async def test_pages_carry_a_strict_content_security_policy(api):
    response, _ = await api.call("GET", "/status", None)
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    response, body = await api.call("GET", "/static/schedd.css", None)
    assert response.content_type == "text/css" and "@media" in body


# -- the calendar feed ----------------------------------------------------------------

async def test_the_calendar_feed_lists_every_window_that_has_not_ended(api):
    upcoming = await create_window(api, name="Kernel update")
    ongoing = await create_window(api, name="Failover", scheduled_start_date="2025-12-31T23:00")
    canceled = await create_window(api, name="Called off")
    await api.call("POST", f"/api/maintenance/{canceled}/update", "alice",
                   data={**WINDOW, "name": "Called off", "status": "canceled"}, allow_redirects=False)
    past = await create_window(api, name="Done", scheduled_start_date="2025-12-30T01:00",
                               scheduled_end_date="2025-12-30T02:00")
    response = await api.client.get("/api/maintenance/calendar")
    assert response.status == 200
    assert response.content_type == "text/calendar"
    body = await response.text()
    assert body.startswith("BEGIN:VCALENDAR\r\n") and body.endswith("END:VCALENDAR\r\n")
    uids = re.findall(r"UID:maintenance-(\d+)@", body)
    assert sorted(map(int, uids)) == sorted([upcoming, ongoing, canceled])
    assert past not in map(int, uids)
    assert body.count("STATUS:CANCELLED") == 1
    assert "DTSTART:20260101T030000Z" in body


# -- login, session cookie, logout ----------------------------------------------------

async def test_the_operator_view_asks_for_a_login_first(browser):
    response = await browser.client.get("/ui/runs?status=failed", allow_redirects=False)
    assert response.status == 303
    location = URL(response.headers["Location"])
    assert (location.path, location.query["next"]) == ("/ui/login", "/ui/runs?status=failed")


async def test_the_session_cookie_is_httponly_strict_scoped_and_expires(browser):
    response, _ = await browser.login("alice")
    assert (response.status, response.headers["Location"]) == (303, "/ui")
    cookie = cookie_header(response, "schedd_session")
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert "httponly" in flags
    assert flags["samesite"].lower() == "samesite=strict"
    assert flags["path"].lower() == "path=/ui"
    assert flags["max-age"].lower() == "max-age=43200"  # the configured token_ttl
    assert "secure" not in flags  # plain HTTP: a Secure cookie would not come back
    response, body = await browser.get("/ui")
    assert response.status == 200 and "Log out alice" in body


async def test_the_session_cookie_is_secure_behind_tls(browser):
    response, _ = await browser.login("alice", headers={"X-Forwarded-Proto": "https"})
    assert response.status == 303
    assert "secure" in cookie_header(response, "schedd_session").lower().split("; ")


async def test_a_wrong_password_is_refused_without_a_session(browser):
    response, body = await browser.login("alice", password="wrong password")
    assert response.status == 401
    assert "invalid userid or password" in body
    assert "schedd_session" not in response.cookies


async def test_the_login_form_needs_its_nonce_and_our_origin(browser):
    token = await browser.csrf("/ui/login")
    form = {"userid": "alice", "password": PASSWORD, "csrf": token}
    response, _ = await browser.post("/ui/login", form, origin="https://evil.example")
    assert response.status == 403
    response, _ = await browser.post("/ui/login", {**form, "csrf": "x" * 43})
    assert response.status == 403
    browser.client.session.cookie_jar.clear()
    response, _ = await browser.post("/ui/login", form)
    assert response.status == 403


async def test_the_session_ends_with_the_token(api, browser):
    await browser.login("alice")
    api.clock.advance(43200)
    response = await browser.client.get("/ui", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/ui/login")


async def test_logout_revokes_the_token(api, browser):
    response, _ = await browser.login("alice")
    token = response.cookies["schedd_session"].value
    csrf = await browser.csrf()
    response, _ = await browser.post("/ui/logout", {"csrf": csrf})
    assert (response.status, response.headers["Location"]) == (303, "/ui/login")
    assert 'schedd_session=""' in cookie_header(response, "schedd_session")
    # The token is dead for the API too, not only forgotten by the browser.
    response, _ = await api.call("GET", "/aggregates/maintenance/orgId/acme", None,
                                 headers={"Authorization": f"Bearer {token}"})
    assert response.status == 401


# -- CSRF -----------------------------------------------------------------------------

async def run_count(api) -> int:
    return (await sql.fetchone(api.core.store, "SELECT count(*) FROM runs"))[0]


@pytest.mark.parametrize("case", ["no token", "wrong token", "foreign origin", "no origin", "null origin"])
async def test_a_forged_form_post_is_refused_and_changes_nothing(api, browser, case):
    uid = await create_schedule(api, "acme")
    ident = await schedule_id(api, uid)
    await browser.login("alice")
    csrf = await browser.csrf()
    data, origin = {"csrf": csrf}, "self"
    if case == "no token":
        data = {}
    elif case == "wrong token":
        data = {"csrf": csrf[:-2] + "AA"}
    elif case == "foreign origin":
        origin = "https://evil.example"
    elif case == "no origin":
        origin = None
    else:
        origin = "null"
    for action in ("run", "deactivate"):
        response, body = await browser.post(f"/ui/schedules/{ident}/{action}", data, origin=origin)
        assert response.status == 403, body
    assert await run_count(api) == 0
    assert (await api.core.store.schedules.get(ident)).active


async def test_a_same_origin_referer_stands_in_for_a_missing_origin(api, browser):
    uid = await create_schedule(api, "acme")
    ident = await schedule_id(api, uid)
    await browser.login("alice")
    csrf = await browser.csrf()
    response, _ = await browser.post(f"/ui/schedules/{ident}/deactivate", {"csrf": csrf}, origin=None,
                                     headers={"Referer": browser.origin + "/ui"})
    assert response.status == 303
    assert not (await api.core.store.schedules.get(ident)).active


# -- actions and org visibility -------------------------------------------------------

async def test_run_now_goes_through_the_maintenance_service_and_shows_the_run(api, browser):
    uid = await create_schedule(api, "acme")
    ident = await schedule_id(api, uid)
    await browser.login("alice")
    response, _ = await browser.post(f"/ui/schedules/{ident}/run", {"csrf": await browser.csrf()})
    assert response.status == 303
    location = response.headers["Location"]
    assert re.fullmatch(r"/ui/runs/[0-9a-f-]{36}\?notice=started", location)
    await api.settle()
    _, body = await browser.get(location)
    assert "ManualMaintenance" in body and "st-done" in body and "Run started." in body
    _, history = await api.call("GET", "/aggregates/maintenance/orgId/acme/history", "alice")
    assert [r["triggerType"] for r in history["response"]["data"]] == ["ManualMaintenance"]
    # One run per org at a time, as the API says: the second is refused with its reason. The
    # first one runs until the test lets it end, however quickly its command would.
    release = asyncio.Event()

    class Held:
        async def run(self, ctx):
            await release.wait()
            return Outcome(ok=True)

    api.core.executors.get = lambda ctx: Held()
    response, _ = await browser.post(f"/ui/schedules/{ident}/run", {"csrf": await browser.csrf()})
    assert response.status == 303
    response, body = await browser.post(f"/ui/schedules/{ident}/run", {"csrf": await browser.csrf()})
    assert response.status == 409 and "already in progress" in body
    release.set()
    await api.settle()


async def test_deactivate_is_the_api_delete(api, browser):
    uid = await create_schedule(api, "acme")
    await browser.login("alice")
    response, _ = await browser.post(f"/ui/schedules/{await schedule_id(api, uid)}/deactivate",
                                     {"csrf": await browser.csrf()})
    assert (response.status, response.headers["Location"]) == (303, "/ui?notice=deactivated")
    _, listed = await api.call("GET", SCHEDULES.format(org="acme") + "?active=false", "alice")
    assert [s["job_id"] for s in listed["response"]] == [uid]


async def test_a_user_sees_and_acts_on_its_own_orgs_only(api, browser):
    mine = await create_schedule(api, "acme")
    theirs = await create_schedule(api, "other")
    await api.call("POST", "/api/1.0/aggregates/maintenance/orgId/other/run-immediately", "bob")
    await api.call("POST", "/api/1.0/aggregates/maintenance/orgId/acme/run-immediately", "alice")
    await api.settle()
    await browser.login("alice")
    _, body = await browser.get("/ui")
    assert "maintenance of acme" in body and "maintenance of other" not in body
    assert '<option value="other"' not in body
    _, body = await browser.get("/ui/runs")
    assert body.count("maintenance of acme") == 1 and "maintenance of other" not in body
    response, _ = await browser.get("/ui/runs?org=other")
    assert response.status == 404
    bob_run = (await api.core.store.runs.list_org("maintenance", "other", limit=1, offset=0))[0]
    response, _ = await browser.get(f"/ui/runs/{bob_run.uid}")
    assert response.status == 404
    csrf = await browser.csrf()
    for action in ("run", "deactivate"):
        response, _ = await browser.post(f"/ui/schedules/{await schedule_id(api, theirs)}/{action}", {"csrf": csrf})
        assert response.status == 404
    assert (await api.core.store.schedules.get(await schedule_id(api, theirs))).active
    await browser.login("admin")
    _, body = await browser.get("/ui")
    assert "maintenance of acme" in body and "maintenance of other" in body
    assert mine != theirs


async def test_service_jobs_are_for_administrators_only(api, browser):
    response, body = await api.call("POST", "/admin/api/jobs/job", "admin", json=JOB)
    assert response.status == 200, body
    ident = int(response.headers["Location"].rsplit("/", 1)[1])
    await browser.login("alice")
    _, page = await browser.get("/ui")
    assert "nightly-export" not in page and '<option value="service"' not in page
    response, _ = await browser.post(f"/ui/schedules/{ident}/run", {"csrf": await browser.csrf()})
    assert response.status == 404
    await browser.login("admin")
    _, page = await browser.get("/ui?family=service")
    assert "nightly-export" in page and "0 30 2 * * ? *" in page
    assert "2026-01-01 02:30:00 UTC" in page and "2026-01-02 02:30:00 UTC" in page


async def test_a_service_job_is_deactivated_and_activated_through_the_job_update(api, browser):
    response, _ = await api.call("POST", "/admin/api/jobs/job", "admin", json=JOB)
    ident = int(response.headers["Location"].rsplit("/", 1)[1])
    await browser.login("admin")
    response, _ = await browser.post(f"/ui/schedules/{ident}/deactivate", {"csrf": await browser.csrf()})
    assert response.status == 303
    _, detail = await api.call("GET", f"/admin/api/jobs/job/{ident}", "admin")
    assert (detail["jobStatus"], detail["jobNextRunTime"], detail["updatedUser"]) == ("Inactive", None, "admin")
    assert detail["jobServiceInfo"]["operationName"] == "export"
    response, _ = await browser.post(f"/ui/schedules/{ident}/activate", {"csrf": await browser.csrf()})
    assert response.status == 303
    _, detail = await api.call("GET", f"/admin/api/jobs/job/{ident}", "admin")
    assert detail["jobStatus"] == "Active" and detail["jobNextRunTime"] == "2026-01-01 02:30:00"


async def test_a_run_under_full_history_shows_its_payloads_escaped(make_api, aiohttp_server):
    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=f'{{"echo": "{XSS}"}}', content_type="application/json")

    service = web.Application()
    service.router.add_post("/api/export", answer)
    server = await aiohttp_server(service)
    api = await make_api(scopes=SCOPES, services={
        **SERVICES, "jsonservices": {**SERVICES["jsonservices"], "base_url": f"http://127.0.0.1:{server.port}/api"}})
    browser = Operator(api)
    response, _ = await api.call("POST", "/admin/api/jobs/job", "admin", json={
        **JOB, "historyStrategy": "FULL",
        "jobServiceInfo": {**JOB["jobServiceInfo"], "postData": '{"q": "<b>x</b>"}'}})
    ident = int(response.headers["Location"].rsplit("/", 1)[1])
    await browser.login("admin")
    response, _ = await browser.post(f"/ui/schedules/{ident}/run", {"csrf": await browser.csrf()})
    location = response.headers["Location"]
    await api.settle()
    response, page = await browser.get(location)
    assert response.status == 200
    assert "st-done" in page and "HTTP 200" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page
    await browser.login("alice")
    response, _ = await browser.get(location)
    assert response.status == 404


async def test_runs_filter_by_family_and_status(api, browser):
    await api.call("POST", "/api/1.0/aggregates/maintenance/orgId/acme/run-immediately", "alice")
    await api.call("POST", "/org/acme/project/p1/cube/c1/aggregates-creation/execute", "alice", json={})
    await api.settle()
    await browser.login("alice")
    _, body = await browser.get("/ui/runs?family=aggregate")
    assert "build acme/p1/c1" in body and "maintenance of acme" not in body
    _, body = await browser.get("/ui/runs?status=failed")
    assert "No run matches." in body
    response, _ = await browser.get("/ui/runs?status=bogus")
    assert response.status == 400


async def test_the_dashboard_charts_the_last_day_from_the_runs_table(api, browser):
    uid = await create_schedule(api, "acme")
    schedule = await api.core.store.schedules.get(await schedule_id(api, uid))
    api.clock.set(schedule.next_fire_at + 0.25)  # 04:00:00.25: a quarter second late
    await api.settle()
    await browser.login("alice")
    _, body = await browser.get("/ui")
    assert "1 run in the last 24 hours: 1 done." in body
    assert "start delay mean 250 ms, worst 250 ms" in body
    assert body.count('<rect class="s-done"') == 1
    await browser.login("bob")
    _, body = await browser.get("/ui")
    assert "0 runs in the last 24 hours: no runs." in body


# -- the charts, pure -----------------------------------------------------------------

@pytest.mark.parametrize(("value", "ceiling"), [
    (0, 1), (0.0004, 0.0005), (0.001, 0.001), (0.9, 1), (1, 1), (1.2, 2), (3, 5), (7, 10), (11, 20), (450, 500),
])
def test_nice_ceiling(value, ceiling):
    assert charts.nice_ceiling(value) == pytest.approx(ceiling), value


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 ms"), (0.25, "250 ms"), (1.25, "1.2 s"), (42, "42 s"), (245, "4 min 5 s"), (7380, "2 h 3 min"),
])
def test_format_seconds(seconds, text):
    assert charts.format_seconds(seconds) == text, seconds


def test_outcome_bars_stack_by_state_and_fold_queued_into_running():
    start = charts.window_start(T0)
    chart = charts.outcome_chart({23: {"done": 3, "failed": 1, "queued": 1, "inprogress": 1}},
                                 start=start, zone=UTC)
    assert [b.css for b in chart.bars] == ["s-done", "s-failed", "s-running"]
    done, failed, running = chart.bars
    assert done.y + done.height == pytest.approx(charts.HEIGHT - charts.BOTTOM)
    assert failed.y + failed.height == pytest.approx(done.y)
    assert done.height == pytest.approx(3 * failed.height)
    assert failed.height == pytest.approx(running.height / 2)
    assert done.title == "00:00-01:00: 3 done"  # the last bucket is T0's hour
    assert datetime.fromtimestamp(start, timezone.utc).hour == 1  # the day ends with T0's hour


def test_delay_chart_draws_worst_and_mean_per_hour():
    chart = charts.delay_chart([HourDelay(0, 4, 0.5, 2.0)], start=T0, zone=UTC)
    worst, mean = chart.bars
    assert (worst.css, mean.css) == ("delay-worst", "delay-mean")
    assert worst.y == pytest.approx(charts.TOP)  # 2 s is the top of a 2 s axis
    assert chart.summary.startswith("4 scheduled runs started")
    assert [t.label for t in chart.y_ticks] == ["0 ms", "500 ms", "1.0 s", "1.5 s", "2.0 s"]


@pytest.mark.parametrize(("runs", "labels"), [
    (1, ["0", "1", "2", "3", "4", "5"]),
    (7, ["0", "2", "4", "6", "8", "10"]),
    (13, ["0", "5", "10", "15", "20"]),
    (480, ["0", "100", "200", "300", "400", "500"]),
])
def test_a_count_axis_steps_by_whole_numbers(runs, labels):
    chart = charts.outcome_chart({0: {"done": runs}}, start=T0, zone=UTC)
    assert [t.label for t in chart.y_ticks] == labels, runs
