"""Run slots shared between orgs, driven by the test clock: a busy org cannot starve a quiet one,
waiting lines are bounded, and what waits follows the misfire policy."""

from __future__ import annotations

import asyncio
import sys
import uuid

from schedd import config as config_mod
from schedd import metrics
from schedd.clock import TestClock
from schedd.compose import build_core
from schedd.core import Core
from schedd.cron import load_zone, parse
from schedd.executors import Outcome, started
from schedd.store import runs as run_store
from schedd.store import schedules as schedule_store
from tests.support.api import T0
from tests.support import sql

EVERY_SECOND = "* * * * * ?"


def make_config(**sections) -> config_mod.Config:
    return config_mod.from_dict({
        # No maintenance run after a cube's first build: only the builds are counted here.
        "executors": {"maintenance": {"command": [sys.executable, "-c", "pass"], "after_first_build": False}},
        **sections,
    })


class Hog:
    """Runs of the orgs in `holding` keep their slot until `release` is set; others end at once."""

    def __init__(self, *holding: str) -> None:
        self.holding = set(holding)
        self.release = asyncio.Event()
        self.started: dict[str | None, int] = {}

    async def run(self, ctx):
        started(ctx)
        org = ctx.values.get("org_id")
        self.started[org] = self.started.get(org, 0) + 1
        if org in self.holding:
            await self.release.wait()
        return Outcome(ok=True)


async def started_core(tmp_path, clock, **sections) -> tuple[Core, Hog]:
    core = build_core(make_config(**sections), db_path=str(tmp_path / "fair.db"), clock=clock)
    await core.start(run_loop=False)
    for org in ("a", "b", "c"):
        await sql.execute(core.store, "INSERT INTO orgs (id, created_at) VALUES (?, 0)", (org,))
    hog = Hog("a")
    core.executors.get = lambda ctx: hog  # type: ignore[method-assign]
    return core, hog


async def started_rows(core: Core, at: float) -> list:
    """b's runs due and started at `at`, once their starts are written (no time passes meanwhile)."""
    for _ in range(100):
        rows = await sql.fetchall(
            core.store, "SELECT state FROM runs WHERE org_id = 'b' AND due_at = ? AND started_at = ?", (at, at))
        if len(rows) == 10:
            break
        await asyncio.sleep(0)
        await core.store.flush()
    return rows


async def add_builds(core: Core, org: str, count: int, cron: str = EVERY_SECOND, **kw) -> list[schedule_store.Schedule]:
    """`count` build schedules of one org, each on a cube of its own (so none overlaps another)."""
    expr = parse(cron)
    first = expr.next_after(core.clock.now(), load_zone("UTC"))
    made = await asyncio.gather(*(core.store.schedules.insert(schedule_store.NewSchedule(
        uid=str(uuid.uuid4()), family="aggregate", org_id=org, project_id="p", cube_id=f"{org}{i}",
        cron=cron, cron_normalized=expr.normalized, timezone="UTC", full_build=True,
        created_at=core.clock.now(), next_fire_at=first, **kw)) for i in range(count)))
    for schedule in made:
        core.runner.arm(schedule)
    return list(made)


async def until_released(core: Core, org: str) -> None:
    """Let the runs of `org` that end at once finish (loop turns, no time passes)."""
    for _ in range(10_000):
        if not core.runner.pool.held(org):
            return
        await asyncio.sleep(0)
    raise AssertionError(f"runs of {org} did not end")


async def stop(core: Core, hog: Hog) -> None:
    hog.release.set()
    await core.runner.wait_idle()
    await core.stop()


async def test_a_quiet_org_starts_on_time_beside_an_org_with_2000_every_second_schedules(tmp_path):
    clock = TestClock(T0)
    core, hog = await started_core(tmp_path, clock)
    try:
        await add_builds(core, "a", 2000)
        quiet = await add_builds(core, "b", 10)
        cap = core.runner.pool.cap("a")
        assert (core.runner.max_concurrent, cap) == (64, 32)
        ticks = 6
        for second in range(1, ticks + 1):
            clock.set(T0 + second)
            await core.engine.run_until_idle()
            # Within the tick they are due, all ten of b's runs have started; none waits.
            assert core.runner.pool.line("b") == 0
            ran_b = await started_rows(core, T0 + second)
            assert len(ran_b) == 10 and all(r[0] in ("inprogress", "done") for r in ran_b)
            assert core.runner.pool.held("a") == cap
            if second == 2:
                # Once a is at its share, b's fires are recorded (and started) before a's
                # (at 2 s each of a's schedules begins a skip record).
                order = await sql.fetchone(core.store, 
                    "SELECT max(CASE WHEN org_id = 'b' THEN id END) < min(CASE WHEN org_id = 'a' THEN id END)"
                    " FROM runs WHERE created_at = ?", (T0 + second,))
                assert order[0] == 1
            await until_released(core, "b")
        rows = await sql.fetchall(core.store, 
            "SELECT due_at, started_at, state FROM runs WHERE org_id = 'b' ORDER BY due_at")
        assert len(rows) == 10 * ticks
        assert all((state, started) == ("done", due) for due, started, state in rows)
        assert {due - T0 for due, _, _ in rows} == set(range(1, ticks + 1))
        for schedule in quiet:
            assert (await core.store.schedules.get(schedule.id)).success_count == ticks
        # a's backlog: its share running, a bounded line waiting, the rest skipped and counted,
        # each schedule's skips in one record however many seconds pass.
        a_rows = await sql.fetchall(core.store, 
            "SELECT state, count(*) AS n, sum(fires) AS fires FROM runs WHERE org_id = 'a' GROUP BY state")
        by_state = {state: (n, fires) for state, n, fires in a_rows}
        assert by_state["inprogress"] == (cap, cap)
        assert by_state["queued"] == (1000, 1000)
        skipped_rows, skipped_fires = by_state["skipped"]
        assert skipped_rows <= 2000
        assert skipped_fires == 2000 * ticks - cap - 1000
    finally:
        await stop(core, hog)


async def test_beyond_its_line_a_fire_is_skipped_counted_and_recorded_once(tmp_path):
    clock = TestClock(T0)
    core, hog = await started_core(
        tmp_path, clock, scheduler={"max_concurrent_runs": 2},
        quotas={"max_concurrent_runs": 1, "max_queued_runs": 1})
    try:
        before = metrics.REGISTRY.get_sample_value(
            "schedd_limit_reached_total", {"limit": "quotas.max_queued_runs"}) or 0
        schedules = await add_builds(core, "a", 3)
        for second in (1, 2, 3):
            clock.set(T0 + second)
            await core.engine.run_until_idle()
        states = {}
        for schedule in schedules:
            runs = await core.store.runs.list_schedule(schedule.id, limit=10, offset=0)
            states[schedule.id] = [(r.state, r.skip_reason, r.fires) for r in reversed(runs)]
        running, waiting, refused = (states[s.id] for s in schedules)
        assert running[0] == ("inprogress", None, 1)
        assert waiting[0] == ("queued", None, 1)
        assert refused == [("skipped", "queue_full", 3)]  # three seconds, one record
        (record,) = await core.store.runs.list_schedule(schedules[2].id, limit=10, offset=0)
        assert "already has 1 runs waiting" in record.error and "max_queued_runs" in record.error
        assert (record.due_at, record.last_due_at) == (T0 + 1, T0 + 3)
        after = metrics.REGISTRY.get_sample_value(
            "schedd_limit_reached_total", {"limit": "quotas.max_queued_runs"})
        assert after == before + 3
    finally:
        await stop(core, hog)


class Gated:
    """Every run waits for its own gate."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}

    async def run(self, ctx):
        started(ctx)
        await self.gates.setdefault(ctx.run_uid, asyncio.Event()).wait()
        return Outcome(ok=True)

    def open(self, uid: str) -> None:
        self.gates.setdefault(uid, asyncio.Event()).set()


async def state_becomes(core: Core, uid: str, *states: str) -> str:
    """The run's state once it is one of `states` (the writer works on its own thread)."""
    for _ in range(5000):
        state = (await core.store.runs.get_by_uid(uid)).state
        if state in states:
            return state
        await asyncio.sleep(0.001)
    raise AssertionError(f"run {uid} stayed {state}")


async def test_a_freed_slot_goes_to_the_org_without_one_before_the_org_with_a_backlog(tmp_path):
    clock = TestClock(T0)
    core, hog = await started_core(tmp_path, clock, scheduler={"max_concurrent_runs": 2},
                                   quotas={"max_concurrent_runs": 2})
    gated = Gated()
    core.executors.get = lambda ctx: gated  # type: ignore[method-assign]
    try:
        runner = core.runner
        a = [await runner.run_now("aggregate", f"aggregate:a/p/{i}", "ManualBuild", at=T0, org_id="a")
             for i in range(4)]
        b = await runner.run_now("aggregate", "aggregate:b/p/0", "ManualBuild", at=T0, org_id="b")
        assert [r.state for r in a] == ["inprogress", "inprogress", "queued", "queued"]
        assert b.state == "queued"  # every slot is held, by a
        gated.open(a[0].uid)
        assert await state_becomes(core, b.uid, "inprogress") == "inprogress"
        assert (await core.store.runs.get_by_uid(a[2].uid)).state == "queued"
        gated.open(a[1].uid)
        assert await state_becomes(core, a[2].uid, "inprogress") == "inprogress"
        assert (await core.store.runs.get_by_uid(a[3].uid)).state == "queued"
        for ref in (*a, b):
            gated.open(ref.uid)
        await runner.wait_idle()
    finally:
        await stop(core, hog)


async def test_run_now_past_the_line_is_refused_409_naming_the_limit(make_api):
    api = await make_api(scheduler={"max_concurrent_runs": 1}, quotas={"max_queued_runs": 0})
    hog = Hog("acme", "default")
    api.core.executors.get = lambda ctx: hog  # type: ignore[method-assign]
    try:
        url = "/api/1.0/aggregates/maintenance/orgId/{org}/run-immediately"
        response, body = await api.call("POST", url.format(org="acme"), "alice")
        assert response.status == 200, body
        response, body = await api.call("POST", url.format(org="default"), "alice")
        assert response.status == 409, body
        assert body["status"]["code"] == 409
        assert "max_queued_runs" in body["status"]["message"]
        row = await sql.fetchone(api.core.store, "SELECT count(*) FROM runs")
        assert row[0] == 1
    finally:
        hog.release.set()
        await api.core.runner.wait_idle()


async def test_a_skip_policy_run_that_waited_past_the_grace_is_skipped_as_a_misfire(tmp_path):
    clock = TestClock(T0)
    core, hog = await started_core(tmp_path, clock, scheduler={"max_concurrent_runs": 1, "misfire_grace": 60})
    try:
        blocker = await core.runner.run_now("aggregate", "aggregate:a/p/x", "ManualBuild", at=T0, org_id="a")
        (late,) = await add_builds(core, "b", 1, "0 * * * * ?", misfire_policy="skip")
        (patient,) = await add_builds(core, "c", 1, "0 * * * * ?")  # fire_once: runs late
        clock.set(T0 + 60)
        await core.engine.run_until_idle()
        clock.set(T0 + 200)  # a's run ends 140 s after b's and c's fire
        hog.release.set()
        await core.runner.wait_idle()
        assert (await core.store.runs.get_by_uid(blocker.uid)).state == "done"
        (skipped,) = await core.store.runs.list_schedule(late.id, limit=5, offset=0)
        assert (skipped.state, skipped.skip_reason, skipped.started_at) == ("skipped", "misfire", None)
        assert "waited 140 s for a run slot" in skipped.error
        ran = await core.store.runs.list_schedule(patient.id, limit=5, offset=0)
        assert [(r.state, r.started_at) for r in ran] == [("done", T0 + 200)]
    finally:
        await stop(core, hog)


async def test_a_reload_with_more_slots_starts_waiting_runs_at_once(tmp_path):
    clock = TestClock(T0)
    core, hog = await started_core(tmp_path, clock, scheduler={"max_concurrent_runs": 1})
    try:
        await core.runner.run_now("aggregate", "aggregate:a/p/0", "ManualBuild", at=T0, org_id="a")
        waiting = await core.runner.run_now("aggregate", "aggregate:b/p/0", "ManualBuild", at=T0, org_id="b")
        assert waiting.state == "queued"
        core.reconfigure(make_config(scheduler={"max_concurrent_runs": 4}))
        assert await state_becomes(core, waiting.uid, "done") == "done"
    finally:
        await stop(core, hog)
