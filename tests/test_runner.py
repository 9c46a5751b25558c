"""The runner with the test clock on a real SQLite file: policies, downtime, crashes, history."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import pytest

from schedd import config as config_mod
from schedd.accounts import REFRESH_TTL
from schedd.clock import TestClock
from schedd.compose import build_core
from schedd.core import Core
from schedd.errors import Conflict
from schedd.retention import RETENTION_SWEEP
from schedd.store import runs as run_store
from schedd.store import schedules as schedule_store
from tests.support.api import PASSWORD
from tests.support.runner import add_schedule, controlled, finish_all, history, make_config, settle
from tests.support import sql

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def clock():
    return TestClock(T0)


@pytest.fixture
async def core(tmp_path, clock):
    c = build_core(make_config(), db_path=str(tmp_path / "r.db"), clock=clock)
    await c.start(run_loop=False)
    await c.store.db.execute("INSERT INTO orgs (id, created_at) VALUES ('default', 0) ON CONFLICT DO NOTHING")
    yield c
    if c.store.db.is_open:
        c.runner.executors = c.executors
        await c.stop()


async def test_a_due_schedule_runs_its_command_and_moves_to_the_next_fire(core, clock):
    schedule = await add_schedule(core, "0 * * * * ?")
    clock.set(T0 + 60)
    await finish_all(core)
    runs = await history(core, schedule)
    assert [(r.state, r.trigger, r.due_at) for r in runs] == [("done", "TimeBasedMaintenance", T0 + 60)]
    reloaded = await core.store.schedules.get(schedule.id)
    assert reloaded.next_fire_at == T0 + 120
    assert (reloaded.success_count, reloaded.fail_count, reloaded.last_run_uid) == (1, 0, runs[0].uid)
    assert core.engine.due_of(0, schedule.id) == T0 + 120


async def test_nothing_fires_before_it_is_due(core, clock):
    schedule = await add_schedule(core, "0 * * * * ?")
    clock.set(T0 + 59.9)
    await finish_all(core)
    assert await history(core, schedule) == []


async def test_forbid_records_a_skip_while_the_previous_run_is_in_progress(core, clock):
    ex = controlled(core)
    schedule = await add_schedule(core, "* * * * * ?")
    clock.set(T0 + 1)
    await settle(core)
    clock.set(T0 + 2)
    await settle(core)
    ex.release.set()
    await finish_all(core)
    runs = await history(core, schedule)
    assert [(r.state, r.skip_reason) for r in runs] == [("done", None), ("skipped", "overlap")]
    assert sum(r.fires for r in runs) == 2


async def test_buffer_one_runs_one_waiting_fire_after_the_current_and_skips_more(core, clock):
    ex = controlled(core)
    schedule = await add_schedule(core, "* * * * * ?", overlap_policy="buffer_one")
    for second in (1, 2, 3):
        clock.set(T0 + second)
        await settle(core)
    states = [(r.due_at - T0, r.state) for r in await history(core, schedule)]
    assert states == [(1, "inprogress"), (2, "queued"), (3, "skipped")]
    ex.release.set()
    await core.runner.wait_idle()
    states = [(r.due_at - T0, r.state) for r in await history(core, schedule)]
    assert states == [(1, "done"), (2, "done"), (3, "skipped")]
    assert len(ex.started) == 2


async def test_allow_runs_fires_side_by_side(core, clock):
    ex = controlled(core)
    schedule = await add_schedule(core, "* * * * * ?", overlap_policy="allow")
    for second in (1, 2):
        clock.set(T0 + second)
        await settle(core)
    assert len(ex.started) == 2
    ex.release.set()
    await core.runner.wait_idle()
    assert [r.state for r in await history(core, schedule)] == ["done", "done"]


async def test_replace_cancels_the_running_fire(core, clock):
    ex = controlled(core)
    schedule = await add_schedule(core, "* * * * * ?", overlap_policy="replace")
    clock.set(T0 + 1)
    await settle(core)
    clock.set(T0 + 2)
    await settle(core)
    await ex.until(started=2, cancelled=1)  # the newer run started, the older one was cancelled
    ex.release.set()
    await core.runner.wait_idle()
    runs = await history(core, schedule)
    assert [(r.state, r.error) for r in runs] == [
        ("canceled", "replaced by a newer run (overlap_policy replace)"), ("done", None)]
    assert ex.cancelled == [runs[0].uid]


async def test_run_now_conflicts_while_the_same_job_runs(core, clock):
    ex = controlled(core)
    ref = await core.runner.run_now("maintenance", "maintenance:default", "ManualMaintenance",
                                    at=clock.now(), org_id="default")
    assert ref.state == "inprogress"
    with pytest.raises(Conflict):
        await core.runner.run_now("maintenance", "maintenance:default", "ManualMaintenance",
                                  at=clock.now(), org_id="default")
    ex.release.set()
    await core.runner.wait_idle()
    run = await core.store.runs.get_by_uid(ref.uid)
    assert (run.state, run.trigger) == ("done", "ManualMaintenance")


async def test_runs_beyond_the_concurrency_limit_wait_queued(tmp_path, clock):
    core = build_core(make_config(max_concurrent_runs=1), db_path=str(tmp_path / "q.db"), clock=clock)
    await core.start(run_loop=False)
    try:
        ex = controlled(core)
        first = await core.runner.run_now("maintenance", "maintenance:a", "ManualMaintenance", at=T0, org_id="a")
        second = await core.runner.run_now("maintenance", "maintenance:b", "ManualMaintenance", at=T0, org_id="b")
        assert (first.state, second.state) == ("inprogress", "queued")
        assert (await core.store.runs.get_by_uid(second.uid)).state == "queued"
        await ex.until(started=1)  # a second run spawned with the first would have started with it
        assert len(ex.started) == 1
        assert (core.runner.in_flight, core.runner.queued) == (1, 1)
        ex.release.set()
        await core.runner.wait_idle()
        assert len(ex.started) == 2
        assert (await core.store.runs.get_by_uid(second.uid)).state == "done"
    finally:
        await core.stop()


async def test_a_run_past_its_timeout_is_cancelled_and_fails(core, clock):
    ex = controlled(core)
    schedule = await add_schedule(core, "0 * * * * ?", timeout=0.05)
    clock.set(T0 + 60)
    await finish_all(core)
    (run,) = await history(core, schedule)
    assert (run.state, run.error, run.timed_out) == ("failed", "timeout after 0.05 s", True)
    assert ex.cancelled == [run.uid]
    assert (await core.store.schedules.get(schedule.id)).fail_count == 1


async def test_a_failing_command_records_exit_code_and_output(tmp_path, clock):
    cfg = config_mod.from_dict({"executors": {"maintenance": {
        "command": [sys.executable, "-c", "import sys; print('disk full on {org_id}'); sys.exit(3)"]}}})
    core = build_core(cfg, db_path=str(tmp_path / "f.db"), clock=clock)
    await core.start(run_loop=False)
    try:
        ref = await core.runner.run_now("maintenance", "maintenance:x", "ManualMaintenance", at=T0, org_id="x")
        await core.runner.wait_idle()
        run = await core.store.runs.get_by_uid(ref.uid)
        assert (run.state, run.exit_code) == ("failed", 3)
        assert "disk full on x" in run.error
    finally:
        await core.stop()


@pytest.mark.parametrize(("policy", "expected_runs", "expected_missed"), [
    ("fire_once", 1, 9),   # 10 hourly fires missed: the latest runs, 9 are recorded as missed
    ("skip", 0, 10),
    ("fire_all", 3, 7),    # misfire_max = 3: the last three run, in order
])
async def test_downtime_misfires_follow_the_policy(tmp_path, clock, policy, expected_runs, expected_missed):
    path = str(tmp_path / "m.db")
    core = build_core(make_config(), db_path=path, clock=clock)
    await core.start(run_loop=False)
    schedule = await add_schedule(core, "0 0 * * * ?", misfire_policy=policy)
    await core.stop()

    clock.set(T0 + 10 * 3600 + 90)  # down for ten hours: every fire is past the 60 s grace
    core = build_core(make_config(), db_path=path, clock=clock)
    await core.start(run_loop=False)
    try:
        await finish_all(core)
        runs = await history(core, schedule)
        ran = [r for r in runs if r.state == "done"]
        missed = [r for r in runs if r.skip_reason == "misfire"]
        assert len(ran) == expected_runs
        assert sum(r.fires for r in missed) == expected_missed
        assert sum(r.fires for r in runs) == 10  # every due fire accounted for exactly once
        if policy == "fire_once":
            assert ran[0].due_at == T0 + 36000  # the latest missed fire runs
        if policy == "fire_all":
            assert [(r.due_at - T0) / 3600 for r in ran] == [8, 9, 10]
            assert ran[0].ended_at <= ran[1].started_at  # one after another
        reloaded = await core.store.schedules.get(schedule.id)
        assert reloaded.next_fire_at == T0 + 11 * 3600
    finally:
        await core.stop()


async def test_fires_late_within_grace_run_normally(core, clock):
    schedule = await add_schedule(core, "0 * * * * ?")
    clock.set(T0 + 60 + 45)  # 45 s late, grace is 60 s
    await finish_all(core)
    runs = await history(core, schedule)
    assert [(r.state, r.due_at) for r in runs] == [("done", T0 + 60)]


async def test_runs_left_open_by_a_crash_become_interrupted_on_start(tmp_path, clock):
    path = str(tmp_path / "c.db")
    core = build_core(make_config(), db_path=path, clock=clock)
    await core.start(run_loop=False)
    schedule = await add_schedule(core, "0 * * * * ?")
    await core.store.db.write(lambda conn: run_store.op_insert(conn, run_store.NewRun(
        uid="crashed", family="maintenance", overlap_key=schedule.overlap_key,
        trigger="TimeBasedMaintenance", state="inprogress", created_at=T0, schedule_id=schedule.id,
        org_id="default", started_at=T0)))
    await core.store.db.close()  # as if killed: no shutdown bookkeeping

    core = build_core(make_config(), db_path=path, clock=clock)
    await core.start(run_loop=False)
    try:
        run = await core.store.runs.get_by_uid("crashed")
        assert run.state == "interrupted"
        assert "stopped while the run was in progress" in run.error
        assert (await core.store.schedules.get(schedule.id)).fail_count == 1
    finally:
        await core.stop()


async def test_shutdown_interrupts_runs_that_outlive_the_grace(tmp_path, clock):
    cfg = config_mod.from_dict({"scheduler": {"shutdown_grace": 0.05}})
    core = build_core(cfg, db_path=str(tmp_path / "s.db"), clock=clock)
    await core.start(run_loop=False)
    ex = controlled(core)
    ref = await core.runner.run_now("maintenance", "maintenance:x", "ManualMaintenance", at=T0, org_id="x")
    await ex.until(started=1)
    db_path = core.store.db.path
    assert await core.stop() == (0, 1)
    assert ex.cancelled == [ref.uid]
    core = build_core(cfg, db_path=db_path, clock=clock)
    await core.start(run_loop=False)
    try:
        run = await core.store.runs.get_by_uid(ref.uid)
        assert run.state == "interrupted"
        assert "shut down" in run.error
    finally:
        await core.stop()


@pytest.mark.parametrize(("strategy", "ok", "kept", "payload"), [
    ("OFF", True, False, False),
    ("OFF", False, False, False),
    ("ERROR", True, False, False),
    ("ERROR", False, True, False),
    ("MINIMAL", True, True, False),
    ("FULL", True, True, True),
    ("FULL", False, True, True),
])
async def test_history_strategy_keeps_what_it_says_and_counters_count_everything(
        core, clock, strategy, ok, kept, payload):
    ex = controlled(core)
    ex.ok = ok
    ex.release.set()
    schedule = await add_schedule(core, "0 * * * * ?", family="service", org_id=None,
                                  name=f"job-{strategy}", history_strategy=strategy)
    clock.set(T0 + 60)
    await finish_all(core)
    runs = await history(core, schedule)
    assert len(runs) == (1 if kept else 0)
    if kept:
        assert (runs[0].response_body == "resp") is payload
        assert runs[0].complete is payload
    reloaded = await core.store.schedules.get(schedule.id)
    assert (reloaded.success_count, reloaded.fail_count) == ((1, 0) if ok else (0, 1))


async def test_retention_deletes_old_runs_in_batches_and_keeps_counters(core, clock):
    schedule = await add_schedule(core, "0 0 0 1 1 ? 2099", family="service", org_id=None,
                                  name="old", retention_days=1)

    def fill(conn):
        for i in range(1200):
            run_store.op_insert(conn, run_store.NewRun(
                uid=f"old{i}", family="service", overlap_key=schedule.overlap_key, trigger="Scheduled",
                state="done", created_at=T0 - 3 * 86400 + i, schedule_id=schedule.id))
        run_store.op_insert(conn, run_store.NewRun(
            uid="new", family="service", overlap_key=schedule.overlap_key, trigger="Scheduled",
            state="done", created_at=T0 - 3600, schedule_id=schedule.id))

    await core.store.db.write(fill)
    assert await core.retention.sweep(T0) == 1200
    assert [r.uid for r in await history(core, schedule)] == ["new"]


@pytest.mark.parametrize("history_retention, kept", [
    (90 * 86400.0, ["recent", "running", "recent-manual"]),
    (0.0, ["old", "recent", "running", "old-manual", "recent-manual"]),
])
async def test_runs_no_job_retention_covers_are_kept_for_history_retention(core, history_retention, kept):
    """Org maintenance and cube builds have no retention period of their own: `history_retention` bounds them."""
    core.retention.history_retention = history_retention
    schedule = await add_schedule(core, "0 0 0 1 1 ? 2099", retention_days=0)
    job = await add_schedule(core, "0 0 0 1 1 ? 2099", family="service", org_id=None, name="job",
                             retention_days=3650)
    day = 86400

    def fill(conn):
        for uid, state, age, schedule_id in (
                ("old", "done", 100 * day, schedule.id), ("recent", "failed", 10 * day, schedule.id),
                ("running", "inprogress", 100 * day, schedule.id), ("old-manual", "done", 100 * day, None),
                ("recent-manual", "done", 10 * day, None), ("job-old", "done", 100 * day, job.id)):
            run_store.op_insert(conn, run_store.NewRun(
                uid=uid, family="service" if schedule_id == job.id else "maintenance", overlap_key=uid,
                trigger="ManualMaintenance", state=state, created_at=T0 - age, schedule_id=schedule_id))

    await core.store.db.write(fill)
    await core.retention.sweep(T0)
    left = [row[0] for row in await sql.fetchall(core.store, "SELECT uid FROM runs ORDER BY id")]
    assert left == [*sorted(kept, key=["old", "recent", "running", "old-manual", "recent-manual"].index), "job-old"]


async def test_spring_forward_fire_runs_once_at_the_first_instant_after_the_gap(core, clock):
    ny = "America/New_York"
    clock.set(datetime(2026, 3, 7, 17, 0, tzinfo=timezone.utc).timestamp())
    schedule = await add_schedule(core, "30 2 * * *", tz=ny)
    expected = datetime(2026, 3, 8, 7, 0, tzinfo=timezone.utc).timestamp()  # 03:00 EDT
    assert schedule.next_fire_at == expected
    clock.set(expected)
    await finish_all(core)
    (run,) = await history(core, schedule)
    assert run.due_at == expected
    assert (await core.store.schedules.get(schedule.id)).next_fire_at == datetime(
        2026, 3, 9, 6, 30, tzinfo=timezone.utc).timestamp()


async def test_deactivated_schedule_stops_firing_at_once(core, clock):
    schedule = await add_schedule(core, "0 * * * * ?")
    await core.store.schedules.set_active(schedule.id, False, None, by="t", at=T0)
    core.runner.disarm(schedule.id)
    clock.set(T0 + 600)
    await finish_all(core)
    assert await history(core, schedule) == []


async def test_fall_back_fires_a_fixed_hour_once_and_an_hourly_schedule_in_both_hours(core, clock):
    ny = "America/New_York"
    start = datetime(2026, 11, 1, 4, 0, tzinfo=timezone.utc).timestamp()  # 00:00 EDT
    clock.set(start)
    fixed = await add_schedule(core, "30 1 * * *", tz=ny)
    hourly = await add_schedule(core, "0 * * * *", tz=ny)
    for hour in range(1, 5):
        clock.set(start + hour * 3600)
        await finish_all(core)
    utc = lambda r: datetime.fromtimestamp(r.due_at, timezone.utc).strftime("%H:%M")  # noqa: E731
    assert [utc(r) for r in await history(core, fixed)] == ["05:30"]  # 01:30 EDT only
    assert [utc(r) for r in await history(core, hourly)] == ["05:00", "06:00", "07:00", "08:00"]
    assert (await core.store.schedules.get(fixed.id)).next_fire_at == datetime(
        2026, 11, 2, 6, 30, tzinfo=timezone.utc).timestamp()


async def test_the_housekeeping_sweep_forgets_tokens_a_day_after_they_expire(make_api, clock):
    api = await make_api()

    async def login() -> None:
        response, body = await api.call("POST", "/authService/accounts/login", None,
                                        data={"userid": "alice", "password": PASSWORD})
        assert response.status == 200, body

    async def sweep_at(at: float) -> list[float]:
        clock.set(at)
        await api.core.retention.on_due([(RETENTION_SWEEP, at)], at)
        return sorted(row[0] - T0 for row in await sql.fetchall(api.core.store, "SELECT expires_at FROM tokens"))

    await login()  # an access token (12 h) and a refresh token (30 days), beside the fixture's
    assert len(await sweep_at(T0 + 43200 + 86400 - 60)) == 5  # expired less than a day ago: kept
    assert await sweep_at(T0 + 43200 + 86400 + 60) == [REFRESH_TTL]  # 12 h tokens expired over a day ago
    assert await sweep_at(T0 + REFRESH_TTL + 86400 + 60) == []
    await login()  # logging in still works, with fresh tokens
