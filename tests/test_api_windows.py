"""Maintenance windows through Prod-Manager's maintenance API: windows, their timeline, timers, and the
gate on service jobs."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from schedd import grants
from schedd.compose import build_core
from schedd.cron import load_zone, parse
from schedd.families.maintenance_windows.service import blocks_service
from schedd.store import runs as run_store
from schedd.store import schedules as schedule_store
from schedd.store.windows import Window
from tests.support.api import T0, api_config
from tests.support import sql

# T0 is 2026-01-01T00:00Z = 01:00 in Berlin, the zone these tests configure.
SCOPES = {"platform": {"id": 1}, "edge": {"id": 2}}
SERVICES = {
    "jsonservices": {"base_url": "http://127.0.0.1:9/api", "id": 10, "scope": "platform"},
    "orders": {"base_url": "http://127.0.0.1:9/orders", "id": 11, "scope": "platform"},
    "cdn": {"base_url": "http://127.0.0.1:9/cdn", "id": 20, "scope": "edge"},
}
FORM = {
    "scope": "1", "service": "10", "name": "Database upgrade", "description": "PostgreSQL 17",
    "external_reference": "CHG-42", "external_link": "https://tickets.example.com/CHG-42",
    "service_status": "down", "scheduled_start_date": "2026-01-01T03:00",
    "scheduled_end_date": "2026-01-01T05:00",
}


def berlin(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M").replace(tzinfo=load_zone("Europe/Berlin")).timestamp()


@pytest.fixture
async def api(make_api):
    api = await make_api(scheduler={"timezone": "Europe/Berlin"}, scopes=SCOPES, services=SERVICES)
    await grant_every_scope(api)
    return api


async def grant_every_scope(api) -> None:
    """alice maintains both scopes: she writes every window these tests make."""
    for scope_id in (1, 2):
        await grants.grant(api.core.store, "alice", grants.Scope(scope_id, None), at=T0)


async def create(api, who="alice", json=None, **overrides):
    kwargs = {"json": {**FORM, **overrides}} if json else {"data": {**FORM, **overrides}}
    response, body = await api.call("POST", "/api/maintenance/create", who, allow_redirects=False, **kwargs)
    assert response.status == 302, body
    return int(response.headers["Location"].rsplit("/", 1)[1])


async def count(api, table: str) -> int:
    return (await sql.fetchone(api.core.store, f"SELECT count(*) FROM {table}"))[0]


async def test_create_from_a_form_redirects_to_the_new_maintenance(api):
    response, _ = await api.call("POST", "/api/maintenance/create", "alice", data=FORM, allow_redirects=False)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith("/api/maintenance/")
    response, body = await api.call("GET", location, None)
    assert response.status == 200
    assert {k: body[k] for k in ("name", "description", "external_reference", "external_link", "status",
                                  "scope", "service", "service_status")} == {
        "name": "Database upgrade", "description": "PostgreSQL 17", "external_reference": "CHG-42",
        "external_link": "https://tickets.example.com/CHG-42", "status": "scheduled", "scope": 1,
        "service": 10, "service_status": "down"}
    assert (body["scheduled_start_date"], body["scheduled_end_date"]) == ("2026-01-01T03:00", "2026-01-01T05:00")
    assert (body["start_date"], body["end_date"]) == (None, None)
    assert body["creation_date"] == "2026-01-01T01:00"
    assert [e["type"] for e in body["events"]] == ["create"]
    assert body["links"] == {"self": location, "scope": "/api/scope/1", "service": "/api/service/10",
                             "calendar": location + "/calendar"}


async def test_create_from_json_works_the_same(api):
    window_id = await create(api, json=True, name="From JSON")
    _, body = await api.call("GET", f"/api/maintenance/{window_id}", None)
    assert body["name"] == "From JSON"


async def test_the_window_moves_on_its_own_at_start_and_end(api):
    window_id = await create(api)
    api.clock.set(berlin("2026-01-01T03:00"))
    await api.settle()
    _, body = await api.call("GET", f"/api/maintenance/{window_id}", None)
    assert (body["status"], body["start_date"]) == ("in-progress", "2026-01-01T03:00")
    api.clock.set(berlin("2026-01-01T05:00"))
    await api.settle()
    _, body = await api.call("GET", f"/api/maintenance/{window_id}", None)
    assert (body["status"], body["end_date"]) == ("succeed", "2026-01-01T05:00")
    assert [e["type"] for e in body["events"]] == ["create", "update", "update"]


async def test_a_window_set_to_canceled_by_hand_does_not_move(api):
    window_id = await create(api)
    response, _ = await api.call("POST", f"/api/maintenance/{window_id}/update", "alice",
                                 data={**FORM, "status": "canceled"}, allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == f"/api/maintenance/{window_id}"
    api.clock.set(berlin("2026-01-01T06:00"))
    await api.settle()
    _, body = await api.call("GET", f"/api/maintenance/{window_id}", None)
    assert body["status"] == "canceled"
    assert "status scheduled -> canceled" in body["events"][-1]["content"]


async def test_a_window_due_while_the_daemon_was_down_moves_at_start(tmp_path, clock, api):
    window_id = await create(api)
    db_path = api.core.store.db.path
    await api.core.stop()
    clock.set(berlin("2026-01-02T00:00"))  # both moves fell due while stopped
    core = build_core(api_config(tmp_path, scheduler={"timezone": "Europe/Berlin"}, scopes=SCOPES,
                           services=SERVICES), db_path=db_path, clock=clock)
    await core.start(run_loop=False)
    try:
        await core.engine.run_until_idle()
        window = await core.windows.get(window_id, internal=True)
        assert window.status == "succeed"
        assert (window.start_date, window.end_date) == (berlin("2026-01-01T03:00"), berlin("2026-01-01T05:00"))
        assert [e.type for e in window.events] == ["create", "update", "update"]
    finally:
        await core.stop()
    api.core.store.db.path = db_path  # the fixture's app shuts its (already stopped) core down


async def test_a_window_created_in_the_past_moves_at_once(api):
    window_id = await create(api, scheduled_start_date="2025-12-31T10:00", scheduled_end_date="2026-01-01T09:00")
    _, body = await api.call("GET", f"/api/maintenance/{window_id}", None)
    assert body["status"] == "in-progress"


async def test_internal_comments_are_shown_only_with_a_token(api):
    window_id = await create(api)
    for comment, internal in (("Public note", "0"), ("Root password is in the vault", "1")):
        response, _ = await api.call("POST", f"/api/maintenance/{window_id}/comment", "alice",
                                     data={"comment": comment, "internal": internal}, allow_redirects=False)
        assert response.status == 302
    _, public = await api.call("GET", f"/api/maintenance/{window_id}", None)
    _, private = await api.call("GET", f"/api/maintenance/{window_id}", "alice")
    assert [e["content"] for e in public["events"] if e["type"] == "comment"] == ["Public note"]
    assert [(e["content"], e["internal"]) for e in private["events"] if e["type"] == "comment"] == [
        ("Public note", 0), ("Root password is in the vault", 1)]
    _, listed = await api.call("GET", "/api/maintenance", None)
    assert "vault" not in str(listed)


async def test_delete_redirects_to_the_list_and_the_window_is_gone(api):
    window_id = await create(api)
    response, _ = await api.call("POST", f"/api/maintenance/{window_id}/delete", "alice", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, "/api/maintenance")
    response, body = await api.call("GET", f"/api/maintenance/{window_id}", None)
    assert response.status == 404 and body["message"] == f"maintenance {window_id} not found"
    assert await count(api, "window_events") == 0


@pytest.mark.parametrize(("total", "page", "per_page", "expected"), [
    (0, 1, 20, {"X-Total": "0", "X-Total-Pages": "1", "X-Page": "1", "X-Per-Page": "20"}),
    (3, 1, 20, {"X-Total": "3", "X-Total-Pages": "1"}),
    (5, 2, 2, {"X-Total": "5", "X-Total-Pages": "3", "X-Page": "2", "X-Prev-Page": "1", "X-Next-Page": "3"}),
    (5, 3, 2, {"X-Total-Pages": "3", "X-Prev-Page": "2"}),
])
async def test_pagination_headers(api, total, page, per_page, expected):
    for i in range(total):
        await create(api, name=f"w{i}", scheduled_start_date=f"2026-02-0{i + 1}T10:00",
                     scheduled_end_date=f"2026-02-0{i + 1}T11:00")
    response, body = await api.call("GET", f"/api/maintenance?page={page}&per_page={per_page}", None)
    assert response.status == 200
    for header, value in expected.items():
        assert response.headers[header] == value, header
    if page == 1:
        assert "X-Prev-Page" not in response.headers
    if "X-Next-Page" not in expected:
        assert "X-Next-Page" not in response.headers
    starts = [item["scheduled_start_date"] for item in body["items"]]
    assert starts == sorted(starts, reverse=True)  # newest scheduled start first
    assert len(body["items"]) == max(0, min(per_page, total - (page - 1) * per_page))


@pytest.mark.parametrize(("query", "names"), [
    ("status=in-progress", ["past"]),
    ("scope=2", ["edge"]),
    ("service=11", ["orders"]),
    ("service_status=degraded", ["orders"]),
    ("external_reference=CHG-7", ["edge"]),
    ("start_before=2026-01-01T00:00", ["past"]),
    ("start_after=2026-01-10T00:00", ["edge"]),
    ("end_before=2026-01-01T04:00", ["past"]),
    ("end_after=2026-01-10T00:00", ["edge"]),
])
async def test_every_list_filter(api, query, names):
    await create(api, name="past", scheduled_start_date="2025-12-31T10:00", scheduled_end_date="2026-01-01T03:00")
    await create(api, name="orders", service="11", service_status="degraded",
                 scheduled_start_date="2026-01-05T10:00", scheduled_end_date="2026-01-05T11:00")
    await create(api, name="edge", scope="2", service="20", external_reference="CHG-7",
                 scheduled_start_date="2026-01-20T10:00", scheduled_end_date="2026-01-20T11:00")
    response, body = await api.call("GET", f"/api/maintenance?{query}", None)
    assert response.status == 200
    assert [item["name"] for item in body["items"]] == names


BAD = [
    ({"name": ""}, "name"),
    ({"name": "x" * 256}, "name"),
    ({"scope": "99"}, "scope"),
    ({"scope": "abc"}, "scope"),
    ({"service": "20"}, "service"),  # belongs to scope 2, not 1
    ({"service": "77"}, "service"),
    ({"service_status": "broken"}, "service_status"),
    ({"scheduled_start_date": "2026-01-01T03:00:00"}, "scheduled_start_date"),
    ({"scheduled_start_date": "2026-01-01T03:00+01:00"}, "scheduled_start_date"),
    ({"scheduled_end_date": "2026-13-01T05:00"}, "scheduled_end_date"),
    ({"scheduled_end_date": "2026-01-01T02:00"}, "scheduled_end_date"),
    ({"external_link": "javascript:alert(1)"}, "external_link"),
    ({"external_link": "ftp://host/x"}, "external_link"),
]


@pytest.mark.parametrize(("change", "field"), BAD, ids=[str(c) for c, _ in BAD])
async def test_bad_input_is_400_with_reasons_and_changes_nothing(api, change, field):
    response, body = await api.call("POST", "/api/maintenance/create", "alice", data={**FORM, **change},
                                    allow_redirects=False)
    assert response.status == 400
    assert field in body["reasons"], body
    assert isinstance(body["reasons"][field], list) and body["message"]
    assert await count(api, "windows") == 0


async def test_several_problems_are_reported_together(api):
    response, body = await api.call("POST", "/api/maintenance/create", "alice",
                                    data={"scope": "1"}, allow_redirects=False)
    assert response.status == 400
    assert {"name", "service", "service_status", "scheduled_start_date", "scheduled_end_date"} <= set(body["reasons"])


async def test_update_with_a_bad_status_changes_nothing(api):
    window_id = await create(api)
    response, body = await api.call("POST", f"/api/maintenance/{window_id}/update", "alice",
                                    data={**FORM, "status": "exploded", "name": "changed"}, allow_redirects=False)
    assert response.status == 400 and "status" in body["reasons"]
    _, body = await api.call("GET", f"/api/maintenance/{window_id}", None)
    assert body["name"] == "Database upgrade" and len(body["events"]) == 1


@pytest.mark.parametrize("path", ["/api/maintenance/create", "/api/maintenance/1/update",
                                  "/api/maintenance/1/delete", "/api/maintenance/1/comment"])
async def test_writes_need_a_token(api, path):
    await create(api)
    response, body = await api.call("POST", path, None, data={**FORM, "comment": "x"}, allow_redirects=False)
    assert response.status == 401
    assert set(body) == {"message", "reasons"}
    assert await count(api, "windows") == 1 and await count(api, "window_events") == 1


@pytest.mark.parametrize("query", ["per_page=51", "per_page=-1", "page=0", "page=x", "page=10000001",
                                   "status=bogus", "start_before=yesterday", "scope=-1"])
async def test_bad_list_parameters_are_400(api, query):
    response, body = await api.call("GET", f"/api/maintenance?{query}", None)
    assert response.status == 400
    assert query.split("=")[0] in body["reasons"]


async def test_unknown_or_absurd_ids_are_404(api):
    for path in ("/api/maintenance/999", "/api/maintenance/99999999999999999999", "/api/maintenance/1/calendar",
                 "/api/scope/9", "/api/service/9"):
        response, _ = await api.call("GET", path, None)
        assert response.status == 404, path


async def test_calendar_is_an_icalendar_event(api):
    window_id = await create(api, name="Upgrade, phase 1; " + "long " * 20, description="line one\nline two")
    response = await api.client.get(f"/api/maintenance/{window_id}/calendar")
    assert response.status == 200
    assert response.content_type == "text/calendar"
    text = await response.text()
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    assert "DTSTART:20260101T020000Z\r\n" in text and "DTEND:20260101T040000Z\r\n" in text
    unfolded = text.replace("\r\n ", "")
    assert "SUMMARY:Upgrade\\, phase 1\\; long" in unfolded
    assert "DESCRIPTION:line one\\nline two" in unfolded
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))


async def test_scopes_and_services_come_from_the_config(api):
    _, scopes = await api.call("GET", "/api/scope", None)
    assert [(s["id"], s["name"]) for s in scopes["items"]] == [(1, "platform"), (2, "edge")]
    _, services = await api.call("GET", "/api/service", None)
    assert [(s["id"], s["name"], s["scope"]) for s in services["items"]] == [
        (10, "jsonservices", 1), (11, "orders", 1), (20, "cdn", 2)]
    _, service = await api.call("GET", "/api/service/20", None)
    assert service["name"] == "cdn"


async def test_a_down_window_skips_the_jobs_of_its_service_until_it_is_over(make_api, upstream):
    services = {**SERVICES, "jsonservices": {**SERVICES["jsonservices"],
                                             "base_url": str(upstream.make_url("/api"))}}
    api = await make_api(scheduler={"timezone": "Europe/Berlin"}, scopes=SCOPES, services=services)
    await grant_every_scope(api)
    expr = parse("0 * * * * ?")
    job = await api.core.store.schedules.insert(schedule_store.NewSchedule(
        uid=str(uuid.uuid4()), family="service", name="health", cron=expr.expr,
        cron_normalized=expr.normalized, timezone="UTC", created_at=T0,
        next_fire_at=expr.next_after(T0, load_zone("UTC")),
        spec={"jobServiceInfo": {"serviceName": "jsonservices", "operationName": "health", "postData": "{}"}}))
    api.core.runner.arm(job)
    window_id = await create(api, scheduled_start_date="2026-01-01T00:30", scheduled_end_date="2026-01-01T01:02")
    assert api.core.runner.gate(job, api.clock.now()) == window_id

    api.clock.set(T0 + 60)
    await api.settle()
    runs = await api.core.store.runs.list_schedule(job.id, limit=10, offset=0)
    assert [(r.state, r.skip_reason, r.window_id) for r in runs] == [("skipped", "maintenance", window_id)]
    assert upstream.calls == []

    api.clock.set(T0 + 120)  # the window ended at 01:02 Berlin = T0 + 120 s
    await api.settle()
    runs = await api.core.store.runs.list_schedule(job.id, limit=10, offset=0)
    assert runs[0].state == "done"
    assert upstream.calls == ["/api/health"]


@pytest.mark.parametrize("service_status", ["degraded", "up"])
async def test_degraded_and_up_windows_do_not_gate(api, service_status):
    await create(api, service_status=service_status, scheduled_start_date="2026-01-01T00:30")
    job = type("S", (), {"spec": {"jobServiceInfo": {"serviceName": "jsonservices"}}})()
    assert api.core.runner.gate(job, api.clock.now()) is None


async def test_canceling_a_down_window_lifts_the_gate(api):
    window_id = await create(api, scheduled_start_date="2026-01-01T00:30")
    job = type("S", (), {"spec": {"jobServiceInfo": {"serviceName": "jsonservices"}}})()
    assert api.core.runner.gate(job, api.clock.now()) == window_id
    await api.call("POST", f"/api/maintenance/{window_id}/update", "alice",
                   data={**FORM, "scheduled_start_date": "2026-01-01T00:30", "status": "canceled"},
                   allow_redirects=False)
    assert api.core.runner.gate(job, api.clock.now()) is None


@pytest.mark.parametrize(("status", "service_status", "offset", "blocks"), [
    ("scheduled", "down", -1, False),      # before the scheduled start
    ("scheduled", "down", 0, True),        # at the start, before its timer moved it
    ("in-progress", "down", 0, True),
    ("in-progress", "down", 3599, True),
    ("in-progress", "down", 3600, False),  # the scheduled end is not covered
    ("in-progress", "degraded", 60, False),
    ("in-progress", "up", 60, False),
    ("succeed", "down", 60, False),
    ("canceled", "down", 60, False),
])
def test_a_down_window_blocks_its_service_from_scheduled_start_to_scheduled_end(status, service_status, offset,
                                                                                 blocks):
    window = Window(id=1, name="w", description=None, external_reference=None, external_link=None,
                    status=status, scope_id=1, service_id=10, service_status=service_status,
                    creation_date=T0, scheduled_start_date=T0, scheduled_end_date=T0 + 3600,
                    start_date=None, end_date=None)
    assert blocks_service(window, T0 + offset) is blocks
