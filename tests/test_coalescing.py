"""Consecutive skips of one schedule share one record: the database does not grow per skip,
every fire is still accounted for, retention covers the records, and every history view
shows them."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid

import pytest

from schedd import config as config_mod
from schedd import metrics
from schedd.clock import TestClock
from schedd.compose import build_core
from schedd.core import Core
from schedd.cron import load_zone, parse
from schedd.executors import Outcome, started
from schedd.policy import SKIP_RECORD_SPAN
from schedd.store import runs as run_store
from schedd.store import schedules as schedule_store
from tests.support.api import T0
from tests.support.jobs import JOBS, job, services
from tests.support.web import Operator
from tests.support import sql


class Held:
    """Every run waits until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def run(self, ctx):
        started(ctx)
        await self.release.wait()
        return Outcome(ok=True)


async def started_core(tmp_path, clock) -> Core:
    cfg = config_mod.from_dict({"executors": {"maintenance": {"command": [sys.executable, "-c", "pass"]}}})
    core = build_core(cfg, db_path=str(tmp_path / "c.db"), clock=clock)
    await core.start(run_loop=False)
    return core


async def add(core: Core, cron: str, **kw) -> schedule_store.Schedule:
    expr = parse(cron)
    schedule = await core.store.schedules.insert(schedule_store.NewSchedule(
        uid=str(uuid.uuid4()), family=kw.pop("family", "maintenance"), org_id=kw.pop("org_id", "default"),
        cron=cron, cron_normalized=expr.normalized, timezone="UTC", created_at=core.clock.now(),
        next_fire_at=expr.next_after(core.clock.now(), load_zone("UTC")), **kw))
    core.runner.arm(schedule)
    return schedule


async def records(core: Core, schedule) -> list[run_store.Run]:
    return list(reversed(await core.store.runs.list_schedule(schedule.id, limit=100_000, offset=0)))


@pytest.mark.slow  # a thousand fires, one by one
async def test_1000_consecutive_skips_of_one_schedule_leave_one_record(tmp_path):
    clock = TestClock(T0)
    core = await started_core(tmp_path, clock)
    held = Held()
    core.executors.get = lambda ctx: held  # type: ignore[method-assign]
    try:
        before = metrics.REGISTRY.get_sample_value("schedd_skips_coalesced_total", {"family": "maintenance"}) or 0
        schedule = await add(core, "* * * * * ?")
        for second in range(1, 1002):  # the first fire runs (and runs on); 1,000 are skipped
            clock.set(T0 + second)
            await core.engine.run_until_idle()
        rows = await records(core, schedule)
        assert len(rows) == 2
        run, skips = rows
        assert run.state == "inprogress" and run.due_at == T0 + 1
        assert (skips.state, skips.skip_reason, skips.fires) == ("skipped", "overlap", 1000)
        assert (skips.due_at, skips.last_due_at) == (T0 + 2, T0 + 1001)
        assert (skips.created_at, skips.ended_at) == (T0 + 2, T0 + 1001)
        assert skips.error == ("previous run still in progress (overlap_policy forbid); 1000 fires skipped,"
                               " due 2026-01-01T00:00:02Z to 2026-01-01T00:16:41Z")
        assert sum(r.fires for r in rows) == 1001  # every due fire accounted for once
        after = metrics.REGISTRY.get_sample_value("schedd_skips_coalesced_total", {"family": "maintenance"})
        assert after == before + 999
        count = await sql.fetchone(core.store, "SELECT count(*) FROM runs")
        assert count[0] == 2
    finally:
        held.release.set()
        await core.runner.wait_idle()
        await core.stop()


async def test_a_run_between_skips_starts_a_new_record(tmp_path):
    clock = TestClock(T0)
    core = await started_core(tmp_path, clock)
    held = Held()
    core.executors.get = lambda ctx: held  # type: ignore[method-assign]
    try:
        schedule = await add(core, "* * * * * ?")
        for second in (1, 2, 3):
            clock.set(T0 + second)
            await core.engine.run_until_idle()
        held.release.set()
        await core.runner.wait_idle()
        held.release = asyncio.Event()
        for second in (4, 5, 6):
            clock.set(T0 + second)
            await core.engine.run_until_idle()
        shape = [(r.state, r.fires, r.due_at - T0) for r in await records(core, schedule)]
        assert shape == [("done", 1, 1), ("skipped", 2, 2), ("inprogress", 1, 4), ("skipped", 2, 5)]
    finally:
        held.release.set()
        await core.runner.wait_idle()
        await core.stop()


async def test_a_record_takes_skips_for_a_day_and_retention_drops_it_like_any_run(tmp_path):
    clock = TestClock(T0)
    core = await started_core(tmp_path, clock)
    try:
        schedule = await add(core, "0 0 * * * ?", family="service", org_id=None, name="hourly",
                             retention_days=1)

        def skip(at: float) -> run_store.NewRun:
            return run_store.NewRun(
                uid=str(uuid.uuid4()), family="service", overlap_key=schedule.overlap_key, trigger="Scheduled",
                state="skipped", created_at=at, schedule_id=schedule.id, due_at=at, ended_at=at,
                error="previous run still in progress", skip_reason="overlap")

        def text(fires: int, first: float, last: float) -> str:
            return f"{fires} skipped"

        async def record(at: float) -> tuple[int, bool]:
            def op(conn):
                return run_store.op_record_skip(conn, skip(at), text, since=at - SKIP_RECORD_SPAN)
            return await core.store.db.write(op)

        first, joined = await record(T0)
        assert not joined
        for hour in range(1, 25):
            assert await record(T0 + hour * 3600) == (first, True)
        second, joined = await record(T0 + 25 * 3600)  # more than a day after the first: a new record
        assert not joined and second != first
        rows = await records(core, schedule)
        assert [(r.fires, r.error) for r in rows] == [(25, "25 skipped"), (1, "previous run still in progress")]
        # Retention (1 day) drops the first record once it began more than a day ago.
        assert await core.retention.sweep(T0 + 86400 + 1) == 1
        assert [r.id for r in await records(core, schedule)] == [second]
    finally:
        await core.stop()


# -- what the history views show ---------------------------------------------------------


async def overlapping_fires(api, seconds: int) -> None:
    """Fire every second for `seconds` while the first run holds on (Held)."""
    for second in range(1, seconds + 1):
        api.clock.set(T0 + second)
        await api.core.engine.run_until_idle()


async def test_maintenance_and_build_histories_show_one_line_with_the_count(make_api):
    api = await make_api()
    held = Held()
    api.core.executors.get = lambda ctx: held  # type: ignore[method-assign]
    try:
        response, body = await api.call("POST", "/aggregates/maintenance/scheduler/jobs/orgId/acme", "admin",
                                         json={"time_expression": "* * * * * ?"})
        assert response.status == 200, body
        cube = "/org/acme/project/p1/cube/c1/aggregates-creation"
        response, body = await api.call("POST", cube + "/scheduler", "admin",
                                         json={"time_expression": "* * * * * ?", "path": "aggregate/create"})
        assert response.status == 200, body
        job_id = body["response"]["job_id"]
        await overlapping_fires(api, 6)

        _, body = await api.call("GET", "/aggregates/maintenance/orgId/acme/history?status=skipped", "alice")
        (line,) = body["response"]["data"]
        assert line["status"] == "skipped"
        assert line["creationTime"] == "2026-01-01T00:00:02.000000Z"
        assert line["endTime"] == "2026-01-01T00:00:06.000000Z"
        assert re.search(r"5 fires skipped, due 2026-01-01T00:00:02Z to 2026-01-01T00:00:06Z",
                         line["errorInformation"]["message"])

        _, body = await api.call("GET", "/org/acme/aggregates-creation/builds/history?status=skipped", "alice")
        (build,) = body["response"]["data"]
        assert build["status"] == "skipped" and "5 fires skipped" in build["errorInformation"]["message"]
        _, body = await api.call("GET", f"{cube}/scheduler/history/jobId/{job_id}", "alice")
        assert len(body["response"]["history"]) == 2  # the run, and one line for the five skips

        operator = Operator(api)
        await operator.login("alice")
        _, page = await operator.get("/ui/runs?status=skipped")
        assert page.count("5 fires skipped") == 2  # the maintenance line and the build line
        _, page = await operator.get(f"/ui/runs/{line['id']}")
        assert re.search(r"<dt>Fires</dt><dd>5</dd>", page)
        assert "<dd>overlap</dd>" in page
    finally:
        held.release.set()
        await api.core.runner.wait_idle()


async def test_job_history_and_run_detail_show_the_span_and_the_count(make_api, service):
    api = await make_api(services=services(service, timeout=600))  # held on the test clock: no real-time timeout
    held = Held()
    api.core.executors.get = lambda ctx: held  # type: ignore[method-assign]
    try:
        response, body = await api.call("POST", JOBS, json=job(jobFrequency="* * * * * ?", historyStrategy="MINIMAL"))
        assert response.status == 200, body
        job_id = int(response.headers["Location"].rsplit("/", 1)[1])
        await overlapping_fires(api, 4)
        _, lines = await api.call("GET", f"/admin/api/jobs/history/{job_id}")
        assert [line["executionStatus"] for line in lines] == ["Skipped", "Running"]
        skipped = lines[0]
        assert (skipped["jobStartTime"], skipped["jobEndTime"]) == ("2026-01-01 00:00:02", "2026-01-01 00:00:04")
        _, detail = await api.call("GET", f"/admin/api/jobs/history/{job_id}/{skipped['jobRunId']}")
        assert detail["skipReason"] == "overlap"
        assert "3 fires skipped, due 2026-01-01T00:00:02Z to 2026-01-01T00:00:04Z" in detail["errorMessage"]
    finally:
        held.release.set()
        await api.core.runner.wait_idle()
