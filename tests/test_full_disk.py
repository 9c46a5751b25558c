"""A database that cannot grow, through HTTP and the engine: 503, nothing half-done, recovery on its own.

`PRAGMA max_page_count` on the writer pins the file at its current size, so a write
succeeds while the pages it touches have room and fails (SQLITE_FULL) once one must
grow. Each test writes until that happens: every write acknowledged before is in the
database, the refused one is not, and once the limit is lifted the next write succeeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from schedd.api import openapi
from schedd.engine import CRON
from schedd.executors import Outcome
from schedd.store import schedules as schedule_store
from tests.support.api import PASSWORD
from tests.support import sql

SCOPES = {"platform": {"id": 1}}
SERVICES = {"jsonservices": {"base_url": "http://127.0.0.1:9/api", "id": 10, "scope": "platform"}}
CRON_EXPR = "0 0 4 ? * * *"
NO_LIMIT = 1_073_741_823
MAX_WRITES = 3000
WINDOW = {"scope": 1, "service": 10, "name": "w", "service_status": "down",
          "scheduled_start_date": "2026-02-01T10:00", "scheduled_end_date": "2026-02-01T11:00"}


def job(i: int) -> dict[str, Any]:
    return {"jobName": f"job {i}", "jobFrequency": CRON_EXPR,
            "jobServiceInfo": {"serviceName": "jsonservices", "serviceType": "intSer", "operationName": "op",
                               "serviceExecutionType": "SERVER_URL"}}


class Spy:
    """An executor that records the runs it was asked to do and succeeds at once."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []

    async def run(self, ctx) -> Outcome:
        self.runs.append((ctx.trigger, ctx.run_uid))
        return Outcome(ok=True)

    def count(self, trigger: str) -> int:
        return sum(1 for seen, _ in self.runs if seen == trigger)


@dataclass
class Write:
    """One family's write: the request for attempt i, the count of what it stores, the envelope check."""

    op_id: str
    request: Callable[[Any, int], tuple[str, str, dict[str, Any]]]
    stored: str
    envelope: Callable[[Any], bool]
    trigger: str | None = None
    """The trigger of the runs it starts, if it starts runs."""
    rows: int = 1
    """Rows each write stores (a login: its access and refresh token)."""


def engine_503(body) -> bool:
    return body["status"]["code"] == 503 and body["response"] is None


def design_503(body) -> bool:
    return body["status"]["i18n_message"] == "response.error" and body["response"] is None


def volt_503(body) -> bool:
    return body["status"] == "FAIL" and body["token"] is None


def prod_503(body) -> bool:
    return body["reasons"] == {}


CUBE = "/org/acme/project/p1/cube/c1/aggregates-creation"
WRITES = [
    Write("createMaintenanceSchedule",
          lambda api, i: ("POST", "/aggregates/maintenance/scheduler/jobs/orgId/acme",
                          {"json": {"time_expression": CRON_EXPR}}),
          "SELECT count(*) FROM schedules WHERE family = 'maintenance'", engine_503),
    Write("runMaintenanceNow",
          lambda api, i: ("POST", "/aggregates/maintenance/orgId/acme/run-immediately", {}),
          "SELECT count(*) FROM runs WHERE trigger = 'ManualMaintenance'",
          engine_503, trigger="ManualMaintenance"),
    Write("createCubeSchedule",
          lambda api, i: ("POST", CUBE + "/scheduler", {"json": {"time_expression": CRON_EXPR,
                                                                 "path": "aggregate/create"}}),
          "SELECT count(*) FROM schedules WHERE family = 'aggregate'", design_503),
    Write("executeBuild", lambda api, i: ("POST", CUBE + "/execute", {"json": {"full_build": False}}),
          "SELECT count(*) FROM runs WHERE trigger = 'ManualBuild'",
          design_503, trigger="ManualBuild"),
    Write("createJob", lambda api, i: ("POST", "/admin/api/jobs/job", {"json": job(i)}),
          "SELECT count(*) FROM schedules WHERE family = 'service'", volt_503),
    Write("runJobNow", lambda api, i: ("POST", f"/admin/api/jobs/job/run/{api.job_id}", {}),
          "SELECT count(*) FROM runs WHERE trigger = 'RunNow'",
          volt_503, trigger="RunNow"),
    Write("createMaintenance", lambda api, i: ("POST", "/api/maintenance/create", {"json": WINDOW}),
          "SELECT count(*) FROM windows", prod_503),
    Write("commentMaintenance",
          lambda api, i: ("POST", f"/api/maintenance/{api.window_id}/comment", {"json": {"comment": f"c{i}"}}),
          "SELECT count(*) FROM window_events WHERE type = 'comment'", prod_503),
    Write("login",
          lambda api, i: ("POST", "/authService/accounts/login", {"data": {"userid": "alice", "password": PASSWORD}}),
          "SELECT count(*) FROM tokens", volt_503, rows=2),
]


def documented(op_id: str, status: int) -> Draft202012Validator:
    (op,) = [op for op in openapi.operations() if op.op_id == op_id]
    assert status in op.answers, f"{op_id} does not document {status}"
    schema = op.answers[status].schema
    assert schema is not None
    return Draft202012Validator({**schema, "components": openapi.document()["components"]})


async def limit_to_current_size(api) -> None:
    pages = (await sql.fetchone(api.core.store, "PRAGMA page_count"))[0]
    await api.core.store.db.write(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}"))


async def lift_limit(api) -> None:
    await api.core.store.db.write(lambda conn: conn.execute(f"PRAGMA max_page_count = {NO_LIMIT}"))


async def count(api, statement: str) -> int:
    return (await sql.fetchone(api.core.store, statement))[0]


@pytest.fixture
async def api(make_api):
    api = await make_api(scopes=SCOPES, services=SERVICES)
    api.spy = Spy()
    api.core.executors.get = lambda ctx: api.spy  # type: ignore[method-assign]
    response, body = await api.call("POST", "/admin/api/jobs/job", json=job(-1))
    api.job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    response, _ = await api.call("POST", "/api/maintenance/create", json=WINDOW, allow_redirects=False)
    api.window_id = int(response.headers["Location"].rsplit("/", 1)[1])
    return api


@pytest.mark.stores("sqlite")  # a full disk is made by SQLite's max_page_count; a PostgreSQL server's disk is its own
@pytest.mark.parametrize("write", WRITES, ids=lambda w: w.op_id)
async def test_a_full_database_answers_503_acknowledges_only_what_it_stored_and_recovers(api, write):
    stored_before = await count(api, write.stored)
    await limit_to_current_size(api)
    acknowledged = 0
    for i in range(MAX_WRITES):
        method, path, kw = write.request(api, i)
        response, body = await api.call(method, path, "admin", allow_redirects=False, **kw)
        await api.settle()
        if response.status == 503:
            break
        assert response.status in (200, 302), body
        acknowledged += 1
    else:
        pytest.fail(f"the database never filled up in {MAX_WRITES} writes")

    assert write.envelope(body), body
    assert "database is not writable" in str(body) and "full" in str(body)
    assert not sorted(documented(write.op_id, 503).iter_errors(body), key=str)
    assert await count(api, write.stored) == stored_before + acknowledged * write.rows
    if write.trigger:
        # A run whose start could not be recorded never reached its executor.
        assert api.spy.count(write.trigger) == acknowledged
        assert "X-Run-Id" not in response.headers

    await lift_limit(api)
    method, path, kw = write.request(api, MAX_WRITES)
    response, body = await api.call(method, path, "admin", allow_redirects=False, **kw)
    await api.settle()
    assert response.status in (200, 302), body
    assert await count(api, write.stored) == stored_before + (acknowledged + 1) * write.rows
    if write.trigger:
        assert api.spy.count(write.trigger) == acknowledged + 1


@pytest.mark.stores("sqlite")  # the same: SQLite's max_page_count
async def test_a_fire_that_cannot_be_recorded_does_not_run_and_is_retried_a_second_later(api, clock, caplog):
    response, body = await api.call("POST", "/aggregates/maintenance/scheduler/jobs/orgId/acme",
                                    json={"time_expression": "* * * * * ?"})
    schedule = await api.core.store.schedules.get_by_uid("maintenance", body["response"]["job_id"])
    await limit_to_current_size(api)
    runs = "SELECT count(*) FROM runs WHERE trigger = 'TimeBasedMaintenance'"

    async def fire_not_recorded(recorded: int) -> bool:
        """Wait for the fire's outcome: False once its run is recorded, True once it could not be."""
        for _ in range(2000):
            if any("action=fire_not_recorded" in record.getMessage() for record in caplog.records):
                return True
            if await count(api, runs) > recorded:
                return False
            await asyncio.sleep(0.001)
        raise AssertionError("the fire was neither recorded nor refused")

    # Fire every second until a fire's record does not fit; each recorded one ran.
    for _ in range(MAX_WRITES):
        clock.advance(1)
        due = api.core.engine.due_of(CRON, schedule.id)
        recorded = await count(api, runs)
        api.core.engine.run_pending()
        if await fire_not_recorded(recorded):
            break
        await api.settle()
        assert api.spy.count("TimeBasedMaintenance") == await count(api, runs)
    else:
        pytest.fail(f"the database never filled up in {MAX_WRITES} fires")

    # The fire failed: nothing ran, and the handler waits one second of the clock to re-arm it.
    failed_at = clock.now()
    assert api.spy.count("TimeBasedMaintenance") == recorded
    assert api.core.engine.due_of(CRON, schedule.id) is None
    await lift_limit(api)
    clock.advance(1)
    await api.core.engine.drain()
    assert api.core.engine.due_of(CRON, schedule.id) == due  # re-armed at the due time it missed

    # Retried with space back: the missed fire runs, and the one due meanwhile with it.
    await api.settle()
    assert api.spy.count("TimeBasedMaintenance") == recorded + 2
    latest = await sql.fetchall(api.core.store, 
        "SELECT due_at, created_at, state FROM runs WHERE trigger = 'TimeBasedMaintenance' ORDER BY id DESC LIMIT 2")
    assert sorted(tuple(row) for row in latest) == [(due, failed_at + 1, "done"), (due + 1, failed_at + 1, "done")]

    # And the engine keeps firing on schedule.
    clock.advance(1)
    await api.settle()
    assert api.spy.count("TimeBasedMaintenance") == recorded + 3
    assert api.core.engine.due_of(CRON, schedule.id) == clock.now() + 1
