"""Wall-clock steps (NTP, `date -s`, a resumed VM): misfires forward, no fire twice backward.

The test clock's `step` moves the wall clock alone, as a real step does; `set` and
`advance` are time passing. The end-to-end test steps a real daemon's clock with libfaketime.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import time
from collections import Counter

import pytest
import tomli_w

from schedd import metrics
from schedd.clock import TestClock
from schedd.compose import build_core
from schedd.core import Core
from schedd.engine import HOUSEKEEPING
from schedd.policy import clock_step, fire_floor
from schedd.retention import RETENTION_SWEEP
from schedd.store import runs as run_store
from schedd.store import schedules as schedule_store
from tests.support.api import T0
from tests.support.daemon import Daemon, schedd
from tests.support.jobs import JOBS, job, services
from tests.support.runner import add_schedule, finish_all, history, make_config

MINUTE, HOUR = 60.0, 3600.0


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def clock():
    return TestClock(T0)


@pytest.fixture
async def core(tmp_path, clock):
    c = build_core(make_config(), db_path=str(tmp_path / "steps.db"), clock=clock)
    await c.start(run_loop=False)
    yield c
    if c.store.db.is_open:
        await c.stop()


# -- the rule as pure functions ------------------------------------------------------------


def test_a_step_is_the_wall_clock_advance_beyond_the_monotonic_advance():
    assert clock_step((100.0, 101.0), (5.0, 6.0)) == 0.0            # time passed
    assert clock_step((100.0, 100.4), (5.0, 5.0)) == 0.0            # under a second: noise
    assert clock_step((100.0, 3701.0), (5.0, 6.0)) == 3600.0        # set ahead, or a suspend
    assert clock_step((100.0, -1699.0), (5.0, 6.0)) == -1800.0      # set back


def test_a_recomputed_fire_counts_from_the_latest_time_already_handled():
    assert fire_floor(1000.0, 900.0, 950.0) == 1000.0    # the clock is ahead of everything handled
    assert fire_floor(1000.0, 2800.0, None) == 2800.0    # stepped back behind the engine's turns
    assert fire_floor(1000.0, 0.0, 2900.0) == 2900.0     # behind the last run (after a restart)


async def test_test_clock_steps_move_the_wall_side_only_and_waits_use_the_monotonic_side():
    clock = TestClock(T0)
    clock.advance(10)
    assert (clock.now(), clock.monotonic()) == (T0 + 10, 10)
    clock.step(-3600)
    assert (clock.now(), clock.monotonic()) == (T0 + 10 - 3600, 10)
    clock.set(T0)  # forward again: time passing
    assert clock.monotonic() == 3600
    clock.set(T0 - 5)  # backward: a step
    assert clock.monotonic() == 3600

    sleeper = asyncio.ensure_future(clock.sleep(10))
    clock.step(HOUR)  # a step is no time passing: the sleep goes on
    await asyncio.sleep(0)
    assert not sleeper.done()
    clock.advance(10)
    await asyncio.wait_for(sleeper, 1)


# -- steps forward: each schedule's misfire policy -------------------------------------------


@pytest.mark.parametrize(("policy", "ran", "missed"), [
    ("fire_once", [3600], 11),              # the latest missed fire runs once
    ("skip", [], 12),
    ("fire_all", [3000, 3300, 3600], 9),    # misfire_max = 3, in order
])
async def test_a_one_hour_step_forward_follows_the_misfire_policy_and_counts_every_missed_fire(
        core, clock, caplog, policy, ran, missed):
    schedule = await add_schedule(core, "0 */5 * * * ?", misfire_policy=policy)  # T0+300, T0+600, ...
    clock.advance(250)
    await finish_all(core)  # a turn before the step: nothing due yet
    misfires_before = sample("schedd_misfires_total", family="maintenance")
    jumps_before = sample("schedd_clock_jumps_total", direction="forward")
    clock.step(HOUR)
    with caplog.at_level(logging.WARNING, logger="schedd.engine"):
        await finish_all(core)

    runs = await history(core, schedule)
    assert [r.due_at - T0 for r in runs if r.state == "done"] == ran
    skips = [r for r in runs if r.skip_reason == "misfire"]
    assert sum(r.fires for r in skips) == missed
    assert sum(r.fires for r in runs) == 12  # T0+300 ... T0+3600: each due fire accounted for once
    assert sample("schedd_misfires_total", family="maintenance") - misfires_before == missed
    assert sample("schedd_clock_jumps_total", direction="forward") - jumps_before == 1
    assert sample("schedd_clock_last_jump_seconds") == HOUR
    assert "action=clock_step direction=forward seconds=3600.000" in caplog.text
    assert (await core.store.schedules.get(schedule.id)).next_fire_at == T0 + 3900


# -- steps backward: nothing fires twice ------------------------------------------------------


@pytest.mark.parametrize("back", [30 * MINUTE, 5 * HOUR])
async def test_a_step_backward_runs_no_fire_twice_and_fires_resume_when_the_clock_catches_up(
        core, clock, caplog, back):
    schedule = await add_schedule(core, "0 * * * * ?")
    for _ in range(10):  # T0+60 ... T0+600 run on time
        clock.advance(MINUTE)
        await finish_all(core)
    jumps_before = sample("schedd_clock_jumps_total", direction="backward")

    clock.step(-back)
    with caplog.at_level(logging.WARNING, logger="schedd.engine"):
        await finish_all(core)
    assert f"action=clock_step direction=backward seconds={back:.3f}" in caplog.text
    assert f"large={int(back >= 3 * HOUR)}" in caplog.text
    assert sample("schedd_clock_jumps_total", direction="backward") - jumps_before == 1
    assert sample("schedd_clock_last_jump_seconds") == -back
    assert core.engine.due_of(0, schedule.id) == T0 + 660  # the timer waits where it was

    while clock.now() < T0 + 900:  # minute by minute until the clock is past where it was
        clock.advance(MINUTE)
        await finish_all(core)
        if clock.now() < T0 + 600:
            assert len(await history(core, schedule)) == 10  # nothing while it catches up

    runs = await history(core, schedule)
    per_due = Counter(r.due_at - T0 for r in runs)
    assert max(per_due.values()) == 1
    assert sorted(per_due) == [60 * m for m in range(1, 16)]  # T0+60 ... T0+900, once each
    assert all(r.state == "done" for r in runs)


async def test_a_restart_while_the_clock_is_behind_brings_no_fire_back(tmp_path, clock):
    path = str(tmp_path / "restart.db")
    core = build_core(make_config(), db_path=path, clock=clock)
    await core.start(run_loop=False)
    schedule = await add_schedule(core, "0 * * * * ?")
    for _ in range(5):
        clock.advance(MINUTE)
        await finish_all(core)
    await core.stop()

    clock.step(-HOUR)
    core = build_core(make_config(), db_path=path, clock=clock)
    await core.start(run_loop=False)
    try:
        assert core.engine.handled_until == T0 + 300
        for _ in range(70):
            clock.advance(MINUTE)
            await finish_all(core)
        per_due = Counter(r.due_at - T0 for r in await history(core, schedule))
        assert max(per_due.values()) == 1
        assert sorted(per_due) == [60 * m for m in range(1, 16)]  # 5 before the restart, 10 after catching up
    finally:
        await core.stop()


async def test_a_job_updated_while_the_clock_is_behind_keeps_its_floor(make_api, service):
    api = await make_api(services=services(service))
    response, body = await api.call("POST", JOBS, json=job(jobFrequency="0 * * * * ?", historyStrategy="MINIMAL"))
    assert response.status == 200, body
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    for _ in range(3):  # T0+60, +120, +180
        api.clock.advance(MINUTE)
        await api.settle()
    api.clock.step(-30 * MINUTE)
    await api.settle()
    response, body = await api.call("PUT", JOBS, json=job(
        jobId=job_id, jobFrequency="0 * * * * ?", historyStrategy="MINIMAL", description="edited"))
    assert response.status == 200, body
    assert (await api.core.store.schedules.get(job_id)).next_fire_at == T0 + 240  # not T0-1800+60
    while api.clock.now() < T0 + 300:
        api.clock.advance(MINUTE)
        await api.settle()
    runs = await api.core.store.runs.list_schedule(job_id, limit=100, offset=0)
    assert sorted(r.due_at - T0 for r in runs) == [60, 120, 180, 240, 300]
    assert len(service.calls) == 5


# -- timers and retention keep working -------------------------------------------------------


async def add_old_runs(core: Core, schedule, count: int, tag: str) -> None:
    def op(conn):
        for i in range(count):
            run_store.op_insert(conn, run_store.NewRun(
                uid=f"{tag}{i}", family="service", overlap_key=schedule.overlap_key, trigger="Scheduled",
                state="done", created_at=T0 - 10 * 86400 + i, schedule_id=schedule.id))
    await core.store.db.write(op)


async def test_the_retention_sweep_keeps_its_interval_across_steps_both_ways(core, clock):
    schedule = await add_schedule(core, "0 0 0 1 1 ? 2099", family="service", org_id=None,
                                  name="kept", retention_days=1)
    await finish_all(core)  # first turn: the clock's reading to compare with
    assert core.engine.due_of(HOUSEKEEPING, RETENTION_SWEEP) == T0 + 60  # the first sweep, a minute in

    await add_old_runs(core, schedule, 30, "a")
    clock.advance(30)
    clock.step(-5 * HOUR)
    await finish_all(core)
    assert core.engine.due_of(HOUSEKEEPING, RETENTION_SWEEP) == T0 + 60 - 5 * HOUR  # still 30 s away
    clock.advance(30)
    await finish_all(core)
    assert await history(core, schedule) == []  # swept 30 s later, not five hours later
    swept_at = clock.now()
    assert core.engine.due_of(HOUSEKEEPING, RETENTION_SWEEP) == swept_at + HOUR

    await add_old_runs(core, schedule, 30, "b")
    clock.advance(HOUR / 2)
    clock.step(2 * HOUR)
    await finish_all(core)
    assert len(await history(core, schedule)) == 30  # a step forward does not cut the interval
    clock.advance(HOUR / 2)
    await finish_all(core)
    assert await history(core, schedule) == []


# -- end to end: a real daemon whose clock libfaketime steps -----------------------------------


LIBFAKETIME = next((p for p in (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
) if os.path.exists(p)), None)


class SteppedDaemon(Daemon):
    """A Daemon whose wall clock is its real one plus the offset in `offset_file` (libfaketime)."""

    def __init__(self, tmp, command):
        super().__init__(tmp, command)
        self.config.write_bytes(tomli_w.dumps({
            "scheduler": {"shutdown_grace": "2s", "misfire_grace": "5s"},
            "executors": {"maintenance": {"command": command, "timeout": "60s"}},
        }).encode())
        self.offset_file = tmp / "faketime.rc"
        self.offset_file.write_text("+0\n")

    def start(self) -> SteppedDaemon:
        env = {"LD_PRELOAD": LIBFAKETIME or "",
               "FAKETIME_TIMESTAMP_FILE": str(self.offset_file),
               "FAKETIME_NO_CACHE": "1",       # read the file at every clock call: steps land at once
               "DONT_FAKE_MONOTONIC": "1"}     # the monotonic clock runs on, as it does under a real step
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)  # Daemon.start's child inherits this process's environment
        try:
            super().start()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return self

    def step_to(self, offset: int) -> None:
        self.offset_file.write_text(f"{offset:+d}\n")

    def metric(self, name: str, labels: str = "") -> float:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if line.startswith(name + labels + " "):
                return float(line.split()[-1])
        return 0.0


@pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime is not installed (Debian package faketime)")
@pytest.mark.e2e
def test_a_real_daemon_stepped_back_and_forward_runs_no_fire_twice_and_records_misfires(tmp_path):
    daemon = SteppedDaemon(tmp_path, ["/bin/true"])
    out = schedd("user", "add", "ops", "--admin", "--password-stdin", "--db", daemon.db,
                 "--config", str(daemon.config), stdin="e2e password 123\n")
    assert out.returncode == 0, out.stderr
    daemon.start()
    try:
        token = daemon.login()
        status, body = daemon.request("POST", "/aggregates/maintenance/scheduler/jobs/orgId/default",
                                      {"time_expression": "* * * * * ?", "scheduler_type": "time-based"}, token)
        assert status == 200, body

        def dues() -> list[float]:
            db = sqlite3.connect(f"file:{daemon.db}?mode=ro", uri=True)
            try:
                return [row[0] for row in db.execute(
                    "SELECT due_at FROM runs WHERE trigger = 'TimeBasedMaintenance' AND state = 'done'")]
            finally:
                db.close()

        daemon.wait_for(lambda: len(dues()) >= 3)
        daemon.step_to(-1800)  # 30 minutes back
        daemon.wait_for(lambda: "action=clock_step direction=backward" in daemon.log.read_text())
        before = len(dues())
        time.sleep(3)  # three seconds of real time in which every fire's time has already run
        assert len(dues()) <= before + 1  # at most the fire that was already being handled
        assert daemon.metric("schedd_clock_jumps_total", '{direction="backward"}') == 1

        daemon.step_to(+120)  # two minutes ahead of where the clock was: ~115 fires past the 5 s grace
        daemon.wait_for(lambda: "action=clock_step direction=forward" in daemon.log.read_text())
        daemon.wait_for(lambda: daemon.metric("schedd_misfires_total", '{family="maintenance"}') >= 100)
        count = len(dues())
        daemon.wait_for(lambda: len(dues()) >= count + 2)  # and it fires every second again
        assert daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()

    per_due = Counter(dues())
    assert max(per_due.values()) == 1, [d for d, n in per_due.items() if n > 1]
    db = sqlite3.connect(daemon.db)
    missed = db.execute("SELECT sum(fires) FROM runs WHERE skip_reason = 'misfire'").fetchone()[0]
    assert missed >= 100  # the ~120 fires the forward step jumped over, recorded as skipped
    log = daemon.log.read_text()
    assert re.search(r"action=clock_step direction=backward seconds=1800\.\d+", log), log
    assert re.search(r"action=clock_step direction=forward seconds=19\d\d\.\d+", log), log
